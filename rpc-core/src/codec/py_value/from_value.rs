//! `&PyValue` as a serde `Deserializer`: Rust types read from Python values.
//!
//! Where Python has two spellings of one idea, both are accepted: a tuple, list or set for a
//! sequence or tuple, a dict or a tuple for a struct, `bytes` or a list of ints for bytes.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{PyValue, PyValueError};

fn unexpected(value: &PyValue, expected: &str) -> PyValueError {
    PyValueError(format!(
        "expected {expected}, got a Python {}",
        value.type_name()
    ))
}

impl<'de> Deserializer<'de> for &'de PyValue {
    type Error = PyValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::None => visitor.visit_unit(),
            PyValue::Bool(value) => visitor.visit_bool(*value),
            PyValue::Int(value) => match i64::try_from(*value) {
                Ok(small) => visitor.visit_i64(small),
                Err(_) => visitor.visit_i128(*value),
            },
            PyValue::BigUint(value) => visitor.visit_u128(*value),
            PyValue::Float(value) => visitor.visit_f64(*value),
            PyValue::Str(text) => visitor.visit_borrowed_str(text),
            PyValue::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
            PyValue::Tuple(items) | PyValue::List(items) | PyValue::Set(items) => {
                visitor.visit_seq(Items(items.iter()))
            }
            PyValue::Dict(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::None => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            // `()` is also the argument tuple of a method without arguments.
            PyValue::None => visitor.visit_unit(),
            PyValue::Tuple(items) | PyValue::List(items) if items.is_empty() => {
                visitor.visit_unit()
            }
            other => Err(unexpected(other, "None")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
            PyValue::Str(text) => visitor.visit_borrowed_bytes(text.as_bytes()),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::Tuple(items) | PyValue::List(items) | PyValue::Set(items) => {
                visitor.visit_seq(Items(items.iter()))
            }
            PyValue::Bytes(bytes) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(bytes.iter().copied()))
            }
            other => Err(unexpected(other, "a list or tuple")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::Dict(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
            other => Err(unexpected(other, "a dict")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::Dict(_) => self.deserialize_map(visitor),
            PyValue::Tuple(_) | PyValue::List(_) => self.deserialize_seq(visitor),
            other => Err(unexpected(other, "a dict")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        match self {
            PyValue::Str(variant) => visitor.visit_enum(
                IntoDeserializer::<PyValueError>::into_deserializer(variant.as_str()),
            ),
            PyValue::Dict(entries) if entries.len() == 1 => {
                let (variant, content) = &entries[0];
                visitor.visit_enum(Enum { variant, content })
            }
            other => Err(unexpected(
                other,
                "a variant name, or a dict of one entry {variant: content}",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string identifier
        ignored_any
    }
}

struct Items<'de>(std::slice::Iter<'de, PyValue>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = PyValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PyValueError> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de> {
    entries: std::slice::Iter<'de, (PyValue, PyValue)>,
    value: Option<&'de PyValue>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = PyValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PyValueError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(MapKey(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, PyValueError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| PyValueError("a map value was asked for before its key".into()))?;
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'de> {
    variant: &'de PyValue,
    content: &'de PyValue,
}

impl<'de> EnumAccess<'de> for Enum<'de> {
    type Error = PyValueError;
    type Variant = &'de PyValue;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, &'de PyValue), PyValueError> {
        Ok((seed.deserialize(self.variant)?, self.content))
    }
}

impl<'de> VariantAccess<'de> for &'de PyValue {
    type Error = PyValueError;

    fn unit_variant(self) -> Result<(), PyValueError> {
        self.deserialize_unit(de::IgnoredAny).map(drop)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, PyValueError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        self.deserialize_map(visitor)
    }
}

macro_rules! forward_to_value {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, PyValueError> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

/// Forwards everything but numbers, bools and enums, which the wrappers here treat on their own.
macro_rules! forward_structure_to_value {
    () => {
        forward_to_value! {
            deserialize_any(), deserialize_char(), deserialize_str(), deserialize_string(),
            deserialize_bytes(), deserialize_byte_buf(), deserialize_option(),
            deserialize_unit(), deserialize_seq(), deserialize_map(), deserialize_identifier(),
            deserialize_ignored_any(),
            deserialize_unit_struct(name: &'static str),
            deserialize_newtype_struct(name: &'static str),
            deserialize_tuple(len: usize),
            deserialize_tuple_struct(name: &'static str, len: usize),
            deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        }
    };
}

/// A dict key. JSON has only string keys, so a number key arrives as its digits: a key read as
/// a number or a bool is also taken from a string that spells one (`{"7": ...}` for a
/// `HashMap<u32, _>`).
struct MapKey<'de>(&'de PyValue);

macro_rules! key_from_text {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
                if let PyValue::Str(text) = self.0 {
                    return match text.parse::<$ty>() {
                        Ok(value) => visitor.$visit(value),
                        Err(_) => Err(unexpected(self.0, stringify!($ty))),
                    };
                }
                self.0.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for MapKey<'de> {
    type Error = PyValueError;

    key_from_text! {
        deserialize_i8 => visit_i8(i8), deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32), deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128), deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16), deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64), deserialize_u128 => visit_u128(u128),
        deserialize_f32 => visit_f32(f32), deserialize_f64 => visit_f64(f64),
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PyValueError> {
        match self.0 {
            PyValue::Str(text) if text == "true" || text == "True" => visitor.visit_bool(true),
            PyValue::Str(text) if text == "false" || text == "False" => visitor.visit_bool(false),
            other => other.deserialize_bool(visitor),
        }
    }

    forward_to_value! {
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }
    forward_structure_to_value!();
}

/// A Python method's return value, read as a Rust method's: a Rust `Result` asked for at the
/// top is `Ok` of the value (a Python method that fails raises instead of returning).
pub(crate) struct Returned<'de>(pub(crate) &'de PyValue);

impl<'de> Deserializer<'de> for Returned<'de> {
    type Error = PyValueError;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PyValueError> {
        if name == "Result" {
            return visitor.visit_enum(OkOf(self.0));
        }
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward_to_value! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(),
        deserialize_u32(), deserialize_u64(), deserialize_u128(), deserialize_f32(),
        deserialize_f64(),
    }
    forward_structure_to_value!();
}

/// `Ok(value)`, as an enum to deserialize.
struct OkOf<'de>(&'de PyValue);

impl<'de> EnumAccess<'de> for OkOf<'de> {
    type Error = PyValueError;
    type Variant = &'de PyValue;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, &'de PyValue), PyValueError> {
        let ok = IntoDeserializer::<PyValueError>::into_deserializer("Ok");
        Ok((seed.deserialize(ok)?, self.0))
    }
}
