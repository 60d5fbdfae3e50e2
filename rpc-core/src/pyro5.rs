//! Working with Python Pyro5: its clients call our objects and use our nameserver, and our
//! proxies call objects in a Python Pyro5 daemon.
//!
//! **Daemons serve Pyro5 clients on their own port.** A connection that opens with `PYRO` is
//! served with Pyro5's protocol 502 (see [`crate::protocol::pyro5`]), in serpent (the
//! Python default) or JSON (`PYRO_SERIALIZER=json`). Python calls any method the service trait
//! declares, with positional or keyword arguments (bound by the argument names the macro
//! records), and `Pyro.Daemon` answers `ping`, `registered`, `info` and `get_metadata`. Turn
//! it off with [`Config::serve_pyro5`](crate::Config::serve_pyro5).
//!
//! **Values** cross as the table in [`PyValue`] says. **Errors** become exceptions a stock
//! client rebuilds: a method's `Err(e)` raises `RuntimeError` with `e` in its `error`
//! attribute, unless `e` is a [`PyException`], which is raised as it is; unknown methods raise
//! `AttributeError`, bad arguments `TypeError`, panics `PyroError`, deadlines `TimeoutError`.
//!
//! **Our proxies call Python objects** when their [`Config::pyro5_format`](crate::Config::pyro5_format)
//! is set. An exception the Python method raises comes back as
//! [`Error::PythonException`](crate::Error::PythonException), with its class, message and
//! traceback.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::Error> {
//! use rpc_core::{Config, Format, Proxy};
//! let config = Config::default().pyro5_format(Some(Format::Serpent));
//! let python = Proxy::with_config("PYRO:example.greeting@localhost:9999".parse()?, config);
//! let greeting: String = python.call("get_fortune", &("Ada",)).await?;
//! # Ok(()) }
//! ```

pub use crate::codec::{PyException, PyValue, PyValueError, to_py_value};
pub use crate::protocol::pyro5::exception::exception_for;
