//! `CodecError`: why a value could not be encoded or decoded, in words a user can act on.
//!
//! bincode describes its failures with its own internals (`Serde(AnyNotSupported)`); most of
//! them come from a serde feature that a non-self-describing format cannot carry, so the
//! message names the likely feature and what to write instead.

use bincode::error::{DecodeError, EncodeError};
use bincode::serde::{DecodeError as SerdeDecodeError, EncodeError as SerdeEncodeError};

/// Why a value could not be encoded or decoded: a [`cause`](CodecError::cause) to match on,
/// and a message that says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}{}", hint.map(|hint| format!("; {hint}")).unwrap_or_default())]
pub struct CodecError {
    cause: CodecCause,
    detail: String,
    hint: Option<&'static str>,
}

/// The kind of a [`CodecError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecCause {
    /// The type uses a serde feature this format cannot carry (`#[serde(flatten)]`, internally
    /// tagged or untagged enums, fields by name).
    Unsupported,
    /// A length field claims more than the input can hold.
    LimitExceeded,
    /// The input ended before the value did.
    UnexpectedEnd,
    /// Bytes were left over after the value.
    TrailingBytes,
    /// A value that is not valid for its type: a variant index, a boolean, a string that is
    /// not UTF-8.
    InvalidValue,
    /// The value nests deeper than `Config::max_nesting_depth`.
    TooDeep,
    /// The type's own `Serialize` or `Deserialize` failed, with its own message.
    Custom,
}

/// For decoders that need a value from a tag or field name they cannot see.
const SELF_DESCRIBING: &str = "the type likely uses a serde feature that needs a self-describing \
    format: internally tagged (`#[serde(tag = \"..\")]`) or untagged (`#[serde(untagged)]`) \
    enums, or a field of a type such as `serde_json::Value`; use serde's default, externally \
    tagged enums, or send such a value as a JSON string";

/// For values whose fields do not line up with the type: bincode's fields are positional.
const POSITIONAL: &str = "if the type skips fields when serializing \
    (`#[serde(skip_serializing_if = ..)]`), remove that: bincode's fields are positional, so a \
    skipped field shifts the rest; otherwise the two sides disagree on the type";

impl CodecError {
    /// What kind of failure this is.
    pub fn cause(&self) -> CodecCause {
        self.cause
    }

    /// A value's own `Serialize` or `Deserialize` failed, or a Python value did not fit the
    /// type, with `detail` as the message.
    pub(crate) fn custom(detail: impl Into<String>) -> CodecError {
        CodecError {
            cause: CodecCause::Custom,
            detail: detail.into(),
            hint: None,
        }
    }

    /// Input that is not a valid document of its format.
    pub(crate) fn invalid(detail: impl Into<String>) -> CodecError {
        CodecError {
            cause: CodecCause::InvalidValue,
            detail: detail.into(),
            hint: None,
        }
    }

    /// A failure of the encoder.
    pub(crate) fn encoding(error: EncodeError) -> CodecError {
        match error {
            EncodeError::Serde(SerdeEncodeError::SequenceMustHaveLength) => CodecError {
                cause: CodecCause::Unsupported,
                detail: "a map or sequence of unknown length cannot be encoded".into(),
                hint: Some(
                    "the type likely uses `#[serde(flatten)]`, which bincode cannot write; \
                     nest the inner struct as a field instead",
                ),
            },
            EncodeError::OtherString(message) => CodecError {
                cause: CodecCause::Custom,
                detail: message,
                hint: None,
            },
            other => CodecError {
                cause: CodecCause::Custom,
                detail: format!("{other:?}"),
                hint: None,
            },
        }
    }

    /// A failure of the decoder on an input of `len` bytes.
    pub(crate) fn decoding(error: DecodeError, len: usize) -> CodecError {
        let (cause, detail, hint) = match error {
            DecodeError::LimitExceeded => (
                CodecCause::LimitExceeded,
                format!("a length field claims more than the limit for a {len}-byte input"),
                None,
            ),
            DecodeError::Serde(SerdeDecodeError::AnyNotSupported)
            | DecodeError::Serde(SerdeDecodeError::IgnoredAnyNotSupported) => (
                CodecCause::Unsupported,
                "the type asks the decoder what comes next, which bincode cannot tell".into(),
                Some(SELF_DESCRIBING),
            ),
            DecodeError::Serde(SerdeDecodeError::IdentifierNotSupported) => (
                CodecCause::Unsupported,
                "the type asks for a field or variant by name, which bincode does not carry".into(),
                Some(
                    "the type likely is an adjacently tagged enum \
                     (`#[serde(tag = \"..\", content = \"..\")]`) or uses `#[serde(flatten)]`; \
                     use serde's default, externally tagged enums",
                ),
            ),
            DecodeError::UnexpectedEnd { additional } => (
                CodecCause::UnexpectedEnd,
                format!("the input ended {additional} bytes before the value did"),
                Some(POSITIONAL),
            ),
            DecodeError::UnexpectedVariant {
                type_name, found, ..
            } => (
                CodecCause::InvalidValue,
                format!("{found} is not a variant of `{type_name}`"),
                Some(POSITIONAL),
            ),
            DecodeError::InvalidBooleanValue(value) => (
                CodecCause::InvalidValue,
                format!("{value} is not a boolean"),
                Some(POSITIONAL),
            ),
            DecodeError::Utf8 { inner } => (
                CodecCause::InvalidValue,
                format!("a string is not valid UTF-8: {inner}"),
                None,
            ),
            DecodeError::OtherString(message) if message == super::depth::TOO_DEEP => {
                (CodecCause::TooDeep, message, None)
            }
            DecodeError::OtherString(message) => (CodecCause::Custom, message, None),
            other => (CodecCause::InvalidValue, format!("{other:?}"), None),
        };
        CodecError {
            cause,
            detail,
            hint,
        }
    }

    /// Bytes left over after a whole value.
    pub(crate) fn trailing(count: usize) -> CodecError {
        CodecError {
            cause: CodecCause::TrailingBytes,
            detail: format!("{count} unexpected bytes after the value"),
            hint: Some(POSITIONAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::{CodecCause, CodecError};
    use crate::codec::Format;

    #[derive(Debug, Serialize, Deserialize)]
    struct Skipping {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u32>,
        c: u8,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Internal {
        A { x: u8 },
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", content = "value")]
    enum Adjacent {
        A(u8),
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        A(String),
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Inner {
        y: u8,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Flattened {
        x: u8,
        #[serde(flatten)]
        inner: Inner,
    }

    /// The round trip's failure.
    fn round_trip_error<T: Serialize + DeserializeOwned + std::fmt::Debug>(value: T) -> CodecError {
        let mut buf = BytesMut::new();
        match Format::Bincode.encode_into(&value, &mut buf) {
            Err(error) => error,
            Ok(()) => Format::Bincode.decode::<T>(&buf).unwrap_err(),
        }
    }

    fn failure<T: Serialize + DeserializeOwned + std::fmt::Debug>(value: T) -> String {
        round_trip_error(value).to_string()
    }

    fn cause<T: Serialize + DeserializeOwned + std::fmt::Debug>(value: T) -> CodecCause {
        round_trip_error(value).cause()
    }

    #[test]
    fn serde_features_bincode_cannot_carry_are_named() {
        let skipped = failure(Skipping {
            a: 1,
            b: None,
            c: 3,
        });
        assert!(skipped.contains("skip_serializing_if"), "{skipped}");
        assert_eq!(
            cause(Skipping {
                a: 1,
                b: None,
                c: 3
            }),
            CodecCause::InvalidValue
        );
        assert_eq!(cause(Internal::A { x: 1 }), CodecCause::Unsupported);
        assert!(!skipped.contains("UnexpectedVariant"), "{skipped}");
        let internal = failure(Internal::A { x: 1 });
        assert!(internal.contains("internally tagged"), "{internal}");
        assert!(!internal.contains("AnyNotSupported"), "{internal}");
        let adjacent = failure(Adjacent::A(1));
        assert!(adjacent.contains("adjacently tagged"), "{adjacent}");
        let untagged = failure(Untagged::A("x".into()));
        assert!(untagged.contains("untagged"), "{untagged}");
        let flattened = failure(Flattened {
            x: 1,
            inner: Inner { y: 2 },
        });
        assert!(flattened.contains("flatten"), "{flattened}");
    }
}
