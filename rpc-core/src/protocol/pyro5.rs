//! Pyro5's wire protocol (version 502), as bytes only, beside our own.
//!
//! A Pyro5 client opens with a 40-byte header that starts with `PYRO`, where ours start with
//! `ROBJ`, so a daemon tells them apart by the first byte and serves both on one port.
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 4  | tag | `PYRO` |
//! | 4  | 2  | version | 502 |
//! | 6  | 1  | type | [`MessageType`] |
//! | 7  | 1  | serializer | 1 serpent, 2 marshal, 3 json, 4 msgpack; we speak serpent and json |
//! | 8  | 2  | flags | [`flags`] |
//! | 10 | 2  | sequence number | replies echo the request's |
//! | 12 | 4  | data length | the body, after the annotations |
//! | 16 | 4  | annotations length | chunks of a 4-byte key, a 4-byte length and bytes; skipped |
//! | 20 | 16 | correlation id | meaningful with flag `CORR_ID`; echoed |
//! | 36 | 2  | reserved | 0 |
//! | 38 | 2  | magic | `0x4DC5` |
//!
//! All integers are big-endian. A connection carries one call at a time: the client sends an
//! invoke and waits for its result (oneway invokes get none). [`conversation`] holds the
//! daemon's rules, [`body`] the documents inside the frames, and [`exception`] the errors
//! Python understands.

pub mod body;
pub mod conversation;
pub mod exception;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::ProtocolError;
use crate::codec::Format;

/// The length of a Pyro5 header.
pub const HEADER_LEN: usize = 40;

/// The first bytes of every Pyro5 frame.
pub const TAG: &[u8; 4] = b"PYRO";

/// The protocol version of Pyro5 5.x.
pub const VERSION: u16 = 502;

/// The last two bytes of every Pyro5 header.
pub const MAGIC: u16 = 0x4DC5;

/// The deepest a Pyro5 document may nest, whatever `Config::max_nesting_depth` allows:
/// Python's own recursion limit keeps real documents far shallower, and the reader's stack
/// stays small.
pub const MAX_NESTING: usize = 200;

/// The kinds of Pyro5 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// Client → daemon: the handshake, naming an object.
    Connect = 1,
    /// Daemon → client: the handshake succeeded; the object's metadata.
    ConnectOk = 2,
    /// Daemon → client: the handshake failed; why, as a string.
    ConnectFail = 3,
    /// Client → daemon: a call.
    Invoke = 4,
    /// Daemon → client: a call's value, or its exception.
    Result = 5,
    /// Either way: raw bytes, answered by a ping with `pong`.
    Ping = 6,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<MessageType> {
        Some(match value {
            1 => MessageType::Connect,
            2 => MessageType::ConnectOk,
            3 => MessageType::ConnectFail,
            4 => MessageType::Invoke,
            5 => MessageType::Result,
            6 => MessageType::Ping,
            _ => return None,
        })
    }
}

/// The flag bits of a Pyro5 header.
pub mod flags {
    /// The result is an exception.
    pub const EXCEPTION: u16 = 1;
    /// The body is zlib-compressed (not spoken here; refused).
    pub const COMPRESSED: u16 = 2;
    /// The invoke gets no result.
    pub const ONEWAY: u16 = 4;
    /// A batch of calls (not spoken here; refused).
    pub const BATCH: u16 = 8;
    /// The result starts a remote iterator (never sent here).
    pub const ITEMSTREAMRESULT: u16 = 16;
    /// A serialized blob passes through (not spoken here).
    pub const KEEPSERIALIZED: u16 = 32;
    /// The header's correlation id is set.
    pub const CORR_ID: u16 = 64;
}

/// The serializer ids of the formats we speak.
pub mod serializer {
    /// Serpent, the Pyro5 default.
    pub const SERPENT: u8 = 1;
    /// marshal (CPython only; not spoken).
    pub const MARSHAL: u8 = 2;
    /// JSON.
    pub const JSON: u8 = 3;
    /// msgpack (not in a default Pyro5 install; not spoken).
    pub const MSGPACK: u8 = 4;
}

/// The format of a serializer id, if we speak it.
pub fn format_of(serializer_id: u8) -> Option<Format> {
    match serializer_id {
        serializer::SERPENT => Some(Format::Serpent),
        serializer::JSON => Some(Format::Json),
        _ => None,
    }
}

/// The serializer id of a Pyro5 format (serpent for any other).
pub fn serializer_id(format: Format) -> u8 {
    match format {
        Format::Json => serializer::JSON,
        _ => serializer::SERPENT,
    }
}

/// One Pyro5 message: its header fields and its body (annotations skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pyro5Message {
    /// The message type, as sent.
    pub msg_type: u8,
    /// The serializer id, as sent.
    pub serializer_id: u8,
    /// The flag bits.
    pub flags: u16,
    /// The sequence number.
    pub seq: u16,
    /// The correlation id, when flag `CORR_ID` is set.
    pub correlation_id: Option<[u8; 16]>,
    /// The body.
    pub data: Bytes,
}

impl Pyro5Message {
    /// The known type of this message.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_u8(self.msg_type)
    }

    /// Whether a flag bit is set.
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// The length of the frame at the front of `src`, once its header is there.
    pub fn announced_len(src: &[u8]) -> Option<usize> {
        let header = src.get(..HEADER_LEN)?;
        let data = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
        let annotations = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
        Some(HEADER_LEN + data as usize + annotations as usize)
    }

    /// Takes one whole message off the front of `src`, if it has arrived; the header is checked
    /// as soon as it is there, and a body over `max_body_len` is refused before it arrives.
    ///
    /// # Errors
    ///
    /// [`ProtocolError`] for a header that is not Pyro5's, another version, a body too large,
    /// or annotations that do not add up.
    pub fn decode(
        src: &mut BytesMut,
        max_body_len: usize,
    ) -> Result<Option<Pyro5Message>, ProtocolError> {
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if &header[..4] != TAG {
            return Err(ProtocolError::BadMagic([
                header[0], header[1], header[2], header[3],
            ]));
        }
        let version = u16::from_be_bytes([header[4], header[5]]);
        if version != VERSION {
            return Err(ProtocolError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let magic = u16::from_be_bytes([header[38], header[39]]);
        if magic != MAGIC {
            return Err(ProtocolError::Malformed {
                what: "Pyro5 header",
                detail: format!("magic {magic:#06x}, not {MAGIC:#06x}"),
            });
        }
        let body_len = Self::announced_len(src).unwrap_or(HEADER_LEN) - HEADER_LEN;
        if body_len > max_body_len {
            return Err(ProtocolError::MessageTooLarge {
                size: (HEADER_LEN + body_len) as u64,
                limit: max_body_len.saturating_add(HEADER_LEN),
            });
        }
        if src.len() < HEADER_LEN + body_len {
            return Ok(None);
        }
        let header = src.split_to(HEADER_LEN);
        let annotations_len =
            u32::from_be_bytes([header[16], header[17], header[18], header[19]]) as usize;
        let annotations = src.split_to(annotations_len);
        check_annotations(&annotations)?;
        let flags = u16::from_be_bytes([header[8], header[9]]);
        let mut correlation_id = [0u8; 16];
        correlation_id.copy_from_slice(&header[20..36]);
        Ok(Some(Pyro5Message {
            msg_type: header[6],
            serializer_id: header[7],
            flags,
            seq: u16::from_be_bytes([header[10], header[11]]),
            correlation_id: (flags & flags::CORR_ID != 0).then_some(correlation_id),
            data: src.split_to(body_len - annotations_len).freeze(),
        }))
    }
}

/// Annotation chunks must fill their length exactly: a 4-byte key, a 4-byte length, bytes.
fn check_annotations(mut annotations: &[u8]) -> Result<(), ProtocolError> {
    while !annotations.is_empty() {
        if annotations.len() < 8 {
            return Err(bad_annotations());
        }
        annotations.advance(4);
        let len = annotations.get_u32() as usize;
        if annotations.len() < len {
            return Err(bad_annotations());
        }
        annotations.advance(len);
    }
    Ok(())
}

fn bad_annotations() -> ProtocolError {
    ProtocolError::Malformed {
        what: "Pyro5 annotations",
        detail: "the chunks do not add up to the annotations length".into(),
    }
}

/// Writes the header of a message whose body (`data_len` bytes, no annotations) follows, into
/// the first [`HEADER_LEN`] bytes of `frame`.
pub fn write_header(
    frame: &mut [u8],
    msg_type: MessageType,
    serializer_id: u8,
    flags: u16,
    seq: u16,
    correlation_id: Option<[u8; 16]>,
) {
    let data_len = u32::try_from(frame.len() - HEADER_LEN).unwrap_or(u32::MAX);
    let mut header = &mut frame[..HEADER_LEN];
    header.put_slice(TAG);
    header.put_u16(VERSION);
    header.put_u8(msg_type as u8);
    header.put_u8(serializer_id);
    let flags = match correlation_id {
        Some(_) => flags | flags::CORR_ID,
        None => flags & !flags::CORR_ID,
    };
    header.put_u16(flags);
    header.put_u16(seq);
    header.put_u32(data_len);
    header.put_u32(0);
    header.put_slice(&correlation_id.unwrap_or_default());
    header.put_u16(0);
    header.put_u16(MAGIC);
}

/// A buffer for one frame: room for the header, then `body`, with room to grow for a body
/// encoded after it. [`write_header`] fills the room once the body is whole.
pub fn frame_buffer(body: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(HEADER_LEN + body.len().max(256));
    frame.resize(HEADER_LEN, 0);
    frame.put_slice(body);
    frame
}

/// A whole message with the body `data`.
pub fn encode(
    msg_type: MessageType,
    serializer_id: u8,
    flags: u16,
    seq: u16,
    correlation_id: Option<[u8; 16]>,
    data: &[u8],
) -> BytesMut {
    let mut frame = frame_buffer(data);
    write_header(
        &mut frame,
        msg_type,
        serializer_id,
        flags,
        seq,
        correlation_id,
    );
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_invoke_of_the_pyro5_docs() {
        // json add(1, 2), as Pyro5 5.17 sends it.
        let body = br#"{"object": "bench.calc", "method": "add", "params": [1, 2], "kwargs": {}}"#;
        let mut frame = BytesMut::new();
        frame.put_slice(b"PYRO\x01\xf6\x04\x03\x00\x00\x00\x01");
        frame.put_u32(body.len() as u32);
        frame.put_u32(0);
        frame.put_slice(&[0; 16]);
        frame.put_slice(&[0, 0, 0x4d, 0xc5]);
        frame.put_slice(body);
        let message = Pyro5Message::decode(&mut frame, 1024).unwrap().unwrap();
        assert_eq!(message.message_type(), Some(MessageType::Invoke));
        assert_eq!(message.serializer_id, serializer::JSON);
        assert_eq!(message.seq, 1);
        assert_eq!(message.correlation_id, None);
        assert_eq!(&message.data[..], body);
        assert!(frame.is_empty());
    }

    #[test]
    fn encodes_what_it_decodes_with_the_correlation_id() {
        let mut frame = encode(
            MessageType::Result,
            1,
            flags::EXCEPTION,
            9,
            Some([7; 16]),
            b"x",
        );
        assert_eq!(frame.len(), HEADER_LEN + 1);
        let message = Pyro5Message::decode(&mut frame, 1).unwrap().unwrap();
        assert_eq!(message.flags, flags::EXCEPTION | flags::CORR_ID);
        assert_eq!(message.correlation_id, Some([7; 16]));
        assert_eq!(message.seq, 9);
        assert_eq!(&message.data[..], b"x");
    }

    #[test]
    fn skips_annotations_and_refuses_ones_that_do_not_add_up() {
        let mut frame = encode(
            MessageType::Ping,
            42,
            0,
            0,
            None,
            b"XTRA\0\0\0\x02\x01\x02ping",
        );
        frame[16..20].copy_from_slice(&10u32.to_be_bytes());
        frame[12..16].copy_from_slice(&4u32.to_be_bytes());
        let message = Pyro5Message::decode(&mut frame, 100).unwrap().unwrap();
        assert_eq!(&message.data[..], b"ping");

        let mut frame = encode(
            MessageType::Ping,
            42,
            0,
            0,
            None,
            b"XTRA\0\0\0\x09\x01\x02ping",
        );
        frame[16..20].copy_from_slice(&10u32.to_be_bytes());
        frame[12..16].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(
            Pyro5Message::decode(&mut frame, 100),
            Err(ProtocolError::Malformed {
                what: "Pyro5 annotations",
                ..
            })
        ));
    }

    #[test]
    fn refuses_bad_headers_before_their_bodies() {
        let good = encode(MessageType::Connect, 1, 0, 0, None, b"");
        let mut wrong_tag = good.clone();
        wrong_tag[0] = b'Q';
        assert!(matches!(
            Pyro5Message::decode(&mut wrong_tag, 10),
            Err(ProtocolError::BadMagic(_))
        ));
        let mut pyro4 = good.clone();
        pyro4[4..6].copy_from_slice(&48u16.to_be_bytes());
        assert!(matches!(
            Pyro5Message::decode(&mut pyro4, 10),
            Err(ProtocolError::UnsupportedVersion { found: 48, .. })
        ));
        let mut no_magic = good.clone();
        no_magic[39] = 0;
        assert!(matches!(
            Pyro5Message::decode(&mut no_magic, 10),
            Err(ProtocolError::Malformed { .. })
        ));
        // A header that announces 1 GiB is refused with 40 bytes in hand.
        let mut huge = good;
        huge[12..16].copy_from_slice(&(1u32 << 30).to_be_bytes());
        assert!(matches!(
            Pyro5Message::decode(&mut huge, 1 << 20),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
        // A header cut short is simply not complete yet.
        let mut short = BytesMut::from(&b"PYRO\x01"[..]);
        assert_eq!(Pyro5Message::decode(&mut short, 10), Ok(None));
    }
}
