//! The fixed 20-byte frame header.

use super::{Flags, Kind, ProtocolError};

/// The magic bytes that open every frame: ASCII `ROBJ`.
pub const MAGIC: [u8; 4] = *b"ROBJ";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of the encoded header, in bytes.
pub const HEADER_LEN: usize = 20;

/// The fixed header at the start of every frame. See the [module docs](super) for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame is for.
    pub kind: Kind,
    /// Flag bits.
    pub flags: Flags,
    /// The call this frame belongs to.
    pub request_id: u64,
    /// Length of the body that follows, in bytes.
    pub body_len: u32,
}

impl Header {
    /// Encodes the header into its 20 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        out[6] = self.kind as u8;
        out[7] = self.flags.bits();
        out[8..16].copy_from_slice(&self.request_id.to_be_bytes());
        out[16..20].copy_from_slice(&self.body_len.to_be_bytes());
        out
    }

    /// Decodes and checks a header: magic, version, kind, flags, and the body length against
    /// `max_body_len`, so that no buffer is reserved for an oversized frame.
    ///
    /// # Errors
    ///
    /// The [`ProtocolError`] for the first field that is wrong, in byte order.
    pub fn decode(bytes: &[u8; HEADER_LEN], max_body_len: usize) -> Result<Header, ProtocolError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(ProtocolError::BadMagic(magic));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(ProtocolError::UnsupportedVersion {
                found: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let kind = Kind::from_u8(bytes[6])?;
        let flags = Flags::from_u8(bytes[7])?;
        let mut id = [0; 8];
        id.copy_from_slice(&bytes[8..16]);
        let body_len = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        if body_len as usize > max_body_len {
            return Err(ProtocolError::MessageTooLarge {
                size: u64::from(body_len) + HEADER_LEN as u64,
                limit: max_body_len.saturating_add(HEADER_LEN),
            });
        }
        Ok(Header {
            kind,
            flags,
            request_id: u64::from_be_bytes(id),
            body_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: Kind::Invoke,
            flags: Flags::ONEWAY,
            request_id: 0x0102_0304_0506_0708,
            body_len: 0x0a0b,
        }
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(
            sample().encode(),
            [
                b'R', b'O', b'B', b'J', 0, 1, 3, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x0a, 0x0b
            ]
        );
    }

    #[test]
    fn round_trips() {
        assert_eq!(Header::decode(&sample().encode(), 1 << 20), Ok(sample()));
    }

    #[test]
    fn each_field_is_checked() {
        let good = sample().encode();
        let mut bad = good;
        bad[0] = b'P';
        assert!(matches!(
            Header::decode(&bad, 1 << 20),
            Err(ProtocolError::BadMagic(_))
        ));
        let mut bad = good;
        bad[5] = 9;
        assert_eq!(
            Header::decode(&bad, 1 << 20),
            Err(ProtocolError::UnsupportedVersion {
                found: 9,
                supported: 1
            })
        );
        let mut bad = good;
        bad[6] = 0;
        assert_eq!(
            Header::decode(&bad, 1 << 20),
            Err(ProtocolError::UnknownKind(0))
        );
        let mut bad = good;
        bad[7] = 0x80;
        assert_eq!(
            Header::decode(&bad, 1 << 20),
            Err(ProtocolError::UnknownFlags(0x80))
        );
        assert_eq!(
            Header::decode(&good, 10),
            Err(ProtocolError::MessageTooLarge {
                size: 0x0a0b + 20,
                limit: 30
            })
        );
    }
}
