//! Resource limits under hostile or careless peers: slow senders, floods, large announced
//! frames, many calls, many cancels, many sessions. Reduced scale by default; set
//! `RPC_FULL_SCALE=1` for the figures of the robustness issue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rpc_core::protocol::{Flags, HEADER_LEN, Kind, Message};
use rpc_core::{Config, Daemon, InstanceMode, RemoteError};
use rpc_tests::{
    CalcProxy, InstanceProxy, Lifecycle, RawClient, RemoteCalc, resident_bytes, scaled,
    serve_calc_with, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Handshakes, then sends `frame` one byte every 100 ms until the daemon closes the
/// connection; returns how long that took and the daemon's close frame.
async fn drip_feed(address: std::net::SocketAddr, frame: Vec<u8>) -> (Duration, Message) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let hello = Message::encode(Kind::Handshake, Flags::NONE, 0, b"calc", 1024).unwrap();
    stream.write_all(&hello).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut reply = [0u8; HEADER_LEN];
    stream.read_exact(&mut reply).await.unwrap();
    let started = Instant::now();
    for byte in frame.iter().cycle() {
        stream.write_all(&[*byte]).await.unwrap();
        // Waiting for the daemon's answer paces the drip at one byte per 100 ms.
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read_buf(&mut buf)).await
        {
            assert!(read.unwrap() > 0, "the daemon closed without saying why");
            let elapsed = started.elapsed();
            loop {
                if let Some(close) = Message::decode(&mut buf, 1 << 20).unwrap() {
                    return (elapsed, close);
                }
                assert!(
                    stream.read_buf(&mut buf).await.unwrap() > 0,
                    "a truncated close frame"
                );
            }
        }
    }
    unreachable!("the frame cycles forever")
}

fn invoke_frame(request_id: u64, method: &str, args: &impl serde::Serialize) -> Vec<u8> {
    let mut frame = rpc_core::protocol::FrameBuilder::new(Kind::Invoke, Flags::NONE, request_id);
    rpc_core::protocol::Invoke::write_prefix(frame.body_mut(), None, method).unwrap();
    rpc_core::Format::Bincode
        .encode_into(args, frame.body_mut())
        .unwrap();
    frame.finish(1 << 20).unwrap().to_vec()
}

#[tokio::test]
async fn slow_senders_are_cut_at_the_frame_deadline_while_honest_clients_are_served() {
    let mut config = Config::default();
    config.frame_timeout = Duration::from_millis(500);
    config.max_connections_per_address = 1024;
    let (daemon, honest, _) = serve_calc_with(config).await;
    let slow_count = scaled(200, 50);
    let frame = invoke_frame(1, "add", &(1u64, 2u64));
    let address = daemon.local_addr().unwrap();
    let slow: Vec<_> = (0..slow_count)
        .map(|_| tokio::spawn(drip_feed(address, frame.clone())))
        .collect();
    // Meanwhile 8 honest clients call, concurrently.
    let honest_calls: Vec<_> = (0..8u64)
        .map(|i| {
            let calc = CalcProxy::new(honest.proxy().uri().clone());
            tokio::spawn(async move {
                for n in 0..20 {
                    assert_eq!(calc.add(i, n).await.unwrap(), i + n);
                }
            })
        })
        .collect();
    for call in honest_calls {
        within("honest calls", call).await.unwrap();
    }
    for sender in slow {
        let (elapsed, close) = within("a slow sender being cut", sender).await.unwrap();
        match RawClient::remote_error(&close) {
            RemoteError::Protocol { detail } => {
                assert!(detail.contains("did not complete within 500ms"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }
    println!(
        "{slow_count} slow senders cut at the 500 ms frame deadline; 160 honest calls all served"
    );
}

#[tokio::test]
async fn connections_announcing_the_largest_frame_cost_little_memory() {
    let mut config = Config::default();
    config.max_connections_per_address = 2048;
    config.max_connections = 2048;
    let (daemon, calc, _) = serve_calc_with(config).await;
    let count = scaled(1000, 1000);
    let before = resident_bytes();
    let mut header = Message::encode(Kind::Invoke, Flags::NONE, 1, b"", 1 << 20)
        .unwrap()
        .to_vec();
    let announced = (rpc_core::DEFAULT_MAX_MESSAGE_SIZE - HEADER_LEN) as u32;
    header[16..HEADER_LEN].copy_from_slice(&announced.to_be_bytes());
    let mut connections = Vec::new();
    for _ in 0..count {
        let mut raw = RawClient::connect(&daemon).await;
        raw.handshake("calc").await;
        raw.send(&header).await;
        connections.push(raw);
    }
    // A call after all of them went through the same daemon, so every header has been read.
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "{count} connections each announcing an {announced}-byte frame: memory grew {} KiB ({} bytes each)",
        grown / 1024,
        grown / count
    );
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    drop(connections);
}

/// Connects over a cap: the daemon sends a `Close` frame saying which limit, then closes.
async fn refusal(daemon: &Daemon) -> RemoteError {
    let mut extra = RawClient::connect(daemon).await;
    let close = extra.receive().await.expect("the daemon says why");
    assert_eq!(close.header.kind, Kind::Close);
    assert!(
        extra.receive().await.is_none(),
        "nothing follows the refusal"
    );
    RawClient::remote_error(&close)
}

#[tokio::test]
async fn connections_beyond_the_cap_are_told_why_and_others_unaffected() {
    let config = Config::default().max_connections(20);
    let (daemon, calc, _) = serve_calc_with(config).await;
    calc.proxy().connect().await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..19 {
        let mut raw = RawClient::connect(&daemon).await;
        raw.handshake("calc").await;
        idle.push(raw);
    }
    // In waves that the daemon tells at once, as a flood would arrive.
    for _ in 0..scaled(10, 3) {
        let refusals = futures_util::future::join_all((0..20).map(|_| refusal(&daemon))).await;
        for refused in refusals {
            assert_eq!(
                refused,
                RemoteError::TooManyConnections {
                    setting: "max_connections".into(),
                    limit: 20
                }
            );
        }
    }
    assert_eq!(
        calc.add(2, 2).await.unwrap(),
        4,
        "an existing client is unaffected"
    );
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let config = Config::default().max_connections_per_address(5);
    let (daemon, _, _) = serve_calc_with(config).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut raw = RawClient::connect(&daemon).await;
        raw.handshake("calc").await;
        held.push(raw);
    }
    assert_eq!(
        refusal(&daemon).await,
        RemoteError::TooManyConnections {
            setting: "max_connections_per_address".into(),
            limit: 5
        }
    );
    drop(held.pop());
    // Once one closes, the address may connect again.
    let calc = CalcProxy::new(daemon.uri_for("calc"));
    within("a slot freeing up", calc.add(1, 1)).await.unwrap();
}

#[tokio::test]
async fn a_proxy_over_the_cap_gets_a_typed_refusal_that_says_the_call_did_not_run() {
    let config = Config::default().max_connections_per_address(3);
    let (daemon, calc, implementation) = serve_calc_with(config).await;
    let held: Vec<CalcProxy> = (0..3)
        .map(|_| CalcProxy::new(daemon.uri_for("calc")))
        .collect();
    for proxy in &held {
        proxy.add(1, 1).await.unwrap();
    }
    // `record` with a reply: the probe counts the calls that ran.
    let error = calc
        .proxy()
        .call::<_, ()>("record", &(7u64,))
        .await
        .unwrap_err();
    match &error {
        rpc_core::Error::Refused(RemoteError::TooManyConnections { setting, limit }) => {
            assert_eq!(
                (setting.as_str(), *limit),
                ("max_connections_per_address", 3)
            );
        }
        other => panic!("expected a typed refusal, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("did not run") && text.contains("max_connections_per_address"),
        "{text}"
    );
    assert_eq!(
        implementation.probe.records.get(),
        0,
        "the refused call did not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_their_client_free_their_slots_at_once() {
    // Each round fills every slot of the address, then drops its proxies and starts the next
    // round at once: the new connections must find the old slots free, without a retry. The
    // daemon runs on a runtime of its own, as in another process.
    let slots = scaled(256, 64);
    let daemon = RemoteCalc::start(Config::default().max_connections_per_address(slots));
    for round in 0..scaled(10, 5) {
        let proxies: Vec<CalcProxy> = (0..slots)
            .map(|_| CalcProxy::new(daemon.uri.clone()))
            .collect();
        let results =
            futures_util::future::join_all(proxies.iter().map(|proxy| proxy.add(1, 1))).await;
        let refused = results.iter().filter(|result| result.is_err()).count();
        assert_eq!(
            refused,
            0,
            "round {round}: {refused} of {slots} calls failed: {:?}",
            results.iter().find(|result| result.is_err())
        );
        drop(proxies);
    }
}

#[tokio::test]
async fn a_thousand_calls_on_one_connection_never_run_more_handlers_than_the_cap() {
    let mut config = Config::default();
    config.max_calls_per_connection = 16;
    let (_daemon, calc, implementation) = serve_calc_with(config).await;
    let calls = scaled(1000, 1000) as u64;
    let results = futures_util::future::join_all((0..calls).map(|i| calc.slow(i, 2))).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as u64, "call {i} lost or mismatched");
    }
    let most = implementation.probe.running.most();
    println!("{calls} calls to a slow method: at most {most} handlers at once (cap 16), none lost");
    assert!(most <= 16 && most > 1, "{most}");
}

#[tokio::test]
async fn call_then_cancel_cycles_keep_handlers_under_the_cap_and_memory_flat() {
    let mut config = Config::default();
    config.max_calls_per_connection = 32;
    let (_daemon, calc, implementation) = serve_calc_with(config).await;
    calc.add(1, 1).await.unwrap();
    let cycles = scaled(20_000, 2_000);
    let before = resident_bytes();
    for _ in 0..cycles {
        // Poll once, so the call is sent, then drop it: the proxy sends a cancel.
        let mut call = Box::pin(calc.hang());
        assert!((&mut call).now_or_never().is_none());
        drop(call);
    }
    // Every handler that started has stopped; the connection still works.
    assert_eq!(
        within("a call after the cycles", calc.add(2, 3))
            .await
            .unwrap(),
        5
    );
    let probe = &implementation.probe;
    within("every handler stopping", async {
        while probe.running.now() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "{cycles} call-then-cancel cycles: {} handlers started, at most {} at once (cap 32), memory grew {} KiB",
        probe.hangs_started.get(),
        probe.running.most(),
        grown / 1024
    );
    assert!(probe.running.most() <= 32);
    assert!(grown < 16 << 20, "memory grew by {grown} bytes");
}

#[tokio::test]
async fn session_and_percall_instances_all_go_away_after_many_clients() {
    for mode in [InstanceMode::Session, InstanceMode::PerCall] {
        let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
        let lifecycle = Arc::new(Lifecycle::default());
        let factory = lifecycle.clone();
        let uri = daemon
            .register_factory("instance", mode, move || factory.build())
            .unwrap();
        let cycles = scaled(1000, 200) as u64;
        for _ in 0..cycles {
            let client = InstanceProxy::new(uri.clone());
            client.serial().await.unwrap();
        }
        within("every instance dropped", lifecycle.dropped.wait_for(cycles)).await;
        assert_eq!(lifecycle.built(), cycles, "{mode:?}");
        println!("{mode:?}: {cycles} connect/call/disconnect cycles, live instances back to 0");
    }
}

#[tokio::test]
async fn a_peer_that_does_not_read_its_replies_is_no_longer_read() {
    let mut config = Config::default();
    config.max_queued_bytes = 256 * 1024;
    let (daemon, calc, _) = serve_calc_with(config).await;
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    let hello = Message::encode(Kind::Handshake, Flags::NONE, 0, b"calc", 1024).unwrap();
    stream.write_all(&hello).await.unwrap();
    // Ask for 64 replies of 1 MiB and never read them: the daemon must stop reading requests
    // once its queue and the socket buffers are full, rather than buffer 64 MiB.
    let before = resident_bytes();
    let request = invoke_frame(0, "fill", &(1u32 << 20,));
    let writer = tokio::spawn(async move {
        for id in 1..=64u64 {
            let mut frame = request.clone();
            frame[8..16].copy_from_slice(&id.to_be_bytes());
            if stream.write_all(&frame).await.is_err() {
                break;
            }
        }
        stream
    });
    // The writer may finish (requests are small) but the daemon cannot have made 64 replies.
    let stream = within("sending the requests", writer).await.unwrap();
    assert_eq!(
        calc.add(1, 1).await.unwrap(),
        2,
        "other clients are served meanwhile"
    );
    let grown = resident_bytes().saturating_sub(before);
    println!("a peer that never reads: memory grew {} KiB", grown / 1024);
    assert!(grown < 32 << 20, "memory grew by {grown} bytes");
    drop(stream);
}

#[tokio::test]
async fn slow_calls_after_large_frames_do_not_pin_the_receive_buffers() {
    // Each round: a call with a frame near the message limit, then a call that never ends,
    // on the same connection. A waiting call must keep only its own arguments alive, not the
    // buffer its frame arrived in.
    let (daemon, calc, implementation) = serve_calc_with(Config::default()).await;
    let rounds = scaled(32, 16);
    let payload = serde_bytes::ByteBuf::from(vec![7u8; rpc_core::DEFAULT_MAX_MESSAGE_SIZE - 1024]);
    calc.echo(payload.clone()).await.unwrap();
    let before = resident_bytes();
    let mut hanging = Vec::new();
    for _ in 0..rounds {
        calc.echo(payload.clone()).await.unwrap();
        hanging.push(rpc_tests::spawn_hang(&calc));
    }
    implementation
        .probe
        .hangs_started
        .wait_for(rounds as u64)
        .await;
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "{rounds} rounds of an 8 MiB call and a waiting call: memory grew {} KiB",
        grown / 1024
    );
    assert!(grown < 48 << 20, "memory grew by {} MiB", grown >> 20);
    drop(hanging);
    drop(daemon);
}

#[tokio::test]
async fn a_client_that_leaves_takes_its_calls_and_its_slot_with_it() {
    // Each attacker starts a call with no deadline that would run for ever, then leaves. The
    // daemon cancels it and frees the slot at once, so the slots never run out.
    let slots = scaled(1024, 16);
    let config = Config::default()
        .max_connections(slots)
        .max_connections_per_address(slots);
    let (daemon, calc, implementation) = serve_calc_with(config).await;
    for round in 1..=scaled(4, 3) {
        let mut attackers = Vec::new();
        for _ in 0..slots {
            let mut attacker = RawClient::connect(&daemon).await;
            attacker.handshake("calc").await;
            attacker.send(&invoke_frame(1, "hang", &())).await;
            attackers.push(attacker);
        }
        let left = (round * slots) as u64;
        implementation.probe.hangs_started.wait_for(left).await;
        let gone = Instant::now();
        drop(attackers);
        implementation.probe.hangs_dropped.wait_for(left).await;
        println!(
            "round {round}: {slots} departed clients' calls cancelled and slots freed within {:?}",
            gone.elapsed()
        );
    }
    assert_eq!(implementation.probe.running.now(), 0);
    assert_eq!(within("a fresh client", calc.add(1, 2)).await.unwrap(), 3);
}

#[tokio::test]
async fn a_call_without_a_deadline_meets_the_daemons_maximum_duration() {
    let config = Config::default().max_call_duration(Some(Duration::from_millis(50)));
    let (daemon, _, implementation) = serve_calc_with(config).await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    raw.send(&invoke_frame(1, "hang", &())).await;
    let reply = raw.receive().await.expect("a reply");
    assert!(
        matches!(RawClient::remote_error(&reply), RemoteError::DeadlineExceeded { method } if method == "hang"),
        "{reply:?}"
    );
    implementation.probe.hangs_dropped.wait_for(1).await;
}

#[tokio::test]
async fn after_a_protocol_violation_the_daemon_sends_close_and_nothing_else() {
    let (daemon, _, implementation) = serve_calc_with(Config::default()).await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    raw.send(&invoke_frame(1, "hang", &())).await;
    implementation.probe.hangs_started.wait_for(1).await;
    // A second handshake breaks the protocol.
    let again = Message::encode(Kind::Handshake, Flags::NONE, 0, b"calc", 1 << 20).unwrap();
    raw.send(&again).await;
    let close = raw.receive().await.expect("the daemon says why");
    assert_eq!(close.header.kind, Kind::Close);
    assert!(raw.receive().await.is_none(), "nothing after the close");
    // The call it had started is cancelled, not left to run.
    implementation.probe.hangs_dropped.wait_for(1).await;
}

#[tokio::test]
async fn headers_announcing_large_bodies_cannot_starve_the_receive_budget() {
    // Each attacker sends the header of a body near the message limit and nothing more: by
    // their headers they would take the whole budget many times over.
    let config = Config::default()
        .max_buffered_bytes(16 << 20)
        .frame_timeout(Duration::from_secs(60));
    let (daemon, calc, _) = serve_calc_with(config).await;
    let mut header = Message::encode(Kind::Invoke, Flags::NONE, 1, b"", 1 << 20)
        .unwrap()
        .to_vec();
    let announced = (rpc_core::DEFAULT_MAX_MESSAGE_SIZE - HEADER_LEN) as u32;
    header[16..HEADER_LEN].copy_from_slice(&announced.to_be_bytes());
    let mut attackers = Vec::new();
    for _ in 0..scaled(200, 32) {
        let mut raw = RawClient::connect(&daemon).await;
        raw.handshake("calc").await;
        raw.send(&header).await;
        attackers.push(raw);
    }
    assert_eq!(
        calc.add(1, 1).await.unwrap(),
        2,
        "every header has been read"
    );
    // An honest call with a 1 MiB body, on a new connection, is read at once.
    let honest = CalcProxy::new(daemon.uri_for("calc"));
    let payload = serde_bytes::ByteBuf::from(vec![1u8; 1 << 20]);
    let started = Instant::now();
    let echoed = within("an honest large call", honest.echo(payload))
        .await
        .unwrap();
    assert_eq!(echoed.len(), 1 << 20);
    println!(
        "{} stalled headers: a 1 MiB call took {:?}",
        attackers.len(),
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_one_with_a_call_running_is_not() {
    let config = Config::default().idle_timeout(Some(Duration::from_millis(100)));
    let (daemon, calc, _) = serve_calc_with(config).await;
    let mut silent = RawClient::connect(&daemon).await;
    silent.handshake("calc").await;
    let close = silent.receive().await.expect("the daemon says why");
    assert_eq!(close.header.kind, Kind::Close);
    assert!(
        matches!(RawClient::remote_error(&close), RemoteError::Idle { .. }),
        "{close:?}"
    );
    assert!(silent.receive().await.is_none());
    // A call that runs longer than the idle timeout keeps its connection.
    assert_eq!(calc.slow(7, 400).await.unwrap(), 7);
    // And a proxy whose connection was closed while idle connects again for its next call.
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn a_large_ping_is_refused_not_echoed() {
    let (daemon, _, _) = serve_calc_with(Config::default()).await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    let ping = Message::encode(Kind::Ping, Flags::NONE, 5, &vec![0u8; 1 << 20], 8 << 20).unwrap();
    raw.send(&ping).await;
    let answer = raw.receive().await.expect("an answer");
    assert_eq!(answer.header.kind, Kind::Close, "{answer:?}");
    let reason = RawClient::remote_error(&answer).to_string();
    assert!(reason.contains("ping"), "{reason}");
    // A small ping is still answered, on a new connection.
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    raw.send(&Message::encode(Kind::Ping, Flags::NONE, 6, b"hello", 1 << 20).unwrap())
        .await;
    let pong = raw.receive().await.expect("a pong");
    assert_eq!(
        (pong.header.kind, &pong.body[..]),
        (Kind::Pong, &b"hello"[..])
    );
}

#[tokio::test]
async fn a_client_that_leaves_at_its_call_cap_is_noticed_too() {
    // At the cap the daemon reads no more frames; it must still see the peer go.
    let config = Config::default().max_calls_per_connection(2);
    let (daemon, _, implementation) = serve_calc_with(config).await;
    let mut attacker = RawClient::connect(&daemon).await;
    attacker.handshake("calc").await;
    for id in 1..=3 {
        attacker.send(&invoke_frame(id, "hang", &())).await;
    }
    implementation.probe.hangs_started.wait_for(2).await;
    drop(attacker);
    implementation.probe.hangs_dropped.wait_for(2).await;
    assert_eq!(
        implementation.probe.hangs_started.get(),
        2,
        "the third never started"
    );
}
