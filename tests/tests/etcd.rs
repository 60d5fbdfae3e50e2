//! The registry on etcd: nameservers on a real three-member etcd cluster on loopback (Debian's
//! `etcd-server`, started and removed by each test), with workers registered through each.
//!
//! Built with `--features rpc-tests/etcd` (or `--all-features`, as the README's test command
//! does); without etcd on the machine the tests say SKIPPED, and under `CI=true` they fail.

#[cfg(not(feature = "etcd"))]
#[test]
fn the_etcd_tests_are_built() {
    let reason = "built without the feature `etcd` (cargo test --all-features)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the etcd tests must run in CI, but were {reason}"
    );
    eprintln!("SKIPPED the etcd tests: {reason}");
}

#[cfg(feature = "etcd")]
mod on_etcd {
    use std::collections::BTreeSet;
    use std::process::Child;
    use std::time::{Duration, Instant};

    use nameserver::etcd::EtcdOptions;
    use nameserver::{Limits, Options, RunningNameServer};
    use rpc_core::{
        CallError, Config, HostPort, Lease, NameServerConfig, NameServerProxy, NamingError, Uri,
    };
    use rpc_tests::etcd::{EtcdCluster, etcd_or_skip};
    use rpc_tests::role::{expect_said, spawn_role};
    use rpc_tests::{calc_by_name, serve_calc, until_unknown, within};

    const ROLE: &str = "RPC_ETCD_ROLE";

    /// A request to etcd gives up after this long, failing over member by member: enough to
    /// wait out a leader's election, and a lost quorum still shows quickly.
    const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

    fn etcd_options(cluster: &EtcdCluster) -> EtcdOptions {
        let mut etcd = EtcdOptions::new(cluster.endpoints());
        etcd.request_timeout = ETCD_TIMEOUT;
        etcd
    }

    /// A nameserver on loopback whose registry lives in `cluster`.
    async fn nameserver_on(cluster: &EtcdCluster, limits: Limits) -> RunningNameServer {
        let mut options = Options::loopback(0);
        options.etcd = Some(etcd_options(cluster));
        options.limits = limits;
        nameserver::start(options).await.unwrap()
    }

    fn port_of(ns: &RunningNameServer) -> u16 {
        ns.daemon().local_addr().unwrap().port()
    }

    fn names(port: u16) -> NameServerProxy {
        NameServerProxy::new(
            format!("PYRO:Pyro.NameServer@127.0.0.1:{port}")
                .parse()
                .unwrap(),
        )
    }

    /// A configuration that tries the nameservers on `ports` in order.
    fn config_for(ports: &[u16]) -> Config {
        let mut config = Config::default();
        config.nameserver = NameServerConfig::at("127.0.0.1", ports[0]).with_fallbacks(
            ports[1..].iter().map(|&port| HostPort {
                host: "127.0.0.1".into(),
                port: Some(port),
            }),
        );
        config
    }

    fn method_error<T: std::fmt::Debug>(result: Result<T, CallError<NamingError>>) -> NamingError {
        match result {
            Err(CallError::Method(error)) => error,
            other => panic!("expected the nameserver's own error, got {other:?}"),
        }
    }

    fn worker(port: u16) -> Uri {
        format!("PYRO:worker@127.0.0.1:{port}").parse().unwrap()
    }

    /// How many keys of the registry etcd itself holds, read straight from the cluster.
    async fn keys_in_etcd(cluster: &EtcdCluster) -> i64 {
        let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
            .await
            .unwrap();
        let options = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only();
        let names = format!("{}names/", nameserver::etcd::DEFAULT_ETCD_PREFIX);
        client.get(names, Some(options)).await.unwrap().count()
    }

    #[tokio::test]
    async fn a_change_through_one_nameserver_is_seen_through_the_other_at_once() {
        let Some(etcd) =
            etcd_or_skip("a_change_through_one_nameserver_is_seen_through_the_other_at_once")
        else {
            return;
        };
        let cluster = EtcdCluster::start(etcd);
        let a = nameserver_on(&cluster, Limits::default()).await;
        let b = nameserver_on(&cluster, Limits::default()).await;
        let (via_a, via_b) = (names(port_of(&a)), names(port_of(&b)));
        for round in 0..20 {
            let name = format!("shop.{round}");
            via_a
                .register(name.clone(), worker(1000 + round), false, BTreeSet::new())
                .await
                .unwrap();
            assert_eq!(
                via_b.lookup(name.clone()).await.unwrap(),
                worker(1000 + round)
            );
            assert_eq!(
                via_b
                    .remove(rpc_core::NameFilter::Name(name.clone()))
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(
                method_error(via_a.lookup(name.clone()).await),
                NamingError::UnknownName(name)
            );
        }
        // Workers joining one name through either nameserver are its instances, in order,
        // as both see them; the nameservers' own entries stay their own.
        let tags: BTreeSet<String> = ["eu".to_owned()].into();
        via_a
            .register_instance("pool".into(), worker(1), tags.clone(), None, None)
            .await
            .unwrap();
        via_b
            .register_instance("pool".into(), worker(2), tags.clone(), None, None)
            .await
            .unwrap();
        for via in [&via_a, &via_b] {
            let mut seen: Vec<Uri> = via
                .lookup_all("pool".into())
                .await
                .unwrap()
                .into_iter()
                .map(|found| found.uri)
                .collect();
            seen.sort_by_key(ToString::to_string);
            assert_eq!(seen, [worker(1), worker(2)]);
            assert_eq!(
                via.count().await.unwrap(),
                2,
                "the pool and the nameserver's own entry"
            );
        }
        let listed = via_b
            .yplookup(rpc_core::MetadataQuery::All(tags))
            .await
            .unwrap();
        assert_eq!(listed.keys().collect::<Vec<_>>(), ["pool"]);
        assert_eq!(
            via_a.lookup("Pyro.NameServer".into()).await.unwrap(),
            *a.uri()
        );
        assert_eq!(
            via_b.lookup("Pyro.NameServer".into()).await.unwrap(),
            *b.uri()
        );
        // A nameserver started later reads the whole registry.
        let c = nameserver_on(&cluster, Limits::default()).await;
        assert_eq!(
            names(port_of(&c))
                .lookup_all("pool".into())
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn owners_and_limits_hold_across_nameservers() {
        let Some(etcd) = etcd_or_skip("owners_and_limits_hold_across_nameservers") else {
            return;
        };
        let cluster = EtcdCluster::start(etcd);
        let mut limits = Limits::default();
        limits.max_registrations_per_address = 3;
        let a = nameserver_on(&cluster, limits.clone()).await;
        let b = nameserver_on(&cluster, limits).await;
        let (via_a, via_b) = (names(port_of(&a)), names(port_of(&b)));
        let owner = "the-owner-token-of-b-0123".to_owned();
        via_b
            .register_lease(
                "owned".into(),
                worker(1),
                BTreeSet::new(),
                Duration::from_secs(60),
                owner.clone(),
            )
            .await
            .unwrap();
        let intruder = "an-intruder-token-012345".to_owned();
        let refused = [
            method_error(
                via_a
                    .register_lease(
                        "owned".into(),
                        worker(2),
                        BTreeSet::new(),
                        Duration::from_secs(60),
                        intruder.clone(),
                    )
                    .await,
            ),
            method_error(
                via_a
                    .register("owned".into(), worker(2), false, BTreeSet::new())
                    .await,
            ),
            method_error(
                via_a
                    .remove(rpc_core::NameFilter::Name("owned".into()))
                    .await,
            ),
            method_error(
                via_a
                    .remove_instance("owned".into(), worker(1), Some(intruder))
                    .await,
            ),
            method_error(via_a.set_metadata("owned".into(), BTreeSet::new()).await),
        ];
        for error in refused {
            assert_eq!(error, NamingError::Owned("owned".into()));
        }
        assert_eq!(via_a.lookup("owned".into()).await.unwrap(), worker(1));
        // Its owner may renew it through the other nameserver.
        via_a
            .register_lease(
                "owned".into(),
                worker(1),
                BTreeSet::new(),
                Duration::from_secs(60),
                owner,
            )
            .await
            .unwrap();

        // One client address holds three registrations in all, whichever nameserver took
        // them (the owned one above is the first).
        via_a
            .register("second".into(), worker(3), false, BTreeSet::new())
            .await
            .unwrap();
        via_b
            .register("third".into(), worker(4), false, BTreeSet::new())
            .await
            .unwrap();
        for via in [&via_a, &via_b] {
            assert!(matches!(
                method_error(via.register("fourth".into(), worker(5), false, BTreeSet::new()).await),
                NamingError::LimitReached { setting, limit: 3 } if setting == "max_registrations_per_address"
            ));
        }
        // Two nameservers racing for the last place: one gets it.
        via_a
            .remove(rpc_core::NameFilter::Name("third".into()))
            .await
            .unwrap();
        let (first, second) = tokio::join!(
            via_a.register("race.a".into(), worker(6), false, BTreeSet::new()),
            via_b.register("race.b".into(), worker(7), false, BTreeSet::new()),
        );
        assert_eq!(
            [first.is_ok(), second.is_ok()]
                .iter()
                .filter(|ok| **ok)
                .count(),
            1,
            "{first:?} {second:?}"
        );
        assert_eq!(
            via_b.count().await.unwrap(),
            4,
            "three and the nameserver's own"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_quorum_refuses_changes_and_serves_lookups_until_the_cluster_returns() {
        let Some(etcd) = etcd_or_skip(
            "a_lost_quorum_refuses_changes_and_serves_lookups_until_the_cluster_returns",
        ) else {
            return;
        };
        let mut cluster = EtcdCluster::start(etcd);
        let a = nameserver_on(&cluster, Limits::default()).await;
        let b = nameserver_on(&cluster, Limits::default()).await;
        let (via_a, via_b) = (names(port_of(&a)), names(port_of(&b)));
        let token = "a-token-of-this-worker-01".to_owned();
        let lease = |uri: Uri| {
            let via_a = via_a.clone();
            let token = token.clone();
            async move {
                via_a
                    .register_lease(
                        "kept".into(),
                        uri,
                        BTreeSet::new(),
                        Duration::from_secs(60),
                        token,
                    )
                    .await
            }
        };
        lease(worker(1)).await.unwrap();

        // One member down: registrations, renewals and lookups go on.
        cluster.kill(0);
        via_a
            .register("after.one".into(), worker(2), false, BTreeSet::new())
            .await
            .unwrap();
        lease(worker(1)).await.unwrap();
        assert_eq!(via_b.lookup("after.one".into()).await.unwrap(), worker(2));
        assert_eq!(via_b.lookup("kept".into()).await.unwrap(), worker(1));

        // Two down: no quorum. Changes are refused, saying so; lookups are answered from
        // each nameserver's mirror.
        cluster.kill(1);
        let refused = method_error(
            via_a
                .register("after.two".into(), worker(3), false, BTreeSet::new())
                .await,
        );
        assert!(
            matches!(refused, NamingError::StoreLostQuorum(_)),
            "{refused:?}"
        );
        let refused = method_error(lease(worker(1)).await);
        assert!(
            matches!(refused, NamingError::StoreLostQuorum(_)),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("lost its quorum"), "{refused}");
        for via in [&via_a, &via_b] {
            assert_eq!(via.lookup("kept".into()).await.unwrap(), worker(1));
            assert_eq!(via.lookup("after.one".into()).await.unwrap(), worker(2));
            assert!(matches!(
                method_error(via.lookup("after.two".into()).await),
                NamingError::UnknownName(_)
            ));
        }

        // The members come back; the same nameservers take changes again.
        cluster.restart(1);
        within("a registration after the quorum returned", async {
            loop {
                match via_b
                    .register("after.return".into(), worker(4), false, BTreeSet::new())
                    .await
                {
                    Ok(()) => break,
                    Err(CallError::Method(NamingError::StoreLostQuorum(why))) => {
                        println!("not yet: {why}");
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        })
        .await;
        assert_eq!(
            via_a.lookup("after.return".into()).await.unwrap(),
            worker(4)
        );
        lease(worker(1)).await.unwrap();
        cluster.restart(0);
        via_a
            .remove(rpc_core::NameFilter::Name("after.one".into()))
            .await
            .unwrap();
        assert!(matches!(
            method_error(via_b.lookup("after.one".into()).await),
            NamingError::UnknownName(_)
        ));
    }

    #[tokio::test]
    async fn discovery_finds_either_nameserver_of_the_cluster() {
        let Some(etcd) = etcd_or_skip("discovery_finds_either_nameserver_of_the_cluster") else {
            return;
        };
        let cluster = EtcdCluster::start(etcd);
        // Both on every interface, answering discovery on one UDP port.
        let on_every_interface = |broadcast_port| {
            let mut options = Options::default();
            options.host = "0.0.0.0".into();
            options.port = 0;
            options.broadcast_port = broadcast_port;
            options.etcd = Some(etcd_options(&cluster));
            nameserver::start(options)
        };
        let a = on_every_interface(0).await.unwrap();
        let shared = a
            .discovery_addr()
            .expect("discovery runs on 0.0.0.0")
            .port();
        let b = on_every_interface(shared).await.unwrap();
        assert_eq!(b.discovery_addr().unwrap().port(), shared);
        let mut config = Config::default();
        config.nameserver.broadcast_addresses = Some(vec!["127.255.255.255".parse().unwrap()]);
        config.nameserver.broadcast_port = Some(shared);
        // Nothing listens on the nameserver port at localhost: only the broadcast can succeed.
        config.nameserver.port = Some(1);

        let found = within("discovery", rpc_core::locate_ns(&config))
            .await
            .unwrap();
        found
            .register(
                "found.by.broadcast".into(),
                worker(1),
                false,
                BTreeSet::new(),
            )
            .await
            .unwrap();
        // Whichever answered first goes; the other still answers, with the same registry.
        // (Discovery names the address that faces the client, so compare ports.)
        let port_found = |names: &NameServerProxy| match names.proxy().uri() {
            Uri::Direct {
                location: rpc_core::Location::Tcp { port, .. },
                ..
            } => *port,
            other => panic!("a nameserver at {other}"),
        };
        let (gone, left) = if port_found(&found) == port_of(&a) {
            (a, b)
        } else {
            (b, a)
        };
        gone.shutdown().await;
        let found = within("discovery", rpc_core::locate_ns(&config))
            .await
            .unwrap();
        assert_eq!(port_found(&found), port_of(&left));
        assert_eq!(
            found.lookup("found.by.broadcast".into()).await.unwrap(),
            worker(1)
        );
    }

    /// Starts a nameserver on `cluster` in a child process; returns it and its port.
    fn nameserver_process(cluster: &EtcdCluster) -> (Child, u16) {
        let mut child = spawn_role(
            "on_etcd::nameserver_role",
            ROLE,
            &cluster.endpoints().join(","),
        );
        let port = expect_said(&mut child, "PORT").parse().unwrap();
        (child, port)
    }

    #[test]
    #[ignore = "the nameserver process of the etcd tests"]
    fn nameserver_role() {
        let Ok(endpoints) = std::env::var(ROLE) else {
            panic!("run by the etcd tests with {ROLE} set");
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut options = Options::loopback(0);
            let mut etcd = EtcdOptions::new(endpoints.split(','));
            etcd.request_timeout = ETCD_TIMEOUT;
            options.etcd = Some(etcd);
            let ns = nameserver::start(options).await.unwrap();
            println!("ROLE: PORT {}", port_of(&ns));
            std::future::pending::<()>().await;
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nameserver_killed_with_sigkill_leaves_its_clients_and_leases_to_the_other() {
        let Some(etcd) = etcd_or_skip(
            "a_nameserver_killed_with_sigkill_leaves_its_clients_and_leases_to_the_other",
        ) else {
            return;
        };
        let cluster = EtcdCluster::start(etcd);
        let (mut a, a_port) = nameserver_process(&cluster);
        let b = nameserver_on(&cluster, Limits::default()).await;
        let config = config_for(&[a_port, port_of(&b)]);
        let (_daemon, calc, _) = serve_calc().await;
        let ttl = Duration::from_secs(2);
        let lease = Lease::start(&config, "calc", calc.proxy().uri().clone(), ttl)
            .await
            .unwrap();
        let by_name = calc_by_name("calc", config.clone());
        assert_eq!(by_name().add(1, 2).await.unwrap(), 3);
        let via_b = names(port_of(&b));
        let expiry = |found: rpc_core::Registration| Instant::now() + found.lease.unwrap();
        let registered_until = expiry(via_b.lookup_with_metadata("calc".into()).await.unwrap());

        a.kill().unwrap();
        a.wait().unwrap();
        // The client resolves through B on its next call.
        assert_eq!(
            within(
                "a call resolved through the other nameserver",
                by_name().add(2, 3)
            )
            .await
            .unwrap(),
            5
        );
        // The lease renews through B before its registration runs out, and never lapses.
        within("a renewal through the other nameserver", async {
            loop {
                let found = via_b.lookup_with_metadata("calc".into()).await.unwrap();
                if expiry(found) > registered_until + ttl / 4 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(lease.is_renewing());
        drop(lease);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_worker_leaves_its_name_within_its_ttl_even_without_its_nameserver() {
        let Some(etcd) = etcd_or_skip(
            "a_dead_worker_leaves_its_name_within_its_ttl_even_without_its_nameserver",
        ) else {
            return;
        };
        let cluster = EtcdCluster::start(etcd);
        let b = nameserver_on(&cluster, Limits::default()).await;
        let via_b = names(port_of(&b));
        let ttl = Duration::from_secs(2);
        let token = "the-dead-workers-token-01".to_owned();

        // Both nameservers running: the worker registered through A, then died.
        let a = nameserver_on(&cluster, Limits::default()).await;
        names(port_of(&a))
            .register_lease(
                "alive.a".into(),
                worker(1),
                BTreeSet::new(),
                ttl,
                token.clone(),
            )
            .await
            .unwrap();
        let gone = until_unknown(&via_b, "alive.a").await;
        assert!(
            gone <= ttl + Duration::from_millis(200),
            "gone after {gone:?}"
        );
        println!("with both nameservers running, a {ttl:?} lease left after {gone:?}");

        // The nameserver that took the registration killed: the lease still runs out, both
        // in B and in etcd itself (its lease, which no nameserver drives).
        let (mut a, a_port) = nameserver_process(&cluster);
        names(a_port)
            .register_lease("dead.a".into(), worker(2), BTreeSet::new(), ttl, token)
            .await
            .unwrap();
        let registered = Instant::now();
        a.kill().unwrap();
        a.wait().unwrap();
        assert_eq!(via_b.lookup("dead.a".into()).await.unwrap(), worker(2));
        until_unknown(&via_b, "dead.a").await;
        let gone = registered.elapsed();
        assert!(
            gone <= ttl + Duration::from_millis(200),
            "gone after {gone:?}"
        );
        within("etcd's lease to run out", async {
            while keys_in_etcd(&cluster).await > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let gone = registered.elapsed();
        // etcd's leases are whole seconds, checked every half second.
        assert!(
            gone <= ttl + Duration::from_secs(2),
            "etcd dropped it after {gone:?}"
        );
        println!("with its nameserver killed, etcd dropped a {ttl:?} lease after {gone:?}");
    }
}
