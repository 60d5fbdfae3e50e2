//! The one place that turns serde values into payload bytes and back: bincode 2 for our own
//! protocol, serpent and JSON for Pyro5's.
//!
//! Every bincode decode runs with a byte limit tied to the length of the input, so a length
//! field in a small frame cannot make the decoder reserve gigabytes: bincode checks each
//! claimed length against the limit before it allocates. bincode's limit is a type parameter,
//! so the input length is rounded up to one of a few tiers; an allocation is at most 16 times
//! the frame. Values may nest at most `Config::max_nesting_depth` levels, so no input can
//! overflow the stack. Serpent and JSON documents are read into a [`PyValue`] first (whose
//! size is bounded by the document's), then into the Rust type.

mod depth;
mod error;
mod py_value;
pub(crate) mod serpent;

pub use error::{CodecCause, CodecError};
pub(crate) use py_value::RAISED_MARKER;
pub use py_value::{PyException, PyValue, PyValueError, to_py_value};

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::enc::write::SizeWriter;
use bincode::error::EncodeError;
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::DEFAULT_MAX_NESTING_DEPTH;

/// The formats a connection can carry values in. The skeleton decodes arguments through this
/// type, so every format reaches generated code unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// bincode 2 with its standard configuration: our own protocol.
    #[default]
    Bincode,
    /// Serpent, Python literal text: Pyro5's default serializer.
    Serpent,
    /// JSON: Pyro5's serializer when a Python client sets `PYRO_SERIALIZER=json`.
    Json,
}

/// Lets bincode append to a `BytesMut` directly; one that may not grow fails with
/// `UnexpectedEnd` when the room the buffer has runs out.
struct BufWriter<'a> {
    buf: &'a mut BytesMut,
    may_grow: bool,
}

impl bincode::enc::write::Writer for BufWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if !self.may_grow && self.buf.capacity() - self.buf.len() < bytes.len() {
            return Err(EncodeError::UnexpectedEnd);
        }
        self.buf.put_slice(bytes);
        Ok(())
    }
}

const fn config<const N: usize>() -> Configuration<LittleEndian, Varint, Limit<N>> {
    bincode::config::standard().with_limit::<N>()
}

impl Format {
    /// Appends the encoding of `value` to `buf`.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the value's `Serialize` implementation fails.
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        buf: &mut BytesMut,
    ) -> Result<(), CodecError> {
        match self {
            Format::Serpent => {
                serpent::write(&to_py_value(value)?, buf);
                Ok(())
            }
            Format::Json => {
                serde_json::to_writer((&mut *buf).writer(), &to_py_value(value)?.for_json())
                    .map_err(|error| CodecError::custom(error.to_string()))
            }
            Format::Bincode => {
                let standard = bincode::config::standard();
                // First into the room the buffer has (a reused frame buffer has plenty): most
                // values fit, in one pass.
                let start = buf.len();
                let within_room = BufWriter {
                    buf: &mut *buf,
                    may_grow: false,
                };
                match bincode::serde::encode_into_writer(value, within_room, standard) {
                    Ok(()) => return Ok(()),
                    Err(EncodeError::UnexpectedEnd) => buf.truncate(start),
                    Err(error) => {
                        buf.truncate(start);
                        return Err(CodecError::encoding(error));
                    }
                }
                // Too large for that room. Measuring first costs one cheap pass and saves the
                // copies of a growing buffer, which dominate for large payloads.
                let mut size = SizeWriter::default();
                bincode::serde::encode_into_writer(value, &mut size, standard)
                    .map_err(CodecError::encoding)?;
                buf.reserve(size.bytes_written);
                let growing = BufWriter {
                    buf,
                    may_grow: true,
                };
                bincode::serde::encode_into_writer(value, growing, standard)
                    .map_err(CodecError::encoding)
            }
        }
    }

    /// Appends the encoding of a method's return value `value`; whether it is an error to
    /// raise. For Pyro5's formats a returned `Result` is the call's outcome: `Ok(x)` is sent
    /// as `x`, `Err(e)` as `e`, and `true` says it is to be raised. Our own protocol carries
    /// the `Result` as it is.
    pub(crate) fn encode_outcome_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        buf: &mut BytesMut,
    ) -> Result<bool, CodecError> {
        let (value, raised) = match self {
            Format::Bincode => return self.encode_into(value, buf).map(|()| false),
            Format::Serpent | Format::Json => match py_value::to_py_outcome(value)? {
                (error, true) => (PyException::for_method_error(error, None), true),
                returned => returned,
            },
        };
        self.encode_into(&value, buf)?;
        Ok(raised)
    }

    /// A Python method's return value read as a Rust method's: a Rust `Result` asked for at
    /// the top is `Ok` of the value (a Python method that fails raises instead).
    pub(crate) fn from_returned<T: DeserializeOwned>(value: &PyValue) -> Result<T, CodecError> {
        T::deserialize(py_value::Returned(value)).map_err(|error| CodecError::custom(error.0))
    }

    /// Decodes a whole value from `bytes`; trailing bytes are an error.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not a valid encoding of `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_nested(bytes, DEFAULT_MAX_NESTING_DEPTH)
    }

    /// Decodes a whole value from `bytes`, allowing it to nest `max_depth` levels (see
    /// [`Config::max_nesting_depth`](crate::Config::max_nesting_depth)).
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not a valid encoding of `T`, or nest deeper.
    pub fn decode_nested<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        max_depth: usize,
    ) -> Result<T, CodecError> {
        match self {
            Format::Bincode => decode_bincode(bytes, max_depth),
            Format::Serpent | Format::Json => {
                let value = self.decode_py_value(bytes, max_depth)?;
                T::deserialize(&value).map_err(|error| CodecError::custom(error.0))
            }
        }
    }

    /// Reads a serpent or JSON document into a [`PyValue`] that nests at most `max_depth`
    /// levels (JSON also at most serde_json's own 128).
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not such a document, or for [`Format::Bincode`], which
    /// is not self-describing.
    pub fn decode_py_value(self, bytes: &[u8], max_depth: usize) -> Result<PyValue, CodecError> {
        match self {
            Format::Serpent => serpent::parse(bytes, max_depth)
                .map_err(|error| CodecError::invalid(error.to_string())),
            Format::Json => serde_json::from_slice(bytes)
                .map_err(|error| CodecError::invalid(format!("invalid JSON: {error}"))),
            Format::Bincode => Err(CodecError::invalid(
                "bincode cannot be read without knowing the type",
            )),
        }
    }
}

fn decode_bincode<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, CodecError> {
    const KIB: usize = 1024;
    let decoded = match bytes.len() {
        0..=256 => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ 4 * KIB }>(),
        ),
        257..=4096 => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ 64 * KIB }>(),
        ),
        4097..=65_536 => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ KIB * KIB }>(),
        ),
        65_537..=1_048_576 => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ 16 * KIB * KIB }>(),
        ),
        1_048_577..=16_777_216 => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ 256 * KIB * KIB }>(),
        ),
        _ => bincode::serde::seed_decode_from_slice(
            depth::Limit::<T>::new(max_depth),
            bytes,
            config::<{ 1 << 36 }>(),
        ),
    };
    let (value, used) = decoded.map_err(|error| CodecError::decoding(error, bytes.len()))?;
    if used != bytes.len() {
        return Err(CodecError::trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
        let mut buf = BytesMut::new();
        Format::Bincode.encode_into(&value, &mut buf).unwrap();
        assert_eq!(Format::Bincode.decode::<T>(&buf).unwrap(), value);
    }

    #[test]
    fn values_round_trip() {
        round_trip((1u64, "two".to_owned(), vec![3i32, -4]));
        round_trip(Some(serde_bytes::ByteBuf::from(vec![7u8; 100_000])));
        round_trip(Ok::<f64, String>(1.5));
    }

    #[test]
    fn values_that_outgrow_the_room_are_appended_whole() {
        let prefix = b"header, not touched";
        for value in ["fits".to_owned(), "x".repeat(10_000)] {
            let mut buf = BytesMut::with_capacity(64);
            buf.extend_from_slice(prefix);
            Format::Bincode.encode_into(&value, &mut buf).unwrap();
            assert_eq!(&buf[..prefix.len()], prefix);
            assert_eq!(
                Format::Bincode
                    .decode::<String>(&buf[prefix.len()..])
                    .unwrap(),
                value
            );
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_is_refused() {
        // Length 2, then a byte that cannot start a UTF-8 character.
        let error = Format::Bincode
            .decode::<String>(&[2, 0xff, b'a'])
            .unwrap_err();
        assert!(error.to_string().contains("UTF-8"), "{error}");
    }

    #[test]
    fn a_huge_length_in_a_tiny_input_is_refused_without_allocating() {
        // A string whose varint length says 2^40 bytes, in a 9-byte input.
        let bytes = [253u8, 0, 0, 0, 0, 0, 1, 0, 0];
        let error = Format::Bincode.decode::<String>(&bytes).unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
        let error = Format::Bincode
            .decode::<serde_bytes::ByteBuf>(&bytes)
            .unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
    }

    /// A recursive type, as a user's argument might be.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Nest(Option<Box<Nest>>);

    fn nest(levels: usize) -> Nest {
        (0..levels).fold(Nest(None), |inner, _| Nest(Some(Box::new(inner))))
    }

    #[test]
    fn nesting_is_allowed_up_to_the_limit_and_refused_beyond() {
        // 100 structs and 99 `Some`s: 199 levels.
        let mut buf = BytesMut::new();
        Format::Bincode.encode_into(&nest(99), &mut buf).unwrap();
        assert_eq!(
            Format::Bincode.decode_nested::<Nest>(&buf, 199).unwrap(),
            nest(99)
        );
        let error = Format::Bincode
            .decode_nested::<Nest>(&buf, 198)
            .unwrap_err();
        assert!(error.to_string().contains("max_nesting_depth"), "{error}");
    }

    #[test]
    fn the_default_nesting_limit_fits_the_stack_of_a_tokio_worker() {
        // Tokio's workers have 2 MiB of stack; a value at the deepest level allowed must
        // decode there, in this (debug) build too. Dropping it recurses as well, on purpose.
        let mut buf = BytesMut::new();
        let deepest = nest(DEFAULT_MAX_NESTING_DEPTH / 2 - 1);
        Format::Bincode.encode_into(&deepest, &mut buf).unwrap();
        let decoded = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || Format::Bincode.decode::<Nest>(&buf).map(drop))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(decoded, Ok(()));
    }

    #[test]
    fn a_nesting_bomb_is_a_typed_error_not_a_stack_overflow() {
        // A million `Some` tags: without the limit, a million recursive calls.
        let bomb = vec![1u8; 1_000_000];
        let error = Format::Bincode.decode::<Nest>(&bomb).unwrap_err();
        assert!(error.to_string().contains("nest deeper"), "{error}");
        assert_eq!(error.cause(), CodecCause::TooDeep);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let trailing = Format::Bincode.decode::<u8>(&[1, 2]).unwrap_err();
        assert_eq!(trailing.cause(), CodecCause::TrailingBytes);
        let short = Format::Bincode.decode::<(u8, u8)>(&[1]).unwrap_err();
        assert_eq!(short.cause(), CodecCause::UnexpectedEnd);
    }
}
