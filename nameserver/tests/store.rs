//! `nameserver serve --store`: every acknowledged registration survives `kill -9`, leases go on
//! from their stored expiry, and owners stay owners.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rpc_core::{CallError, NamingError};

mod support;

use support::client;

const REGISTRATIONS: usize = 1000;
const OWNER: &str = "owner-token-0123456789abcdef";

/// A nameserver process on a free loopback port keeping its registry in `store`.
fn serve(store: &Path) -> (support::Served, u16) {
    support::serve(&["--store".as_ref(), store.as_os_str()])
}

fn uri(n: usize) -> rpc_core::Uri {
    format!("PYRO:obj{n}@127.0.0.1:4000").parse().unwrap()
}

#[tokio::test]
async fn every_acknowledged_registration_survives_kill_9_and_expired_leases_do_not() {
    let dir = std::env::temp_dir().join(format!("nameserver-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("registry.redb");

    let (mut first, port) = serve(&store);
    let names = client(port).await;
    let started = Instant::now();
    for n in 0..REGISTRATIONS {
        names
            .register(format!("app.{n:04}"), uri(n), false, BTreeSet::new())
            .await
            .unwrap();
    }
    let per_registration = started.elapsed() / REGISTRATIONS as u32;
    println!("{REGISTRATIONS} durable registrations, {per_registration:?} each (fsynced)");
    let short = Duration::from_millis(500);
    names
        .register_lease("short".into(), uri(0), BTreeSet::new(), short, OWNER.into())
        .await
        .unwrap();
    let short_expiry = Instant::now() + short;
    let long = Duration::from_secs(120);
    names
        .register_lease("long".into(), uri(1), BTreeSet::new(), long, OWNER.into())
        .await
        .unwrap();
    for n in 0..2 {
        names
            .register_instance("pool".into(), uri(n), BTreeSet::new(), None, None)
            .await
            .unwrap();
    }

    first.kill().unwrap();
    first.wait().unwrap();
    // The short lease runs out while no nameserver runs.
    tokio::time::sleep_until(short_expiry.into()).await;

    let (mut second, port) = serve(&store);
    let names = client(port).await;
    assert_eq!(
        names.count().await.unwrap() as usize,
        REGISTRATIONS + 3,
        "every name but the expired one, and the nameserver's own"
    );
    for n in [0, 499, REGISTRATIONS - 1] {
        assert_eq!(names.lookup(format!("app.{n:04}")).await.unwrap(), uri(n));
    }
    assert!(matches!(
        names.lookup("short".into()).await,
        Err(CallError::Method(NamingError::UnknownName(_)))
    ));
    // The long lease goes on from its stored expiry, and its owner still owns it.
    let left = names
        .lookup_with_metadata("long".into())
        .await
        .unwrap()
        .lease
        .expect("still leased");
    assert!(
        left <= long && left > long - Duration::from_secs(60),
        "{left:?}"
    );
    assert!(matches!(
        names
            .register("long".into(), uri(9), false, BTreeSet::new())
            .await,
        Err(CallError::Method(NamingError::Owned(_)))
    ));
    assert_eq!(names.lookup_all("pool".into()).await.unwrap().len(), 2);

    // A removal is durable too.
    names
        .remove(rpc_core::NameFilter::Prefix("app.".into()))
        .await
        .unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    let (mut third, port) = serve(&store);
    assert_eq!(client(port).await.count().await.unwrap(), 3);
    third.kill().unwrap();
    third.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_another_nameserver_holds_open_is_refused_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("nameserver-locked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("registry.redb");
    let (mut holder, _) = serve(&store);
    let output = Command::new(support::BINARY)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        said.contains("cannot open") && said.contains("registry.redb"),
        "{said}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
