//! A real multi-host test: a nameserver, two workers under one name and a client, each in its
//! own Linux network namespace on a bridge that the test creates and removes. The client finds
//! the nameserver by broadcast alone, finds both workers under the name and calls them; one
//! worker's host is cut off the network, and calls by name go on through the other while the
//! cut one's lease runs out; then the other is killed and the client's next call fails with a
//! typed error, not a hang.
//!
//! The namespaces use the private range 10.203.0.0/24, which exists only inside them. Each role
//! is this test binary, run again inside its namespace with `RPC_MULTI_HOST_ROLE` set. The test
//! skips where namespaces cannot be created (not root, no `ip`), except under CI, where it fails.

use std::time::{Duration, Instant};

use rpc_core::{Config, Daemon, Error, Lease, NameServerProxy, Proxy};
use rpc_tests::netns::{self, Namespaces, STEP, say};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton};

const ROLE: &str = "RPC_MULTI_HOST_ROLE";
const SUBNET_BROADCAST: &str = "10.203.0.255";
const WORKER_NAME: &str = "netns.worker";
/// The owner token both workers give for the name they share.
const WORKER_OWNER: &str = "netns-workers-owner-token";
/// The workers' lease.
const TTL: Duration = Duration::from_secs(2);
/// Calls by name made while one worker is cut off.
const CALLS_WHILE_CUT: usize = 10;

#[test]
fn nameserver_two_workers_and_client_on_four_hosts() {
    let network = match four_hosts() {
        Ok(network) => network,
        Err(reason) => {
            return netns::skip("nameserver_two_workers_and_client_on_four_hosts", &reason);
        }
    };
    let spawn = |role: &str, host: &str| network.spawn(host, "multi_host_role", ROLE, role);
    let mut nameserver = spawn("nameserver", "h1");
    nameserver.expect("READY");
    let mut cut_worker = spawn("worker", "h2");
    let registered = cut_worker.expect("REGISTERED");
    assert!(
        registered.contains("PYRO:calc@10.203.0.2:"),
        "the worker advertises its own address: {registered}"
    );
    let mut other_worker = spawn("worker", "h4");
    other_worker.expect("REGISTERED");
    let mut client = spawn("client", "h3");
    let found = client.expect("FOUND");
    assert!(
        found.contains("PYRO:Pyro.NameServer@10.203.0.1:9090"),
        "found by broadcast: {found}"
    );
    let instances = client.expect("INSTANCES");
    assert!(
        instances.contains("@10.203.0.2:") && instances.contains("@10.203.0.4:"),
        "the name resolves to both workers: {instances}"
    );
    let called = client.expect("CALLED");
    assert!(called.ends_with("5"), "{called}");

    // Cut h2 off at the bridge: its worker runs on, unreachable.
    network
        .ip(&["-n", &network.name("br"), "link", "set", "p2", "down"])
        .unwrap();
    client.send("cut");
    let cut_calls = client.expect("CUT-CALLS");
    assert!(
        cut_calls.starts_with(&format!("CUT-CALLS {CALLS_WHILE_CUT} of {CALLS_WHILE_CUT}")),
        "every call by name went through the other worker: {cut_calls}"
    );
    let left = client.expect("LEFT");
    assert!(
        left.contains("@10.203.0.4:") && !left.contains("@10.203.0.2:"),
        "the cut worker's lease ran out: {left}"
    );

    other_worker.kill();
    client.send("again");
    let after = client.expect("AFTER-KILL");
    assert!(
        after.contains("communication error"),
        "a typed error, not a hang: {after}"
    );
    client.expect("DONE");
}

/// What each role does inside its namespace. Run only by the test above, never on its own.
#[test]
#[ignore = "a role that nameserver_two_workers_and_client_on_four_hosts runs inside a network namespace"]
fn multi_host_role() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match std::env::var(ROLE).as_deref() {
        Ok("nameserver") => runtime.block_on(run_nameserver()),
        Ok("worker") => runtime.block_on(run_worker()),
        Ok("client") => runtime.block_on(run_client()),
        other => panic!("{ROLE} must name a role, found {other:?}"),
    }
}

fn discovery_only() -> Config {
    let mut config = Config::default();
    config.nameserver.broadcast_addresses = Some(vec![SUBNET_BROADCAST.parse().unwrap()]);
    config
}

async fn run_nameserver() {
    let mut options = nameserver::Options::default();
    options.host = "0.0.0.0".into();
    let ns = nameserver::start(options).await.unwrap();
    say(&format!("READY {}", ns.uri()));
    wait_for_stdin_to_close().await;
}

async fn run_worker() {
    let daemon = Daemon::bind("0.0.0.0:0").await.unwrap();
    let uri = daemon
        .register_as("calc", CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let _lease = Lease::start_instance(
        &discovery_only(),
        WORKER_NAME,
        uri.clone(),
        Default::default(),
        TTL,
        WORKER_OWNER.into(),
    )
    .await
    .unwrap();
    say(&format!("REGISTERED {uri}"));
    wait_for_stdin_to_close().await;
}

/// A new proxy for the workers' name: it resolves the name at its first call.
fn by_name(config: &Config) -> CalcProxy {
    let uri = format!("PYRONAME:{WORKER_NAME}").parse().unwrap();
    CalcProxy::from_proxy(Proxy::with_config(uri, config.clone()).with_timeout(STEP))
}

/// The URIs registered under the workers' name, in one line.
async fn instances(names: &NameServerProxy) -> String {
    let all = names.lookup_all(WORKER_NAME.into()).await.unwrap();
    let uris: Vec<String> = all.iter().map(|r| r.uri.to_string()).collect();
    uris.join(" ")
}

async fn hear(expected: &str) {
    let line = tokio::task::spawn_blocking(netns::hear);
    assert_eq!(line.await.unwrap(), expected);
}

async fn run_client() {
    let mut config = discovery_only();
    // A cut-off host answers nothing: a connection attempt to it is given up after this, and
    // the next instance of the name is tried.
    config.connect_timeout = Duration::from_secs(1);
    let names = rpc_core::locate_ns(&config).await.unwrap();
    say(&format!("FOUND {}", names.proxy().uri()));
    say(&format!("INSTANCES {}", instances(&names).await));
    say(&format!(
        "CALLED {}",
        by_name(&config).add(2, 3).await.unwrap()
    ));

    hear("cut").await;
    let started = Instant::now();
    let mut served = 0;
    for _ in 0..CALLS_WHILE_CUT {
        if by_name(&config).add(2, 3).await.ok() == Some(5) {
            served += 1;
        }
    }
    say(&format!(
        "CUT-CALLS {served} of {CALLS_WHILE_CUT} in {:?}",
        started.elapsed()
    ));
    // The cut worker cannot renew its lease: its instance leaves the name within the TTL.
    let started = Instant::now();
    let left = loop {
        let left = instances(&names).await;
        if !left.contains("@10.203.0.2:") || started.elapsed() > STEP {
            break left;
        }
    };
    say(&format!("LEFT {left} after {:?}", started.elapsed()));

    hear("again").await;
    let started = Instant::now();
    let outcome: Result<u64, Error> = by_name(&config).add(2, 3).await;
    let kind = match &outcome {
        Err(error) if error.is_communication() => "communication error",
        Err(_) => "other error",
        Ok(_) => "success",
    };
    say(&format!(
        "AFTER-KILL {kind} after {:?}: {outcome:?}",
        started.elapsed()
    ));
    say("DONE");
}

async fn wait_for_stdin_to_close() {
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
}

/// Four hosts (`h1`..`h4`, at 10.203.0.1..4) on a bridge in a namespace of its own.
fn four_hosts() -> Result<Namespaces, String> {
    Namespaces::hosts_on_a_bridge("mh", "10.203.0", 4)
}
