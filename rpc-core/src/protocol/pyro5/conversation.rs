//! The daemon's side of a Pyro5 connection, as a state machine: Pyro5 messages in, what to do
//! and the frames to send out. No sockets, tasks or clocks.
//!
//! The rules, from Pyro5's own daemon:
//! - the first message is a CONNECT in a serializer we speak (serpent or JSON); anything else
//!   gets a CONNECTFAIL that says why, and the connection closes;
//! - after it, only INVOKE and PING; any other type closes the connection;
//! - every answer echoes the request's sequence number, serializer id and correlation id;
//! - a call that cannot run (compressed, a batch, an undecodable body, a private name) gets
//!   an exception, and the connection goes on.

use bytes::BytesMut;

use super::body::{self, Invocation};
use super::{HEADER_LEN, MessageType, Pyro5Message, flags, format_of, frame_buffer, write_header};
use crate::codec::{Format, PyException};
use crate::dispatch::{Encoded, MethodInfo};

/// What a request's answer must echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Its sequence number.
    pub seq: u16,
    /// Its serializer id.
    pub serializer_id: u8,
    /// Its correlation id, if it had one.
    pub correlation_id: Option<[u8; 16]>,
}

impl Request {
    fn of(message: &Pyro5Message) -> Request {
        Request {
            seq: message.seq,
            serializer_id: message.serializer_id,
            correlation_id: message.correlation_id,
        }
    }

    /// A frame of `msg_type` answering this request, around `body`, which holds
    /// [`HEADER_LEN`] bytes of room at its start.
    fn answer(&self, msg_type: MessageType, flags: u16, mut frame: BytesMut) -> BytesMut {
        write_header(
            &mut frame,
            msg_type,
            self.serializer_id,
            flags,
            self.seq,
            self.correlation_id,
        );
        frame
    }
}

/// What a message asks of the daemon.
#[derive(Debug, PartialEq)]
pub enum Pyro5Event {
    /// The handshake for `object`: answer with [`Pyro5Conversation::accept`] or
    /// [`Pyro5Conversation::refuse`].
    Connect {
        /// The object id.
        object: String,
    },
    /// A call to run in `format`; a oneway call gets no answer.
    Invoke {
        /// The call.
        invocation: Invocation,
        /// The format of its arguments and its answer.
        format: Format,
        /// Whether it gets no answer.
        oneway: bool,
    },
    /// A frame to send now (a pong, or the exception of a call that cannot run).
    Send(BytesMut),
    /// Send this frame if any, then close the connection.
    Close(Option<BytesMut>),
}

/// The daemon's side of one Pyro5 connection.
#[derive(Debug)]
pub struct Pyro5Conversation {
    opened: bool,
    max_depth: usize,
}

/// The answer to a CONNECT in a serializer we do not speak (marshal, msgpack).
const OTHER_SERIALIZER: &str =
    "serializer not supported by this daemon: set PYRO_SERIALIZER=serpent or json";

impl Pyro5Conversation {
    /// A conversation whose documents may nest `max_depth` levels (at most
    /// [`MAX_NESTING`](super::MAX_NESTING)).
    pub fn new(max_depth: usize) -> Pyro5Conversation {
        Pyro5Conversation {
            opened: false,
            max_depth: max_depth.min(super::MAX_NESTING),
        }
    }

    /// Whether the handshake succeeded.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// Takes one message from the client; the request it was, for the answer.
    pub fn receive(&mut self, message: &Pyro5Message) -> (Request, Pyro5Event) {
        let request = Request::of(message);
        let event = if self.opened {
            self.receive_open(request, message)
        } else {
            self.receive_opening(request, message)
        };
        (request, event)
    }

    fn receive_opening(&mut self, request: Request, message: &Pyro5Message) -> Pyro5Event {
        if message.message_type() != Some(MessageType::Connect) {
            return Pyro5Event::Close(Some(
                self.refuse(request, "expected a CONNECT message first"),
            ));
        }
        let Some(format) = format_of(message.serializer_id) else {
            return Pyro5Event::Close(Some(self.refuse(request, OTHER_SERIALIZER)));
        };
        if message.has(flags::COMPRESSED) {
            return Pyro5Event::Close(Some(
                self.refuse(request, "compressed messages are not supported"),
            ));
        }
        match body::parse_connect(format, &message.data, self.max_depth) {
            Ok(object) => Pyro5Event::Connect { object },
            Err(reason) => Pyro5Event::Close(Some(
                self.refuse(request, &format!("invalid handshake: {reason}")),
            )),
        }
    }

    fn receive_open(&mut self, request: Request, message: &Pyro5Message) -> Pyro5Event {
        match message.message_type() {
            Some(MessageType::Ping) => {
                Pyro5Event::Send(request.answer(MessageType::Ping, 0, frame_buffer(b"pong")))
            }
            Some(MessageType::Invoke) => {
                let Some(format) = format_of(message.serializer_id) else {
                    return Pyro5Event::Close(None);
                };
                let oneway = message.has(flags::ONEWAY);
                let refusal = if message.has(flags::COMPRESSED) {
                    Some("compressed messages are not supported; leave Pyro5's COMPRESSION off")
                } else if message.has(flags::BATCH) {
                    Some("batch calls are not supported")
                } else if message.has(flags::KEEPSERIALIZED) {
                    Some("serialized blobs are not supported")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    return self.failed(
                        request,
                        format,
                        oneway,
                        PyException::new("Pyro5.errors.ProtocolError", reason),
                    );
                }
                match body::parse_invoke(format, &message.data, self.max_depth) {
                    Ok(invocation) if invocation.method.starts_with('_') => {
                        let refused = PyException::new(
                            "builtins.AttributeError",
                            format!(
                                "attempt to access private attribute '{}'",
                                invocation.method
                            ),
                        );
                        self.failed(request, format, oneway, refused)
                    }
                    Ok(invocation) => Pyro5Event::Invoke {
                        invocation,
                        format,
                        oneway,
                    },
                    Err(reason) => self.failed(
                        request,
                        format,
                        oneway,
                        PyException::new("Pyro5.errors.SerializeError", reason),
                    ),
                }
            }
            _ => Pyro5Event::Close(None),
        }
    }

    fn failed(
        &self,
        request: Request,
        format: Format,
        oneway: bool,
        exception: PyException,
    ) -> Pyro5Event {
        if oneway {
            return Pyro5Event::Send(BytesMut::new());
        }
        Pyro5Event::Send(self.raise(request, format, &exception))
    }

    /// Accepts the handshake for an object with `methods`.
    pub fn accept(&mut self, request: Request, methods: &[MethodInfo]) -> BytesMut {
        self.opened = true;
        let format = format_of(request.serializer_id).unwrap_or(Format::Serpent);
        let mut frame = frame_buffer(b"");
        body::connect_ok(format, methods, &mut frame);
        request.answer(MessageType::ConnectOk, 0, frame)
    }

    /// Refuses the handshake, saying why; the connection then closes.
    pub fn refuse(&self, request: Request, reason: &str) -> BytesMut {
        let mut frame = frame_buffer(b"");
        body::connect_fail(reason, &mut frame);
        // The reason is JSON, and the client reads it by the serializer id it carries.
        let request = Request {
            serializer_id: super::serializer::JSON,
            ..request
        };
        request.answer(MessageType::ConnectFail, 0, frame)
    }

    /// The answer to a call that returned: its value, or the exception its `Err` raises.
    pub fn reply(&self, request: Request, encoded: Encoded) -> BytesMut {
        let raised = encoded.raised();
        let (frame, headroom) = encoded.into_parts();
        debug_assert_eq!(headroom, HEADER_LEN);
        let flags = if raised { flags::EXCEPTION } else { 0 };
        request.answer(MessageType::Result, flags, frame)
    }

    /// The answer to a call that failed with `exception`.
    pub fn raise(&self, request: Request, format: Format, exception: &PyException) -> BytesMut {
        let mut frame = frame_buffer(b"");
        let _ = format.encode_into(&exception.to_py_value(), &mut frame);
        request.answer(MessageType::Result, flags::EXCEPTION, frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::PyValue;
    use crate::protocol::pyro5::{encode, serializer};

    fn message(
        msg_type: MessageType,
        serializer_id: u8,
        flags: u16,
        seq: u16,
        data: &[u8],
    ) -> Pyro5Message {
        let mut frame = encode(msg_type, serializer_id, flags, seq, None, data);
        Pyro5Message::decode(&mut frame, 1 << 20).unwrap().unwrap()
    }

    fn answer(frame: BytesMut) -> Pyro5Message {
        let mut frame = frame;
        Pyro5Message::decode(&mut frame, 1 << 20).unwrap().unwrap()
    }

    const CONNECT: &[u8] = b"# serpent utf-8 python3.2\n{'handshake':'hello','object':'calc'}";

    #[test]
    fn a_connect_opens_and_its_answer_echoes_the_request() {
        let mut conversation = Pyro5Conversation::new(16);
        let (request, event) = conversation.receive(&message(
            MessageType::Connect,
            serializer::SERPENT,
            0,
            5,
            CONNECT,
        ));
        assert_eq!(
            event,
            Pyro5Event::Connect {
                object: "calc".into()
            }
        );
        let ok = answer(conversation.accept(request, &[]));
        assert_eq!(
            (ok.message_type(), ok.seq, ok.serializer_id),
            (Some(MessageType::ConnectOk), 5, serializer::SERPENT)
        );
        assert!(conversation.is_open());
        let (_, pong) = conversation.receive(&message(MessageType::Ping, 42, 0, 0, b"ping"));
        let Pyro5Event::Send(pong) = pong else {
            panic!("{pong:?}")
        };
        let pong = answer(pong);
        assert_eq!(
            (pong.message_type(), pong.serializer_id, &pong.data[..]),
            (Some(MessageType::Ping), 42, &b"pong"[..])
        );
    }

    #[test]
    fn anything_but_a_connect_first_is_refused_with_a_reason_in_json() {
        for (msg_type, serializer_id) in [
            (MessageType::Invoke, serializer::SERPENT),
            (MessageType::Connect, serializer::MARSHAL),
        ] {
            let mut conversation = Pyro5Conversation::new(16);
            let (_, event) = conversation.receive(&message(msg_type, serializer_id, 0, 0, CONNECT));
            let Pyro5Event::Close(Some(frame)) = event else {
                panic!("{event:?}")
            };
            let refusal = answer(frame);
            assert_eq!(refusal.message_type(), Some(MessageType::ConnectFail));
            assert_eq!(refusal.serializer_id, serializer::JSON);
            let reason: String = Format::Json.decode(&refusal.data).unwrap();
            assert!(!reason.is_empty());
            assert!(!conversation.is_open());
        }
    }

    #[test]
    fn calls_that_cannot_run_get_exceptions_and_the_connection_goes_on() {
        let mut conversation = Pyro5Conversation::new(16);
        let (request, _) = conversation.receive(&message(
            MessageType::Connect,
            serializer::JSON,
            0,
            0,
            br#"{"handshake":"hello","object":"calc"}"#,
        ));
        conversation.accept(request, &[]);
        for (flags, body, class) in [
            (
                flags::BATCH,
                &br#"{"object":"calc","method":"<batch>","params":[],"kwargs":{}}"#[..],
                "Pyro5.errors.ProtocolError",
            ),
            (
                0,
                br#"{"object":"calc","method":"_secret","params":[],"kwargs":{}}"#,
                "builtins.AttributeError",
            ),
            (0, br#"{"object":"calc""#, "Pyro5.errors.SerializeError"),
        ] {
            let (_, event) = conversation.receive(&message(
                MessageType::Invoke,
                serializer::JSON,
                flags,
                3,
                body,
            ));
            let Pyro5Event::Send(frame) = event else {
                panic!("{event:?}")
            };
            let reply = answer(frame);
            assert!(reply.has(flags::EXCEPTION));
            assert_eq!(reply.seq, 3);
            let value = Format::Json.decode_py_value(&reply.data, 8).unwrap();
            assert_eq!(value.get("__class__"), Some(&PyValue::str(class)));
        }
        let (_, event) =
            conversation.receive(&message(MessageType::Result, serializer::JSON, 0, 4, b""));
        assert_eq!(event, Pyro5Event::Close(None));
    }
}
