//! The blocking proxy, called from plain threads with no async runtime of their own.

use std::time::Duration;

use rpc_core::{CallError, Daemon, Error, Uri};
use rpc_tests::{CalcBlockingProxy, CalcImpl, CalcSkeleton, DivError};

/// A daemon on a runtime of its own, as another process would host it.
fn daemon() -> (tokio::runtime::Runtime, Daemon, Uri, CalcImpl) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let implementation = CalcImpl::default();
    let (daemon, uri) = runtime.block_on(async {
        let daemon = rpc_tests::spawn_daemon().await;
        let uri = daemon
            .register(CalcSkeleton::new(implementation.clone()))
            .unwrap();
        (daemon, uri)
    });
    (runtime, daemon, uri, implementation)
}

#[test]
fn blocking_calls_work_without_a_runtime() {
    let (_runtime, _daemon, uri, _) = daemon();
    let calc = CalcBlockingProxy::new(uri);
    assert_eq!(calc.add(40, 2).unwrap(), 42);
    assert!(matches!(
        calc.divide(1, 0),
        Err(CallError::Method(DivError::ByZero))
    ));
    calc.nothing().unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let calc = calc.clone();
            std::thread::spawn(move || calc.add(i, i).unwrap())
        })
        .collect();
    let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(sums, [0, 2, 4, 6]);
}

#[test]
fn started_calls_run_concurrently_and_are_collected_later() {
    let (_runtime, _daemon, uri, implementation) = daemon();
    let calc = CalcBlockingProxy::new(uri);
    // Ten calls that can only finish together: all must be in flight at once.
    let pending: Vec<_> = (0..10u64).map(|i| calc.start_gated(i)).collect();
    let probe = implementation.probe;
    let opener = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(probe.gated_waiting.wait_for(10));
        for _ in 0..10 {
            probe.gate.notify_one();
        }
    });
    let values: Vec<u64> = pending
        .into_iter()
        .map(|call| call.wait().unwrap())
        .collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    opener.join().unwrap();
}

#[test]
fn a_blocking_call_times_out_with_a_typed_error() {
    let (_runtime, _daemon, uri, implementation) = daemon();
    let calc = CalcBlockingProxy::new(uri).with_timeout(Duration::from_millis(100));
    assert!(matches!(calc.hang(), Err(Error::Timeout(_))));
    let started = calc.start_hang();
    assert!(!started.is_ready());
    assert!(matches!(started.wait(), Err(Error::Timeout(_))));
    assert_eq!(implementation.probe.hangs_started.get(), 2);
}
