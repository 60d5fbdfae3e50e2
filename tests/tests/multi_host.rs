//! A real multi-host test: a nameserver, a worker and a client, each in its own Linux network
//! namespace on a bridge that the test creates and removes. The client finds the nameserver by
//! broadcast alone, looks the worker up by name and calls it; then the worker is killed and the
//! client's next call fails with a typed error, not a hang.
//!
//! The namespaces use the private range 10.203.0.0/24, which exists only inside them. Each role
//! is this test binary, run again inside its namespace with `RPC_MULTI_HOST_ROLE` set. The test
//! skips where namespaces cannot be created (not root, no `ip`), except under CI, where it fails.

use rpc_core::{Config, Daemon, Error, Proxy};
use rpc_tests::netns::{self, Namespaces, STEP, say};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton};

const ROLE: &str = "RPC_MULTI_HOST_ROLE";
const SUBNET_BROADCAST: &str = "10.203.0.255";
const WORKER_NAME: &str = "netns.worker";

#[test]
fn nameserver_worker_and_client_on_three_hosts() {
    let network = match three_hosts() {
        Ok(network) => network,
        Err(reason) => return netns::skip("nameserver_worker_and_client_on_three_hosts", &reason),
    };
    let spawn = |role: &str, host: &str| network.spawn(host, "multi_host_role", ROLE, role);
    let mut nameserver = spawn("nameserver", "h1");
    nameserver.expect("READY");
    let mut worker = spawn("worker", "h2");
    let registered = worker.expect("REGISTERED");
    assert!(
        registered.contains("PYRO:calc@10.203.0.2:"),
        "the worker advertises its own address: {registered}"
    );
    let mut client = spawn("client", "h3");
    let found = client.expect("FOUND");
    assert!(
        found.contains("PYRO:Pyro.NameServer@10.203.0.1:9090"),
        "found by broadcast: {found}"
    );
    let called = client.expect("CALLED");
    assert!(called.ends_with("5"), "{called}");

    worker.kill();
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
#[ignore = "a role that nameserver_worker_and_client_on_three_hosts runs inside a network namespace"]
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
    let names = rpc_core::locate_ns(&discovery_only()).await.unwrap();
    names
        .register(WORKER_NAME.into(), uri.clone(), false, Default::default())
        .await
        .unwrap();
    say(&format!("REGISTERED {uri}"));
    wait_for_stdin_to_close().await;
}

async fn run_client() {
    let config = discovery_only();
    let names = rpc_core::locate_ns(&config).await.unwrap();
    say(&format!("FOUND {}", names.proxy().uri()));
    let uri = format!("PYRONAME:{WORKER_NAME}").parse().unwrap();
    let calc = CalcProxy::from_proxy(Proxy::with_config(uri, config).with_timeout(STEP));
    say(&format!("CALLED {}", calc.add(2, 3).await.unwrap()));
    let line = tokio::task::spawn_blocking(netns::hear);
    assert_eq!(line.await.unwrap(), "again");
    let started = std::time::Instant::now();
    let outcome: Result<u64, Error> = calc.add(2, 3).await;
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

/// Three hosts (`h1`..`h3`, at 10.203.0.1..3) on a bridge in a namespace of its own.
fn three_hosts() -> Result<Namespaces, String> {
    let mut network = Namespaces::new("mh");
    let bridge = network.add("br")?;
    network.ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
    network.ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
    for host in 1..=3 {
        let namespace = network.add(&format!("h{host}"))?;
        let port = format!("p{host}");
        network.ip(&[
            "-n", &namespace, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
            "netns", &bridge,
        ])?;
        network.ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("10.203.0.{host}/24"),
            "dev",
            "eth0",
        ])?;
        network.ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        network.ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
        network.ip(&["-n", &bridge, "link", "set", &port, "up"])?;
    }
    Ok(network)
}
