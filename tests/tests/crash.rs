//! A daemon process killed with 100 calls in flight: every call fails with a typed error at once,
//! and after a restart on the same port the next call succeeds. And a daemon process that runs
//! out of file descriptors keeps accepting once they free up. And a daemon process that runs
//! out of file descriptors keeps accepting once they free up.
//!
//! The daemon is this test binary, run again with `RPC_CRASH_ROLE=daemon`.

use std::io::Write;
use std::process::Child;
use std::time::Instant;

use rpc_core::{Location, Uri};
use rpc_tests::role::{expect_said, spawn_role_with};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, within};

const ROLE: &str = "RPC_CRASH_ROLE";
const IN_FLIGHT: u64 = 100;

// Reading the child's output blocks a thread, so the calls need another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_fails_every_call_in_flight_and_a_restart_serves_again() {
    let (mut daemon, port) = spawn_daemon(0);
    let calc = CalcProxy::new(Uri::direct(
        "calc",
        Location::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    ));
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.gated(i).await })
        })
        .collect();
    expect_said(&mut daemon, "STARTED");

    daemon.kill().unwrap();
    let killed = Instant::now();
    for call in calls {
        let error = within("a call failing", call).await.unwrap().unwrap_err();
        assert!(error.is_communication(), "{error}");
    }
    let elapsed = killed.elapsed();
    println!(
        "daemon killed with {IN_FLIGHT} calls in flight: all failed with a typed error within {elapsed:?}"
    );
    daemon.wait().unwrap();

    let (mut restarted, same_port) = spawn_daemon(port);
    assert_eq!(same_port, port);
    assert_eq!(
        within("the call after the restart", calc.add(2, 2))
            .await
            .unwrap(),
        4
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

// Reading the child's output blocks a thread, so the connections need another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loop_survives_running_out_of_file_descriptors() {
    // A daemon allowed 48 open files in all: a few for the runtime, the rest for connections.
    let (mut daemon, port) = spawn_daemon_with(0, &["prlimit", "--nofile=48:48"]);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut flood = Vec::new();
    for _ in 0..100 {
        // The kernel completes these connections in the listen backlog; the daemon runs out of
        // descriptors accepting them.
        flood.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let calc = CalcProxy::new(Uri::direct(
        "calc",
        Location::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    ));
    drop(flood);
    // Once the flood is gone, descriptors free up and the daemon serves again.
    let sum = within("a call after the flood", async {
        loop {
            if let Ok(sum) = calc.add(2, 3).await {
                return sum;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(sum, 5);
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon process is still running"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// Starts the daemon process on `port` (0 for any) and returns it with its port.
fn spawn_daemon(port: u16) -> (Child, u16) {
    spawn_daemon_with(port, &[])
}

/// As [`spawn_daemon`], with the daemon run by the command `wrapper` (such as `prlimit`).
fn spawn_daemon_with(port: u16, wrapper: &[&str]) -> (Child, u16) {
    let mut child = spawn_role_with(wrapper, "daemon_role", ROLE, &port.to_string());
    let port = expect_said(&mut child, "PORT").parse().unwrap();
    (child, port)
}

#[test]
#[ignore = "the daemon process of killing_the_daemon_fails_every_call_in_flight_and_a_restart_serves_again"]
fn daemon_role() {
    let port: u16 = std::env::var(ROLE)
        .expect("run by the crash test")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let daemon = rpc_core::Daemon::bind(format!("127.0.0.1:{port}").as_str())
            .await
            .unwrap();
        let implementation = CalcImpl::default();
        daemon
            .register_as("calc", CalcSkeleton::new(implementation.clone()))
            .unwrap();
        println!("ROLE: PORT {}", daemon.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        implementation
            .probe
            .gated_waiting
            .wait_for_forever(IN_FLIGHT)
            .await;
        println!("ROLE: STARTED");
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}
