//! Message bodies: invoke prefixes, arguments of many shapes, error reports.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::Invoke;
use rpc_core::{Format, RemoteError, Uri};
use serde_bytes::ByteBuf;

fuzz_target!(|data: &[u8]| {
    if let Ok(invoke) = Invoke::decode(data) {
        let args = invoke.args;
        let _ = Format::Bincode.decode::<(u64, u64)>(args);
        let _ = Format::Bincode.decode::<(String,)>(args);
        let _ = Format::Bincode.decode::<(ByteBuf,)>(args);
        let _ = Format::Bincode.decode::<(Vec<String>, Option<i64>, char, f64)>(args);
        let _ = Format::Bincode.decode::<(BTreeMap<String, Vec<u16>>,)>(args);
        let _ = Format::Bincode.decode::<(Uri,)>(args);
    }
    let _ = Format::Bincode.decode::<RemoteError>(data);
    let _ = Format::Bincode.decode::<Result<u64, String>>(data);
});
