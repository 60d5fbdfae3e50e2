//! The nameserver over the wire: every method, proxies by name and by metadata, discovery.

use std::collections::BTreeSet;

use nameserver::Options;
use rpc_core::{
    CallError, Config, Daemon, Error, HostPort, MetadataQuery, NameFilter, NameServerAttempt,
    NameServerConfig, NameServerProxy, NamingError, Proxy, locate_ns,
};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton, serve_calc, until_unknown, within};
use tokio::net::UdpSocket;

fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

/// A loopback nameserver and a client configuration that points at it.
async fn nameserver() -> (nameserver::RunningNameServer, Config) {
    let ns = nameserver::start(Options::loopback(0)).await.unwrap();
    let port = ns.daemon().local_addr().unwrap().port();
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", port);
    (ns, config)
}

fn method_error<T: std::fmt::Debug>(result: Result<T, CallError<NamingError>>) -> NamingError {
    match result {
        Err(CallError::Method(error)) => error,
        other => panic!("expected the nameserver's own error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_nameserver_method_works_over_the_wire() {
    let (ns, config) = nameserver().await;
    let names: NameServerProxy = locate_ns(&config).await.unwrap();
    names.ping().await.unwrap();
    assert_eq!(
        names.count().await.unwrap(),
        1,
        "only the nameserver's own entry"
    );
    assert_eq!(
        names.lookup("Pyro.NameServer".into()).await.unwrap(),
        *ns.uri()
    );

    let a: rpc_core::Uri = "PYRO:a@127.0.0.1:1".parse().unwrap();
    let b: rpc_core::Uri = "PYRO:b@127.0.0.1:2".parse().unwrap();
    names
        .register("app.a".into(), a.clone(), true, tags(&["x", "y"]))
        .await
        .unwrap();
    names
        .register("app.b".into(), b.clone(), false, tags(&["y"]))
        .await
        .unwrap();
    assert_eq!(
        method_error(
            names
                .register("app.a".into(), b.clone(), true, tags(&[]))
                .await
        ),
        NamingError::NameTaken("app.a".into())
    );
    assert!(matches!(
        method_error(
            names
                .register(" ".into(), b.clone(), false, tags(&[]))
                .await
        ),
        NamingError::InvalidName { .. }
    ));
    assert_eq!(names.lookup("app.a".into()).await.unwrap(), a);
    assert_eq!(
        names
            .lookup_with_metadata("app.a".into())
            .await
            .unwrap()
            .metadata,
        tags(&["x", "y"])
    );
    assert_eq!(
        method_error(names.lookup("nope".into()).await),
        NamingError::UnknownName("nope".into())
    );

    let listed = names.list(NameFilter::Prefix("app.".into())).await.unwrap();
    assert_eq!(listed.into_keys().collect::<Vec<_>>(), ["app.a", "app.b"]);
    let listed = names
        .list_with_metadata(NameFilter::Regex("app\\.b".into()))
        .await
        .unwrap();
    assert_eq!(listed["app.b"].metadata, tags(&["y"]));
    assert!(matches!(
        method_error(names.list(NameFilter::Regex("[".into())).await),
        NamingError::BadPattern { .. }
    ));

    let found = names
        .yplookup(MetadataQuery::All(tags(&["x", "y"])))
        .await
        .unwrap();
    assert_eq!(found.into_keys().collect::<Vec<_>>(), ["app.a"]);
    let found = names
        .yplookup(MetadataQuery::Any(tags(&["x", "y"])))
        .await
        .unwrap();
    assert_eq!(found.len(), 2);

    names
        .set_metadata("app.b".into(), tags(&["x"]))
        .await
        .unwrap();
    assert_eq!(
        names
            .yplookup(MetadataQuery::All(tags(&["x"])))
            .await
            .unwrap()
            .len(),
        2
    );

    assert_eq!(
        method_error(
            names
                .remove(NameFilter::Name("Pyro.NameServer".into()))
                .await
        ),
        NamingError::Protected("Pyro.NameServer".into())
    );
    assert_eq!(
        names
            .remove(NameFilter::Name("app.a".into()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        names
            .remove(NameFilter::Prefix(String::new()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        names.count().await.unwrap(),
        1,
        "the nameserver's own entry survives"
    );
}

#[tokio::test]
async fn a_pyroname_proxy_resolves_and_resolves_again_after_a_restart() {
    let (_ns, config) = nameserver().await;
    let names = locate_ns(&config).await.unwrap();

    let (first, calc_at_first, _) = serve_calc().await;
    let uri = calc_at_first.proxy().uri().clone();
    names
        .register("my.calc".into(), uri, false, tags(&[]))
        .await
        .unwrap();

    let calc = CalcProxy::from_proxy(Proxy::with_config(
        "PYRONAME:my.calc".parse().unwrap(),
        config.clone(),
    ));
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);

    // The worker dies and comes back on another port, registering again under the same name.
    drop(first);
    assert!(calc.add(1, 2).await.unwrap_err().is_communication());
    let (_second, calc_at_second, _) = serve_calc().await;
    let uri = calc_at_second.proxy().uri().clone();
    names
        .register("my.calc".into(), uri, false, tags(&[]))
        .await
        .unwrap();
    assert_eq!(
        calc.add(2, 2).await.unwrap(),
        4,
        "the reconnect resolved the name again"
    );
}

#[tokio::test]
async fn a_pyroname_with_an_explicit_nameserver_and_an_unknown_name() {
    let (ns, _) = nameserver().await;
    let port = ns.daemon().local_addr().unwrap().port();
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    let uri = daemon
        .register(CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", port);
    locate_ns(&config)
        .await
        .unwrap()
        .register("calc".into(), uri, false, tags(&[]))
        .await
        .unwrap();

    // No configuration: the URI itself names the nameserver.
    let calc = CalcProxy::new(format!("PYRONAME:calc@127.0.0.1:{port}").parse().unwrap());
    assert_eq!(calc.add(20, 22).await.unwrap(), 42);
    let missing = CalcProxy::new(
        format!("PYRONAME:missing@127.0.0.1:{port}")
            .parse()
            .unwrap(),
    );
    let error = missing.add(1, 1).await.unwrap_err();
    assert!(
        matches!(error, Error::Naming(NamingError::UnknownName(ref n)) if n == "missing"),
        "{error}"
    );
}

#[tokio::test]
async fn a_pyrometa_proxy_picks_among_the_objects_with_the_tags() {
    let (_ns, config) = nameserver().await;
    let names = locate_ns(&config).await.unwrap();
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    for (name, metadata) in [("w1", ["calc", "eu"]), ("w2", ["calc", "us"])] {
        let uri = daemon
            .register_as(name, CalcSkeleton::new(CalcImpl::default()))
            .unwrap();
        names
            .register(name.into(), uri, false, tags(&metadata))
            .await
            .unwrap();
    }
    let eu = CalcProxy::from_proxy(Proxy::with_config(
        "PYROMETA:calc,eu".parse().unwrap(),
        config.clone(),
    ));
    assert_eq!(eu.add(1, 1).await.unwrap(), 2);
    let any = CalcProxy::from_proxy(Proxy::with_config(
        "PYROMETA:calc".parse().unwrap(),
        config.clone(),
    ));
    assert_eq!(any.add(2, 2).await.unwrap(), 4);
    let none = CalcProxy::from_proxy(Proxy::with_config(
        "PYROMETA:calc,mars".parse().unwrap(),
        config,
    ));
    let error = none.add(1, 1).await.unwrap_err();
    assert!(
        matches!(error, Error::Naming(NamingError::NoMatch(_))),
        "{error}"
    );
}

/// A nameserver on every interface with discovery on a free UDP port, and a client
/// configuration that finds it by broadcast to 127.255.255.255 only.
async fn discoverable() -> (nameserver::RunningNameServer, Config) {
    let ns = rpc_tests::discoverable_nameserver().await;
    let discovery = ns.discovery_addr().expect("discovery runs on 0.0.0.0");
    let mut config = Config::default();
    config.nameserver.broadcast_addresses = Some(vec!["127.255.255.255".parse().unwrap()]);
    config.nameserver.broadcast_port = Some(discovery.port());
    // Nothing listens on the nameserver port at localhost, so only the broadcast can succeed.
    config.nameserver.port = Some(1);
    (ns, config)
}

#[tokio::test]
async fn discovery_finds_the_nameserver_by_broadcast_on_loopback() {
    let (ns, config) = discoverable().await;
    let names = within("discovery", locate_ns(&config)).await.unwrap();
    names.ping().await.unwrap();
    let found = names.proxy().uri().to_string();
    let port = ns.daemon().local_addr().unwrap().port();
    assert_eq!(
        found,
        format!("PYRO:Pyro.NameServer@127.0.0.1:{port}"),
        "the address facing the requester"
    );
    assert!(
        !ns.uri().to_string().contains("0.0.0.0"),
        "advertised: {}",
        ns.uri()
    );
}

#[tokio::test]
async fn the_responder_ignores_anything_but_the_request() {
    let (ns, _) = discoverable().await;
    let responder =
        std::net::SocketAddr::from(([127, 0, 0, 1], ns.discovery_addr().unwrap().port()));
    let junk_sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b"GET_NSUR"[..], b"GET_NSURIX", b"", &[0xff; 600]] {
        junk_sender.send_to(junk, responder).await.unwrap();
    }
    let asker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    asker
        .send_to(rpc_core::DISCOVERY_REQUEST, responder)
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = within("the answer", asker.recv_from(&mut buf))
        .await
        .unwrap();
    let answer = std::str::from_utf8(&buf[..len]).unwrap();
    assert!(
        answer.starts_with("PYRO:Pyro.NameServer@127.0.0.1:"),
        "{answer}"
    );
    // The responder reads its queue in order, so the junk was handled before the request was
    // answered, and it got no answer.
    let unanswered = junk_sender.try_recv_from(&mut buf);
    assert_eq!(
        unanswered.unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}

#[tokio::test]
async fn discovery_is_not_started_on_loopback() {
    let (ns, _) = nameserver().await;
    assert_eq!(ns.discovery_addr(), None);
}

#[tokio::test]
async fn a_daemon_on_every_interface_never_advertises_the_unspecified_address() {
    let daemon = Daemon::bind("0.0.0.0:0").await.unwrap();
    let uri = daemon
        .register_as("x", CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let rpc_core::Location::Tcp { host, .. } = uri.location().unwrap() else {
        panic!("a TCP daemon");
    };
    let ip: std::net::IpAddr = host.parse().expect("an address");
    assert!(!ip.is_unspecified(), "{uri}");

    let mut config = Config::default();
    config.advertise_host = Some("worker.example".into());
    let daemon = Daemon::bind_with("0.0.0.0:0", config).await.unwrap();
    assert!(
        daemon
            .uri_for("x")
            .to_string()
            .starts_with("PYRO:x@worker.example:")
    );
}

/// A discovery responder on 127.0.0.1 that answers every request with each of `answers`.
async fn responder(answers: Vec<String>) -> (u16, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = socket.recv_from(&mut buf).await {
            for answer in &answers {
                let _ = socket.send_to(answer.as_bytes(), from).await;
            }
        }
    });
    (port, task)
}

fn asking(port: u16) -> Config {
    let mut config = Config::default();
    config.nameserver.broadcast_addresses = Some(vec!["127.0.0.1".parse().unwrap()]);
    config.nameserver.broadcast_port = Some(port);
    config.nameserver.broadcast_rounds = 3;
    // Nothing listens on the nameserver port at localhost.
    config.nameserver.port = Some(1);
    config
}

#[tokio::test]
async fn a_rogue_discovery_answer_cannot_crash_or_redirect_the_client() {
    // A name to resolve (which once sent the client into discovery again, until its stack
    // overflowed), a local socket of the sender's choosing, another host, another object.
    let (port, rogue) = responder(
        [
            "PYRONAME:x",
            "PYROMETA:x",
            "PYRO:Pyro.NameServer@./u:/tmp/rogue.sock",
            "PYRO:Pyro.NameServer@10.0.0.1:9090",
            "PYRO:calc@127.0.0.1:9090",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let error = within(
        "locating through a rogue responder",
        locate_ns(&asking(port)),
    )
    .await
    .unwrap_err();
    match &error {
        Error::NameServerNotFound { tried } => {
            assert!(
                tried.iter().any(|attempt| matches!(
                    attempt,
                    NameServerAttempt::NoAnswer { reason, .. } if reason.contains("ignored")
                )),
                "{tried:?}"
            )
        }
        other => panic!("expected NameServerNotFound, got {other:?}"),
    }
    rogue.abort();
}

#[tokio::test]
async fn every_discovery_answer_is_tried_before_giving_up() {
    let (ns, _) = nameserver().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let live = ns.daemon().local_addr().unwrap().port();
    let (port, responder) = responder(vec![
        format!("PYRO:Pyro.NameServer@127.0.0.1:{dead_port}"),
        format!("PYRO:Pyro.NameServer@127.0.0.1:{live}"),
    ])
    .await;
    let names = within("discovery", locate_ns(&asking(port))).await.unwrap();
    assert_eq!(
        names.proxy().uri().to_string(),
        format!("PYRO:Pyro.NameServer@127.0.0.1:{live}")
    );
    responder.abort();
}

#[tokio::test]
async fn the_responder_answers_a_flood_from_one_source_only_a_few_times() {
    let (ns, _) = discoverable().await;
    let responder =
        std::net::SocketAddr::from(([127, 0, 0, 1], ns.discovery_addr().unwrap().port()));
    let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..200 {
        flooder
            .send_to(rpc_core::DISCOVERY_REQUEST, responder)
            .await
            .unwrap();
    }
    // Another client is still answered; the responder reads in order, so once it has its
    // answer, every answer to the flood has been sent.
    let honest = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    honest
        .send_to(rpc_core::DISCOVERY_REQUEST, responder)
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    within("an answer to another client", honest.recv_from(&mut buf))
        .await
        .unwrap();
    let mut answered = 0;
    while flooder.try_recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert!(answered <= 8, "{answered} answers to one source");
    assert!(answered > 0, "a client asking a few times is answered");
}

#[tokio::test]
async fn a_name_is_found_on_whichever_discovered_nameserver_has_it() {
    // Two nameservers answer discovery; only the one that answers second has the name.
    let (first, _) = nameserver().await;
    let (second, _) = nameserver().await;
    let (_calc_daemon, calc, _) = serve_calc().await;
    let registrar = NameServerProxy::new(second.uri().clone());
    registrar
        .register(
            "only.second".into(),
            calc.proxy().uri().clone(),
            false,
            tags(&[]),
        )
        .await
        .unwrap();
    let port_of = |ns: &nameserver::RunningNameServer| ns.daemon().local_addr().unwrap().port();
    let (port, responder) = responder(vec![
        format!("PYRO:Pyro.NameServer@127.0.0.1:{}", port_of(&first)),
        format!("PYRO:Pyro.NameServer@127.0.0.1:{}", port_of(&second)),
    ])
    .await;
    let by_name = CalcProxy::from_proxy(Proxy::with_config(
        "PYRONAME:only.second".parse().unwrap(),
        asking(port),
    ));
    assert_eq!(
        within("a call by name", by_name.add(2, 3)).await.unwrap(),
        5
    );
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_pattern_fails_within_its_budget_and_lookups_go_on() {
    let mut options = Options::loopback(0);
    options.query_budget = std::time::Duration::from_millis(300);
    options.limits.max_registrations_per_address = 100_000;
    let ns = nameserver::start(options).await.unwrap();
    let names = NameServerProxy::new(ns.uri().clone());
    let (_daemon, calc, _) = serve_calc().await;
    let count = rpc_tests::scaled(100_000, 20_000);
    let long = "a".repeat(200);
    let registering: Vec<_> = (0..count)
        .map(|i| {
            names.register(
                format!("{long}.{i}"),
                calc.proxy().uri().clone(),
                false,
                tags(&[]),
            )
        })
        .collect();
    for registered in futures_util::future::join_all(registering).await {
        registered.unwrap();
    }
    // 16 bytes, well under the compiled size limit, that take seconds over these names.
    let hostile = names.list(NameFilter::Regex("(?:a|aa){1,100}b".into()));
    let other = NameServerProxy::new(ns.uri().clone());
    let lookup = async {
        let started = std::time::Instant::now();
        let found = other.lookup(format!("{long}.7")).await;
        (found, started.elapsed())
    };
    let (listed, (found, lookup_took)) = tokio::join!(hostile, lookup);
    assert_eq!(found.unwrap(), *calc.proxy().uri());
    println!("{count} names: a lookup beside a hostile query took {lookup_took:?}");
    let error = method_error(listed);
    assert!(
        matches!(error, NamingError::QueryTooSlow { .. }),
        "the hostile query is stopped: {error:?}"
    );
    // A pattern beyond the length limit is refused before it is compiled.
    let long_pattern = "a".repeat(nameserver::MAX_PATTERN_LEN + 1);
    assert!(matches!(
        method_error(names.list(NameFilter::Regex(long_pattern)).await),
        NamingError::BadPattern { detail, .. } if detail.contains("at most")
    ));
    // Honest queries still work.
    assert_eq!(
        names
            .list(NameFilter::Prefix(format!("{long}.1")))
            .await
            .unwrap()
            .len(),
        (0..count)
            .filter(|i| i.to_string().starts_with('1'))
            .count()
    );
}

#[tokio::test]
async fn a_leased_registration_lives_while_renewed_and_expires_when_its_worker_stops() {
    let (ns, config) = nameserver().await;
    let names = NameServerProxy::new(ns.uri().clone());
    let (_daemon, calc, _) = serve_calc().await;
    let ttl = std::time::Duration::from_millis(300);
    let lease = rpc_core::Lease::start(&config, "leased.calc", calc.proxy().uri().clone(), ttl)
        .await
        .unwrap();
    // Renewals keep it: it is still there after several TTLs.
    let by_name = CalcProxy::from_proxy(Proxy::with_config(
        "PYRONAME:leased.calc".parse().unwrap(),
        config.clone(),
    ));
    let kept_until = std::time::Instant::now() + ttl * 4;
    while std::time::Instant::now() < kept_until {
        assert!(names.lookup("leased.calc".into()).await.is_ok());
        tokio::task::yield_now().await;
    }
    assert_eq!(by_name.add(1, 2).await.unwrap(), 3);
    assert!(lease.is_renewing());
    let seen = names
        .lookup_with_metadata("leased.calc".into())
        .await
        .unwrap();
    assert!(
        seen.owned && seen.lease.is_some_and(|left| left <= ttl),
        "{seen:?}"
    );
    // The worker dies without a word: the name goes once its lease runs out.
    drop(lease);
    let gone_after = until_unknown(&names, "leased.calc").await;
    println!("a lease of {ttl:?} ran out {gone_after:?} after its worker stopped renewing");
}

#[tokio::test]
async fn a_lease_is_registered_again_after_the_nameserver_restarts_and_removed_on_request() {
    let (ns, config) = nameserver().await;
    let address = ns.daemon().local_addr().unwrap();
    let (_daemon, calc, _) = serve_calc().await;
    let ttl = std::time::Duration::from_millis(300);
    let lease = rpc_core::Lease::start(&config, "restarted.calc", calc.proxy().uri().clone(), ttl)
        .await
        .unwrap();
    ns.shutdown().await;
    // A new nameserver on the same port starts empty; the worker's next renewal fills it.
    let restarted = nameserver::start(Options::loopback(address.port()))
        .await
        .unwrap();
    let names = NameServerProxy::new(restarted.uri().clone());
    within("the lease registering again", async {
        while names.lookup("restarted.calc".into()).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // A graceful stop removes it at once.
    lease.remove().await.unwrap();
    assert!(matches!(
        names.lookup("restarted.calc".into()).await,
        Err(CallError::Method(NamingError::UnknownName(_)))
    ));
}

#[tokio::test]
async fn a_leased_name_cannot_be_hijacked_by_another_client_but_the_admin_can_clean_up() {
    let mut options = Options::loopback(0);
    options.admin_token = Some("operators-admin-token-42".into());
    let ns = nameserver::start(options).await.unwrap();
    let port = ns.daemon().local_addr().unwrap().port();
    let config = Config::default().nameserver(NameServerConfig::at("127.0.0.1", port));
    let (_worker, calc, _) = serve_calc().await;
    let _lease = rpc_core::Lease::start(
        &config,
        "MyWorker",
        calc.proxy().uri().clone(),
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    // An attacker with its own daemon tries every way to take the name.
    let attacker = NameServerProxy::new(ns.uri().clone());
    let (_evil, evil_calc, _) = serve_calc().await;
    let evil = evil_calc.proxy().uri().clone();
    let owned =
        |error: NamingError| matches!(error, NamingError::Owned(name) if name == "MyWorker");
    assert!(owned(method_error(
        attacker
            .register("MyWorker".into(), evil.clone(), false, tags(&[]))
            .await
    )));
    assert!(owned(method_error(
        attacker
            .register_lease(
                "MyWorker".into(),
                evil.clone(),
                tags(&[]),
                std::time::Duration::from_secs(30),
                rpc_core::new_owner_token(),
            )
            .await
    )));
    assert!(owned(method_error(
        attacker.remove(NameFilter::Name("MyWorker".into())).await
    )));
    assert_eq!(
        attacker
            .remove(NameFilter::Regex(".*".into()))
            .await
            .unwrap(),
        0
    );
    assert!(owned(method_error(
        attacker.set_metadata("MyWorker".into(), tags(&["x"])).await
    )));
    assert_eq!(
        attacker.lookup("MyWorker".into()).await.unwrap(),
        *calc.proxy().uri(),
        "the name still leads to the real worker"
    );
    // The operator's token removes anything.
    assert_eq!(
        attacker
            .remove_owned(
                NameFilter::Prefix("My".into()),
                "operators-admin-token-42".into()
            )
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn one_client_address_cannot_fill_the_registry() {
    let mut options = Options::loopback(0);
    options.limits.max_registrations_per_address = 3;
    let ns = nameserver::start(options).await.unwrap();
    let names = NameServerProxy::new(ns.uri().clone());
    let (_worker, calc, _) = serve_calc().await;
    let uri = calc.proxy().uri().clone();
    for n in 0..3 {
        names
            .register(format!("flood.{n}"), uri.clone(), false, tags(&[]))
            .await
            .unwrap();
    }
    let refused = method_error(
        names
            .register("flood.3".into(), uri.clone(), false, tags(&[]))
            .await,
    );
    assert_eq!(
        refused,
        NamingError::LimitReached {
            setting: "max_registrations_per_address".into(),
            limit: 3
        }
    );
    // What the address holds it may still replace, and what it removes it gets back.
    names
        .register("flood.0".into(), uri.clone(), false, tags(&["again"]))
        .await
        .unwrap();
    names
        .remove(NameFilter::Prefix("flood.1".into()))
        .await
        .unwrap();
    names
        .register("flood.3".into(), uri, false, tags(&[]))
        .await
        .unwrap();
    assert_eq!(names.count().await.unwrap(), 4);
}

/// Resolves every URI to one direct URI, and counts how often it was asked.
#[derive(Debug)]
struct Fixed {
    to: rpc_core::Uri,
    asked: std::sync::atomic::AtomicUsize,
}

impl rpc_core::Resolve for Fixed {
    fn resolve<'a>(
        &'a self,
        _uri: &'a rpc_core::Uri,
        _config: &'a Config,
    ) -> rpc_core::ResolveFuture<'a> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok(vec![self.to.clone()]) })
    }
}

#[tokio::test]
async fn a_proxy_resolves_names_with_the_resolver_it_is_given() {
    let (_daemon, direct, _) = serve_calc().await;
    let resolver = std::sync::Arc::new(Fixed {
        to: direct.proxy().uri().clone(),
        asked: Default::default(),
    });
    // No nameserver runs: only the resolver can turn this name into an address.
    let proxy = Proxy::with_resolver(
        "PYRONAME:no.such.nameserver.knows.this".parse().unwrap(),
        Config::default(),
        resolver.clone(),
    );
    let calc = CalcProxy::from_proxy(proxy);
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    assert_eq!(calc.add(3, 4).await.unwrap(), 7);
    assert_eq!(
        resolver.asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "resolved once, at the connect"
    );
}

/// Issue 14: a client given several nameservers of one registry moves to the next when the one
/// it located dies, at its next lookup, without being told.
#[tokio::test]
async fn a_client_with_fallbacks_moves_on_when_its_nameserver_dies() {
    let first = nameserver::start(Options::loopback(0)).await.unwrap();
    let second = nameserver::start(Options::loopback(0)).await.unwrap();
    let port_of = |ns: &nameserver::RunningNameServer| ns.daemon().local_addr().unwrap().port();
    let (first_port, second_port) = (port_of(&first), port_of(&second));
    let (_daemon, calc, _) = serve_calc().await;
    let worker = calc.proxy().uri().clone();
    // Both serve the same names (one registry, as nameservers on one store would).
    for port in [first_port, second_port] {
        let mut config = Config::default();
        config.nameserver = NameServerConfig::at("127.0.0.1", port);
        let names = locate_ns(&config).await.unwrap();
        names
            .register("calc".into(), worker.clone(), false, Default::default())
            .await
            .unwrap();
    }
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", first_port).with_fallbacks([HostPort {
        host: "127.0.0.1".into(),
        port: Some(second_port),
    }]);
    let by_name = rpc_tests::calc_by_name("calc", config.clone());
    assert_eq!(by_name().add(1, 2).await.unwrap(), 3);
    first.shutdown().await;
    assert_eq!(
        within("the lookup through the fallback", by_name().add(2, 3))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        locate_ns(&config).await.unwrap().proxy().uri().to_string(),
        format!("PYRO:Pyro.NameServer@127.0.0.1:{second_port}")
    );
    second.shutdown().await;
    match locate_ns(&config).await {
        Err(Error::NameServerNotFound { tried }) => assert_eq!(tried.len(), 2, "{tried:?}"),
        other => panic!("expected NameServerNotFound, got {other:?}"),
    }
}
