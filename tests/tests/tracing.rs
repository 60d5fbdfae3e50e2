//! One trace event per call on each side, with object, method, peer, request id, duration and
//! outcome.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, spawn_daemon};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Events = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// Records every event's target and fields.
struct Recorder(Events);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_owned(), fields));
    }
}

#[tokio::test]
async fn every_call_is_traced_on_both_sides() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let daemon = spawn_daemon().await;
    let uri = daemon
        .register_as("calc", CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let calc = CalcProxy::new(uri);
    calc.add(1, 2).await.unwrap();
    calc.boom().await.unwrap_err();
    daemon.shutdown().await;

    let events = events.lock().unwrap();
    let calls = |target: &str| -> Vec<&BTreeMap<String, String>> {
        events
            .iter()
            .filter(|(t, fields)| t == target && fields.get("message").is_some_and(|m| m == "call"))
            .map(|(_, fields)| fields)
            .collect()
    };
    let daemon_calls = calls("rpc_core::daemon");
    assert_eq!(daemon_calls.len(), 2, "{events:?}");
    for key in [
        "object",
        "method",
        "peer",
        "request_id",
        "elapsed_us",
        "outcome",
    ] {
        assert!(
            daemon_calls.iter().all(|f| f.contains_key(key)),
            "daemon event lacks {key}"
        );
    }
    assert_eq!(daemon_calls[0]["object"], "calc");
    assert_eq!(daemon_calls[0]["method"], "add");
    assert_eq!(daemon_calls[0]["outcome"], "ok");
    assert_eq!(daemon_calls[1]["method"], "boom");
    assert_eq!(daemon_calls[1]["outcome"], "panicked");
    assert!(daemon_calls[0]["peer"].starts_with("127.0.0.1:"));

    let proxy_calls = calls("rpc_core::proxy");
    assert_eq!(proxy_calls.len(), 2, "{events:?}");
    for key in ["uri", "method", "request_id", "elapsed_us", "outcome"] {
        assert!(
            proxy_calls.iter().all(|f| f.contains_key(key)),
            "proxy event lacks {key}"
        );
    }
    assert_eq!(proxy_calls[0]["outcome"], "ok");
    assert_eq!(proxy_calls[1]["outcome"], "error");
    assert_eq!(proxy_calls[0]["request_id"], daemon_calls[0]["request_id"]);
}

#[tokio::test]
async fn calls_that_wait_for_a_slot_at_the_call_cap_are_marked() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = rpc_core::Config::default().max_calls_per_connection(2);
    let (daemon, calc, _) = rpc_tests::serve_calc_with(config).await;
    calc.add(0, 0).await.unwrap();
    // Three calls at once on one connection with two slots: the third waits for one.
    let (a, b, c) = tokio::join!(calc.slow(1, 50), calc.slow(2, 50), calc.slow(3, 50));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 2, 3));
    daemon.shutdown().await;

    let events = events.lock().unwrap();
    let message =
        |fields: &BTreeMap<String, String>| fields.get("message").cloned().unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|(_, fields)| message(fields).contains("call cap")),
        "no event says the connection reached its call cap: {events:?}"
    );
    let slow: Vec<&BTreeMap<String, String>> = events
        .iter()
        .filter(|(t, f)| t == "rpc_core::daemon" && message(f) == "call" && f["method"] == "slow")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(slow.len(), 3, "{events:?}");
    let waited = slow
        .iter()
        .filter(|f| f["waited_for_slot"] == "true")
        .count();
    assert_eq!(waited, 1, "{slow:?}");
}
