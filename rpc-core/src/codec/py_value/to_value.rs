//! `to_py_value`: a serde `Serializer` whose output is a [`PyValue`].

use std::cell::Cell;

use serde::Serialize;
use serde::ser;

use super::{PyException, PyValue, PyValueError};
use crate::codec::CodecError;

/// The name under which [`PyValue::Set`] serializes itself, so this serializer gives back a set
/// where other formats see a plain sequence.
pub(super) const SET_MARKER: &str = "\0rpc_core::PyValue::Set";

/// The name under which a method's error travels with its message (see
/// `__private::Raised`): the value is `(message, error)`, and becomes the error's Python value
/// with the message kept beside it for the exception.
pub(crate) const RAISED_MARKER: &str = "\0rpc_core::Raised";

/// The Python value of `value` (see the table in [`PyValue`]'s module).
///
/// # Errors
///
/// The message of the value's own `Serialize` if it fails.
pub fn to_py_value<T: Serialize + ?Sized>(value: &T) -> Result<PyValue, CodecError> {
    value
        .serialize(ToPyValue::NESTED)
        .map_err(|error| CodecError::custom(error.0))
}

/// The Python value of a method's return value, and whether it is an error to raise: a
/// returned `Result` is the call's outcome, so `Ok(x)` is `x` and `Err(e)` is `e`, raised.
pub(crate) fn to_py_outcome<T: Serialize + ?Sized>(
    value: &T,
) -> Result<(PyValue, bool), CodecError> {
    let raised = Cell::new(false);
    let value = value
        .serialize(ToPyValue {
            outcome: Some(&raised),
        })
        .map_err(|error| CodecError::custom(error.0))?;
    Ok((value, raised.get()))
}

/// Serializes into a [`PyValue`].
#[derive(Clone, Copy)]
pub(crate) struct ToPyValue<'a> {
    /// At the top of a return value: where to note that a `Result` was an `Err`.
    outcome: Option<&'a Cell<bool>>,
}

impl ToPyValue<'_> {
    const NESTED: ToPyValue<'static> = ToPyValue { outcome: None };
}

/// The integer serializers, every one an `int` that fits an `i128`.
macro_rules! ints {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method(self, value: $ty) -> Result<PyValue, PyValueError> {
                Ok(PyValue::Int(value.into()))
            }
        )*
    };
}

impl ser::Serializer for ToPyValue<'_> {
    type Ok = PyValue;
    type Error = PyValueError;
    type SerializeSeq = Items;
    type SerializeTuple = Items;
    type SerializeTupleStruct = Items;
    type SerializeTupleVariant = Variant<Items>;
    type SerializeMap = Entries;
    type SerializeStruct = Entries;
    type SerializeStructVariant = Variant<Entries>;

    fn serialize_bool(self, value: bool) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Bool(value))
    }
    ints! { serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
    serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
    serialize_u64(u64) }
    fn serialize_u128(self, value: u128) -> Result<PyValue, PyValueError> {
        Ok(i128::try_from(value).map_or(PyValue::BigUint(value), PyValue::Int))
    }
    fn serialize_f32(self, value: f32) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Float(value.into()))
    }
    fn serialize_f64(self, value: f64) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Float(value))
    }
    fn serialize_char(self, value: char) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Str(value.to_string()))
    }
    fn serialize_str(self, value: &str) -> Result<PyValue, PyValueError> {
        Ok(PyValue::str(value))
    }
    fn serialize_bytes(self, value: &[u8]) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Bytes(value.to_vec()))
    }
    fn serialize_none(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<PyValue, PyValueError> {
        value.serialize(ToPyValue::NESTED)
    }
    fn serialize_unit(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<PyValue, PyValueError> {
        Ok(PyValue::None)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<PyValue, PyValueError> {
        Ok(PyValue::str(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<PyValue, PyValueError> {
        match value.serialize(ToPyValue::NESTED)? {
            PyValue::List(items) if name == SET_MARKER => Ok(PyValue::Set(items)),
            PyValue::Tuple(mut pair) if name == RAISED_MARKER && pair.len() == 2 => {
                let error = pair.pop().unwrap_or(PyValue::None);
                let message = pair.pop().unwrap_or(PyValue::None);
                let display = match message {
                    PyValue::Str(message) => Some(message),
                    _ => None,
                };
                Ok(PyException::for_method_error(error, display))
            }
            other => Ok(other),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<PyValue, PyValueError> {
        if let (Some(raised), "Result") = (self.outcome, name) {
            raised.set(variant == "Err");
            return value.serialize(ToPyValue::NESTED);
        }
        Ok(PyValue::dict([(
            variant,
            value.serialize(ToPyValue::NESTED)?,
        )]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Items, PyValueError> {
        Ok(Items::new(len, PyValue::List))
    }
    fn serialize_tuple(self, len: usize) -> Result<Items, PyValueError> {
        Ok(Items::new(Some(len), PyValue::Tuple))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Items, PyValueError> {
        Ok(Items::new(Some(len), PyValue::Tuple))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Items>, PyValueError> {
        Ok(Variant {
            name: variant,
            inner: Items::new(Some(len), PyValue::Tuple),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Entries, PyValueError> {
        Ok(Entries::new(len))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Entries, PyValueError> {
        Ok(Entries::new(Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Entries>, PyValueError> {
        Ok(Variant {
            name: variant,
            inner: Entries::new(Some(len)),
        })
    }
}

/// The items of a sequence or tuple being serialized.
pub(crate) struct Items {
    items: Vec<PyValue>,
    make: fn(Vec<PyValue>) -> PyValue,
}

impl Items {
    fn new(len: Option<usize>, make: fn(Vec<PyValue>) -> PyValue) -> Items {
        // A length hint comes from the value, not from a peer, but is capped all the same.
        Items {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            make,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        self.items.push(value.serialize(ToPyValue::NESTED)?);
        Ok(())
    }

    fn finish(self) -> PyValue {
        (self.make)(self.items)
    }
}

impl ser::SerializeSeq for Items {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        self.push(value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Items {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        self.push(value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Items {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        self.push(value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(self.finish())
    }
}

/// The entries of a map or struct being serialized.
pub(crate) struct Entries {
    entries: Vec<(PyValue, PyValue)>,
    key: Option<PyValue>,
}

impl Entries {
    fn new(len: Option<usize>) -> Entries {
        Entries {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), PyValueError> {
        self.entries
            .push((PyValue::str(key), value.serialize(ToPyValue::NESTED)?));
        Ok(())
    }
}

impl ser::SerializeMap for Entries {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), PyValueError> {
        self.key = Some(key.serialize(ToPyValue::NESTED)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| PyValueError("a map value came without its key".into()))?;
        self.entries
            .push((key, value.serialize(ToPyValue::NESTED)?));
        Ok(())
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Dict(self.entries))
    }
}

impl ser::SerializeStruct for Entries {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), PyValueError> {
        self.field(key, value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::Dict(self.entries))
    }
}

/// The content of an enum variant being serialized, which becomes `{variant: content}`.
pub(crate) struct Variant<T> {
    name: &'static str,
    inner: T,
}

impl ser::SerializeTupleVariant for Variant<Items> {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PyValueError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::dict([(self.name, self.inner.finish())]))
    }
}

impl ser::SerializeStructVariant for Variant<Entries> {
    type Ok = PyValue;
    type Error = PyValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), PyValueError> {
        self.inner.field(key, value)
    }
    fn end(self) -> Result<PyValue, PyValueError> {
        Ok(PyValue::dict([(
            self.name,
            PyValue::Dict(self.inner.entries),
        )]))
    }
}
