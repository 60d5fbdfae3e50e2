//! Mixed traffic for a while: 16 tasks over 4 proxies, payloads of 0 B, 1 KiB and 271,828 B,
//! short deadlines on one call in ten. Every call must end in its own reply or a typed error:
//! none lost, duplicated or mismatched. 3 s by default, 30 s with `RPC_FULL_SCALE=1`.

use std::time::{Duration, Instant};

use rpc_core::Error;
use rpc_tests::{CalcProxy, PATIENCE, full_scale, serve_calc};
use serde_bytes::ByteBuf;

const SIZES: [usize; 3] = [0, 1024, 271_828];

#[derive(Debug, Default)]
struct Tally {
    replies: u64,
    timeouts: u64,
}

async fn traffic(calc: CalcProxy, task: u64, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut seq = 0u64;
    while Instant::now() < until {
        seq += 1;
        if seq.is_multiple_of(10) {
            // A deadline far shorter than the work: a typed timeout, never a reply.
            let short = calc.clone().with_timeout(Duration::from_millis(5));
            match short.slow(seq, 50).await {
                Err(Error::Timeout(_)) => tally.timeouts += 1,
                other => panic!("task {task} call {seq}: expected a timeout, got {other:?}"),
            }
            continue;
        }
        let size = SIZES[(seq % 3) as usize];
        let payload: Vec<u8> = (0..size).map(|i| (i as u64 ^ task ^ seq) as u8).collect();
        let echoed = calc
            .echo(ByteBuf::from(payload.clone()))
            .await
            .unwrap_or_else(|e| {
                panic!("task {task} call {seq}: {e}");
            });
        assert!(
            echoed.as_slice() == payload.as_slice(),
            "task {task} call {seq}: a mismatched reply"
        );
        let tagged = calc
            .tag(task as u32, seq as u32, String::new())
            .await
            .unwrap();
        assert_eq!(
            (tagged.0, tagged.1),
            (task as u32, seq as u32),
            "a reply for another call"
        );
        tally.replies += 2;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_loses_nothing() {
    let (_daemon, calc, _) = serve_calc().await;
    let duration = if full_scale() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    };
    let until = Instant::now() + duration;
    let proxies: Vec<CalcProxy> = (0..4)
        .map(|_| CalcProxy::new(calc.proxy().uri().clone()))
        .collect();
    let tasks: Vec<_> = (0..16u64)
        .map(|task| tokio::spawn(traffic(proxies[task as usize % 4].clone(), task, until)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        // Each task runs for `duration`; beyond that, the usual patience.
        let tally = tokio::time::timeout(duration + PATIENCE, task)
            .await
            .expect("a traffic task outlived the soak")
            .unwrap();
        total.replies += tally.replies;
        total.timeouts += tally.timeouts;
    }
    println!(
        "{duration:?} of mixed traffic: {} replies, {} typed timeouts, 0 lost, 0 duplicated, 0 mismatched",
        total.replies, total.timeouts
    );
    assert!(total.replies > 0 && total.timeouts > 0);
}
