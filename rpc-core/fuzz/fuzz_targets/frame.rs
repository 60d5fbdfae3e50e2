//! Frames off a byte stream: any bytes give frames, "need more", or a typed error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::Message;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = Message::decode(&mut buf, 1 << 20) {
        assert_eq!(message.body.len(), message.header.body_len as usize);
    }
});
