//! A nameserver with a shared secret: only clients that prove it change names; lookups stay
//! open unless they too need it. The hijack of issue 12 (re-registering a worker's name
//! without credentials, so the currency client calls the attacker) fails.

use std::time::Duration;

use nameserver::Options;
use rpc_core::{
    CallError, Config, Error, NameFilter, NameServerConfig, NameServerProxy, NamingError, Secret,
    locate_ns,
};
use rpc_tests::{CalcProxy, serve_calc, serve_calc_with, within};

const SECRET: &str = "the operators' secret, sixteen bytes at least";

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

/// A nameserver with the secret on loopback, and the configs of a client with and without it.
async fn guarded(lookups_need_auth: bool) -> (nameserver::RunningNameServer, Config, Config) {
    let mut options = Options::loopback(0);
    options.config.secret = Some(secret());
    options.lookups_need_auth = lookups_need_auth;
    let ns = nameserver::start(options).await.unwrap();
    let port = ns.daemon().local_addr().unwrap().port();
    let mut open = Config::default();
    open.nameserver = NameServerConfig::at("127.0.0.1", port);
    let trusted = open.clone().secret(Some(secret()));
    (ns, open, trusted)
}

async fn names(config: &Config) -> NameServerProxy {
    within("locating the nameserver", locate_ns(config))
        .await
        .unwrap()
}

fn refused<T: std::fmt::Debug>(outcome: Result<T, CallError<NamingError>>) {
    assert!(
        matches!(
            outcome,
            Err(CallError::Method(NamingError::NotAuthenticated))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn changes_without_the_secret_are_refused_and_lookups_stay_open() {
    let (_ns, open, trusted) = guarded(false).await;
    let (_daemon, calc, _) = serve_calc().await;
    let uri = calc.proxy().uri().clone();
    let operator = names(&trusted).await;
    operator
        .register("calc".into(), uri.clone(), false, Default::default())
        .await
        .unwrap();

    let stranger = names(&open).await;
    refused(
        stranger
            .register("other".into(), uri.clone(), false, Default::default())
            .await,
    );
    refused(
        stranger
            .register_instance("calc".into(), uri.clone(), Default::default(), None, None)
            .await,
    );
    refused(
        stranger
            .register_lease(
                "leased".into(),
                uri.clone(),
                Default::default(),
                Duration::from_secs(5),
                "an owner token of some length".into(),
            )
            .await,
    );
    refused(
        stranger
            .set_metadata("calc".into(), ["evil".to_owned()].into())
            .await,
    );
    refused(stranger.remove(NameFilter::Regex(".*".into())).await);
    refused(
        stranger
            .remove_instance("calc".into(), uri.clone(), None)
            .await,
    );
    // Lookups are open, and nothing changed.
    assert_eq!(stranger.lookup("calc".into()).await.unwrap(), uri);
    assert_eq!(
        stranger.count().await.unwrap(),
        2,
        "the nameserver's own entry and calc"
    );
    let registration = stranger.lookup_with_metadata("calc".into()).await.unwrap();
    assert!(registration.metadata.is_empty());
    assert_eq!(
        operator
            .remove(NameFilter::Name("calc".into()))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_hijack_of_a_workers_name_fails_and_callers_keep_reaching_the_worker() {
    let (_ns, open, trusted) = guarded(false).await;
    // The deployment's workers hold the secret; the attacker's daemon does not.
    let (_worker, real, worker_side) =
        serve_calc_with(Config::default().secret(Some(secret()))).await;
    let (_attacker, fake, attacker_side) = serve_calc().await;
    names(&trusted)
        .await
        .register(
            "MyWorker".into(),
            real.proxy().uri().clone(),
            false,
            Default::default(),
        )
        .await
        .unwrap();
    refused(
        names(&open)
            .await
            .register(
                "MyWorker".into(),
                fake.proxy().uri().clone(),
                false,
                Default::default(),
            )
            .await,
    );
    let by_name = CalcProxy::with_config("PYRONAME:MyWorker".parse().unwrap(), trusted.clone());
    assert_eq!(by_name.add(2, 3).await.unwrap(), 5);
    by_name.record(7).await.unwrap();
    within("the worker's record", worker_side.probe.records.wait_for(1)).await;
    assert_eq!(
        attacker_side.probe.records.get(),
        0,
        "the attacker's daemon saw a call"
    );
}

#[tokio::test]
async fn lookups_can_need_the_secret_too() {
    let (_ns, open, trusted) = guarded(true).await;
    assert!(
        names(&trusted)
            .await
            .lookup("Pyro.NameServer".into())
            .await
            .is_ok()
    );
    let error = locate_ns(&open).await.unwrap_err();
    assert!(
        matches!(&error, Error::NameServerNotFound { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("authentication failed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_with_the_secret_ignores_discovery_answers_without_its_tag() {
    // A rogue that answers every request at once, with a nameserver URI at its own address.
    let rogue = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = rogue.local_addr().unwrap().port();
    let answering = tokio::spawn(async move {
        let mut buf = [0u8; 128];
        while let Ok((_, from)) = rogue.recv_from(&mut buf).await {
            for answer in [
                "PYRO:Pyro.NameServer@127.0.0.1:1".to_owned(),
                format!("PYRO:Pyro.NameServer@127.0.0.1:1 {}", "00".repeat(32)),
            ] {
                let _ = rogue.send_to(answer.as_bytes(), from).await;
            }
        }
    });
    let mut config = Config::default().secret(Some(secret()));
    config.nameserver.broadcast_addresses = Some(vec!["127.0.0.1".parse().unwrap()]);
    config.nameserver.broadcast_port = Some(port);
    config.nameserver.broadcast_rounds = 2;
    // Nothing listens on the nameserver port at localhost either.
    config.nameserver.port = Some(1);
    let error = within("discovery", locate_ns(&config)).await.unwrap_err();
    let Error::NameServerNotFound { tried } = &error else {
        panic!("expected NameServerNotFound, got {error:?}");
    };
    assert!(
        tried.iter().any(|attempt| matches!(
            attempt,
            rpc_core::NameServerAttempt::NoAnswer { reason, .. } if reason.contains("tag")
        )),
        "{tried:?}"
    );
    answering.abort();
}

#[tokio::test]
async fn a_nameserver_with_the_secret_is_found_by_broadcast_with_a_tag_that_verifies() {
    let mut options = Options::default();
    options.host = "0.0.0.0".into();
    options.port = 0;
    options.broadcast_port = 0;
    options.config.secret = Some(secret());
    let ns = nameserver::start(options).await.unwrap();
    let discovery = ns.discovery_addr().expect("discovery runs on 0.0.0.0");
    let mut config = Config::default().secret(Some(secret()));
    config.nameserver.broadcast_addresses = Some(vec!["127.255.255.255".parse().unwrap()]);
    config.nameserver.broadcast_port = Some(discovery.port());
    // Nothing listens on the nameserver port at localhost, so only the broadcast can succeed.
    config.nameserver.port = Some(1);
    let names = within("discovery", locate_ns(&config)).await.unwrap();
    names.ping().await.unwrap();
}
