//! Whole frames: `Message` decoding from a byte buffer, `FrameBuilder` encoding into one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Flags, HEADER_LEN, Header, Kind, ProtocolError};

/// One decoded frame: its header and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The frame's header.
    pub header: Header,
    /// The frame's body, `header.body_len` bytes.
    pub body: Bytes,
}

impl Message {
    /// Takes one whole frame off the front of `src`, if `src` holds one.
    ///
    /// Returns `Ok(None)` when more bytes are needed. The header is checked as soon as its 20
    /// bytes are present, so an oversized frame is refused before any buffer is reserved for it.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] for a header that breaks the protocol or announces a body longer than
    /// `max_body_len`.
    pub fn decode(
        src: &mut BytesMut,
        max_body_len: usize,
    ) -> Result<Option<Message>, ProtocolError> {
        let Some(header_bytes) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let header_bytes: &[u8; HEADER_LEN] = header_bytes
            .try_into()
            .expect("the slice is exactly HEADER_LEN long");
        let header = Header::decode(header_bytes, max_body_len)?;
        let frame_len = HEADER_LEN + header.body_len as usize;
        if src.len() < frame_len {
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(header.body_len as usize).freeze();
        Ok(Some(Message { header, body }))
    }

    /// The length of the frame that starts at the front of `src`, once its header is there.
    ///
    /// Used to report how much of a truncated frame arrived.
    pub fn announced_len(src: &[u8]) -> Option<usize> {
        let len = src.get(16..HEADER_LEN)?;
        Some(HEADER_LEN + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
    }

    /// Encodes a whole frame with the given body.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] if `body` is longer than `max_body_len`.
    pub fn encode(
        kind: Kind,
        flags: Flags,
        request_id: u64,
        body: &[u8],
        max_body_len: usize,
    ) -> Result<BytesMut, ProtocolError> {
        let mut frame = FrameBuilder::new(kind, flags, request_id);
        frame.body_mut().put_slice(body);
        frame.finish(max_body_len)
    }
}

/// Builds one frame in place: the header first, then a body written straight after it, so the
/// body is never copied.
#[derive(Debug)]
pub struct FrameBuilder {
    buf: BytesMut,
}

impl FrameBuilder {
    /// Starts a frame; its body length is filled in by [`finish`](Self::finish).
    pub fn new(kind: Kind, flags: Flags, request_id: u64) -> FrameBuilder {
        FrameBuilder::in_buffer(BytesMut::new(), kind, flags, request_id)
    }

    /// Starts a frame in `buf`, whose contents are dropped and whose room is reused (a
    /// buffer that carried an earlier frame, say).
    pub fn in_buffer(buf: BytesMut, kind: Kind, flags: Flags, request_id: u64) -> FrameBuilder {
        FrameBuilder::around(FrameBuilder::headroom(buf), kind, flags, request_id)
    }

    /// `buf`, emptied, with room for a header at its start: a body can be written after it
    /// before anyone knows which frame will carry it (a method's result, say), and
    /// [`around`](Self::around) later writes the header in place, copying nothing.
    pub fn headroom(mut buf: BytesMut) -> BytesMut {
        buf.clear();
        // Room for the header and a small body, so small frames never grow.
        buf.reserve(128);
        buf.put_bytes(0, HEADER_LEN);
        buf
    }

    /// A frame whose body already follows the [`headroom`](Self::headroom) at the start of
    /// `buf`: the header is written into that room.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than a header: it did not come from `headroom`.
    pub fn around(mut buf: BytesMut, kind: Kind, flags: Flags, request_id: u64) -> FrameBuilder {
        let header = Header {
            kind,
            flags,
            request_id,
            body_len: 0,
        };
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        FrameBuilder { buf }
    }

    /// The buffer to append the body to. Only append: the header sits at its start.
    pub fn body_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Writes the body length into the header and returns the frame.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] if the body is longer than `max_body_len`.
    pub fn finish(mut self, max_body_len: usize) -> Result<BytesMut, ProtocolError> {
        let body_len = self.buf.len() - HEADER_LEN;
        match u32::try_from(body_len) {
            Ok(len) if body_len <= max_body_len => {
                self.buf[16..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                Ok(self.buf)
            }
            _ => Err(ProtocolError::MessageTooLarge {
                size: self.buf.len() as u64,
                limit: max_body_len.saturating_add(HEADER_LEN),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_that_arrive_in_pieces() {
        let frame = Message::encode(Kind::Ping, Flags::NONE, 7, b"abc", 100).unwrap();
        let mut buf = BytesMut::new();
        for (i, byte) in frame.iter().enumerate() {
            assert_eq!(Message::decode(&mut buf, 100), Ok(None), "at byte {i}");
            buf.put_u8(*byte);
        }
        let message = Message::decode(&mut buf, 100).unwrap().unwrap();
        assert_eq!(message.header.kind, Kind::Ping);
        assert_eq!(message.header.request_id, 7);
        assert_eq!(&message.body[..], b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let mut buf = BytesMut::new();
        buf.put(Message::encode(Kind::Ping, Flags::NONE, 1, b"a", 100).unwrap());
        buf.put(Message::encode(Kind::Pong, Flags::NONE, 2, b"", 100).unwrap());
        let first = Message::decode(&mut buf, 100).unwrap().unwrap();
        let second = Message::decode(&mut buf, 100).unwrap().unwrap();
        assert_eq!((first.header.request_id, second.header.request_id), (1, 2));
        assert_eq!(Message::decode(&mut buf, 100), Ok(None));
    }

    #[test]
    fn oversized_body_is_refused_from_the_header_alone() {
        let frame = Message::encode(Kind::Reply, Flags::NONE, 1, &[0; 64], 100).unwrap();
        let mut buf = BytesMut::from(&frame[..HEADER_LEN]);
        assert_eq!(
            Message::decode(&mut buf, 63),
            Err(ProtocolError::MessageTooLarge {
                size: 84,
                limit: 83
            })
        );
        assert_eq!(Message::announced_len(&buf), Some(84));
    }

    #[test]
    fn builder_refuses_oversized_bodies() {
        let mut frame = FrameBuilder::new(Kind::Reply, Flags::NONE, 1);
        frame.body_mut().put_slice(&[1; 10]);
        assert_eq!(
            frame.finish(9),
            Err(ProtocolError::MessageTooLarge {
                size: 30,
                limit: 29
            })
        );
    }
}
