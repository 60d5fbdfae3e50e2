//! TLS: a proxy that trusts the daemon's CA calls it; one that trusts another CA, or reaches
//! it under a name its certificate does not carry, is refused with a typed error; mutual TLS
//! refuses a client without a certificate. Every certificate is made here, by rcgen.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rpc_core::{Config, Error, Location, TlsClient, TlsServer, Uri};
use rpc_tests::{CalcProxy, serve_calc_with, within};

/// A certificate authority: its certificate (PEM) and what signs with it.
struct Authority {
    pem: String,
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    /// An authority called `name`, which tells it apart from the others.
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Authority {
            pem: certificate.pem(),
            certificate,
            key,
        }
    }

    /// A certificate for `names`, signed by this authority: its chain and key, in PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let params = CertificateParams::new(
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let key = KeyPair::generate().unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// The daemon's URI with its host replaced by `host`.
fn at_host(uri: &Uri, host: &str) -> Uri {
    let Uri::Direct {
        object,
        location: Location::Tcp { port, .. },
    } = uri
    else {
        panic!("a TCP URI: {uri}");
    };
    Uri::direct(
        object.clone(),
        Location::Tcp {
            host: host.into(),
            port: *port,
        },
    )
}

fn client(trusting: &Authority, identity: Option<&(String, String)>) -> Config {
    let identity = identity.map(|(chain, key)| (chain.as_bytes(), key.as_bytes()));
    Config::default().tls_client(Some(
        TlsClient::from_pem(trusting.pem.as_bytes(), identity).unwrap(),
    ))
}

fn tls_failure(outcome: Result<u64, Error>) -> String {
    match outcome {
        Err(Error::Tls { source, .. }) => source.to_string(),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_proxy_trusting_the_daemons_ca_calls_it_and_others_are_refused() {
    let authority = Authority::new("the deployment's CA");
    let (chain, key) = authority.issue(&["localhost"]);
    let server = TlsServer::from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
    let (_daemon, direct, _) = serve_calc_with(Config::default().tls_server(Some(server))).await;
    let by_name = at_host(direct.proxy().uri(), "localhost");

    let trusted = CalcProxy::with_config(by_name.clone(), client(&authority, None));
    assert_eq!(
        within("a call over TLS", trusted.add(2, 3)).await.unwrap(),
        5
    );

    let stranger = Authority::new("another CA");
    let untrusting = CalcProxy::with_config(by_name, client(&stranger, None));
    let reason = tls_failure(within("an untrusted daemon", untrusting.add(1, 1)).await);
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    let other_name = at_host(direct.proxy().uri(), "127.0.0.1");
    let misnamed = CalcProxy::with_config(other_name, client(&authority, None));
    let reason = tls_failure(within("a daemon under another name", misnamed.add(1, 1)).await);
    assert!(reason.contains("not valid for name"), "{reason}");

    let plain = CalcProxy::new(direct.proxy().uri().clone());
    assert!(
        within("a plain client of a TLS daemon", plain.add(1, 1))
            .await
            .is_err(),
        "a TLS daemon serves no plain client"
    );
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let authority = Authority::new("the deployment's CA");
    let (chain, key) = authority.issue(&["localhost"]);
    let clients = Authority::new("the clients' CA");
    let server = TlsServer::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        Some(clients.pem.as_bytes()),
    )
    .unwrap();
    let (_daemon, direct, _) = serve_calc_with(Config::default().tls_server(Some(server))).await;
    let uri = at_host(direct.proxy().uri(), "localhost");

    let identity = clients.issue(&["a client"]);
    let with_certificate = CalcProxy::with_config(uri.clone(), client(&authority, Some(&identity)));
    assert_eq!(
        within("a call with mutual TLS", with_certificate.add(2, 3))
            .await
            .unwrap(),
        5
    );

    let without = CalcProxy::with_config(uri.clone(), client(&authority, None));
    let error = within("a client without a certificate", without.add(1, 1))
        .await
        .unwrap_err();
    // With TLS 1.3 the client finishes its side of the handshake before the daemon checks it,
    // so the refusal arrives under the first call, as the TLS session failing.
    match &error {
        Error::ConnectionLost(rpc_core::Disconnect::Tls(source)) => {
            assert!(
                source.to_string().contains("CertificateRequired"),
                "{source}"
            );
        }
        Error::Tls { .. } => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }

    let impostor = Authority::new("an impostor's CA").issue(&["a client"]);
    let wrong = CalcProxy::with_config(uri, client(&authority, Some(&impostor)));
    assert!(
        within("a client certificate from another CA", wrong.add(1, 1))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_daemon_that_allows_it_serves_tls_and_plain_clients_on_one_port() {
    let authority = Authority::new("the deployment's CA");
    let (chain, key) = authority.issue(&["localhost"]);
    let server = TlsServer::from_pem(chain.as_bytes(), key.as_bytes(), None).unwrap();
    let config = Config::default()
        .tls_server(Some(server))
        .accept_plain_with_tls(true);
    let (_daemon, direct, _) = serve_calc_with(config).await;
    let secure = CalcProxy::with_config(
        at_host(direct.proxy().uri(), "localhost"),
        client(&authority, None),
    );
    let plain = CalcProxy::new(direct.proxy().uri().clone());
    assert_eq!(within("a TLS call", secure.add(2, 3)).await.unwrap(), 5);
    assert_eq!(within("a plain call", plain.add(4, 5)).await.unwrap(), 9);
}
