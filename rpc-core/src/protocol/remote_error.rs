//! `RemoteError`: why the daemon could not produce a method's result, as it crosses the wire.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a daemon could not produce a result, sent in place of a value.
///
/// This is plain serializable data; the proxy turns it into the matching
/// [`Error`](crate::Error) variant. A remote method's *own* error type is not carried here: it is
/// part of the method's return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No object is registered under this id.
    #[error("no object `{object}` is registered with the daemon")]
    UnknownObject {
        /// The object id asked for.
        object: String,
    },
    /// The object has no method of this name.
    #[error("object `{object}` has no method `{method}`")]
    UnknownMethod {
        /// The object called.
        object: String,
        /// The method asked for.
        method: String,
    },
    /// The arguments did not decode as the method's parameter types.
    #[error("bad arguments for `{method}`: {detail}")]
    BadArguments {
        /// The method called.
        method: String,
        /// What the decoder reported.
        detail: String,
    },
    /// The method (or the factory that builds its instance) panicked. The daemon carries on.
    #[error("method `{method}` panicked: {message}")]
    Panicked {
        /// The method called.
        method: String,
        /// The panic message, if it was a string.
        message: String,
    },
    /// The call's deadline passed before the method finished; the daemon dropped its work.
    #[error("method `{method}` did not finish within its deadline")]
    DeadlineExceeded {
        /// The method called.
        method: String,
    },
    /// The method's return value could not be encoded.
    #[error("the result of `{method}` could not be encoded: {detail}")]
    BadResult {
        /// The method called.
        method: String,
        /// What the encoder reported.
        detail: String,
    },
    /// The method's encoded result is larger than the daemon's message limit.
    #[error("the result of `{method}` is {size} bytes, over the daemon's limit of {limit}")]
    ReplyTooLarge {
        /// The method called.
        method: String,
        /// The size of the reply frame, in bytes.
        size: u64,
        /// The daemon's `Config::max_message_size`.
        limit: usize,
    },
    /// The client broke the wire protocol; the daemon closes the connection.
    #[error("protocol violation: {detail}")]
    Protocol {
        /// The daemon's description of the violation.
        detail: String,
    },
    /// The daemon is shutting down and takes no new work.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The connection sent nothing and had no call running for this long, so the daemon
    /// closed it (a proxy connects again at its next call).
    #[error("the daemon closes connections idle for {after:?} (`Config::idle_timeout`)")]
    Idle {
        /// The daemon's `Config::idle_timeout`.
        after: Duration,
    },
    /// The daemon serves as many connections as a limit of its allows (in all, or from the
    /// client's address), and refused this one before reading anything from it.
    #[error("the daemon serves its limit of {limit} connections (`Config::{setting}`)")]
    TooManyConnections {
        /// The `Config` field that sets the limit: `max_connections` or
        /// `max_connections_per_address`.
        setting: String,
        /// Its value.
        limit: usize,
    },
    /// The shared-secret authentication failed: a side has no secret, or another one. The
    /// reason never says anything of the secret itself.
    #[error("authentication failed: {reason}")]
    AuthenticationFailed {
        /// Which side could not prove what.
        reason: String,
    },
}
