//! `PyValue` as a serde type, which is how it meets JSON (through `serde_json`) and how a
//! method may return a `PyValue` itself.
//!
//! The serde form is faithful (bytes as bytes, keys as they are); JSON has fewer kinds than
//! Python, so [`PyValue::for_json`] first turns bytes into the base64 dict serpent uses and
//! dict keys that are not strings into strings (numbers as digits, others as serpent text).
//! Tuples and sets become arrays.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::PyValue;
use super::to_value::SET_MARKER;

impl Serialize for PyValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PyValue::None => serializer.serialize_unit(),
            PyValue::Bool(value) => serializer.serialize_bool(*value),
            PyValue::Int(value) => match i64::try_from(*value) {
                Ok(small) => serializer.serialize_i64(small),
                Err(_) => serializer.serialize_i128(*value),
            },
            PyValue::BigUint(value) => serializer.serialize_u128(*value),
            PyValue::Float(value) => serializer.serialize_f64(*value),
            PyValue::Str(text) => serializer.serialize_str(text),
            PyValue::Bytes(bytes) => serializer.serialize_bytes(bytes),
            PyValue::Tuple(items) => {
                use serde::ser::SerializeTuple;
                let mut tuple = serializer.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            PyValue::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            PyValue::Set(items) => serializer.serialize_newtype_struct(SET_MARKER, &List(items)),
            PyValue::Dict(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// Items serialized as a plain sequence.
struct List<'a>(&'a [PyValue]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0)
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PyValue, D::Error> {
        deserializer.deserialize_any(AnyValue)
    }
}

struct AnyValue;

impl<'de> Visitor<'de> for AnyValue {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(value))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(value.into()))
    }
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<PyValue, E> {
        Ok(PyValue::Int(value))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<PyValue, E> {
        Ok(PyValue::Int(value.into()))
    }
    fn visit_u128<E: de::Error>(self, value: u128) -> Result<PyValue, E> {
        Ok(i128::try_from(value).map_or(PyValue::BigUint(value), PyValue::Int))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(value))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<PyValue, E> {
        Ok(PyValue::str(value))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<PyValue, E> {
        Ok(PyValue::Str(value))
    }
    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<PyValue, E> {
        Ok(PyValue::Bytes(value.to_vec()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }
    fn visit_none<E: de::Error>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<PyValue, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<PyValue, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(PyValue::Dict(entries))
    }
}

impl PyValue {
    /// This value as JSON can carry it: bytes as serpent's base64 dict, dict keys as strings.
    pub(crate) fn for_json(self) -> PyValue {
        match self {
            PyValue::Bytes(bytes) => PyValue::dict([
                ("data", PyValue::Str(BASE64.encode(bytes))),
                ("encoding", PyValue::str("base64")),
            ]),
            PyValue::Tuple(items) => {
                PyValue::Tuple(items.into_iter().map(PyValue::for_json).collect())
            }
            PyValue::List(items) => {
                PyValue::List(items.into_iter().map(PyValue::for_json).collect())
            }
            PyValue::Set(items) => PyValue::Set(items.into_iter().map(PyValue::for_json).collect()),
            PyValue::Dict(entries) => PyValue::Dict(
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let key = match key {
                            PyValue::Str(text) => text,
                            PyValue::Int(number) => number.to_string(),
                            PyValue::BigUint(number) => number.to_string(),
                            other => other.to_serpent_text(),
                        };
                        (PyValue::Str(key), value.for_json())
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}
