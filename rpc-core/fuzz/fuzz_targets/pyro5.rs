//! Pyro5's path, reached by hostile bytes on every daemon port: frames off a byte stream into
//! the daemon's Pyro5 conversation, and serpent and JSON documents into Python values and Rust
//! types. Nothing may panic; every answer must be a whole Pyro5 frame echoing its request; and
//! what the serpent writer writes, the reader reads back as the same value (where it can).
#![no_main]

use std::collections::BTreeMap;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::pyro5::conversation::{Pyro5Conversation, Pyro5Event};
use rpc_core::protocol::pyro5::{Pyro5Message, MAX_NESTING};
use rpc_core::pyro5::PyValue;
use rpc_core::Format;

fn check_answer(frame: &BytesMut, seq: u16) {
    if frame.is_empty() {
        return;
    }
    let mut copy = frame.clone();
    let answer = Pyro5Message::decode(&mut copy, usize::MAX)
        .expect("an answer is a valid frame")
        .expect("an answer is whole");
    assert!(copy.is_empty(), "an answer is one frame");
    assert_eq!(answer.seq, seq, "an answer echoes the sequence number");
}

/// Whether writing `value` and reading it back must give `value`: not with NaN (not equal to
/// itself), nor with dict keys that the writer makes hashable for Python (a list key becomes a
/// tuple; a dict, set or bytes key its serpent text).
fn round_trips(value: &PyValue) -> bool {
    match value {
        PyValue::Float(f) => !f.is_nan(),
        PyValue::Tuple(items) | PyValue::List(items) | PyValue::Set(items) => items.iter().all(round_trips),
        PyValue::Dict(entries) => entries.iter().all(|(key, value)| {
            !matches!(key, PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) | PyValue::Bytes(_))
                && round_trips(key)
                && round_trips(value)
        }),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    // As a stream of frames into the conversation.
    let mut buf = BytesMut::from(data);
    let mut conversation = Pyro5Conversation::new(MAX_NESTING);
    while let Ok(Some(message)) = Pyro5Message::decode(&mut buf, 1 << 20) {
        let (request, event) = conversation.receive(&message);
        match event {
            Pyro5Event::Connect { .. } => check_answer(&conversation.accept(request, &[]), request.seq),
            Pyro5Event::Send(frame) => check_answer(&frame, request.seq),
            Pyro5Event::Close(frame) => {
                if let Some(frame) = frame {
                    check_answer(&frame, request.seq);
                }
                break;
            }
            Pyro5Event::Invoke { invocation, .. } => {
                let _ = invocation.bind(&["a", "b", "c"]);
            }
        }
    }
    // As documents.
    for format in [Format::Serpent, Format::Json] {
        if let Ok(value) = format.decode_py_value(data, MAX_NESTING) {
            let _ = format.decode::<(u64, String, Option<Vec<f64>>)>(data);
            let _ = format.decode::<BTreeMap<String, PyValue>>(data);
            if format == Format::Serpent && round_trips(&value) {
                let mut written = BytesMut::new();
                format.encode_into(&value, &mut written).expect("a value writes");
                let again = format
                    .decode_py_value(&written, MAX_NESTING + 1)
                    .expect("what is written reads back");
                assert_eq!(again, value, "serpent round trip");
            }
        }
    }
});
