//! The handshake as both sides see it: the client's first frame (object id), and the daemon's
//! answer (empty, or an error report).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::{Flags, Kind, Message};
use rpc_core::{Format, RemoteError};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(first)) = Message::decode(&mut buf, 4096) {
        match first.header.kind {
            Kind::Handshake => {
                let _ = String::from_utf8_lossy(&first.body);
            }
            Kind::HandshakeReply | Kind::Close if first.header.flags.contains(Flags::FAILURE) => {
                let _ = Format::Bincode.decode::<RemoteError>(&first.body);
            }
            _ => {}
        }
    }
});
