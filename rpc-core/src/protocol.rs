//! The native wire protocol: frames, headers and message kinds, as bytes only.
//!
//! This module is sans-IO (the idea of quinn-proto): it turns bytes into [`Message`]s and back,
//! and its [`conversation`] module holds the rules of a connection for each side, as state
//! machines. It knows nothing of sockets, tasks or clocks; the connection code feeds it bytes.
//!
//! # Frames
//!
//! A connection carries a sequence of frames. Every frame is a 20-byte [`Header`] followed by a
//! body of `body_len` bytes. All integers are big-endian.
//!
//! | offset | size | field        | meaning |
//! |-------:|-----:|--------------|---------|
//! | 0      | 4    | magic        | the ASCII bytes `ROBJ` ([`MAGIC`]); deliberately not `PYRO`, so one port can later also sniff Pyro5 clients |
//! | 4      | 2    | version      | [`PROTOCOL_VERSION`]; a peer with another version is refused |
//! | 6      | 1    | kind         | a [`Kind`] |
//! | 7      | 1    | flags        | [`Flags`]: bit 0 `ONEWAY`, bit 1 `FAILURE`; other bits must be 0 |
//! | 8      | 8    | request id   | chosen by the client, unique among its calls in flight; replies echo it |
//! | 16     | 4    | body length  | bytes that follow the header; checked against the limit before any buffer is reserved |
//!
//! # Kinds and their bodies
//!
//! | kind | value | direction | body |
//! |------|------:|-----------|------|
//! | [`Kind::Handshake`]      | 1 | client → daemon | the target object id, UTF-8 |
//! | [`Kind::HandshakeReply`] | 2 | daemon → client | empty, or with `FAILURE` an encoded [`RemoteError`] |
//! | [`Kind::Invoke`]         | 3 | client → daemon | an [`Invoke`]: deadline, method name, encoded arguments |
//! | [`Kind::Reply`]          | 4 | daemon → client | the encoded return value, or with `FAILURE` an encoded [`RemoteError`] |
//! | [`Kind::Cancel`]         | 5 | client → daemon | empty; the request id names the call to cancel |
//! | [`Kind::Ping`]           | 6 | either way      | any bytes, echoed by the pong |
//! | [`Kind::Pong`]           | 7 | either way      | the ping's body |
//! | [`Kind::Close`]          | 8 | daemon → client | an encoded [`RemoteError`]: why the daemon is closing the connection |
//! | [`Kind::Auth`]           | 9 | client → daemon | 32 bytes: the client's fresh nonce |
//! | [`Kind::AuthChallenge`]  | 10 | daemon → client | 32 bytes of the daemon's fresh nonce, then its 32-byte proof |
//! | [`Kind::AuthProof`]      | 11 | client → daemon | the client's 32-byte proof |
//!
//! The first frame a client sends is a handshake; the daemon answers it before anything else.
//! A client with a [`Secret`](crate::Secret) first authenticates, one round trip before the
//! handshake: see [`conversation`] for the exchange.
//! After that the client may have many invokes in flight, and replies come in any order,
//! matched by request id. An invoke with the `ONEWAY` flag gets no reply.
//!
//! # The invoke body
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 4    | deadline in milliseconds, relative to the frame's arrival; 0 means none |
//! | 4      | 1    | length `n` of the method name |
//! | 5      | n    | method name, UTF-8 |
//! | 5 + n  | rest | the arguments as one tuple, encoded by the connection's format |
//!
//! The deadline is a duration, never a wall-clock time, so the two clocks need not agree.
//!
//! # Encoding of values
//!
//! Arguments, return values and [`RemoteError`]s are serde values encoded with bincode 2's
//! standard configuration (variable-length integers, little-endian). Decoding never allocates
//! more than a small multiple of the frame's own length.

pub mod conversation;
mod error;
mod header;
mod invoke;
mod kind;
mod message;
pub mod pyro5;
mod remote_error;

pub use error::ProtocolError;
pub use header::{HEADER_LEN, Header, MAGIC, PROTOCOL_VERSION};
pub use invoke::{Invoke, MAX_METHOD_NAME_LEN};
pub use kind::{Flags, Kind};
pub use message::{FrameBuilder, Message};
pub use remote_error::RemoteError;
