//! `Disconnect`: why a connection ended under the calls in flight on it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::RemoteError;

/// Why a connection ended while calls were in flight on it: the cause that
/// [`Error::ConnectionLost`](crate::Error::ConnectionLost) carries.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Disconnect {
    /// The daemon closed the connection without a word (it stopped, or its process died).
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon closed the connection and said why (an idle connection, its shutdown, a
    /// protocol error it saw).
    #[error("the daemon closed the connection: {0}")]
    ClosedBecause(RemoteError),
    /// Reading from the socket failed.
    #[error("reading from the daemon failed: {0}")]
    Read(#[source] Arc<io::Error>),
    /// Writing to the socket failed.
    #[error("writing to the daemon failed: {0}")]
    Write(#[source] Arc<io::Error>),
    /// The TLS session failed after its handshake: the daemon refused this side's
    /// certificate (with TLS 1.3 that comes after the client's handshake is done), or sent
    /// a TLS alert.
    #[error("the TLS session failed: {0}")]
    Tls(#[source] Arc<io::Error>),
    /// A keepalive ping went unanswered for this long.
    #[error(
        "the daemon did not answer a keepalive ping within {0:?} (see `Config::keepalive_timeout`)"
    )]
    KeepaliveUnanswered(Duration),
}
