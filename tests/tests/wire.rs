//! The wire as bytes: golden frames, and a daemon and a proxy facing peers that break the rules.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use rpc_core::protocol::{Flags, FrameBuilder, HEADER_LEN, Invoke, Kind, Message, ProtocolError};
use rpc_core::{Config, Error, Format, Location, RemoteError, Uri};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, RawClient, serve_calc, spawn_daemon, within};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn invoke(
    request_id: u64,
    deadline: Option<Duration>,
    method: &str,
    args: &impl serde::Serialize,
) -> bytes::BytesMut {
    let mut frame = FrameBuilder::new(Kind::Invoke, Flags::NONE, request_id);
    Invoke::write_prefix(frame.body_mut(), deadline, method).unwrap();
    Format::Bincode.encode_into(args, frame.body_mut()).unwrap();
    frame.finish(1 << 20).unwrap()
}

#[test]
fn golden_invoke_frame() {
    let frame = invoke(7, Some(Duration::from_secs(1)), "add", &(1u64, 300u64));
    #[rustfmt::skip]
    let expected: &[u8] = &[
        b'R', b'O', b'B', b'J',  // magic
        0, 1,                    // version 1
        3,                       // kind: invoke
        0,                       // flags
        0, 0, 0, 0, 0, 0, 0, 7,  // request id 7
        0, 0, 0, 12,             // body length
        0, 0, 0x03, 0xe8,        // deadline: 1000 ms
        3, b'a', b'd', b'd',     // method name
        1,                       // 1u64 as a varint
        251, 0x2c, 0x01,         // 300u64: varint marker 251, then u16 little-endian
    ];
    assert_eq!(&frame[..], expected);
}

#[test]
fn golden_handshake_and_failure_frames() {
    let frame = Message::encode(Kind::Handshake, Flags::NONE, 0, b"calc", 100).unwrap();
    assert_eq!(
        &frame[..],
        b"ROBJ\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04calc"
    );
    let mut body = BytesMut::new();
    Format::Bincode
        .encode_into(&RemoteError::ShuttingDown, &mut body)
        .unwrap();
    // The variant index as a varint: ShuttingDown is variant 8, without fields.
    assert_eq!(&body[..], &[8]);
}

#[tokio::test]
async fn an_unknown_object_is_refused_in_the_handshake_reply() {
    let daemon = spawn_daemon().await;
    let mut raw = RawClient::connect(&daemon).await;
    let reply = raw.handshake("nobody").await;
    assert_eq!(reply.header.kind, Kind::HandshakeReply);
    assert_eq!(
        RawClient::remote_error(&reply),
        RemoteError::UnknownObject {
            object: "nobody".into()
        }
    );
    assert!(
        raw.receive().await.is_none(),
        "the daemon closes the connection"
    );
}

#[tokio::test]
async fn the_daemon_enforces_the_deadline_it_receives() {
    let (daemon, _, implementation) = serve_calc().await;
    let mut raw = RawClient::connect(&daemon).await;
    assert!(
        !raw.handshake("calc")
            .await
            .header
            .flags
            .contains(Flags::FAILURE)
    );
    let sent = Instant::now();
    raw.send(&invoke(5, Some(Duration::from_millis(100)), "hang", &()))
        .await;
    let reply = raw.receive().await.unwrap();
    assert!(sent.elapsed() >= Duration::from_millis(100));
    assert_eq!(reply.header.request_id, 5);
    assert_eq!(
        RawClient::remote_error(&reply),
        RemoteError::DeadlineExceeded {
            method: "hang".into()
        }
    );
    implementation.probe.hangs_dropped.wait_for(1).await;
}

#[tokio::test]
async fn replies_are_matched_by_request_id_not_order() {
    let (daemon, _, implementation) = serve_calc().await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    raw.send(&invoke(1, None, "gated", &(10u64,))).await;
    implementation.probe.gated_waiting.wait_for(1).await;
    raw.send(&invoke(2, None, "add", &(1u64, 2u64))).await;
    let first = raw.receive().await.unwrap();
    assert_eq!(
        first.header.request_id, 2,
        "the quick call overtakes the gated one"
    );
    assert_eq!(Format::Bincode.decode::<u64>(&first.body).unwrap(), 3);
    implementation.probe.gate.notify_one();
    let second = raw.receive().await.unwrap();
    assert_eq!(second.header.request_id, 1);
    assert_eq!(Format::Bincode.decode::<u64>(&second.body).unwrap(), 10);
}

#[tokio::test]
async fn garbage_gets_a_typed_error_and_the_daemon_keeps_serving_others() {
    let (daemon, honest, _) = serve_calc().await;
    assert_eq!(honest.add(1, 1).await.unwrap(), 2);

    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xff; 64],
        // (Bytes that open with `PYRO` go to the Pyro5 path: tests/tests/pyro5.rs.)
    ] {
        let mut raw = RawClient::connect(&daemon).await;
        raw.send(garbage).await;
        let close = raw.receive().await.expect("a close frame");
        assert_eq!(close.header.kind, Kind::Close);
        match RawClient::remote_error(&close) {
            RemoteError::Protocol { detail } => assert!(detail.contains("bad magic"), "{detail}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(raw.receive().await.is_none());
    }
    assert_eq!(honest.add(2, 2).await.unwrap(), 4);
}

#[tokio::test]
async fn garbage_after_the_handshake_and_a_wrong_version_are_refused() {
    let (daemon, _, _) = serve_calc().await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    let mut bad = invoke(1, None, "add", &(1u64, 2u64)).to_vec();
    bad[4..6].copy_from_slice(&7u16.to_be_bytes());
    raw.send(&bad).await;
    let close = raw.receive().await.unwrap();
    match RawClient::remote_error(&close) {
        RemoteError::Protocol { detail } => assert!(
            detail.contains("unsupported protocol version 7"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }

    let mut raw = RawClient::connect(&daemon).await;
    raw.send(&invoke(1, None, "add", &(1u64, 2u64))).await;
    let close = raw.receive().await.unwrap();
    match RawClient::remote_error(&close) {
        RemoteError::Protocol { detail } => assert!(detail.contains("handshake"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_length_is_refused_from_the_header_alone() {
    let (daemon, calc, _) = serve_calc().await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    let mut header = invoke(1, None, "add", &(1u64, 2u64))[..HEADER_LEN].to_vec();
    header[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    let sent = Instant::now();
    raw.send(&header).await;
    let close = raw.receive().await.unwrap();
    let answered = sent.elapsed();
    match RawClient::remote_error(&close) {
        RemoteError::Protocol { detail } => {
            assert!(
                detail.contains("exceeds the limit of 8388608 bytes"),
                "{detail}"
            );
            assert!(detail.contains("Config::max_message_size"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        answered < Duration::from_secs(1),
        "refused without waiting for the body: {answered:?}"
    );
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn a_proxy_refuses_to_send_more_than_its_limit() {
    let daemon = spawn_daemon().await;
    let uri = daemon
        .register(CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let mut config = Config::default();
    config.max_message_size = 64 * 1024;
    let calc = CalcProxy::from_proxy(rpc_core::Proxy::with_config(uri, config));
    let error = calc
        .echo(ByteBuf::from(vec![0; 100_000]))
        .await
        .unwrap_err();
    match error {
        Error::Protocol(ProtocolError::MessageTooLarge { limit, .. }) => {
            assert_eq!(limit, 64 * 1024)
        }
        other => panic!("{other:?}"),
    }
    assert!(error_text_names_setting(
        &calc
            .echo(ByteBuf::from(vec![0; 100_000]))
            .await
            .unwrap_err()
    ));
    assert_eq!(
        calc.add(1, 2).await.unwrap(),
        3,
        "nothing was sent, the connection is fine"
    );
}

fn error_text_names_setting(error: &Error) -> bool {
    error.to_string().contains("Config::max_message_size")
}

#[tokio::test]
async fn a_reply_over_the_daemons_limit_is_a_typed_error() {
    let mut config = Config::default();
    config.max_message_size = 64 * 1024;
    let daemon = rpc_core::Daemon::bind_with("127.0.0.1:0", config)
        .await
        .unwrap();
    let uri = daemon
        .register(CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let calc = CalcProxy::new(uri);
    let error = calc.fill(100_000).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Protocol(ProtocolError::MessageTooLarge { limit: 65536, .. })
        ),
        "{error}"
    );
    assert_eq!(calc.fill(1000).await.unwrap().len(), 1000);
}

#[tokio::test]
async fn a_proxy_facing_an_oversized_reply_header_fails_with_a_typed_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake_daemon = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; HEADER_LEN + 4];
        stream.read_exact(&mut hello).await.unwrap();
        let ok = Message::encode(Kind::HandshakeReply, Flags::NONE, 0, &[], 0).unwrap();
        stream.write_all(&ok).await.unwrap();
        let mut huge = Message::encode(Kind::Reply, Flags::NONE, 1, &[], 0)
            .unwrap()
            .to_vec();
        huge[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        stream.write_all(&huge).await.unwrap();
        // Hold the connection open: the proxy must fail on the header, not on EOF.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let calc = CalcProxy::new(Uri::direct(
        "calc",
        Location::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    ));
    let error = within("the proxy failing", calc.add(1, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Protocol(ProtocolError::MessageTooLarge { .. })
        ),
        "{error}"
    );
    fake_daemon.abort();
}

#[tokio::test]
async fn a_daemon_that_shuts_down_says_so_before_closing() {
    let (daemon, _, _) = rpc_tests::serve_calc().await;
    let mut raw = RawClient::connect(&daemon).await;
    raw.handshake("calc").await;
    within("the shutdown", daemon.shutdown()).await;
    let close = raw.receive().await.expect("a close frame");
    assert_eq!(close.header.kind, Kind::Close);
    assert_eq!(RawClient::remote_error(&close), RemoteError::ShuttingDown);
    assert!(raw.receive().await.is_none());
}
