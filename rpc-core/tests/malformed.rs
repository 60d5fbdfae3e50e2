//! Untrusted bytes through the whole decoding path (frame, invoke body, arguments, error
//! reports): truncations, random mutations and allocation bombs get `Ok` or a typed error,
//! never a panic, and never an allocation larger than the input warrants.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bytes::BytesMut;
use rpc_core::protocol::{Flags, FrameBuilder, HEADER_LEN, Invoke, Kind, Message, ProtocolError};
use rpc_core::{Format, RemoteError};
use serde_bytes::ByteBuf;

const LIMIT: usize = 1 << 20;

/// About fifty valid frames of every kind, with arguments of many shapes.
fn corpus() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let invoke = |id: u64, method: &str, args: &dyn erased::Args| {
        let mut frame = FrameBuilder::new(Kind::Invoke, Flags::NONE, id);
        Invoke::write_prefix(frame.body_mut(), Some(Duration::from_millis(1500)), method).unwrap();
        args.encode(frame.body_mut());
        frame.finish(LIMIT).unwrap().to_vec()
    };
    frames.push(invoke(1, "add", &(1u64, 2u64)));
    frames.push(invoke(2, "greet", &("world".to_owned(),)));
    frames.push(invoke(3, "echo", &(ByteBuf::from(vec![7u8; 300]),)));
    frames.push(invoke(
        4,
        "many",
        &(
            -5i32,
            true,
            'x',
            2.5f64,
            Some(3u8),
            vec!["a".to_owned(), "b".to_owned()],
        ),
    ));
    frames.push(invoke(
        5,
        "map",
        &(BTreeMap::from([
            ("k".to_owned(), vec![1u16, 2]),
            ("l".to_owned(), vec![]),
        ]),),
    ));
    frames.push(invoke(6, "nothing", &()));
    frames.push(invoke(u64::MAX, "", &(u128::MAX, i64::MIN)));
    for (id, object) in ["calc", "Pyro.NameServer", "obj_0123456789abcdef", ""]
        .iter()
        .enumerate()
    {
        frames.push(
            Message::encode(
                Kind::Handshake,
                Flags::NONE,
                id as u64,
                object.as_bytes(),
                LIMIT,
            )
            .unwrap()
            .to_vec(),
        );
    }
    for kind in [Kind::Cancel, Kind::Ping, Kind::Pong, Kind::HandshakeReply] {
        for id in [0, 1, 1 << 40] {
            frames.push(
                Message::encode(kind, Flags::NONE, id, b"", LIMIT)
                    .unwrap()
                    .to_vec(),
            );
        }
    }
    frames.push(
        Message::encode(Kind::Ping, Flags::NONE, 9, b"payload", LIMIT)
            .unwrap()
            .to_vec(),
    );
    let remote_errors = [
        RemoteError::UnknownObject { object: "x".into() },
        RemoteError::UnknownMethod {
            object: "x".into(),
            method: "y".into(),
        },
        RemoteError::BadArguments {
            method: "m".into(),
            detail: "d".into(),
        },
        RemoteError::Panicked {
            method: "m".into(),
            message: "boom".into(),
        },
        RemoteError::DeadlineExceeded { method: "m".into() },
        RemoteError::BadResult {
            method: "m".into(),
            detail: "d".into(),
        },
        RemoteError::ReplyTooLarge {
            method: "m".into(),
            size: 1 << 30,
            limit: 1 << 20,
        },
        RemoteError::Protocol {
            detail: "bad".into(),
        },
        RemoteError::ShuttingDown,
    ];
    for (id, error) in remote_errors.iter().enumerate() {
        for kind in [Kind::Reply, Kind::HandshakeReply, Kind::Close] {
            let mut frame = FrameBuilder::new(kind, Flags::FAILURE, id as u64);
            Format::Bincode
                .encode_into(error, frame.body_mut())
                .unwrap();
            frames.push(frame.finish(LIMIT).unwrap().to_vec());
        }
    }
    for (id, value) in [(40u64, 0u64), (41, 300), (42, u64::MAX)] {
        let mut frame = FrameBuilder::new(Kind::Reply, Flags::NONE, id);
        Format::Bincode
            .encode_into(&value, frame.body_mut())
            .unwrap();
        frames.push(frame.finish(LIMIT).unwrap().to_vec());
    }
    let oneway = {
        let mut frame = FrameBuilder::new(Kind::Invoke, Flags::ONEWAY, 77);
        Invoke::write_prefix(frame.body_mut(), None, "log").unwrap();
        Format::Bincode
            .encode_into(&("line".to_owned(),), frame.body_mut())
            .unwrap();
        frame.finish(LIMIT).unwrap().to_vec()
    };
    frames.push(oneway);
    frames
}

/// Lets the corpus hold argument tuples of different types.
mod erased {
    pub(super) trait Args {
        fn encode(&self, buf: &mut bytes::BytesMut);
    }

    impl<T: serde::Serialize> Args for T {
        fn encode(&self, buf: &mut bytes::BytesMut) {
            rpc_core::Format::Bincode.encode_into(self, buf).unwrap();
        }
    }
}

/// What the daemon and the proxy do with bytes from a peer, minus the I/O: frames off the
/// buffer, then each body decoded as its kind requires, arguments tried as several types.
/// Returns how many values decoded, or the first typed error.
fn decode_everything(bytes: &[u8]) -> Result<usize, String> {
    let mut buf = BytesMut::from(bytes);
    let mut decoded = 0;
    while let Some(message) = Message::decode(&mut buf, LIMIT).map_err(|e| e.to_string())? {
        let body = &message.body[..];
        match message.header.kind {
            Kind::Invoke => {
                let invoke = Invoke::decode(body).map_err(|e| e.to_string())?;
                let results = [
                    Format::Bincode.decode::<(u64, u64)>(invoke.args).map(drop),
                    Format::Bincode.decode::<(String,)>(invoke.args).map(drop),
                    Format::Bincode.decode::<(ByteBuf,)>(invoke.args).map(drop),
                    Format::Bincode
                        .decode::<(i32, bool, char, f64, Option<u8>, Vec<String>)>(invoke.args)
                        .map(drop),
                    Format::Bincode
                        .decode::<(BTreeMap<String, Vec<u16>>,)>(invoke.args)
                        .map(drop),
                    Format::Bincode.decode::<(u128, i64)>(invoke.args).map(drop),
                    Format::Bincode.decode::<()>(invoke.args).map(drop),
                ];
                decoded += results.iter().filter(|r| r.is_ok()).count();
            }
            _ if message.header.flags.contains(Flags::FAILURE) => {
                if Format::Bincode.decode::<RemoteError>(body).is_ok() {
                    decoded += 1;
                }
            }
            Kind::Handshake => {
                if std::str::from_utf8(body).is_ok() {
                    decoded += 1;
                }
            }
            _ => {
                if Format::Bincode.decode::<u64>(body).is_ok() {
                    decoded += 1;
                }
            }
        }
    }
    if buf.is_empty() {
        Ok(decoded)
    } else {
        Err(ProtocolError::Truncated {
            received: buf.len(),
            expected: Message::announced_len(&buf).unwrap_or(HEADER_LEN),
        }
        .to_string())
    }
}

/// Runs `decode_everything`, turning a panic into a test failure that names the input.
fn must_not_panic(bytes: &[u8]) -> Result<usize, String> {
    catch_unwind(AssertUnwindSafe(|| decode_everything(bytes)))
        .unwrap_or_else(|_| panic!("decoding panicked on {bytes:02x?}"))
}

#[test]
fn the_corpus_decodes() {
    let frames = corpus();
    assert!(frames.len() >= 50, "{} frames", frames.len());
    for frame in &frames {
        assert!(must_not_panic(frame).is_ok(), "{frame:02x?}");
    }
    let all: Vec<u8> = frames.concat();
    assert!(
        must_not_panic(&all).is_ok(),
        "back-to-back frames decode too"
    );
}

#[test]
fn every_prefix_then_eof_is_a_typed_error() {
    let mut errors = 0;
    for frame in corpus() {
        for end in 1..frame.len() {
            let error = must_not_panic(&frame[..end]).expect_err("a prefix is not a whole frame");
            assert!(
                error.contains("connection closed in the middle of a frame"),
                "{error}"
            );
            errors += 1;
        }
        // One byte at a time: every step short of the whole frame asks for more.
        let mut buf = BytesMut::new();
        for (i, byte) in frame.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let step = Message::decode(&mut buf, LIMIT).expect("valid so far");
            assert_eq!(step.is_some(), i == frame.len() - 1);
        }
    }
    println!("{errors} prefixes, each a typed error, 0 panics");
}

/// A small, seeded generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(frame: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut bytes = frame.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len().max(1));
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.insert(at.min(bytes.len()), rng.next() as u8),
            2 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            // Enum tags and varint markers: the bytes just after the header and the prefix.
            3 if bytes.len() > HEADER_LEN + 5 => {
                let tag_at = HEADER_LEN + rng.below(bytes.len() - HEADER_LEN);
                bytes[tag_at] = [0, 1, 8, 9, 250, 251, 252, 253, 254, 255][rng.below(10)];
            }
            // Bad UTF-8 in names and strings.
            4 if !bytes.is_empty() => bytes[at] = [0xc0, 0xff, 0xed, 0x80][rng.below(4)],
            _ if bytes.len() >= HEADER_LEN => {
                // The length field, the usual liar.
                let len = rng.next() as u32 >> rng.below(32);
                bytes[16..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

#[test]
fn ten_thousand_random_mutations_give_ok_or_a_typed_error() {
    let frames = corpus();
    let mut rng = XorShift(0x5eed_1234_abcd_0042);
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..10_000 {
        let frame = &frames[rng.below(frames.len())];
        match must_not_panic(&mutate(frame, &mut rng)) {
            Ok(_) => ok += 1,
            Err(_) => errors += 1,
        }
    }
    println!("10,000 mutations: {ok} decoded, {errors} typed errors, 0 panics");
    assert_eq!(ok + errors, 10_000);
    assert!(errors > 1_000, "the mutations should break most frames");
}

/// Resident memory of this process, in bytes.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

#[test]
fn allocation_bombs_are_refused_without_allocating() {
    let before = resident();
    // A frame header that announces 2^32 - 1 bytes: refused from the header alone.
    let mut header = Message::encode(Kind::Invoke, Flags::NONE, 1, b"", LIMIT)
        .unwrap()
        .to_vec();
    header[16..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
    let error = Message::decode(&mut BytesMut::from(&header[..]), LIMIT).unwrap_err();
    assert!(
        matches!(error, ProtocolError::MessageTooLarge { .. }),
        "{error}"
    );

    // Lengths of 2^34 and more inside a small body: a string, bytes, a vector, a map.
    for exponent in [34u32, 40, 56, 63] {
        let mut bomb = vec![253u8];
        bomb.extend_from_slice(&(1u64 << exponent).to_le_bytes());
        for _ in 0..100 {
            assert!(Format::Bincode.decode::<(String,)>(&bomb).is_err());
            assert!(Format::Bincode.decode::<(ByteBuf,)>(&bomb).is_err());
            assert!(Format::Bincode.decode::<(Vec<u64>,)>(&bomb).is_err());
            assert!(
                Format::Bincode
                    .decode::<(BTreeMap<String, String>,)>(&bomb)
                    .is_err()
            );
            assert!(Format::Bincode.decode::<(Vec<Vec<u8>>,)>(&bomb).is_err());
        }
    }
    let grown = resident().saturating_sub(before);
    println!("allocation bombs: memory grew by {} KiB", grown / 1024);
    assert!(grown < 16 << 20, "memory grew by {grown} bytes");
}
