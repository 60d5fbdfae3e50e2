//! Graceful shutdown: calls in flight finish, new connections are refused, then `run_until`
//! returns. Dropping a daemon stops everything at once.

use std::time::Duration;

use rpc_core::{Config, Disconnect, Error};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, serve_calc, spawn_daemon, spawn_hang, within};
use tokio::sync::oneshot;

#[tokio::test]
async fn run_until_lets_calls_in_flight_finish_then_returns() {
    let daemon = spawn_daemon().await;
    let implementation = CalcImpl::default();
    let uri = daemon
        .register(CalcSkeleton::new(implementation.clone()))
        .unwrap();
    let address = daemon.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run_until(stopped));

    let calc = CalcProxy::new(uri);
    let in_flight = tokio::spawn({
        let calc = calc.clone();
        async move { calc.gated(7).await }
    });
    implementation.probe.gated_waiting.wait_for(1).await;
    stop.send(()).unwrap();

    // The daemon stops accepting: a new client is refused while the old call is still open.
    within("the listener closing", async {
        while tokio::net::TcpStream::connect(address).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!running.is_finished(), "a call is still in flight");

    implementation.probe.gate.notify_one();
    assert_eq!(
        within("the call in flight", in_flight)
            .await
            .unwrap()
            .unwrap(),
        7
    );
    within("run_until returning", running).await.unwrap();
}

#[tokio::test]
async fn shutdown_gives_up_on_calls_that_outlast_the_grace_period() {
    let mut config = Config::default();
    config.shutdown_grace = Duration::from_millis(100);
    let daemon = rpc_core::Daemon::bind_with("127.0.0.1:0", config)
        .await
        .unwrap();
    let implementation = CalcImpl::default();
    let uri = daemon
        .register(CalcSkeleton::new(implementation.clone()))
        .unwrap();
    let calc = CalcProxy::new(uri);
    let call = tokio::spawn(async move { calc.hang().await });
    implementation.probe.hangs_started.wait_for(1).await;
    within("shutdown", daemon.shutdown()).await;
    implementation.probe.hangs_dropped.wait_for(1).await;
    let error = within("the abandoned call", call)
        .await
        .unwrap()
        .unwrap_err();
    // Past the grace period the daemon drops the connection without a word.
    assert!(
        matches!(error, Error::ConnectionLost(Disconnect::Closed)),
        "{error:?}"
    );
}

#[tokio::test]
async fn dropping_a_daemon_stops_its_tasks_and_instances() {
    let (daemon, calc, implementation) = serve_calc().await;
    let call = spawn_hang(&calc);
    implementation.probe.hangs_started.wait_for(1).await;
    drop(daemon);
    implementation.probe.hangs_dropped.wait_for(1).await;
    assert!(within("the call failing", call).await.unwrap().is_err());
    let error = calc.add(1, 2).await.unwrap_err();
    assert!(
        matches!(error, Error::Connect { .. }),
        "nobody listens any more: {error}"
    );
}
