//! `PyException`: a Python exception as a value, the way Pyro5 carries it: a dict with its
//! class, `__exception__: True`, its arguments and its attributes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::PyValue;

/// A Python exception: its class (`module.Name`), its arguments and its attributes (Pyro puts
/// the remote traceback in `_pyroTraceback`).
///
/// A Rust method that returns `Err(PyException)` raises exactly this exception in a Python
/// client; a Rust proxy of a Python object gets the exceptions it raises as this type, in
/// [`Error::PythonException`](crate::Error::PythonException).
#[derive(Debug, Clone, PartialEq)]
pub struct PyException {
    /// The class, such as `builtins.ValueError` or `Pyro5.errors.NamingError`.
    pub class: String,
    /// The exception's arguments (`args`); the first is usually the message.
    pub args: Vec<PyValue>,
    /// Its attributes.
    pub attributes: Vec<(String, PyValue)>,
}

impl PyException {
    /// An exception of `class` with `message` as its only argument.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> PyException {
        PyException {
            class: class.into(),
            args: vec![PyValue::Str(message.into())],
            attributes: Vec::new(),
        }
    }

    /// This exception with one more attribute.
    #[must_use]
    pub fn with_attribute(mut self, name: &str, value: PyValue) -> PyException {
        self.attributes.push((name.to_owned(), value));
        self
    }

    /// The message: the first argument if it is a string, else the arguments' serpent text.
    pub fn message(&self) -> String {
        match self.args.as_slice() {
            [PyValue::Str(message)] => message.clone(),
            [] => String::new(),
            args => PyValue::Tuple(args.to_vec()).to_serpent_text(),
        }
    }

    /// The remote traceback Pyro5 sends with it, as one text; empty if none came.
    pub fn traceback(&self) -> String {
        let traceback = self
            .attributes
            .iter()
            .find(|(name, _)| name == "_pyroTraceback")
            .map(|(_, value)| value);
        match traceback {
            Some(PyValue::Str(text)) => text.clone(),
            Some(value) => value
                .items()
                .unwrap_or_default()
                .iter()
                .filter_map(PyValue::as_str)
                .collect(),
            None => String::new(),
        }
    }

    /// The exception dict Pyro5 sends.
    pub fn to_py_value(&self) -> PyValue {
        PyValue::dict([
            ("__class__", PyValue::str(&self.class)),
            ("__exception__", PyValue::Bool(true)),
            ("args", PyValue::Tuple(self.args.clone())),
            (
                "attributes",
                PyValue::Dict(
                    self.attributes
                        .iter()
                        .map(|(name, value)| (PyValue::str(name), value.clone()))
                        .collect(),
                ),
            ),
        ])
    }

    /// The exception an exception dict describes, if `value` is one.
    pub fn from_py_value(value: &PyValue) -> Option<PyException> {
        if !value.get("__exception__").is_some_and(PyValue::is_truthy) {
            return None;
        }
        let class = value.get("__class__")?.as_str()?.to_owned();
        let args = value
            .get("args")
            .and_then(PyValue::items)
            .unwrap_or_default()
            .to_vec();
        let attributes = match value.get("attributes") {
            Some(PyValue::Dict(entries)) => entries
                .iter()
                .filter_map(|(name, value)| Some((name.as_str()?.to_owned(), value.clone())))
                .collect(),
            _ => Vec::new(),
        };
        Some(PyException {
            class,
            args,
            attributes,
        })
    }

    /// What a Python client is sent for a Rust method's `Err(e)`, given `e` as a Python value
    /// and its `Display` if it has one: `e` itself if it is an exception dict, else a
    /// `RuntimeError` that carries it, with the `Display` (or a rendering of `e`) as message.
    pub(crate) fn for_method_error(error: PyValue, display: Option<String>) -> PyValue {
        if PyException::from_py_value(&error).is_some() {
            return error;
        }
        let message = display.unwrap_or_else(|| Self::describe(&error));
        PyException::new("builtins.RuntimeError", message)
            .with_attribute("error", error)
            .to_py_value()
    }

    /// A message for an error value without a `Display`.
    fn describe(error: &PyValue) -> String {
        match error {
            PyValue::Str(text) => text.clone(),
            PyValue::Dict(entries) if entries.len() == 1 => {
                let (variant, content) = &entries[0];
                match variant.as_str() {
                    Some(variant) => format!("{variant}: {}", content.to_serpent_text()),
                    None => error.to_serpent_text(),
                }
            }
            other => other.to_serpent_text(),
        }
    }
}

impl fmt::Display for PyException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message())
    }
}

impl std::error::Error for PyException {}

impl Serialize for PyException {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_py_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PyException {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PyException, D::Error> {
        let value = PyValue::deserialize(deserializer)?;
        PyException::from_py_value(&value)
            .ok_or_else(|| serde::de::Error::custom("not a Python exception dict"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_python_daemon_raises() {
        let raised = crate::codec::Format::Serpent
            .decode_py_value(
                b"# serpent utf-8 python3.2\n{'__class__':'builtins.ValueError','__exception__':True,\
                  'args':('boom',),'attributes':{'_pyroTraceback':['Traceback (most recent call last):\\n','ValueError: boom\\n']}}",
                8,
            )
            .unwrap();
        let exception = PyException::from_py_value(&raised).unwrap();
        assert_eq!(exception.class, "builtins.ValueError");
        assert_eq!(exception.message(), "boom");
        assert_eq!(
            exception.traceback(),
            "Traceback (most recent call last):\nValueError: boom\n"
        );
        assert_eq!(exception.to_string(), "builtins.ValueError: boom");
        assert_eq!(PyException::from_py_value(&PyValue::dict([])), None);
    }

    #[test]
    fn a_methods_own_error_becomes_a_runtime_error_that_carries_it() {
        let error = PyValue::dict([("UnknownCurrency", PyValue::str("XYZ"))]);
        let sent = PyException::from_py_value(&PyException::for_method_error(error.clone(), None))
            .unwrap();
        assert_eq!(sent.class, "builtins.RuntimeError");
        assert_eq!(sent.message(), "UnknownCurrency: 'XYZ'");
        assert_eq!(sent.attributes, vec![("error".to_owned(), error)]);
        // An exception of the method's own choosing goes as it is.
        let own = PyException::new("Pyro5.errors.NamingError", "unknown name: x").to_py_value();
        assert_eq!(PyException::for_method_error(own.clone(), None), own);
    }
}
