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
//! | structs, maps | `dict` (struct fields by name); map keys keep their type (in JSON they become strings) |
//! | an enum's unit variant | its name as a `str` |
//! | an enum's other variants | a one-entry `dict`: `{"Variant": content}` |
//! | a returned `Err(e)` | an exception; see [`crate::pyro5`] |
//!
//! A document's value takes at most about 16 times the document's bytes in memory (every
//! item costs at least a byte or two of text and 32 bytes as a `PyValue`), and it nests at most
//! [`MAX_NESTING`](crate::protocol::pyro5::MAX_NESTING) levels.

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize, de::DeserializeOwned};

    use super::*;
    use crate::codec::Format;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        item: String,
        quantity: u32,
        note: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Pair(i8, i8),
        Rect { w: u32, h: u32 },
    }

    fn crosses<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: T, python: &str) {
        let py = to_py_value(&value).unwrap();
        assert_eq!(py.to_serpent_text(), python);
        assert_eq!(T::deserialize(&py).unwrap(), value);
    }

    #[test]
    fn rust_values_cross_as_the_table_says() {
        crosses(
            Order {
                item: "fig".into(),
                quantity: 2,
                note: None,
            },
            "{'item':'fig','quantity':2,'note':None}",
        );
        crosses(Shape::Dot, "'Dot'");
        crosses(Shape::Circle(1.5), "{'Circle':1.5}");
        crosses(Shape::Pair(1, -1), "{'Pair':(1,-1)}");
        crosses(Shape::Rect { w: 2, h: 3 }, "{'Rect':{'w':2,'h':3}}");
        crosses((1u8, "x".to_owned()), "(1,'x')");
        crosses(vec![Some(1u64), None], "[1,None]");
        crosses(u128::MAX, "340282366920938463463374607431768211455");
        crosses(BTreeMap::from([((1, 2), "a".to_owned())]), "{(1,2):'a'}");
        crosses(Ok::<u32, String>(3), "{'Ok':3}");
    }

    #[test]
    fn python_spellings_are_accepted_and_wrong_types_are_named() {
        let list = PyValue::List(vec![PyValue::Int(1), PyValue::str("x")]);
        assert_eq!(<(u8, String)>::deserialize(&list).unwrap(), (1, "x".into()));
        let error = u32::deserialize(&PyValue::str("many")).unwrap_err();
        assert!(error.to_string().contains("expected u32"), "{error}");
        assert!(u8::deserialize(&PyValue::Int(300)).is_err());
        assert_eq!(f64::deserialize(&PyValue::Int(2)).unwrap(), 2.0);
    }

    #[test]
    fn number_keys_spelled_as_strings_are_read_as_numbers() {
        let json = Format::Json
            .decode_py_value(br#"{"7": true, "-1": false}"#, 8)
            .unwrap();
        assert_eq!(
            BTreeMap::<i32, bool>::deserialize(&json).unwrap(),
            BTreeMap::from([(7, true), (-1, false)])
        );
        assert!(BTreeMap::<u8, bool>::deserialize(&json).is_err());
        let named = PyValue::dict([("true", PyValue::Int(1))]);
        assert_eq!(
            BTreeMap::<bool, u8>::deserialize(&named).unwrap(),
            BTreeMap::from([(true, 1)])
        );
    }

    #[test]
    fn json_writes_non_string_keys_as_strings() {
        let map = BTreeMap::from([(7u32, true)]);
        let mut out = bytes::BytesMut::new();
        Format::Json.encode_into(&map, &mut out).unwrap();
        assert_eq!(&out[..], br#"{"7":true}"#);
        let tuple_keys = BTreeMap::from([((1, 2), 0u8)]);
        let mut out = bytes::BytesMut::new();
        Format::Json.encode_into(&tuple_keys, &mut out).unwrap();
        assert_eq!(&out[..], br#"{"(1,2)":0}"#);
    }
}
