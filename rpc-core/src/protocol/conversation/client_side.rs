//! `ClientConversation`: the client's side of a connection.

use bytes::BytesMut;

use super::authentication::{self, ClientAuth, NONCE_LEN};
use crate::codec::Format;
use crate::protocol::{Flags, Kind, Message, ProtocolError, RemoteError};

/// Where a client's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The auth is sent; the daemon's challenge comes first.
    Authenticating,
    /// The handshake is sent (or about to be); the daemon's answer comes first.
    Handshaking,
    /// Calls flow.
    Open,
    /// The connection ended: nothing more is read.
    Closed,
}

/// The client's side of one connection: the handshake, then routing what the daemon sends.
///
/// The client sends its handshake and its first call together, without waiting: the daemon's
/// answer to the handshake is read with the first reply.
#[derive(Debug)]
pub struct ClientConversation {
    phase: Phase,
    format: Format,
    auth: Option<ClientAuth>,
}

/// What a frame from the daemon means.
#[derive(Debug)]
pub enum ClientEvent {
    /// The answer to the client's call or ping with this message's request id: a reply
    /// (perhaps with `FAILURE`) or a pong. It may belong to a call that is no longer waited for
    /// (it timed out or was cancelled); the driver drops it then.
    Answer(Message),
    /// A frame to send: the pong to the daemon's ping, the proof after the daemon's challenge.
    Send(BytesMut),
    /// Nothing to do: the handshake was accepted.
    Nothing,
    /// The connection ends, for this reason; every call in flight fails with it.
    Ended(Closing),
}

/// Why a daemon ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// It refused the handshake, or closed before answering it, having read no call (an
    /// unknown object, a full daemon).
    Refused(RemoteError),
    /// It closed the connection after the handshake, and said why.
    Closed(RemoteError),
    /// It broke the protocol, or sent a reason that does not decode.
    Protocol(ProtocolError),
}

impl ClientConversation {
    /// A conversation whose handshake is about to be sent; values are encoded in `format`.
    pub fn new(format: Format) -> Self {
        ClientConversation {
            phase: Phase::Handshaking,
            format,
            auth: None,
        }
    }

    /// Starts the shared-secret exchange: the auth frame to send first. The daemon's
    /// challenge must come back before the handshake is sent (see
    /// [`authentication`](super::authentication)).
    pub fn start_auth(&mut self, auth: ClientAuth) -> BytesMut {
        let frame = Message::encode(Kind::Auth, Flags::NONE, 0, &auth.nonce, usize::MAX)
            .unwrap_or_default();
        self.auth = Some(auth);
        self.phase = Phase::Authenticating;
        frame
    }

    /// The handshake frame for `object`.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] for an object id longer than `max_body_len`.
    pub fn handshake(object: &str, max_body_len: usize) -> Result<BytesMut, ProtocolError> {
        Message::encode(
            Kind::Handshake,
            Flags::NONE,
            0,
            object.as_bytes(),
            max_body_len,
        )
    }

    /// Whether the daemon has accepted the handshake.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// What `message` from the daemon means at this point of the conversation.
    pub fn receive(&mut self, message: Message) -> ClientEvent {
        let header = message.header;
        let event = match (self.phase, header.kind) {
            (Phase::Closed, kind) => unexpected(kind, "the connection has ended"),
            (Phase::Authenticating, Kind::AuthChallenge) => self.answer_challenge(&message),
            (Phase::Authenticating, Kind::Close) => {
                ClientEvent::Ended(self.reason(&message.body, "close reason", Closing::Refused))
            }
            (Phase::Authenticating, kind) => unexpected(
                kind,
                "the daemon must answer the auth with its challenge first",
            ),
            (Phase::Handshaking, Kind::HandshakeReply) if header.flags.contains(Flags::FAILURE) => {
                ClientEvent::Ended(self.reason(&message.body, "refusal", Closing::Refused))
            }
            (Phase::Handshaking, Kind::HandshakeReply) => {
                self.phase = Phase::Open;
                ClientEvent::Nothing
            }
            // Closed before the handshake was answered: the daemon read no call (it was full,
            // say), and says why.
            (Phase::Handshaking, Kind::Close) => {
                ClientEvent::Ended(self.reason(&message.body, "close reason", Closing::Refused))
            }
            (Phase::Handshaking, kind) => {
                unexpected(kind, "the daemon must answer the handshake first")
            }
            (Phase::Open, Kind::Reply | Kind::Pong) => ClientEvent::Answer(message),
            (Phase::Open, Kind::Ping) => {
                match Message::encode(
                    Kind::Pong,
                    Flags::NONE,
                    header.request_id,
                    &message.body,
                    usize::MAX,
                ) {
                    Ok(pong) => ClientEvent::Send(pong),
                    Err(error) => ClientEvent::Ended(Closing::Protocol(error)),
                }
            }
            (Phase::Open, Kind::Close) => {
                ClientEvent::Ended(self.reason(&message.body, "close reason", Closing::Closed))
            }
            (Phase::Open, kind) => unexpected(
                kind,
                "a daemon sends only replies, pings, pongs and close after the handshake",
            ),
        };
        if let ClientEvent::Ended(_) = event {
            self.phase = Phase::Closed;
        }
        event
    }

    /// The proof that answers the daemon's challenge, if the daemon proved the secret.
    fn answer_challenge(&mut self, message: &Message) -> ClientEvent {
        let Some(auth) = &self.auth else {
            return unexpected(Kind::AuthChallenge, "the client sent no auth");
        };
        let (daemon_nonce, daemon_proof) = message.body.split_at(NONCE_LEN.min(message.body.len()));
        let Ok(daemon_nonce) = <[u8; NONCE_LEN]>::try_from(daemon_nonce) else {
            return ClientEvent::Ended(Closing::Protocol(ProtocolError::Malformed {
                what: "auth challenge",
                detail: format!("{} bytes, shorter than a nonce", message.body.len()),
            }));
        };
        if !authentication::is_daemon_proof(&auth.secret, &auth.nonce, &daemon_nonce, daemon_proof)
        {
            return ClientEvent::Ended(Closing::Refused(RemoteError::AuthenticationFailed {
                reason: "the daemon could not prove it holds the secret".into(),
            }));
        }
        let proof = authentication::client_proof(&auth.secret, &auth.nonce, &daemon_nonce);
        self.phase = Phase::Handshaking;
        match Message::encode(Kind::AuthProof, Flags::NONE, 0, &proof, usize::MAX) {
            Ok(frame) => ClientEvent::Send(frame),
            Err(error) => ClientEvent::Ended(Closing::Protocol(error)),
        }
    }

    /// The `RemoteError` in a refusal or close frame, as `closing` says, or a protocol error
    /// if it does not decode.
    fn reason(
        &self,
        body: &[u8],
        what: &'static str,
        closing: fn(RemoteError) -> Closing,
    ) -> Closing {
        match self.format.decode::<RemoteError>(body) {
            Ok(reason) => closing(reason),
            Err(error) => Closing::Protocol(ProtocolError::Malformed {
                what,
                detail: error.to_string(),
            }),
        }
    }
}

/// The end of a conversation for a frame of `kind`, which the daemon may not send now.
fn unexpected(kind: Kind, context: &'static str) -> ClientEvent {
    ClientEvent::Ended(Closing::Protocol(ProtocolError::Unexpected {
        kind,
        context,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::conversation::{decoded, frame};

    fn failure(kind: Kind, error: &RemoteError) -> Message {
        let mut body = BytesMut::new();
        Format::Bincode.encode_into(error, &mut body).unwrap();
        frame(kind, Flags::FAILURE, 0, &body)
    }

    fn open() -> ClientConversation {
        let mut conversation = ClientConversation::new(Format::Bincode);
        assert!(!conversation.is_open());
        let accepted = frame(Kind::HandshakeReply, Flags::NONE, 0, b"");
        assert!(matches!(
            conversation.receive(accepted),
            ClientEvent::Nothing
        ));
        assert!(conversation.is_open());
        conversation
    }

    fn ended(event: ClientEvent) -> Closing {
        match event {
            ClientEvent::Ended(closing) => closing,
            other => panic!("the connection should end, not {other:?}"),
        }
    }

    #[test]
    fn the_handshake_names_the_object() {
        let hello = decoded(ClientConversation::handshake("obj", 100).unwrap());
        assert_eq!(
            (hello.header.kind, &hello.body[..]),
            (Kind::Handshake, &b"obj"[..])
        );
        assert!(ClientConversation::handshake("obj", 2).is_err());
    }

    #[test]
    fn the_daemon_must_answer_the_handshake_first() {
        for kind in [Kind::Reply, Kind::Pong, Kind::Ping, Kind::Invoke] {
            let mut conversation = ClientConversation::new(Format::Bincode);
            let early = frame(kind, Flags::NONE, 1, b"");
            assert!(
                matches!(
                    ended(conversation.receive(early)),
                    Closing::Protocol(ProtocolError::Unexpected { kind: found, .. }) if found == kind
                ),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_refusal_or_a_close_before_the_answer_is_a_refusal() {
        let unknown = RemoteError::UnknownObject { object: "x".into() };
        let mut conversation = ClientConversation::new(Format::Bincode);
        let refusal = failure(Kind::HandshakeReply, &unknown);
        assert_eq!(
            ended(conversation.receive(refusal)),
            Closing::Refused(unknown)
        );
        let full = RemoteError::TooManyConnections {
            setting: "max_connections".into(),
            limit: 1,
        };
        let mut conversation = ClientConversation::new(Format::Bincode);
        let close = failure(Kind::Close, &full);
        assert_eq!(ended(conversation.receive(close)), Closing::Refused(full));
    }

    #[test]
    fn replies_and_pongs_are_answers_and_pings_get_pongs() {
        let mut conversation = open();
        for kind in [Kind::Reply, Kind::Pong] {
            let answer = frame(kind, Flags::NONE, 6, b"v");
            assert!(matches!(
                conversation.receive(answer),
                ClientEvent::Answer(message) if message.header.request_id == 6
            ));
        }
        let ping = frame(Kind::Ping, Flags::NONE, 9, b"hi");
        let ClientEvent::Send(pong) = conversation.receive(ping) else {
            panic!("a ping gets a pong");
        };
        let pong = decoded(pong);
        assert_eq!(
            (pong.header.kind, pong.header.request_id, &pong.body[..]),
            (Kind::Pong, 9, &b"hi"[..])
        );
    }

    #[test]
    fn a_close_says_why_and_nothing_is_read_after_it() {
        let mut conversation = open();
        let close = failure(Kind::Close, &RemoteError::ShuttingDown);
        assert_eq!(
            ended(conversation.receive(close)),
            Closing::Closed(RemoteError::ShuttingDown)
        );
        let late = frame(Kind::Reply, Flags::NONE, 1, b"");
        assert!(matches!(
            ended(conversation.receive(late)),
            Closing::Protocol(_)
        ));
    }

    #[test]
    fn an_unreadable_reason_is_a_protocol_error() {
        let mut conversation = open();
        let garbled = frame(Kind::Close, Flags::FAILURE, 0, &[0xff; 3]);
        assert!(matches!(
            ended(conversation.receive(garbled)),
            Closing::Protocol(ProtocolError::Malformed {
                what: "close reason",
                ..
            })
        ));
    }

    #[test]
    fn frames_a_daemon_may_not_send_end_the_conversation() {
        for kind in [
            Kind::Handshake,
            Kind::HandshakeReply,
            Kind::Invoke,
            Kind::Cancel,
        ] {
            let mut conversation = open();
            let wrong = frame(kind, Flags::NONE, 1, b"");
            assert!(
                matches!(
                    ended(conversation.receive(wrong)),
                    Closing::Protocol(ProtocolError::Unexpected { kind: found, .. }) if found == kind
                ),
                "{kind:?}"
            );
        }
    }

    fn authenticating() -> ClientConversation {
        let secret = crate::secret::Secret::new("a secret of sixteen bytes or more").unwrap();
        let auth = ClientAuth {
            secret,
            nonce: [1; NONCE_LEN],
        };
        let mut conversation = ClientConversation::new(Format::Bincode);
        let hello = conversation.start_auth(auth);
        let hello = decoded(hello);
        assert_eq!(
            (hello.header.kind, &hello.body[..]),
            (Kind::Auth, &[1; NONCE_LEN][..])
        );
        conversation
    }

    fn challenge(secret: &str) -> Message {
        let secret = crate::secret::Secret::new(secret).unwrap();
        let daemon_nonce = [2; NONCE_LEN];
        let mut body = daemon_nonce.to_vec();
        body.extend(authentication::daemon_proof(
            &secret,
            &[1; NONCE_LEN],
            &daemon_nonce,
        ));
        frame(Kind::AuthChallenge, Flags::NONE, 0, &body)
    }

    #[test]
    fn a_daemon_that_proves_the_secret_gets_the_clients_proof() {
        let mut conversation = authenticating();
        let ClientEvent::Send(proof) =
            conversation.receive(challenge("a secret of sixteen bytes or more"))
        else {
            panic!("a good challenge gets a proof");
        };
        assert_eq!(decoded(proof).header.kind, Kind::AuthProof);
        let accepted = frame(Kind::HandshakeReply, Flags::NONE, 0, b"");
        assert!(matches!(
            conversation.receive(accepted),
            ClientEvent::Nothing
        ));
        assert!(conversation.is_open());
    }

    #[test]
    fn a_daemon_that_cannot_prove_the_secret_is_refused() {
        let mut conversation = authenticating();
        assert!(matches!(
            ended(conversation.receive(challenge("another secret, also long enough"))),
            Closing::Refused(RemoteError::AuthenticationFailed { .. })
        ));
        let mut conversation = authenticating();
        let early = frame(Kind::HandshakeReply, Flags::NONE, 0, b"");
        assert!(matches!(
            ended(conversation.receive(early)),
            Closing::Protocol(_)
        ));
        let mut conversation = authenticating();
        let short = frame(Kind::AuthChallenge, Flags::NONE, 0, &[0; 8]);
        assert!(matches!(
            ended(conversation.receive(short)),
            Closing::Protocol(_)
        ));
    }
}
