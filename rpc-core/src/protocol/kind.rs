//! Message kinds and flags as typed values.

use super::ProtocolError;

/// What a frame is for. See the [module docs](super) for the body each kind carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// The client's first frame: names the target object.
    Handshake = 1,
    /// The daemon's answer to the handshake.
    HandshakeReply = 2,
    /// A method call.
    Invoke = 3,
    /// The result of a method call.
    Reply = 4,
    /// The client no longer wants the reply to a call; the daemon stops its work.
    Cancel = 5,
    /// A liveness check; the peer answers with a pong.
    Ping = 6,
    /// The answer to a ping.
    Pong = 7,
    /// The daemon is closing the connection, and says why.
    Close = 8,
    /// A client with a secret opens with this: its fresh nonce.
    Auth = 9,
    /// The daemon's answer to an auth: its own fresh nonce and its proof of the secret.
    AuthChallenge = 10,
    /// The client's proof of the secret, after the daemon's proved it.
    AuthProof = 11,
}

impl Kind {
    /// The kind with this wire value.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnknownKind`] for a value that names no kind.
    pub fn from_u8(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            1 => Kind::Handshake,
            2 => Kind::HandshakeReply,
            3 => Kind::Invoke,
            4 => Kind::Reply,
            5 => Kind::Cancel,
            6 => Kind::Ping,
            7 => Kind::Pong,
            8 => Kind::Close,
            9 => Kind::Auth,
            10 => Kind::AuthChallenge,
            11 => Kind::AuthProof,
            other => return Err(ProtocolError::UnknownKind(other)),
        })
    }
}

/// The flag bits of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No flags set.
    pub const NONE: Flags = Flags(0);
    /// The invoke expects no reply.
    pub const ONEWAY: Flags = Flags(0b01);
    /// The body is an encoded `RemoteError` instead of a value.
    pub const FAILURE: Flags = Flags(0b10);
    const KNOWN: u8 = Self::ONEWAY.0 | Self::FAILURE.0;

    /// The flags of this wire value.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnknownFlags`] if a bit this version does not define is set.
    pub fn from_u8(value: u8) -> Result<Self, ProtocolError> {
        if value & !Self::KNOWN == 0 {
            Ok(Flags(value))
        } else {
            Err(ProtocolError::UnknownFlags(value))
        }
    }

    /// The wire value.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_others_are_refused() {
        for value in 0..=u8::MAX {
            match Kind::from_u8(value) {
                Ok(kind) => assert_eq!(kind as u8, value),
                Err(error) => assert_eq!(error, ProtocolError::UnknownKind(value)),
            }
        }
        assert_eq!(Kind::from_u8(8), Ok(Kind::Close));
        assert_eq!(Kind::from_u8(11), Ok(Kind::AuthProof));
        assert!(Kind::from_u8(12).is_err());
    }

    #[test]
    fn unknown_flag_bits_are_refused() {
        assert_eq!(Flags::from_u8(0b11), Ok(Flags::ONEWAY | Flags::FAILURE));
        assert_eq!(
            Flags::from_u8(0b100),
            Err(ProtocolError::UnknownFlags(0b100))
        );
        assert!((Flags::ONEWAY | Flags::FAILURE).contains(Flags::FAILURE));
        assert!(!Flags::ONEWAY.contains(Flags::FAILURE));
    }
}
