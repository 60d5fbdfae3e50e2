//! What a Rust daemon's failures become for a Python client: exceptions of classes it rebuilds.
//!
//! A stock Python client rebuilds only builtin exceptions, `Pyro5.errors.*`, `sqlite3.*Error`
//! and `struct.error`, and fails on any other class. So every failure here is one of those:
//!
//! | at the daemon | Python class | attributes |
//! |---|---|---|
//! | the method returned `Err(e)` | `builtins.RuntimeError`, or the class `e` names if it is a [`PyException`] | `error`: `e` as a Python value |
//! | unknown method | `builtins.AttributeError` | |
//! | unknown object | `Pyro5.errors.DaemonError` | |
//! | bad or missing arguments | `builtins.TypeError` | |
//! | the method panicked | `Pyro5.errors.PyroError` | |
//! | the call's deadline passed | `Pyro5.errors.TimeoutError` | |
//! | the reply is over the size limit | `Pyro5.errors.MessageTooLargeError` | |
//! | anything else | `Pyro5.errors.PyroError` | |

use crate::codec::PyException;
use crate::protocol::RemoteError;

/// What a Python client is sent in place of a call's result when the daemon reports `error`.
pub fn exception_for(error: &RemoteError) -> PyException {
    let class = match error {
        RemoteError::UnknownMethod { .. } => "builtins.AttributeError",
        RemoteError::UnknownObject { .. } => "Pyro5.errors.DaemonError",
        RemoteError::BadArguments { .. } => "builtins.TypeError",
        RemoteError::DeadlineExceeded { .. } => "Pyro5.errors.TimeoutError",
        RemoteError::ReplyTooLarge { .. } => "Pyro5.errors.MessageTooLargeError",
        _ => "Pyro5.errors.PyroError",
    };
    let message = match error {
        RemoteError::UnknownObject { .. } => "unknown object".to_owned(),
        RemoteError::BadArguments { method, detail } => format!("{method}() {detail}"),
        other => other.to_string(),
    };
    PyException::new(class, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_reports_map_to_classes_a_stock_client_rebuilds() {
        let unknown = exception_for(&RemoteError::UnknownMethod {
            object: "o".into(),
            method: "m".into(),
        });
        assert_eq!(unknown.class, "builtins.AttributeError");
        let bad = exception_for(&RemoteError::BadArguments {
            method: "add".into(),
            detail: "missing 1 required positional argument: 'b'".into(),
        });
        assert_eq!(bad.class, "builtins.TypeError");
        assert_eq!(
            bad.message(),
            "add() missing 1 required positional argument: 'b'"
        );
    }
}
