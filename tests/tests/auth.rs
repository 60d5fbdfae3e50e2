//! The shared secret: the right one works; a wrong or missing one, on either side, is refused
//! with a typed error; a recorded opening replayed on a new connection proves nothing.

use std::net::SocketAddr;

use rpc_core::protocol::{Flags, Kind, Message};
use rpc_core::{Config, Daemon, Error, Format, RemoteError, Secret, service};
use rpc_tests::{CalcProxy, serve_calc_with, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn secret(text: &str) -> Secret {
    Secret::new(text).unwrap()
}

fn with_secret(text: &str) -> Config {
    Config::default().secret(Some(secret(text)))
}

const OURS: &str = "the secret of this deployment";

/// A calc daemon configured by `daemon`, and a proxy for it configured by `client`.
async fn calc(daemon: Config, client: Config) -> (Daemon, CalcProxy) {
    let (daemon, direct, _) = serve_calc_with(daemon).await;
    let uri = direct.proxy().uri().clone();
    (daemon, CalcProxy::with_config(uri, client))
}

#[tokio::test]
async fn the_right_secret_is_accepted() {
    let (_daemon, calc) = calc(with_secret(OURS), with_secret(OURS)).await;
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    assert_eq!(calc.add(4, 5).await.unwrap(), 9);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_on_either_side_is_refused_with_a_typed_error() {
    for (daemon, client, says) in [
        (
            with_secret(OURS),
            with_secret("another deployment's secret"),
            "could not prove",
        ),
        (with_secret(OURS), Config::default(), "did not authenticate"),
        (Config::default(), with_secret(OURS), "has no secret"),
    ] {
        let (_daemon, calc) = calc(daemon, client).await;
        let error = within("a refused call", calc.add(1, 1)).await.unwrap_err();
        match &error {
            Error::AuthenticationFailed(reason) => {
                assert!(reason.contains(says), "{reason}");
                assert!(
                    !reason.contains(OURS),
                    "the reason names the secret: {reason}"
                );
            }
            other => panic!("expected AuthenticationFailed, got {other:?}"),
        }
        assert!(
            !error.is_communication(),
            "a refusal is not a transient failure"
        );
    }
}

/// Says whether its caller proved the secret.
#[service]
trait Whoami {
    async fn authenticated(&self) -> bool;
}

struct Who;

impl Whoami for Who {
    async fn authenticated(&self) -> bool {
        rpc_core::caller_authenticated()
    }
}

#[tokio::test]
async fn a_daemon_that_allows_it_serves_clients_without_the_secret_and_tells_them_apart() {
    let config = with_secret(OURS).allow_unauthenticated(true);
    let daemon = Daemon::bind_with("127.0.0.1:0", config).await.unwrap();
    let uri = daemon.register(WhoamiSkeleton::new(Who)).unwrap();
    let open = WhoamiProxy::new(uri.clone());
    let trusted = WhoamiProxy::with_config(uri.clone(), with_secret(OURS));
    let wrong = WhoamiProxy::with_config(uri, with_secret("another deployment's secret"));
    assert!(!open.authenticated().await.unwrap());
    assert!(trusted.authenticated().await.unwrap());
    assert!(matches!(
        wrong.authenticated().await,
        Err(Error::AuthenticationFailed(_))
    ));
}

/// Relays one connection to `daemon`, recording what the client sent.
async fn recording_relay(daemon: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let relay = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect(daemon).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut upstream_read, mut upstream_write) = upstream.into_split();
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
        });
        let mut recorded = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    recorded.extend_from_slice(&buf[..n]);
                    if upstream_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        back.abort();
        recorded
    });
    (address, relay)
}

#[tokio::test]
async fn a_recorded_opening_replayed_on_a_new_connection_is_refused() {
    let (daemon, direct, _) = serve_calc_with(with_secret(OURS)).await;
    let daemon_address = daemon.local_addr().unwrap();
    let (relay, recording) = recording_relay(daemon_address).await;
    let mut through_relay = direct.proxy().uri().clone();
    if let rpc_core::Uri::Direct { location, .. } = &mut through_relay {
        *location = rpc_core::Location::Tcp {
            host: "127.0.0.1".into(),
            port: relay.port(),
        };
    }
    let calc = CalcProxy::with_config(through_relay, with_secret(OURS));
    assert_eq!(calc.add(20, 22).await.unwrap(), 42);
    drop(calc);
    let recorded = within("the recording", recording).await.unwrap();
    assert!(
        recorded.len() > 100,
        "auth, proof, handshake and a call were recorded"
    );

    // The attacker, without the secret, replays every byte the client sent.
    let mut replay = TcpStream::connect(daemon_address).await.unwrap();
    replay.write_all(&recorded).await.unwrap();
    let mut answer = Vec::new();
    within("the daemon closing", replay.read_to_end(&mut answer))
        .await
        .unwrap();
    let mut answer = bytes::BytesMut::from(&answer[..]);
    let challenge = Message::decode(&mut answer, usize::MAX).unwrap().unwrap();
    assert_eq!(
        challenge.header.kind,
        Kind::AuthChallenge,
        "a fresh challenge"
    );
    let close = Message::decode(&mut answer, usize::MAX).unwrap().unwrap();
    assert_eq!(close.header.kind, Kind::Close);
    assert!(close.header.flags.contains(Flags::FAILURE));
    let reason: RemoteError = Format::Bincode.decode(&close.body).unwrap();
    assert!(
        matches!(&reason, RemoteError::AuthenticationFailed { reason } if reason.contains("proof")),
        "{reason:?}"
    );
    assert!(
        answer.is_empty(),
        "no reply to the replayed call: {answer:?}"
    );
}
