//! The nameserver gives back the memory of a flood once the flood is removed.

use std::collections::BTreeSet;

use rpc_core::{NameFilter, NameServerProxy, Uri};

mod support;

/// Registrations in one flood: what one client address may hold by default.
const FLOOD: usize = 10_000;

/// Floods before the starting point is measured.
const WARM_UP_FLOODS: usize = 3;

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Registers `FLOOD` names of about 1 KiB each (30 tags) under `prefix`, eight calls at a
/// time.
async fn flood(names: &NameServerProxy, prefix: &str) {
    let mut callers = tokio::task::JoinSet::new();
    for first in 0..8 {
        let (names, prefix) = (names.clone(), prefix.to_owned());
        callers.spawn(async move {
            let uri: Uri = "PYRO:flood@127.0.0.1:4000".parse().unwrap();
            for n in (first..FLOOD).step_by(8) {
                let tags: BTreeSet<String> = (0..30)
                    .map(|t| format!("tag-{n:06}-{t:02}-padding"))
                    .collect();
                names
                    .register(format!("{prefix}{n:05}"), uri.clone(), false, tags)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
}

async fn remove(names: &NameServerProxy, prefix: &str) {
    let removed = names
        .remove(NameFilter::Prefix(prefix.into()))
        .await
        .unwrap();
    assert_eq!(removed, FLOOD as u64);
}

#[tokio::test]
async fn memory_returns_to_where_it_was_after_a_flood_is_removed() {
    let (mut child, port) = support::serve(&[]);
    let names = support::client(port).await;
    let pid = child.id();
    // The starting point is a nameserver in use: its code paged in, its threads and their
    // allocator arenas made, by floods and their removal. A fresh process settles a few MiB
    // higher over its first floods (glibc's arenas keep pages that hold a few allocations
    // made meanwhile: 5.8 MiB fresh, then 7.7, 9.6, 10.6, 10.9, 11.1 after each of five
    // floods of 30 MiB, in a release build); from then on a flood leaves nothing behind.
    let fresh = resident_kib(pid);
    for _ in 0..WARM_UP_FLOODS {
        flood(&names, "first.").await;
        remove(&names, "first.").await;
    }
    let start = resident_kib(pid);
    flood(&names, "flood.").await;
    let flooded = resident_kib(pid);
    // The removal is answered once the freed memory is given back.
    remove(&names, "flood.").await;
    let after = resident_kib(pid);
    eprintln!(
        "resident memory: {fresh} KiB fresh, {start} KiB in use, {flooded} KiB flooded, \
         {after} KiB after"
    );
    assert!(
        flooded > start + 10 * 1024,
        "the flood did not show: {flooded} KiB"
    );
    assert!(
        after * 10 <= start * 11,
        "{after} KiB after the flood, {start} KiB before"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
