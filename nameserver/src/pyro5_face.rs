//! `Pyro.NameServer` as Python Pyro5 clients see it: Pyro5's own nameserver API (`lookup`,
//! `register`, `remove`, `list`, `yplookup`, `set_metadata`, `count`, `ping`), with its
//! argument names and defaults, over the same registry our own clients use. `locate_ns()`,
//! `PYRONAME:`, `PYROMETA:` and `pyro5-nsc` work against it unchanged.
//!
//! Values are Pyro5's: `lookup` answers a `Pyro5.core.URI` dict, listings answer URI strings,
//! `register` takes a URI string or dict, metadata is any sequence of strings. Failures raise
//! `Pyro5.errors.NamingError` with the nameserver's message (an unknown name reads
//! `unknown name: N`, as Pyro5's does). The registry's rules hold for Python callers as for
//! ours: owned names stay their owner's, limits apply, and with a secret only clients that
//! prove it change names, which a Pyro5 client cannot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rpc_core::pyro5::{PyException, PyValue};
use rpc_core::{
    Location, MetadataQuery, NameFilter, NameServer, NamingError, Registration, Uri, service,
};

use crate::server::NameServerImpl;

/// Pyro5's nameserver API.
#[service]
pub(crate) trait Pyro5NameServer {
    async fn lookup(
        &self,
        name: String,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException>;
    async fn register(
        &self,
        name: String,
        uri: PyValue,
        safe: Option<PyValue>,
        metadata: Option<PyValue>,
    ) -> Result<(), PyException>;
    async fn remove(
        &self,
        name: Option<String>,
        prefix: Option<String>,
        regex: Option<String>,
    ) -> Result<u64, PyException>;
    async fn list(
        &self,
        prefix: Option<String>,
        regex: Option<String>,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException>;
    async fn yplookup(
        &self,
        meta_all: Option<PyValue>,
        meta_any: Option<PyValue>,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException>;
    async fn set_metadata(&self, name: String, metadata: PyValue) -> Result<(), PyException>;
    async fn count(&self) -> u64;
    async fn ping(&self);
}

/// The Pyro5 face of a nameserver.
pub(crate) struct Pyro5Face(pub(crate) Arc<NameServerImpl>);

impl Pyro5NameServer for Pyro5Face {
    async fn lookup(
        &self,
        name: String,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException> {
        let found = self
            .0
            .lookup_with_metadata(name)
            .await
            .map_err(naming_error)?;
        let uri = uri_value(&found.uri);
        // A `PYRONAME:` resolve passes its delay (0.0) here: only a true value asks.
        Ok(if return_metadata.is_some_and(|asked| asked.is_truthy()) {
            PyValue::Tuple(vec![uri, metadata_value(&found)])
        } else {
            uri
        })
    }

    async fn register(
        &self,
        name: String,
        uri: PyValue,
        safe: Option<PyValue>,
        metadata: Option<PyValue>,
    ) -> Result<(), PyException> {
        let uri = uri_of(&uri)?;
        let metadata = tags(metadata.as_ref())?;
        let safe = safe.is_some_and(|safe| safe.is_truthy());
        self.0
            .register(name, uri, safe, metadata)
            .await
            .map_err(naming_error)
    }

    async fn remove(
        &self,
        name: Option<String>,
        prefix: Option<String>,
        regex: Option<String>,
    ) -> Result<u64, PyException> {
        let filter = match (name, prefix, regex) {
            (Some(name), _, _) => NameFilter::Name(name),
            (None, Some(prefix), _) => NameFilter::Prefix(prefix),
            (None, None, Some(regex)) => NameFilter::Regex(regex),
            (None, None, None) => return Ok(0),
        };
        self.0.remove(filter).await.map_err(naming_error)
    }

    async fn list(
        &self,
        prefix: Option<String>,
        regex: Option<String>,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException> {
        let filter = match (prefix, regex) {
            (Some(prefix), _) => NameFilter::Prefix(prefix),
            (None, Some(regex)) => NameFilter::Regex(regex),
            (None, None) => NameFilter::Prefix(String::new()),
        };
        let found = self
            .0
            .list_with_metadata(filter)
            .await
            .map_err(naming_error)?;
        Ok(listing(
            found,
            return_metadata.is_some_and(|asked| asked.is_truthy()),
        ))
    }

    async fn yplookup(
        &self,
        meta_all: Option<PyValue>,
        meta_any: Option<PyValue>,
        return_metadata: Option<PyValue>,
    ) -> Result<PyValue, PyException> {
        let query = match (meta_all, meta_any) {
            (Some(all), _) if !matches!(all, PyValue::None) => {
                MetadataQuery::All(tags(Some(&all))?)
            }
            (_, Some(any)) if !matches!(any, PyValue::None) => {
                MetadataQuery::Any(tags(Some(&any))?)
            }
            _ => {
                return Err(PyException::new(
                    "builtins.ValueError",
                    "yplookup needs meta_all or meta_any",
                ));
            }
        };
        let found = self.0.yplookup(query).await.map_err(naming_error)?;
        // Pyro5's default here is to return the metadata.
        let with_metadata = return_metadata.is_none_or(|asked| asked.is_truthy());
        Ok(listing(found, with_metadata))
    }

    async fn set_metadata(&self, name: String, metadata: PyValue) -> Result<(), PyException> {
        let metadata = tags(Some(&metadata))?;
        self.0
            .set_metadata(name, metadata)
            .await
            .map_err(naming_error)
    }

    async fn count(&self) -> u64 {
        self.0.count().await
    }

    async fn ping(&self) {}
}

/// `{name: uri}` or, with metadata, `{name: (uri, [tags])}`, URIs as strings.
fn listing(found: BTreeMap<String, Registration>, with_metadata: bool) -> PyValue {
    PyValue::Dict(
        found
            .into_iter()
            .map(|(name, registration)| {
                let uri = PyValue::Str(registration.uri.to_string());
                let value = if with_metadata {
                    PyValue::Tuple(vec![uri, metadata_value(&registration)])
                } else {
                    uri
                };
                (PyValue::Str(name), value)
            })
            .collect(),
    )
}

fn metadata_value(registration: &Registration) -> PyValue {
    PyValue::List(
        registration
            .metadata
            .iter()
            .cloned()
            .map(PyValue::Str)
            .collect(),
    )
}

/// A URI as Pyro5's `URI` class serializes itself.
fn uri_value(uri: &Uri) -> PyValue {
    let state = match uri {
        Uri::Direct { object, location } => match location {
            Location::Tcp { host, port } => vec![
                PyValue::str("PYRO"),
                PyValue::str(object),
                PyValue::None,
                PyValue::str(host),
                PyValue::Int((*port).into()),
            ],
            Location::Unix(path) => vec![
                PyValue::str("PYRO"),
                PyValue::str(object),
                PyValue::Str(path.display().to_string()),
                PyValue::None,
                PyValue::None,
            ],
        },
        other => vec![PyValue::Str(other.to_string())],
    };
    PyValue::dict([
        ("__class__", PyValue::str("Pyro5.core.URI")),
        ("state", PyValue::Tuple(state)),
    ])
}

/// The URI a Pyro5 client registers: a string, or a `URI` dict.
fn uri_of(value: &PyValue) -> Result<Uri, PyException> {
    let text = match value {
        PyValue::Str(text) => text.clone(),
        dict => match dict.get("state").and_then(PyValue::items) {
            Some(
                [
                    PyValue::Str(protocol),
                    PyValue::Str(object),
                    sockname,
                    host,
                    port,
                ],
            ) => match (sockname, host, port) {
                (PyValue::Str(path), _, _) => format!("{protocol}:{object}@./u:{path}"),
                (_, PyValue::Str(host), PyValue::Int(port)) if host.contains(':') => {
                    format!("{protocol}:{object}@[{host}]:{port}")
                }
                (_, PyValue::Str(host), PyValue::Int(port)) => {
                    format!("{protocol}:{object}@{host}:{port}")
                }
                _ => return Err(type_error("a URI's state names no location")),
            },
            _ => return Err(type_error("uri must be a str or a Pyro5 URI")),
        },
    };
    text.parse::<Uri>()
        .map_err(|error| PyException::new("Pyro5.errors.PyroError", error.to_string()))
}

/// Metadata tags from any sequence of strings; none for `None`.
fn tags(value: Option<&PyValue>) -> Result<BTreeSet<String>, PyException> {
    match value {
        None | Some(PyValue::None) => Ok(BTreeSet::new()),
        Some(value) => value
            .items()
            .ok_or_else(|| type_error("metadata must be a set, list or tuple of str"))?
            .iter()
            .map(|tag| {
                tag.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| type_error("metadata must be strings"))
            })
            .collect(),
    }
}

fn type_error(message: &str) -> PyException {
    PyException::new("builtins.TypeError", message)
}

/// A refusal of the registry, as Pyro5's nameserver raises it.
fn naming_error(error: NamingError) -> PyException {
    let message = match &error {
        NamingError::UnknownName(name) => format!("unknown name: {name}"),
        other => other.to_string(),
    };
    PyException::new("Pyro5.errors.NamingError", message)
}
