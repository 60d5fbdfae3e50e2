//! `ProtocolError`: the ways a peer can break the wire protocol.

/// A peer sent bytes that break the wire protocol, or a message would break a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame does not start with the magic bytes `ROBJ`: the peer speaks another protocol.
    #[error("bad magic {0:02x?}: the peer does not speak this protocol")]
    BadMagic([u8; 4]),
    /// The peer speaks another version of the protocol.
    #[error("unsupported protocol version {found} (this side speaks {supported})")]
    UnsupportedVersion {
        /// The version the peer sent.
        found: u16,
        /// The version this side speaks.
        supported: u16,
    },
    /// The header names a message kind that does not exist.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The header sets flag bits that this version does not define.
    #[error("unknown flag bits {0:#010b}")]
    UnknownFlags(u8),
    /// A message is larger than the configured limit.
    #[error(
        "message of {size} bytes exceeds the limit of {limit} bytes \
         (raise it with `Config::max_message_size` on both sides)"
    )]
    MessageTooLarge {
        /// The size of the message, in bytes.
        size: u64,
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({received} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        received: usize,
        /// Bytes the frame should have had.
        expected: usize,
    },
    /// A frame that had started did not complete within the frame deadline.
    #[error("a frame did not complete within {0:?} (see `Config::frame_timeout`)")]
    FrameTimeout(std::time::Duration),
    /// A frame arrived that is not allowed at this point of the conversation.
    #[error("unexpected {kind:?} message: {context}")]
    Unexpected {
        /// The kind that arrived.
        kind: super::Kind,
        /// What was expected instead.
        context: &'static str,
    },
    /// A body that does not decode as its kind requires.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
}
