//! `PyValue`: a Python value as Pyro5's serializers carry it, and the bridge between Rust types
//! and Python values.
//!
//! Pyro5 clients send serpent (Python literals) or JSON. Both are parsed into a `PyValue`, and
//! a skeleton's argument tuple is deserialized from that; return values go the other way.
//! [`to_py_value`] is a serde `Serializer` and `&PyValue` a serde `Deserializer`, so every
//! serde type crosses without code of its own:
//!
//! | Rust | Python |
//! |---|---|
//! | `()`, `None`, a unit struct | `None` |
//! | `bool` | `bool` |
//! | integers up to `i128` / `u128` | `int` |
//! | `f32`, `f64` (also infinities and NaN) | `float` |
//! | `String`, `&str`, `char` | `str` |
//! | bytes (`Vec<u8>` argument or return value, `serde_bytes`) | `bytes` |
//! | `Some(x)` | `x` |
//! | `Vec<T>`, slices, sets | `list` (a `set` or `tuple` is accepted in their place) |
//! | tuples, tuple structs | `tuple` (a `list` is accepted) |
//! | structs, maps | `dict` (struct fields by name); map keys keep their type |
//! | an enum's unit variant | its name as a `str` |
//! | an enum's other variants | a one-entry `dict`: `{"Variant": content}` |
//! | a returned `Err(e)` | an exception; see [`crate::pyro5`] |

mod exception;
mod from_value;
mod json;
mod to_value;

use std::fmt;

pub use exception::PyException;
pub(crate) use from_value::Returned;
pub(crate) use to_value::RAISED_MARKER;
pub(crate) use to_value::to_py_outcome;
pub use to_value::to_py_value;

/// A Python value, as Pyro5 carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits an `i128`.
    Int(i128),
    /// An `int` above `i128::MAX` that fits a `u128`.
    BigUint(u128),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` (serpent carries them as a base64 dict, JSON cannot carry them).
    Bytes(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `set`.
    Set(Vec<PyValue>),
    /// A `dict`, in the order written.
    Dict(Vec<(PyValue, PyValue)>),
}

impl PyValue {
    /// A `str` value.
    pub fn str(text: impl Into<String>) -> PyValue {
        PyValue::Str(text.into())
    }

    /// A `dict` with string keys.
    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, PyValue)>) -> PyValue {
        PyValue::Dict(
            entries
                .into_iter()
                .map(|(key, value)| (PyValue::str(key), value))
                .collect(),
        )
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The value under the string key `key` of a `dict`.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(entries) => entries
                .iter()
                .find(|(candidate, _)| candidate.as_str() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// The items of a `tuple`, `list` or `set`.
    pub fn items(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::Tuple(items) | PyValue::List(items) | PyValue::Set(items) => Some(items),
            _ => None,
        }
    }

    /// Python's truth value of this value (`bool(x)`).
    pub fn is_truthy(&self) -> bool {
        match self {
            PyValue::None => false,
            PyValue::Bool(value) => *value,
            PyValue::Int(value) => *value != 0,
            PyValue::BigUint(_) => true,
            PyValue::Float(value) => *value != 0.0,
            PyValue::Str(text) => !text.is_empty(),
            PyValue::Bytes(bytes) => !bytes.is_empty(),
            PyValue::Tuple(items) | PyValue::List(items) | PyValue::Set(items) => !items.is_empty(),
            PyValue::Dict(entries) => !entries.is_empty(),
        }
    }

    /// The Python type name, for messages (`int`, `str`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) | PyValue::BigUint(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::Tuple(_) => "tuple",
            PyValue::List(_) => "list",
            PyValue::Set(_) => "set",
            PyValue::Dict(_) => "dict",
        }
    }
}

/// Why a value could not cross between a Rust type and a [`PyValue`] (the error of `&PyValue`
/// as a serde `Deserializer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyValueError(pub(crate) String);

impl fmt::Display for PyValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PyValueError {}

impl serde::ser::Error for PyValueError {
    fn custom<T: fmt::Display>(message: T) -> PyValueError {
        PyValueError(message.to_string())
    }
}

impl serde::de::Error for PyValueError {
    fn custom<T: fmt::Display>(message: T) -> PyValueError {
        PyValueError(message.to_string())
    }
}
