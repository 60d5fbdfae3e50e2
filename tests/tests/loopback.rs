//! Calls and returns over loopback: every kind of method, concurrency, large payloads.

use std::collections::HashSet;

use futures_util::future::join_all;
use rpc_core::Daemon;
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, serve_calc, within};
use serde_bytes::ByteBuf;

#[tokio::test]
async fn every_kind_of_method_round_trips() {
    let (_daemon, calc, implementation) = serve_calc().await;
    assert_eq!(calc.add(2, 40).await.unwrap(), 42);
    assert_eq!(
        calc.tag(1, 2, "x".into()).await.unwrap(),
        (1, 2, "x".into())
    );
    calc.nothing().await.unwrap();
    assert_eq!(calc.divide(7, 2).await.unwrap(), 3);
    calc.record(5).await.unwrap();
    calc.record(6).await.unwrap();
    within("two oneway calls", implementation.probe.records.wait_for(2)).await;
    assert_eq!(calc.recorded().await.unwrap(), vec![5, 6]);
}

#[tokio::test]
async fn fifty_tasks_make_a_thousand_concurrent_calls_through_one_proxy() {
    let (_daemon, calc, _) = serve_calc().await;
    let tasks: Vec<_> = (0..50u32)
        .map(|task| {
            let calc = calc.clone();
            tokio::spawn(async move {
                let calls = (0..20u32).map(|seq| {
                    let calc = &calc;
                    async move {
                        let text = format!("task {task} call {seq}");
                        let reply = calc.tag(task, seq, text.clone()).await.unwrap();
                        assert_eq!(reply, (task, seq, text), "a reply reached the wrong call");
                        reply
                    }
                });
                join_all(calls).await
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for (task, seq, _) in within("1,000 calls", task).await.unwrap() {
            assert!(
                seen.insert((task, seq)),
                "reply ({task}, {seq}) arrived twice"
            );
        }
    }
    assert_eq!(seen.len(), 1000);
}

#[tokio::test]
async fn large_payloads_travel_both_ways() {
    let (_daemon, calc, _) = serve_calc().await;
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = calc.echo(ByteBuf::from(payload.clone())).await.unwrap();
    assert_eq!(echoed.into_vec(), payload);
    assert_eq!(calc.fill(3_000_000).await.unwrap().len(), 3_000_000);
}

#[tokio::test]
async fn unix_domain_sockets_carry_calls() {
    let dir = std::env::temp_dir().join(format!("rpc-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unix_domain_sockets_carry_calls.sock");
    let _ = std::fs::remove_file(&path);
    let daemon = Daemon::bind_unix(&path, rpc_core::Config::default())
        .await
        .unwrap();
    let uri = daemon
        .register(CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    assert!(uri.to_string().starts_with("PYRO:obj_") && uri.to_string().contains("@./u:"));
    let calc = CalcProxy::new(uri.to_string().parse().unwrap());
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    drop(daemon);
    assert!(!path.exists(), "the daemon removes its socket file");
}

#[tokio::test]
async fn ipv6_loopback_carries_calls() {
    let daemon = Daemon::bind("[::1]:0")
        .await
        .expect("this machine has IPv6 loopback");
    let uri = daemon
        .register_as("calc", CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    assert!(uri.to_string().starts_with("PYRO:calc@[::1]:"), "{uri}");
    let calc = CalcProxy::new(uri.to_string().parse().unwrap());
    assert_eq!(calc.add(20, 22).await.unwrap(), 42);
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let (_daemon, calc, _) = serve_calc().await;
    let elapsed = calc.proxy().ping().await.unwrap();
    assert!(elapsed < rpc_tests::PATIENCE);
}

#[tokio::test]
async fn a_daemon_tells_the_methods_of_what_it_serves() {
    let (daemon, _calc, implementation) = serve_calc().await;
    let methods = daemon.methods("calc").expect("calc is registered");
    let names: Vec<_> = methods.iter().map(|method| method.name).collect();
    assert_eq!(
        names,
        [
            "add", "tag", "echo", "fill", "divide", "hang", "gated", "slow", "boom", "record",
            "recorded", "nothing"
        ]
    );
    let tag = methods.iter().find(|method| method.name == "tag").unwrap();
    assert_eq!(
        (tag.params, tag.oneway),
        (&["task", "seq", "text"][..], false)
    );
    let oneway: Vec<_> = methods
        .iter()
        .filter(|m| m.oneway)
        .map(|m| m.name)
        .collect();
    assert_eq!(oneway, ["record"]);
    assert!(daemon.methods("nobody").is_none());
    daemon
        .register_factory("per_call", rpc_core::InstanceMode::PerCall, move || {
            CalcSkeleton::new(implementation.clone())
        })
        .unwrap();
    assert_eq!(daemon.methods("per_call"), Some(methods));
}
