//! The shared-secret exchange on both sides, driven by hostile frames: a daemon with a secret
//! authenticates a client only when it has made the proof itself (here, when the script asks
//! the driver to answer a challenge honestly), and a client never sends a proof to a daemon
//! that did not prove the secret. Every frame produced decodes.
//!
//! Each record: a control byte, a kind, flags, a body length, the body. Control bit 0 makes
//! the next frame the honest proof for the last challenge instead of the record's own.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::conversation::authentication::{ClientAuth, DaemonAuth, NONCE_LEN};
use rpc_core::protocol::conversation::{
    ClientConversation, ClientEvent, DaemonConversation, DaemonEvent,
};
use rpc_core::protocol::{Flags, Kind, Message};
use rpc_core::{Format, Secret};

fn decoded(frame: BytesMut) -> Message {
    let mut buf = frame;
    Message::decode(&mut buf, usize::MAX)
        .expect("a frame the conversation produced decodes")
        .expect("and is whole")
}

fn records(mut data: &[u8]) -> Vec<(u8, Option<Message>)> {
    let mut found = Vec::new();
    while let Some((&[control, kind, flags, len], rest)) = data.split_first_chunk::<4>() {
        let len = usize::from(len).min(rest.len());
        let (body, rest) = rest.split_at(len);
        data = rest;
        let message = match (Kind::from_u8(kind), Flags::from_u8(flags)) {
            (Ok(kind), Ok(flags)) => Message::encode(kind, flags, 0, body, usize::MAX)
                .ok()
                .map(decoded),
            _ => None,
        };
        found.push((control, message));
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new("the fuzzer's secret, long enough").unwrap();
    let script = records(data);

    // The daemon's side, with an honest client that the script may let answer.
    let mut daemon = DaemonConversation::<()>::new(Format::Bincode).authenticating(DaemonAuth {
        secret: secret.clone(),
        nonce: [7; NONCE_LEN],
        required: true,
    });
    let mut honest = ClientConversation::new(Format::Bincode);
    let auth = honest.start_auth(ClientAuth {
        secret: secret.clone(),
        nonce: [9; NONCE_LEN],
    });
    let auth = decoded(auth);
    let mut last_challenge = None;
    let mut ended = false;
    for (control, message) in &script {
        let honest_proof = control & 1 != 0 && last_challenge.is_some();
        let message = if control & 1 != 0 {
            match &last_challenge {
                None => auth.clone(),
                Some(challenge) => match honest.receive(Message::clone(challenge)) {
                    ClientEvent::Send(proof) => decoded(proof),
                    _ => continue,
                },
            }
        } else if let Some(message) = message {
            message.clone()
        } else {
            continue;
        };
        let was_authenticated = daemon.is_authenticated();
        let event = daemon.receive(&message);
        if ended {
            assert!(event.is_err(), "read after the end: {event:?}");
            continue;
        }
        match event {
            Ok(DaemonEvent::Send(frame)) => {
                let challenge = decoded(frame);
                assert_eq!(challenge.header.kind, Kind::AuthChallenge);
                last_challenge = Some(challenge);
            }
            Ok(DaemonEvent::Close(frame)) => {
                assert_eq!(decoded(frame).header.kind, Kind::Close);
                ended = true;
            }
            Ok(DaemonEvent::Handshake { .. }) => {
                assert!(daemon.is_authenticated(), "a handshake before the proof");
                ended = true;
            }
            Ok(_) => {}
            Err(error) => {
                assert_eq!(decoded(daemon.fail(&error)).header.kind, Kind::Close);
                ended = true;
            }
        }
        if daemon.is_authenticated() && !was_authenticated {
            assert!(
                honest_proof,
                "authenticated by a proof made without the secret"
            );
        }
    }

    // The client's side, against whatever the script sends as the daemon.
    let mut client = ClientConversation::new(Format::Bincode);
    client.start_auth(ClientAuth {
        secret,
        nonce: [9; NONCE_LEN],
    });
    for (_, message) in script {
        let Some(message) = message else { continue };
        match client.receive(message) {
            ClientEvent::Send(frame) => {
                // Only a challenge that carries the daemon's proof is answered, and the
                // fuzzer cannot make one without the secret.
                panic!("a proof was sent to a daemon that did not prove the secret: {frame:?}");
            }
            ClientEvent::Ended(_) => break,
            _ => {}
        }
    }
});
