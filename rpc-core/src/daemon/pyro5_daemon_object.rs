//! `Pyro.Daemon`: the object every Pyro5 daemon serves about itself, which Pyro5 clients and
//! tools call (`ping`, `registered`, `info`, `get_metadata`).

use super::Shared;
use crate::codec::{PyException, PyValue};
use crate::dispatch::MethodInfo;
use crate::protocol::pyro5::body::{self, Invocation};

/// Its object id, as in Pyro5.
pub(crate) const DAEMON_OBJECT_ID: &str = "Pyro.Daemon";

/// Its methods.
pub(crate) const METHODS: &[MethodInfo] = &[
    MethodInfo {
        name: "ping",
        params: &[],
        oneway: false,
    },
    MethodInfo {
        name: "registered",
        params: &[],
        oneway: false,
    },
    MethodInfo {
        name: "info",
        params: &[],
        oneway: false,
    },
    MethodInfo {
        name: "get_metadata",
        params: &["objectId"],
        oneway: false,
    },
];

/// Answers a call to `Pyro.Daemon`.
pub(crate) fn call(shared: &Shared, invocation: Invocation) -> Result<PyValue, PyException> {
    let Some(info) = METHODS.iter().find(|info| info.name == invocation.method) else {
        return Err(PyException::new(
            "builtins.AttributeError",
            format!(
                "remote object '{DAEMON_OBJECT_ID}' has no exposed attribute or method '{}'",
                invocation.method
            ),
        ));
    };
    let bound = invocation
        .bind(info.params)
        .map_err(|message| PyException::new("builtins.TypeError", message))?;
    match info.name {
        "ping" => Ok(PyValue::None),
        "registered" => {
            let mut ids = shared.registry.ids();
            ids.extend(shared.pyro5_faces.ids());
            ids.push(DAEMON_OBJECT_ID.to_owned());
            ids.sort();
            ids.dedup();
            Ok(PyValue::List(ids.into_iter().map(PyValue::Str).collect()))
        }
        "info" => Ok(PyValue::Str(format!(
            "rpc-core daemon {} on {}, serving Pyro5 protocol 502",
            env!("CARGO_PKG_VERSION"),
            shared.location
        ))),
        _ => {
            let object = bound
                .args
                .items()
                .and_then(<[PyValue]>::first)
                .and_then(PyValue::as_str);
            let methods = match object {
                Some(DAEMON_OBJECT_ID) => Some(METHODS),
                Some(id) => shared.pyro5_object(id).map(|object| object.methods()),
                None => None,
            };
            methods
                .map(body::metadata)
                .ok_or_else(|| PyException::new("Pyro5.errors.DaemonError", "unknown object"))
        }
    }
}
