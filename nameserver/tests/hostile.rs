//! A hostile query against the `nameserver` binary: it is stopped by its budget, and SIGTERM
//! stops the process at once while it runs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rpc_core::{CallError, NameFilter, NamingError, Uri};

mod support;

/// Names of 200 `a`s, over which the hostile pattern takes seconds; what one client address
/// may register by default.
const NAMES: usize = 10_000;

/// A pattern of 16 bytes, far under the compiled-size limit, that is slow over such names.
const HOSTILE: &str = "(?:a|aa){1,100}b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_nameserver_at_once_while_a_hostile_query_runs() {
    // A budget far longer than the wait for the stop below, so that waiting for the query
    // to end would fail the test.
    let budget = Duration::from_secs(60);
    let (mut child, port) = support::serve(&["--query-budget".as_ref(), "60".as_ref()]);
    let names = support::client(port).await;
    let uri: Uri = "PYRO:w@127.0.0.1:4000".parse().unwrap();
    let long = "a".repeat(200);
    let registering = (0..NAMES)
        .map(|n| names.register(format!("{long}.{n}"), uri.clone(), false, BTreeSet::new()));
    for registered in futures_util::future::join_all(registering).await {
        registered.unwrap();
    }
    let attacker = support::client(port).await;
    let hostile = tokio::spawn({
        let attacker = attacker.clone();
        async move { attacker.list(NameFilter::Regex(HOSTILE.into())).await }
    });
    // Calls on one connection start in the order they were sent: once this ping is
    // answered, the hostile query has started.
    attacker.ping().await.unwrap();
    // Lookups from another client are answered meanwhile.
    assert_eq!(names.lookup(format!("{long}.7")).await.unwrap(), uri);
    assert!(!hostile.is_finished(), "the hostile query is still running");

    let asked = Instant::now();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = asked.elapsed();
    println!("stopped {took:?} after SIGTERM, with a hostile query running");
    assert!(status.success(), "a clean stop: {status}");
    assert!(took < budget / 4, "the stop waited for the query: {took:?}");
    // The query's client learns why it got no result.
    let ended = hostile.await.unwrap();
    assert!(
        matches!(ended, Err(CallError::Method(NamingError::Stopping))),
        "{ended:?}"
    );
}
