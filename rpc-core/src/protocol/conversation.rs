//! The rules of one connection, for each side, as state machines that move no bytes.
//!
//! [`DaemonConversation`] and [`ClientConversation`] take decoded [`Message`](super::Message)s
//! in and give back what they mean (events) and the frames to send in answer. They know no
//! sockets, tasks or clocks: the daemon's session and the proxy's link are drivers that read
//! frames, hand them over, and write what comes back. So every rule below is tested directly,
//! and fuzzed, without a network.
//!
//! # The rules
//!
//! - The client's first frame is a handshake naming the object; the daemon answers it before
//!   any other frame, accepting it or refusing it with a reason (and closing).
//! - With a shared secret, an auth exchange comes first ([`authentication`]): a daemon that
//!   requires it closes a connection whose handshake comes unauthenticated, whose proof is
//!   wrong, or (having no secret) that asks to authenticate; a client closes one whose daemon
//!   cannot prove the secret. Either way the reason is `AuthenticationFailed`.
//! - After the handshake a client sends invokes, cancels, pings and pongs; a daemon sends
//!   replies, pings, pongs and close. Any other kind ends the connection with a protocol error.
//! - A request id is unique among the client's calls in flight: an invoke that reuses the id
//!   of a call still running ends the connection.
//! - A cancel names a call in flight; a cancel of a call that has ended (or never existed) is
//!   ignored, since it may cross the reply on the wire.
//! - A ping carries at most [`MAX_PING_BODY`] bytes and is answered by a pong with the same
//!   body and request id.
//! - A close says why the daemon ends the connection: a protocol error, an idle connection,
//!   its shutdown. Nothing follows it.
//!
//! # A call, from the daemon's side
//!
//! ```text
//!   invoke ──> started ──(finished at once)──────────────────────> reply sent
//!                 │
//!                 └──(must wait)──> waiting ──finished──> reply sent
//!                                      │
//!                                      ├──cancel──> cancelled (no reply)
//!                                      └──connection ends──> cancelled (no reply)
//! ```

pub mod authentication;
mod client_side;
mod daemon_side;

pub use client_side::{ClientConversation, ClientEvent, Closing};
pub use daemon_side::{DaemonConversation, DaemonEvent, MAX_PING_BODY};

/// `frame`, as the other side's reader would hand it over.
#[cfg(test)]
fn decoded(frame: bytes::BytesMut) -> super::Message {
    let mut buf = frame;
    super::Message::decode(&mut buf, usize::MAX)
        .expect("a frame this crate encoded decodes")
        .expect("the frame is whole")
}

/// A frame of `kind` as the other side's reader would hand it over.
#[cfg(test)]
fn frame(kind: super::Kind, flags: super::Flags, request_id: u64, body: &[u8]) -> super::Message {
    decoded(super::Message::encode(kind, flags, request_id, body, usize::MAX).unwrap())
}
