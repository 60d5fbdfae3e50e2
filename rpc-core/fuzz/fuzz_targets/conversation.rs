//! Both sides' conversations, driven by a script of frames and of the driver's choices, with
//! the protocol's rules checked after every step: nothing is read after the end, a request id
//! is never started twice while it waits, a cancel hands back the call it names, and every
//! frame produced decodes.
//!
//! The input is a sequence of records: a control byte, a kind, flags, a request id, a body
//! length, then the body. The header fields are raw, so unknown kinds and flags come through
//! as well (the `frame` target covers header decoding itself).
#![no_main]

use std::collections::HashSet;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::conversation::{
    ClientConversation, ClientEvent, DaemonConversation, DaemonEvent,
};
use rpc_core::protocol::{Flags, Kind, Message};
use rpc_core::{Format, RemoteError};

/// The next record: the driver's control byte and the message, if its kind and flags exist.
fn next_record(data: &mut &[u8]) -> Option<(u8, Option<Message>)> {
    let (&[control, kind, flags, id, len], rest) = data.split_first_chunk::<5>()?;
    let len = usize::from(len).min(rest.len());
    let (body, rest) = rest.split_at(len);
    *data = rest;
    let message = match (Kind::from_u8(kind), Flags::from_u8(flags)) {
        (Ok(kind), Ok(flags)) => {
            let frame = Message::encode(kind, flags, u64::from(id), body, usize::MAX).ok()?;
            Some(decoded(frame))
        }
        _ => None,
    };
    Some((control, message))
}

fn decoded(frame: BytesMut) -> Message {
    let mut buf = frame;
    let message = Message::decode(&mut buf, usize::MAX)
        .expect("a frame the conversation produced decodes")
        .expect("and is whole");
    assert!(buf.is_empty(), "one frame, nothing after it");
    message
}

fn daemon_side(mut data: &[u8]) {
    let mut conversation = DaemonConversation::<u64>::new(Format::Bincode);
    let mut waiting = HashSet::new();
    let mut ended = false;
    while let Some((control, message)) = next_record(&mut data) {
        // The driver finishes a waiting call now and then.
        if control & 0x10 != 0
            && let Some(&id) = waiting.iter().next()
        {
            waiting.remove(&id);
            assert!(conversation.finished(id), "a waiting call it did not know");
        }
        let Some(message) = message else { continue };
        let event = conversation.receive(&message);
        if ended {
            assert!(event.is_err(), "read after the end: {event:?}");
            continue;
        }
        match event {
            Err(error) => {
                let close = decoded(conversation.fail(&error));
                assert_eq!(close.header.kind, Kind::Close);
                ended = true;
                let mut stopped: Vec<u64> = conversation.end().collect();
                let mut expected: Vec<u64> = waiting.drain().collect();
                stopped.sort_unstable();
                expected.sort_unstable();
                assert_eq!(stopped, expected);
            }
            Ok(DaemonEvent::Handshake { request_id, .. }) => {
                if control & 1 == 0 {
                    let reply = decoded(conversation.accept(request_id));
                    assert_eq!(reply.header.kind, Kind::HandshakeReply);
                } else {
                    let reason = RemoteError::UnknownObject { object: "x".into() };
                    let refusal = decoded(conversation.refuse(request_id, &reason));
                    assert!(refusal.header.flags.contains(Flags::FAILURE));
                    ended = true;
                }
            }
            Ok(DaemonEvent::Invoke { request_id, .. }) => {
                assert!(
                    !waiting.contains(&request_id),
                    "request id {request_id} started twice"
                );
                if control & 2 != 0 {
                    conversation.waiting(request_id, request_id);
                    waiting.insert(request_id);
                } else {
                    let failure = RemoteError::ShuttingDown;
                    let reply = decoded(conversation.reply(request_id, Err(failure)));
                    assert_eq!(reply.header.request_id, request_id);
                }
            }
            Ok(DaemonEvent::Cancel(id)) => {
                assert_eq!(id, message.header.request_id, "a cancel names its own call");
                assert!(waiting.remove(&id), "a cancel of a call that did not wait");
            }
            Ok(DaemonEvent::Send(frame)) => {
                let pong = decoded(frame);
                assert_eq!(pong.header.kind, Kind::Pong);
                assert_eq!(pong.body, message.body);
            }
            Ok(DaemonEvent::Nothing) => {}
            // A daemon without a secret closes a connection that asks to authenticate.
            Ok(DaemonEvent::Close(frame)) => {
                assert_eq!(message.header.kind, Kind::Auth);
                assert_eq!(decoded(frame).header.kind, Kind::Close);
                ended = true;
                assert_eq!(conversation.end().count(), waiting.len());
                waiting.clear();
            }
        }
        assert_eq!(conversation.waiting_calls(), waiting.len());
        if control & 0x80 != 0 && !ended {
            let close = decoded(conversation.close(&RemoteError::ShuttingDown));
            assert_eq!(close.header.kind, Kind::Close);
            ended = true;
            assert_eq!(conversation.end().count(), waiting.len());
            waiting.clear();
        }
    }
}

fn client_side(mut data: &[u8]) {
    let mut conversation = ClientConversation::new(Format::Bincode);
    let mut ended = false;
    while let Some((_, message)) = next_record(&mut data) {
        let Some(message) = message else { continue };
        let event = conversation.receive(message);
        if ended {
            assert!(
                matches!(event, ClientEvent::Ended(_)),
                "read after the end: {event:?}"
            );
            continue;
        }
        match event {
            ClientEvent::Ended(_) => ended = true,
            ClientEvent::Send(frame) => assert_eq!(decoded(frame).header.kind, Kind::Pong),
            ClientEvent::Answer(answer) => {
                assert!(conversation.is_open());
                assert!(matches!(answer.header.kind, Kind::Reply | Kind::Pong));
            }
            ClientEvent::Nothing => assert!(conversation.is_open()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    daemon_side(data);
    client_side(data);
});
