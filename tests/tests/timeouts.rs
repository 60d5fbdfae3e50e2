//! Timeouts and cancellation: the caller gets `Error::Timeout`, and the daemon stops the work.

use std::time::Duration;

use rpc_core::{Config, Disconnect, Error, Proxy};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, serve_calc, spawn_daemon, spawn_hang, within};

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

/// Each connection's deadlines are kept by a task that starts with it, and may run on another
/// thread at once: the very first call on each new connection must time out all the same.
/// (The partition test, whose client connects from outside the runtime's workers, caught a
/// version of that task that gave up when it ran before the connection was set up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_calls_on_new_connections_time_out_on_a_multi_threaded_runtime() {
    let (_daemon, calc, implementation) = serve_calc().await;
    let fresh: Vec<CalcProxy> = (0..20)
        .map(|_| {
            CalcProxy::new(calc.proxy().uri().clone()).with_timeout(Duration::from_millis(100))
        })
        .collect();
    let outcomes = within(
        "the first calls' timeouts",
        futures_util::future::join_all(fresh.iter().map(|proxy| proxy.hang())),
    )
    .await;
    for outcome in outcomes {
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
    }
    implementation.probe.hangs_dropped.wait_for(20).await;
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

/// A service that reports the deadline it runs under, and asks another object for its own.
#[rpc_core::service]
pub trait Deadlines {
    /// What is left of this call's deadline, in milliseconds.
    async fn remaining_ms(&self) -> Option<u64>;
    /// What `target` sees as left of its deadline when called from inside this call.
    async fn relay(&self, target: DeadlinesProxy) -> Option<u64>;
}

struct Reporter;

impl Deadlines for Reporter {
    async fn remaining_ms(&self) -> Option<u64> {
        rpc_core::remaining_deadline().map(|left| left.as_millis() as u64)
    }

    async fn relay(&self, target: DeadlinesProxy) -> Option<u64> {
        target.remaining_ms().await.expect("the inner call")
    }
}

#[tokio::test]
async fn a_method_passes_on_what_is_left_of_its_deadline() {
    let daemon = spawn_daemon().await;
    let uri = daemon.register(DeadlinesSkeleton::new(Reporter)).unwrap();
    let outer = DeadlinesProxy::new(uri.clone()).with_timeout(Duration::from_secs(2));
    let inner = DeadlinesProxy::new(uri);
    let direct = outer
        .remaining_ms()
        .await
        .unwrap()
        .expect("calls carry a deadline");
    assert!(direct <= 2000 && direct > 1000, "{direct}");
    // The inner proxy's own timeout is the default 30 s; the call gets what is left of 2 s.
    let relayed = outer
        .relay(inner)
        .await
        .unwrap()
        .expect("the inner call carries a deadline");
    assert!(relayed <= 2000, "the inner call got {relayed} ms");
}

#[tokio::test]
async fn keepalive_pings_fail_calls_on_a_connection_whose_peer_went_silent() {
    // A daemon that answers the handshake, then never answers anything again.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; rpc_core::protocol::HEADER_LEN + 4];
        stream.read_exact(&mut hello).await.unwrap();
        let ok = rpc_core::protocol::Message::encode(
            rpc_core::protocol::Kind::HandshakeReply,
            rpc_core::protocol::Flags::NONE,
            0,
            &[],
            0,
        )
        .unwrap();
        stream.write_all(&ok).await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let mut config = Config::default();
    config.keepalive_interval = Some(Duration::from_millis(200));
    config.keepalive_timeout = Duration::from_millis(200);
    let uri = format!("PYRO:calc@127.0.0.1:{port}").parse().unwrap();
    let calc = CalcProxy::from_proxy(Proxy::with_config(uri, config));
    let started = std::time::Instant::now();
    let error = rpc_tests::within("the keepalive", calc.hang())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            &error,
            Error::ConnectionLost(Disconnect::KeepaliveUnanswered(_))
        ),
        "{error}"
    );
    println!("a silent peer was noticed after {elapsed:?} (interval 200 ms + timeout 200 ms)");
    silent.abort();
}
