//! Timeouts and cancellation: the caller gets `Error::Timeout`, and the daemon stops the work.

use std::time::Duration;

use rpc_core::{Config, Error, Proxy};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, serve_calc, spawn_daemon, spawn_hang};

#[tokio::test]
async fn a_call_that_outlives_its_timeout_fails_and_the_daemon_drops_the_work() {
    let daemon = spawn_daemon().await;
    let implementation = CalcImpl::default();
    let uri = daemon
        .register(CalcSkeleton::new(implementation.clone()))
        .unwrap();
    let calc = CalcProxy::new(uri).with_timeout(Duration::from_millis(200));

    let error = calc.hang().await.unwrap_err();
    assert!(
        matches!(error, Error::Timeout(t) if t == Duration::from_millis(200)),
        "{error}"
    );
    assert!(error.is_communication());
    implementation.probe.hangs_dropped.wait_for(1).await;
    // The connection is still good.
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn dropping_a_call_future_cancels_the_call_at_the_daemon() {
    let (_daemon, calc, implementation) = serve_calc().await;
    let call = spawn_hang(&calc);
    implementation.probe.hangs_started.wait_for(1).await;
    call.abort();
    implementation.probe.hangs_dropped.wait_for(1).await;
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
}

#[tokio::test]
async fn the_timeout_is_per_proxy_handle_and_comes_from_the_config() {
    let mut config = Config::default();
    config.call_timeout = Duration::from_millis(150);
    let proxy = Proxy::with_config("PYRO:x@127.0.0.1:1".parse().unwrap(), config);
    assert_eq!(proxy.timeout(), Duration::from_millis(150));
    let longer = proxy.clone().with_timeout(Duration::from_secs(3));
    assert_eq!(longer.timeout(), Duration::from_secs(3));
    assert_eq!(proxy.timeout(), Duration::from_millis(150));
    assert_eq!(
        Proxy::new("PYRO:x@h:1".parse().unwrap()).timeout(),
        Duration::from_secs(30)
    );
}
