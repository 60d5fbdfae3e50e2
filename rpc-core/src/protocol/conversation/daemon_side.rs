//! `DaemonConversation`: the daemon's side of a connection.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::BytesMut;

use super::authentication::{self, DaemonAuth, NONCE_LEN, Nonce};
use crate::codec::Format;
use crate::dispatch::Encoded;
use crate::protocol::{Flags, FrameBuilder, Invoke, Kind, Message, ProtocolError, RemoteError};

/// The longest ping body a daemon echoes: a ping checks that the daemon answers, and need not
/// make it queue megabytes of echoes for a peer that does not read them.
pub const MAX_PING_BODY: usize = 256;

/// Where a daemon's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing has arrived yet (or the client has just authenticated): only a handshake may,
    /// or an auth first.
    AwaitingHandshake,
    /// The client sent its nonce and was challenged: only its proof may come.
    AwaitingProof(Nonce),
    /// The handshake arrived; the driver has not answered it yet.
    Answering,
    /// Calls flow.
    Open,
    /// A close frame (or a refusal) was produced: nothing more is read.
    Closed,
}

/// The daemon's side of one connection: which frames the client may send when, which calls
/// are in flight, and the frames that answer.
///
/// `H` is whatever the driver keeps for a call that waits (a task's abort handle, say); it is
/// handed back when the client cancels that call, and for every waiting call when the
/// connection ends.
#[derive(Debug)]
pub struct DaemonConversation<H> {
    phase: Phase,
    format: Format,
    waiting: HashMap<u64, H>,
    frames_received: u64,
    /// The shared secret's settings, if the daemon has one.
    auth: Option<DaemonAuth>,
    /// Whether the client proved the secret.
    authenticated: bool,
}

/// What a frame from the client means.
#[derive(Debug)]
pub enum DaemonEvent<'m, H> {
    /// The client asks for `object`: answer with [`accept`](DaemonConversation::accept) or
    /// [`refuse`](DaemonConversation::refuse) before anything else.
    Handshake {
        /// The handshake's request id, which its answer echoes.
        request_id: u64,
        /// The object id asked for.
        object: Cow<'m, str>,
    },
    /// A call to start. If it finishes at once, wrap its result with
    /// [`reply`](DaemonConversation::reply); if it must wait, say so with
    /// [`waiting`](DaemonConversation::waiting) before the next frame is received.
    Invoke {
        /// The call's request id.
        request_id: u64,
        /// Whether the client wants no reply.
        oneway: bool,
        /// The deadline, method name and encoded arguments.
        invoke: Invoke<'m>,
    },
    /// The client no longer wants the reply to a waiting call: stop it.
    Cancel(H),
    /// A frame to send: the pong to a ping, the challenge to an auth.
    Send(BytesMut),
    /// The connection ends: send this frame (why), then close. Authentication failed.
    Close(BytesMut),
    /// Nothing to do: a pong, or a cancel of a call that has already ended.
    Nothing,
}

impl<H> DaemonConversation<H> {
    /// A conversation that has seen nothing yet, whose values are encoded in `format`.
    pub fn new(format: Format) -> Self {
        DaemonConversation {
            phase: Phase::AwaitingHandshake,
            format,
            waiting: HashMap::new(),
            frames_received: 0,
            auth: None,
            authenticated: false,
        }
    }

    /// This conversation for a daemon with a shared secret: a client proves it before its
    /// handshake (see [`authentication`](super::authentication)).
    #[must_use]
    pub fn authenticating(mut self, auth: DaemonAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Whether the client proved the daemon's shared secret.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// What `message` means at this point of the conversation.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] for a frame the client may not send now, a malformed invoke or
    /// ping, or a request id already in flight: end the connection with
    /// [`fail`](Self::fail).
    pub fn receive<'m>(
        &mut self,
        message: &'m Message,
    ) -> Result<DaemonEvent<'m, H>, ProtocolError> {
        let header = &message.header;
        let request_id = header.request_id;
        match self.phase {
            Phase::AwaitingHandshake if header.kind == Kind::Handshake => {
                if self.auth.as_ref().is_some_and(|auth| auth.required) && !self.authenticated {
                    return Ok(
                        self.refuse_auth("the client did not authenticate (has it the secret?)")
                    );
                }
                self.phase = Phase::Answering;
                return Ok(DaemonEvent::Handshake {
                    request_id,
                    object: String::from_utf8_lossy(&message.body),
                });
            }
            Phase::AwaitingHandshake if header.kind == Kind::Auth && !self.authenticated => {
                return self.challenge(message);
            }
            Phase::AwaitingProof(client_nonce) if header.kind == Kind::AuthProof => {
                return Ok(self.check_proof(&client_nonce, &message.body));
            }
            Phase::AwaitingProof(_) => {
                return Err(ProtocolError::Unexpected {
                    kind: header.kind,
                    context: "after its auth, a client sends its proof",
                });
            }
            Phase::AwaitingHandshake => {
                return Err(ProtocolError::Unexpected {
                    kind: header.kind,
                    context: "the first message must be a handshake",
                });
            }
            Phase::Answering => {
                return Err(ProtocolError::Unexpected {
                    kind: header.kind,
                    context: "the handshake must be answered before the next message is read",
                });
            }
            Phase::Closed => {
                return Err(ProtocolError::Unexpected {
                    kind: header.kind,
                    context: "the connection is closing",
                });
            }
            Phase::Open => {}
        }
        self.frames_received = self.frames_received.wrapping_add(1);
        match header.kind {
            Kind::Invoke => {
                let invoke = Invoke::decode(&message.body)?;
                // Most calls finish at once, so most invokes find no call waiting: that case
                // skips hashing the id.
                if !self.waiting.is_empty() && self.waiting.contains_key(&request_id) {
                    return Err(ProtocolError::Malformed {
                        what: "invoke",
                        detail: format!("request id {request_id} is already in flight"),
                    });
                }
                Ok(DaemonEvent::Invoke {
                    request_id,
                    oneway: header.flags.contains(Flags::ONEWAY),
                    invoke,
                })
            }
            Kind::Cancel => Ok(match self.waiting.remove(&request_id) {
                Some(call) => DaemonEvent::Cancel(call),
                None => DaemonEvent::Nothing,
            }),
            Kind::Ping if message.body.len() > MAX_PING_BODY => Err(ProtocolError::Malformed {
                what: "ping",
                detail: format!(
                    "a ping carries at most {MAX_PING_BODY} bytes, not {}",
                    message.body.len()
                ),
            }),
            Kind::Ping => Ok(DaemonEvent::Send(Message::encode(
                Kind::Pong,
                Flags::NONE,
                request_id,
                &message.body,
                MAX_PING_BODY,
            )?)),
            Kind::Pong => Ok(DaemonEvent::Nothing),
            kind => Err(ProtocolError::Unexpected {
                kind,
                context: "a client sends only invoke, cancel, ping and pong after its handshake",
            }),
        }
    }

    /// The challenge to a client's auth, or the refusal of a daemon without a secret.
    fn challenge(&mut self, message: &Message) -> Result<DaemonEvent<'static, H>, ProtocolError> {
        let client_nonce: Nonce =
            message
                .body
                .as_ref()
                .try_into()
                .map_err(|_| ProtocolError::Malformed {
                    what: "auth",
                    detail: format!("a nonce is {NONCE_LEN} bytes, not {}", message.body.len()),
                })?;
        let Some(auth) = &self.auth else {
            return Ok(self.refuse_auth("the daemon has no secret to authenticate with"));
        };
        let proof = authentication::daemon_proof(&auth.secret, &client_nonce, &auth.nonce);
        let mut body = Vec::with_capacity(2 * NONCE_LEN);
        body.extend_from_slice(&auth.nonce);
        body.extend_from_slice(&proof);
        self.phase = Phase::AwaitingProof(client_nonce);
        Ok(DaemonEvent::Send(Message::encode(
            Kind::AuthChallenge,
            Flags::NONE,
            message.header.request_id,
            &body,
            usize::MAX,
        )?))
    }

    /// Checks the client's proof: the conversation goes on to the handshake, or ends.
    fn check_proof(&mut self, client_nonce: &Nonce, proof: &[u8]) -> DaemonEvent<'static, H> {
        let Some(auth) = &self.auth else {
            return self.refuse_auth("the daemon has no secret to authenticate with");
        };
        if authentication::is_client_proof(&auth.secret, client_nonce, &auth.nonce, proof) {
            self.authenticated = true;
            self.phase = Phase::AwaitingHandshake;
            DaemonEvent::Nothing
        } else {
            self.refuse_auth("the client's proof of the secret is wrong")
        }
    }

    fn refuse_auth(&mut self, reason: &str) -> DaemonEvent<'static, H> {
        let reason = RemoteError::AuthenticationFailed {
            reason: reason.to_owned(),
        };
        DaemonEvent::Close(self.close(&reason))
    }

    /// Accepts the handshake: the frame that says so. Calls may follow.
    pub fn accept(&mut self, request_id: u64) -> BytesMut {
        self.phase = Phase::Open;
        Message::encode(Kind::HandshakeReply, Flags::NONE, request_id, &[], 0).unwrap_or_default()
    }

    /// Refuses the handshake for `reason`: the frame that says so. Nothing follows it.
    pub fn refuse(&mut self, request_id: u64, reason: &RemoteError) -> BytesMut {
        self.phase = Phase::Closed;
        self.failure(Kind::HandshakeReply, request_id, reason)
    }

    /// The call `request_id` must wait; `call` is what [`receive`](Self::receive) hands back if
    /// the client cancels it, and [`end`](Self::end) when the connection ends.
    pub fn waiting(&mut self, request_id: u64, call: H) {
        self.waiting.insert(request_id, call);
    }

    /// A waiting call ended; false if it was cancelled (its reply must not be sent).
    pub fn finished(&mut self, request_id: u64) -> bool {
        self.waiting.remove(&request_id).is_some()
    }

    /// The reply frame for the call `request_id`, around its result or the error in its place.
    pub fn reply(&self, request_id: u64, outcome: Result<Encoded, RemoteError>) -> BytesMut {
        match outcome {
            Ok(value) => {
                let (buf, headroom) = value.into_parts();
                let frame = if headroom == crate::protocol::HEADER_LEN {
                    FrameBuilder::around(buf, Kind::Reply, Flags::NONE, request_id)
                } else {
                    // Encoded for another framing: copied into ours.
                    let mut frame = FrameBuilder::new(Kind::Reply, Flags::NONE, request_id);
                    frame.body_mut().extend_from_slice(&buf[headroom..]);
                    frame
                };
                // The result was checked against the limit when it was encoded; only a body
                // past 4 GiB can fail here.
                frame.finish(usize::MAX).unwrap_or_else(|error| {
                    let detail = error.to_string();
                    self.failure(Kind::Reply, request_id, &RemoteError::Protocol { detail })
                })
            }
            Err(error) => self.failure(Kind::Reply, request_id, &error),
        }
    }

    /// Ends the connection for a protocol error of the client's: the close frame that says so.
    pub fn fail(&mut self, error: &ProtocolError) -> BytesMut {
        let detail = error.to_string();
        self.close(&RemoteError::Protocol { detail })
    }

    /// Ends the connection for `reason` (an idle connection, a shutdown): the close frame.
    /// Waiting calls are the driver's to stop: see [`end`](Self::end).
    pub fn close(&mut self, reason: &RemoteError) -> BytesMut {
        self.phase = Phase::Closed;
        self.failure(Kind::Close, 0, reason)
    }

    /// The connection ended: every call still waiting, to stop. Nothing more is received.
    pub fn end(&mut self) -> impl Iterator<Item = H> + '_ {
        self.phase = Phase::Closed;
        self.waiting.drain().map(|(_, call)| call)
    }

    /// Frames received since the handshake: the driver's idle timer compares them.
    pub fn frames_received(&self) -> u64 {
        self.frames_received
    }

    /// How many calls wait.
    pub fn waiting_calls(&self) -> usize {
        self.waiting.len()
    }

    /// A frame carrying `error` in place of a value.
    fn failure(&self, kind: Kind, request_id: u64, error: &RemoteError) -> BytesMut {
        let mut frame = FrameBuilder::new(kind, Flags::FAILURE, request_id);
        // Encoding a `RemoteError` (strings and integers) into memory cannot fail, and its
        // size is bounded by the daemon's own strings, so the frame is built without a limit.
        let _ = self.format.encode_into(error, frame.body_mut());
        frame.finish(usize::MAX).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::conversation::{decoded, frame};

    fn invoke(request_id: u64, method: &str) -> Message {
        let mut body = Vec::new();
        Invoke::write_prefix(&mut body, Some(Duration::from_secs(1)), method).unwrap();
        body.push(7);
        frame(Kind::Invoke, Flags::NONE, request_id, &body)
    }

    /// A conversation past an accepted handshake.
    fn open() -> DaemonConversation<&'static str> {
        let mut conversation = DaemonConversation::new(Format::Bincode);
        let hello = frame(Kind::Handshake, Flags::NONE, 0, b"obj");
        assert!(matches!(
            conversation.receive(&hello),
            Ok(DaemonEvent::Handshake { request_id: 0, object }) if object == "obj"
        ));
        let accepted = decoded(conversation.accept(0));
        assert_eq!(accepted.header.kind, Kind::HandshakeReply);
        assert!(!accepted.header.flags.contains(Flags::FAILURE));
        conversation
    }

    fn remote_error(message: &Message) -> RemoteError {
        assert!(message.header.flags.contains(Flags::FAILURE));
        Format::Bincode.decode(&message.body).unwrap()
    }

    #[test]
    fn the_first_frame_must_be_a_handshake() {
        for kind in [Kind::Invoke, Kind::Ping, Kind::Cancel, Kind::Reply] {
            let mut conversation = DaemonConversation::<()>::new(Format::Bincode);
            assert!(matches!(
                conversation.receive(&frame(kind, Flags::NONE, 1, b"")),
                Err(ProtocolError::Unexpected { kind: found, .. }) if found == kind
            ));
        }
    }

    #[test]
    fn nothing_is_read_before_the_handshake_is_answered() {
        let mut conversation = DaemonConversation::<()>::new(Format::Bincode);
        conversation
            .receive(&frame(Kind::Handshake, Flags::NONE, 0, b"obj"))
            .unwrap();
        assert!(conversation.receive(&invoke(1, "m")).is_err());
    }

    #[test]
    fn a_refused_handshake_says_why_and_ends_the_conversation() {
        let mut conversation = DaemonConversation::<()>::new(Format::Bincode);
        conversation
            .receive(&frame(Kind::Handshake, Flags::NONE, 3, b"nobody"))
            .unwrap();
        let reason = RemoteError::UnknownObject {
            object: "nobody".into(),
        };
        let refusal = decoded(conversation.refuse(3, &reason));
        assert_eq!(refusal.header.kind, Kind::HandshakeReply);
        assert_eq!(refusal.header.request_id, 3);
        assert_eq!(remote_error(&refusal), reason);
        assert!(conversation.receive(&invoke(1, "m")).is_err());
    }

    #[test]
    fn an_invoke_reusing_the_id_of_a_waiting_call_is_refused() {
        let mut conversation = open();
        assert!(matches!(
            conversation.receive(&invoke(1, "m")),
            Ok(DaemonEvent::Invoke { request_id: 1, oneway: false, invoke })
                if invoke.method == "m" && invoke.args == [7]
        ));
        conversation.waiting(1, "call 1");
        assert!(matches!(
            conversation.receive(&invoke(1, "m")),
            Err(ProtocolError::Malformed { what: "invoke", .. })
        ));
        assert!(conversation.finished(1));
        assert!(
            conversation.receive(&invoke(1, "m")).is_ok(),
            "an id is free again once its call ended"
        );
    }

    #[test]
    fn a_call_that_finished_at_once_frees_its_id() {
        let mut conversation = open();
        conversation.receive(&invoke(5, "m")).unwrap();
        assert!(conversation.receive(&invoke(5, "m")).is_ok());
    }

    #[test]
    fn frames_a_client_may_not_send_end_the_conversation() {
        for kind in [
            Kind::Handshake,
            Kind::HandshakeReply,
            Kind::Reply,
            Kind::Close,
        ] {
            let mut conversation = open();
            assert!(
                matches!(
                    conversation.receive(&frame(kind, Flags::NONE, 1, b"")),
                    Err(ProtocolError::Unexpected { kind: found, .. }) if found == kind
                ),
                "{kind:?}"
            );
            let close = decoded(conversation.fail(&ProtocolError::UnknownKind(9)));
            assert_eq!(close.header.kind, Kind::Close);
            assert!(matches!(remote_error(&close), RemoteError::Protocol { .. }));
        }
    }

    #[test]
    fn a_malformed_invoke_is_a_protocol_error() {
        let mut conversation = open();
        let broken = frame(Kind::Invoke, Flags::NONE, 1, &[0, 0, 0, 0, 9, b'x']);
        assert!(matches!(
            conversation.receive(&broken),
            Err(ProtocolError::Malformed {
                what: "invoke body",
                ..
            })
        ));
    }

    #[test]
    fn a_cancel_stops_a_waiting_call_and_is_ignored_for_others() {
        let mut conversation = open();
        conversation.receive(&invoke(1, "m")).unwrap();
        conversation.waiting(1, "call 1");
        let cancel = frame(Kind::Cancel, Flags::NONE, 1, b"");
        assert!(matches!(
            conversation.receive(&cancel),
            Ok(DaemonEvent::Cancel("call 1"))
        ));
        assert!(!conversation.finished(1), "a cancelled call sends no reply");
        assert!(matches!(
            conversation.receive(&cancel),
            Ok(DaemonEvent::Nothing)
        ));
        let unknown = frame(Kind::Cancel, Flags::NONE, 99, b"");
        assert!(matches!(
            conversation.receive(&unknown),
            Ok(DaemonEvent::Nothing)
        ));
    }

    #[test]
    fn a_ping_is_answered_with_its_body_and_a_large_one_is_refused() {
        let mut conversation = open();
        let ping = frame(Kind::Ping, Flags::NONE, 42, b"hello");
        let Ok(DaemonEvent::Send(pong)) = conversation.receive(&ping) else {
            panic!("a ping gets a pong");
        };
        let pong = decoded(pong);
        assert_eq!(
            (pong.header.kind, pong.header.request_id, &pong.body[..]),
            (Kind::Pong, 42, &b"hello"[..])
        );
        let pong = frame(Kind::Pong, Flags::NONE, 42, b"");
        assert!(matches!(
            conversation.receive(&pong),
            Ok(DaemonEvent::Nothing)
        ));
        let large = frame(Kind::Ping, Flags::NONE, 43, &[0; MAX_PING_BODY + 1]);
        assert!(matches!(
            conversation.receive(&large),
            Err(ProtocolError::Malformed { what: "ping", .. })
        ));
    }

    #[test]
    fn closing_during_calls_hands_back_every_waiting_call() {
        let mut conversation = open();
        for (id, call) in [(1, "one"), (2, "two")] {
            conversation.receive(&invoke(id, "m")).unwrap();
            conversation.waiting(id, call);
        }
        assert_eq!(conversation.waiting_calls(), 2);
        let close = decoded(conversation.close(&RemoteError::ShuttingDown));
        assert_eq!(
            (close.header.kind, remote_error(&close)),
            (Kind::Close, RemoteError::ShuttingDown)
        );
        let mut stopped: Vec<_> = conversation.end().collect();
        stopped.sort_unstable();
        assert_eq!(stopped, ["one", "two"]);
        assert!(
            conversation.receive(&invoke(3, "m")).is_err(),
            "nothing is read once closed"
        );
    }

    #[test]
    fn replies_wrap_results_in_place_and_errors_as_failures() {
        let conversation = open();
        let mut buf = FrameBuilder::headroom(BytesMut::new());
        buf.extend_from_slice(b"value");
        let reply = decoded(conversation.reply(8, Ok(Encoded::from_parts(buf, 20))));
        assert_eq!(
            (reply.header.kind, reply.header.request_id, &reply.body[..]),
            (Kind::Reply, 8, &b"value"[..])
        );
        assert!(!reply.header.flags.contains(Flags::FAILURE));
        let mut foreign = BytesMut::from(&b"0123value"[..]);
        foreign.truncate(9);
        let copied = decoded(conversation.reply(9, Ok(Encoded::from_parts(foreign, 4))));
        assert_eq!(&copied.body[..], b"value");
        let error = RemoteError::DeadlineExceeded { method: "m".into() };
        let failed = decoded(conversation.reply(10, Err(error.clone())));
        assert_eq!(
            (failed.header.request_id, remote_error(&failed)),
            (10, error)
        );
    }

    #[test]
    fn an_oneway_invoke_says_so() {
        let mut conversation = open();
        let mut oneway = invoke(4, "m");
        oneway.header.flags = Flags::ONEWAY;
        assert!(matches!(
            conversation.receive(&oneway),
            Ok(DaemonEvent::Invoke { oneway: true, .. })
        ));
    }

    fn secret() -> crate::secret::Secret {
        crate::secret::Secret::new("a secret of sixteen bytes or more").unwrap()
    }

    fn authenticating(required: bool) -> DaemonConversation<()> {
        DaemonConversation::new(Format::Bincode).authenticating(DaemonAuth {
            secret: secret(),
            nonce: [2; NONCE_LEN],
            required,
        })
    }

    fn auth_failure(event: Result<DaemonEvent<'_, ()>, ProtocolError>) -> String {
        let Ok(DaemonEvent::Close(frame)) = event else {
            panic!("the conversation should close, not {event:?}");
        };
        match remote_error(&decoded(frame)) {
            RemoteError::AuthenticationFailed { reason } => reason,
            other => panic!("expected AuthenticationFailed, got {other:?}"),
        }
    }

    /// The proof a client with `secret` makes for the challenge in `frame`.
    fn proof_for(frame: BytesMut, client_nonce: &Nonce, secret: &crate::secret::Secret) -> Message {
        let challenge = decoded(frame);
        let daemon_nonce: Nonce = challenge.body[..NONCE_LEN].try_into().unwrap();
        frame_of(
            Kind::AuthProof,
            &authentication::client_proof(secret, client_nonce, &daemon_nonce),
        )
    }

    /// A conversation that has challenged the auth of a client with `client_nonce`, and its
    /// challenge.
    fn challenged(client_nonce: &Nonce) -> (DaemonConversation<()>, BytesMut) {
        let mut conversation = authenticating(true);
        match conversation.receive(&frame_of(Kind::Auth, client_nonce)) {
            Ok(DaemonEvent::Send(challenge)) => (conversation, challenge),
            other => panic!("an auth gets a challenge, not {other:?}"),
        }
    }

    fn frame_of(kind: Kind, body: &[u8]) -> Message {
        frame(kind, Flags::NONE, 0, body)
    }

    #[test]
    fn a_client_that_proves_the_secret_is_authenticated_then_handshakes() {
        let client_nonce = [1; NONCE_LEN];
        let (mut conversation, challenge) = challenged(&client_nonce);
        let proof = proof_for(challenge, &client_nonce, &secret());
        assert!(matches!(
            conversation.receive(&proof),
            Ok(DaemonEvent::Nothing)
        ));
        assert!(conversation.is_authenticated());
        assert!(
            conversation
                .receive(&frame_of(Kind::Auth, &client_nonce))
                .is_err(),
            "one auth per connection"
        );
        assert!(matches!(
            conversation.receive(&frame_of(Kind::Handshake, b"obj")),
            Ok(DaemonEvent::Handshake { .. })
        ));
    }

    #[test]
    fn a_wrong_proof_or_none_is_refused() {
        let client_nonce = [1; NONCE_LEN];
        let (mut conversation, challenge) = challenged(&client_nonce);
        let other = crate::secret::Secret::new("another secret of sixteen bytes").unwrap();
        let wrong = proof_for(challenge, &client_nonce, &other);
        assert!(auth_failure(conversation.receive(&wrong)).contains("proof"));
        assert!(!conversation.is_authenticated());

        let mut conversation = authenticating(true);
        let reason = auth_failure(conversation.receive(&frame_of(Kind::Handshake, b"obj")));
        assert!(reason.contains("did not authenticate"), "{reason}");

        let mut conversation = authenticating(true);
        conversation
            .receive(&frame_of(Kind::Auth, &client_nonce))
            .unwrap();
        assert!(
            conversation
                .receive(&frame_of(Kind::Handshake, b"obj"))
                .is_err(),
            "the proof comes before the handshake"
        );
        let short = frame_of(Kind::Auth, &[1; 5]);
        assert!(authenticating(true).receive(&short).is_err());
    }

    #[test]
    fn a_daemon_without_a_secret_refuses_an_auth_and_an_optional_one_serves_anyone() {
        let mut conversation = DaemonConversation::<()>::new(Format::Bincode);
        let reason = auth_failure(conversation.receive(&frame_of(Kind::Auth, &[1; NONCE_LEN])));
        assert!(reason.contains("has no secret"), "{reason}");
        let mut optional = authenticating(false);
        assert!(matches!(
            optional.receive(&frame_of(Kind::Handshake, b"obj")),
            Ok(DaemonEvent::Handshake { .. })
        ));
        assert!(!optional.is_authenticated());
    }
}
