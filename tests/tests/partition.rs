//! A network partition without a FIN: a blackhole route between two network namespaces that the
//! test creates and removes. A call with a 2 s deadline fails at its deadline, an idle proxy
//! notices within the keepalive interval plus its timeout, and after healing, calls succeed.
//!
//! The daemon and the client are this test binary, run again inside their namespaces with
//! `RPC_PARTITION_ROLE` set. Skips without namespaces, except under CI, where it fails.

use std::time::{Duration, Instant};

use rpc_core::{Config, Daemon, Error, Proxy};
use rpc_tests::netns::{self, Namespaces, say};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton};

const ROLE: &str = "RPC_PARTITION_ROLE";
const CLIENT: &str = "10.204.0.1";
const SERVER: &str = "10.204.0.2";
const KEEPALIVE: Duration = Duration::from_millis(500);

#[test]
fn a_partition_fails_calls_at_their_deadline_and_heals() {
    let network = match two_hosts() {
        Ok(network) => network,
        Err(reason) => {
            return netns::skip(
                "a_partition_fails_calls_at_their_deadline_and_heals",
                &reason,
            );
        }
    };
    let mut daemon = network.spawn("s", "partition_role", ROLE, "daemon");
    daemon.expect("READY");
    let mut client = network.spawn("c", "partition_role", ROLE, "client");
    client.expect("CONNECTED");

    let blackhole = |action: &str| {
        network
            .ip(&[
                "-n",
                &network.name("c"),
                "route",
                action,
                "blackhole",
                &format!("{SERVER}/32"),
            ])
            .unwrap();
        network
            .ip(&[
                "-n",
                &network.name("s"),
                "route",
                action,
                "blackhole",
                &format!("{CLIENT}/32"),
            ])
            .unwrap();
    };
    blackhole("add");
    client.send("partitioned");
    let idle = client.expect("IDLE-NOTICED");
    let idle_ms: u128 = idle.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        idle_ms <= 2 * KEEPALIVE.as_millis() + 1000,
        "noticed after {idle_ms} ms"
    );
    let deadline = client.expect("DEADLINE");
    let parts: Vec<&str> = deadline.split_whitespace().collect();
    let deadline_ms: u128 = parts[1].parse().unwrap();
    assert_eq!(parts[2], "timeout", "{deadline}");
    assert!(
        (2000..3000).contains(&deadline_ms),
        "the 2 s call failed after {deadline_ms} ms"
    );

    blackhole("del");
    client.send("healed");
    client.expect("HEALED");
}

#[test]
#[ignore = "a role that a_partition_fails_calls_at_their_deadline_and_heals runs inside a network namespace"]
fn partition_role() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match std::env::var(ROLE).as_deref() {
        Ok("daemon") => runtime.block_on(async {
            let daemon = Daemon::bind("0.0.0.0:9999").await.unwrap();
            daemon
                .register_as("calc", CalcSkeleton::new(CalcImpl::default()))
                .unwrap();
            say("READY");
            let _ = tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
            })
            .await;
        }),
        Ok("client") => runtime.block_on(run_client()),
        other => panic!("{ROLE} must name a role, found {other:?}"),
    }
}

async fn run_client() {
    let uri: rpc_core::Uri = format!("PYRO:calc@{SERVER}:9999").parse().unwrap();
    // The busy proxy relies on its call's deadline alone; the idle one on keepalive pings.
    let mut busy_config = Config::default();
    busy_config.keepalive_interval = None;
    let busy = CalcProxy::from_proxy(Proxy::with_config(uri.clone(), busy_config));
    let mut idle_config = Config::default();
    idle_config.keepalive_interval = Some(KEEPALIVE);
    idle_config.keepalive_timeout = KEEPALIVE;
    let idle = CalcProxy::from_proxy(Proxy::with_config(uri, idle_config));
    busy.add(1, 1).await.unwrap();
    idle.add(1, 1).await.unwrap();
    say("CONNECTED");

    assert_eq!(
        tokio::task::spawn_blocking(netns::hear).await.unwrap(),
        "partitioned"
    );
    let partitioned = Instant::now();
    let call = {
        let busy = busy.clone().with_timeout(Duration::from_secs(2));
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = busy.slow(1, 60_000).await;
            (started.elapsed(), outcome)
        })
    };
    // Measure when the idle proxy finds out, looking every 10 ms, for at most 10 s.
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    while idle.proxy().is_connected() && partitioned.elapsed() < Duration::from_secs(10) {
        ticks.tick().await;
    }
    say(&format!(
        "IDLE-NOTICED {}",
        partitioned.elapsed().as_millis()
    ));
    let (elapsed, outcome) = call.await.unwrap();
    let kind = match &outcome {
        Err(Error::Timeout(_)) => "timeout",
        Err(_) => "other-error",
        Ok(_) => "success",
    };
    say(&format!(
        "DEADLINE {} {kind} {outcome:?}",
        elapsed.as_millis()
    ));

    assert_eq!(
        tokio::task::spawn_blocking(netns::hear).await.unwrap(),
        "healed"
    );
    busy.add(2, 2).await.expect("a call after healing");
    say("HEALED");
}

/// A client (`c`, 10.204.0.1) and a server (`s`, 10.204.0.2) joined by a veth pair.
fn two_hosts() -> Result<Namespaces, String> {
    let mut network = Namespaces::new("pt");
    let client = network.add("c")?;
    let server = network.add("s")?;
    network.ip(&[
        "-n", &client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        &server,
    ])?;
    for (namespace, address) in [(&client, CLIENT), (&server, SERVER)] {
        network.ip(&[
            "-n",
            namespace,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
        network.ip(&["-n", namespace, "link", "set", "eth0", "up"])?;
    }
    Ok(network)
}
