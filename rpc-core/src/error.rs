//! `Error`: everything a caller of this crate can match on, and `CallError` for methods that
//! declare an error type of their own.

mod disconnect;

use std::io;
use std::time::Duration;

pub use disconnect::Disconnect;

use crate::codec::{CodecError, PyException};
use crate::naming::NamingError;
use crate::protocol::{ProtocolError, RemoteError};
use crate::uri::{IdError, UriError};

/// What went wrong with a remote call, or with setting up a daemon or proxy.
///
/// Each message carries its cause (`could not connect to 127.0.0.1:9090: Connection refused
/// (os error 111)`), since most programs print `{error}` and nothing more; the cause is also
/// [`source`](std::error::Error::source), for error reporters that walk the chain.
///
/// Communication failures ([`Connect`](Error::Connect), [`Timeout`](Error::Timeout),
/// [`ConnectionLost`](Error::ConnectionLost), [`Protocol`](Error::Protocol)) are told apart by
/// [`Error::is_communication`]; a call that failed with one of them may or may not have run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Could not open a connection to the daemon at this address, or its handshake failed.
    #[error("could not connect to {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake with the daemon at this address failed: its certificate is not
    /// signed by a root this side trusts, or names another host, or the daemon refused this
    /// side's certificate (or its lack of one). The call did not run.
    #[error("TLS with {address} failed: {source}")]
    Tls {
        /// The address tried.
        address: String,
        /// What TLS reported.
        #[source]
        source: io::Error,
    },
    /// Could not listen on this address.
    #[error("could not bind {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// No reply within the proxy's timeout, or the daemon dropped the call at its deadline.
    #[error("call timed out after {0:?}")]
    Timeout(Duration),
    /// The connection closed or failed while the call was in flight; the call may have run.
    #[error("connection lost before the reply arrived: {0}")]
    ConnectionLost(#[source] Disconnect),
    /// The daemon refused the connection before reading any call from it (it serves its
    /// limit of connections, or is shutting down): the call did not run, and may be tried
    /// again later or elsewhere.
    #[error("the daemon refused the connection, so the call did not run: {0}")]
    Refused(RemoteError),
    /// The shared-secret authentication failed: this side has no secret and the daemon
    /// requires one, or the daemon has none, or the two secrets differ. Says which side could
    /// not prove what, never anything of the secret itself. The call did not run.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// The peer broke the wire protocol, or a message broke a limit.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No object is registered under this id at the daemon.
    #[error("unknown object `{0}`")]
    UnknownObject(String),
    /// The object has no method of this name.
    #[error("object `{object}` has no method `{method}`")]
    UnknownMethod {
        /// The object called.
        object: String,
        /// The method asked for.
        method: String,
    },
    /// The daemon could not decode the arguments as the method's parameter types.
    #[error("bad arguments for `{method}`: {detail}")]
    BadArguments {
        /// The method called.
        method: String,
        /// What the decoder reported.
        detail: String,
    },
    /// The remote method panicked. The daemon survived and serves other calls.
    #[error("remote method `{method}` panicked: {message}")]
    RemotePanic {
        /// The method called.
        method: String,
        /// The panic message.
        message: String,
    },
    /// The Python object raised an exception (a proxy of a Python Pyro5 daemon): its class,
    /// message and remote traceback.
    #[error("the Python object raised {0}")]
    PythonException(PyException),
    /// The daemon refused or failed the call for another reason it reported.
    #[error("the daemon failed the call: {0}")]
    Remote(#[source] RemoteError),
    /// A local value (an argument) could not be encoded, or a reply could not be decoded.
    #[error("could not encode or decode {what}: {source}")]
    Codec {
        /// What was being encoded or decoded.
        what: String,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// The URI text is malformed.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The URI cannot be used this way (a `PYRONAME:` URI where a direct one is needed).
    #[error("cannot use {uri}: {reason}")]
    UnusableUri {
        /// The URI.
        uri: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// No nameserver could be found.
    #[error(
        "no nameserver found (tried: {}); name one with RPC_NS_HOST and RPC_NS_PORT or \
         `Config::nameserver`",
        tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NameServerNotFound {
        /// Each place tried, and why it failed.
        tried: Vec<NameServerAttempt>,
    },
    /// The nameserver refused a lookup or registration.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// The object id cannot be carried by a URI (whitespace, `@`, ...), so the daemon refused it.
    #[error("invalid object id: {0}")]
    InvalidObjectId(#[from] IdError),
    /// An object is already registered with the daemon under this id.
    #[error("an object is already registered under the id `{0}`")]
    DuplicateObject(String),
}

/// One place [`locate_ns`](crate::naming::locate_ns) looked for a nameserver, and why it found
/// none there.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NameServerAttempt {
    /// The nameserver at this URI (configured, answering discovery, or on localhost) did not
    /// accept a connection.
    #[error("{uri} ({how}): {error}")]
    Unreachable {
        /// The nameserver's URI.
        uri: crate::uri::Uri,
        /// How it was found: `configured`, `answered the broadcast` or `localhost`.
        how: &'static str,
        /// Why connecting failed.
        #[source]
        error: std::sync::Arc<Error>,
    },
    /// Broadcast discovery found no nameserver.
    #[error("broadcast to {targets}: {reason}")]
    NoAnswer {
        /// Where the requests went.
        targets: String,
        /// What came back instead: no answer, or answers that were not acceptable.
        reason: String,
    },
    /// Broadcast discovery could not start (no socket, broadcast not allowed).
    #[error("broadcast: {0}")]
    Broadcast(#[source] std::sync::Arc<io::Error>),
}

impl Error {
    /// Whether the call failed in transit (connect, timeout, connection lost, protocol), as
    /// Pyro's `CommunicationError` does, rather than being answered by the daemon.
    pub fn is_communication(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Refused(_)
                | Error::Timeout(_)
                | Error::ConnectionLost(_)
                | Error::Protocol(_)
        )
    }

    /// Turns the daemon's report of a failed call into the variant a caller matches on.
    pub(crate) fn from_remote(error: RemoteError, timeout: Duration) -> Error {
        match error {
            RemoteError::UnknownObject { object } => Error::UnknownObject(object),
            RemoteError::UnknownMethod { object, method } => {
                Error::UnknownMethod { object, method }
            }
            RemoteError::BadArguments { method, detail } => Error::BadArguments { method, detail },
            RemoteError::Panicked { method, message } => Error::RemotePanic { method, message },
            RemoteError::DeadlineExceeded { .. } => Error::Timeout(timeout),
            RemoteError::ReplyTooLarge { size, limit, .. } => {
                Error::Protocol(ProtocolError::MessageTooLarge { size, limit })
            }
            other => Error::Remote(other),
        }
    }
}

/// The error of a call to a remote method declared as returning `Result<T, E>`: either the
/// method's own error, still typed, or an [`Error`] of the call itself.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The remote method ran and returned its own error.
    #[error("remote method failed: {0}")]
    Method(E),
    /// The call did not complete: see [`Error`].
    #[error(transparent)]
    Rpc(#[from] Error),
}

impl<E> CallError<E> {
    /// The method's own error, if that is what this is.
    pub fn into_method_error(self) -> Option<E> {
        match self {
            CallError::Method(error) => Some(error),
            CallError::Rpc(_) => None,
        }
    }
}
