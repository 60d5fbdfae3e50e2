//! Every failure a caller can tell apart, and the daemon surviving them.

use std::time::Instant;

use rpc_core::{CallError, Daemon, Error, Location, NameServerAttempt, Proxy, Uri};
use rpc_tests::{CalcProxy, CalcSkeleton, DivError, PATIENCE, serve_calc, within};

#[tokio::test]
async fn the_remote_methods_own_error_arrives_typed() {
    let (_daemon, calc, _) = serve_calc().await;
    match calc.divide(1, 0).await {
        Err(CallError::Method(DivError::ByZero)) => {}
        other => panic!("expected the method's own error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_object_is_refused_at_the_handshake() {
    let (daemon, _, _) = serve_calc().await;
    let calc = CalcProxy::new(daemon.uri_for("no.such.object"));
    let error = calc.add(1, 2).await.unwrap_err();
    assert!(
        matches!(&error, Error::UnknownObject(id) if id == "no.such.object"),
        "{error}"
    );
    assert!(error.to_string().contains("no.such.object"));
}

#[tokio::test]
async fn an_unknown_method_is_reported_with_its_name() {
    let (_daemon, calc, _) = serve_calc().await;
    let error = calc
        .proxy()
        .call::<_, u64>("subtract", &(1u64, 2u64))
        .await
        .unwrap_err();
    match error {
        Error::UnknownMethod { object, method } => {
            assert_eq!((object.as_str(), method.as_str()), ("calc", "subtract"))
        }
        other => panic!("expected UnknownMethod, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_argument_types_are_bad_arguments() {
    let (_daemon, calc, _) = serve_calc().await;
    let error = calc
        .proxy()
        .call::<_, u64>("add", &("one", "two"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::BadArguments { method, .. } if method == "add"),
        "{error}"
    );
    // Too few and too many arguments too.
    let error = calc
        .proxy()
        .call::<_, u64>("add", &(1u64,))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::BadArguments { .. }), "{error}");
    let error = calc
        .proxy()
        .call::<_, u64>("add", &(1u64, 2u64, 3u64))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::BadArguments { .. }), "{error}");
    assert_eq!(
        calc.add(1, 2).await.unwrap(),
        3,
        "the connection still serves"
    );
}

#[tokio::test]
async fn a_reply_of_the_wrong_type_is_a_codec_error() {
    let (_daemon, calc, _) = serve_calc().await;
    let error = calc
        .proxy()
        .call::<_, String>("add", &(1u64, 2u64))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Codec { .. }), "{error}");
}

#[tokio::test]
async fn a_panicking_method_is_reported_and_the_daemon_keeps_serving() {
    let (_daemon, calc, _) = serve_calc().await;
    let other_client = CalcProxy::new(calc.proxy().uri().clone());
    let error = calc.boom().await.unwrap_err();
    match &error {
        Error::RemotePanic { method, message } => {
            assert_eq!(method, "boom");
            assert!(message.contains("boom on purpose"), "{message}");
        }
        other => panic!("expected RemotePanic, got {other:?}"),
    }
    assert!(!error.is_communication());
    assert_eq!(
        calc.add(1, 1).await.unwrap(),
        2,
        "the same connection still serves"
    );
    assert_eq!(other_client.add(2, 2).await.unwrap(), 4, "and so do others");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let uri = Uri::direct(
        "x",
        Location::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    );
    let error = CalcProxy::new(uri).add(1, 2).await.unwrap_err();
    assert!(
        matches!(&error, Error::Connect { address, .. } if address.ends_with(&port.to_string())),
        "{error}"
    );
    assert!(error.is_communication());
    // The printed error says why, not only where.
    assert!(error.to_string().contains("refused"), "{error}");
}

#[tokio::test]
async fn a_taken_address_is_a_bind_error_that_says_so() {
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    let taken = daemon.local_addr().unwrap();
    let error = Daemon::bind(taken).await.unwrap_err();
    assert!(matches!(&error, Error::Bind { .. }), "{error}");
    assert!(error.to_string().contains("in use"), "{error}");
}

#[tokio::test]
async fn a_killed_connection_fails_every_call_in_flight_at_once() {
    let (daemon, calc, implementation) = serve_calc().await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.hang().await })
        })
        .collect();
    implementation.probe.hangs_started.wait_for(20).await;
    let killed = Instant::now();
    drop(daemon);
    for call in calls {
        let error = within("an in-flight call failing", call)
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, Error::ConnectionLost(_)), "{error}");
    }
    assert!(killed.elapsed() < PATIENCE);
    implementation.probe.hangs_dropped.wait_for(20).await;
}

#[tokio::test]
async fn the_next_call_after_a_lost_connection_reconnects() {
    let (daemon, calc, implementation) = serve_calc().await;
    let address = daemon.local_addr().unwrap();
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    drop(daemon);
    let error = calc.add(1, 1).await.unwrap_err();
    assert!(error.is_communication(), "{error}");

    let restarted = Daemon::bind(address).await.unwrap();
    restarted
        .register_as("calc", CalcSkeleton::new(implementation))
        .unwrap();
    assert_eq!(calc.add(2, 2).await.unwrap(), 4);
}

#[tokio::test]
async fn a_name_without_a_nameserver_says_what_was_tried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = rpc_core::Config::default();
    config.nameserver.broadcast = false;
    config.nameserver.port = Some(port);
    let proxy = Proxy::with_config("PYRONAME:some.name".parse().unwrap(), config);
    let error = proxy
        .call::<_, u64>("add", &(1u64, 2u64))
        .await
        .unwrap_err();
    match &error {
        Error::NameServerNotFound { tried } => {
            assert_eq!(tried.len(), 1, "{tried:?}");
            let NameServerAttempt::Unreachable { uri, how, error } = &tried[0] else {
                panic!("expected an unreachable nameserver, got {tried:?}");
            };
            assert_eq!(*how, "localhost");
            assert!(
                uri.to_string().ends_with(&format!("@127.0.0.1:{port}")),
                "{uri}"
            );
            assert!(
                matches!(&**error, Error::Connect { source, .. }
                    if source.kind() == std::io::ErrorKind::ConnectionRefused),
                "{error:?}"
            );
        }
        other => panic!("expected NameServerNotFound, got {other:?}"),
    }
    assert!(error.to_string().contains("RPC_NS_HOST"), "{error}");
}

#[tokio::test]
async fn object_ids_a_uri_cannot_carry_are_refused_at_registration() {
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    for id in ["my listener", "a@b", ""] {
        let error = daemon
            .register_as(id, CalcSkeleton::new(rpc_tests::CalcImpl::default()))
            .unwrap_err();
        assert!(
            matches!(&error, Error::InvalidObjectId(_)),
            "{id:?}: {error}"
        );
    }
    // What the daemon does hand out parses back to the same object.
    let uri = daemon
        .register(CalcSkeleton::new(rpc_tests::CalcImpl::default()))
        .unwrap();
    assert_eq!(uri.to_string().parse::<Uri>().unwrap(), uri);
}

#[tokio::test]
async fn a_unix_socket_path_a_uri_cannot_carry_is_refused() {
    let path = std::env::temp_dir().join(format!("rpc test {}.sock", std::process::id()));
    let error = Daemon::bind_unix(&path, rpc_core::Config::default())
        .await
        .unwrap_err();
    assert!(matches!(&error, Error::Bind { .. }), "{error}");
    assert!(error.to_string().contains("whitespace"), "{error}");
    assert!(!path.exists());
}
