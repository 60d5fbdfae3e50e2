//! Discovery a client can verify, across hosts: a rogue responder on the client's network
//! answers every discovery request at once, naming a nameserver of its own, while the real
//! nameserver (with the deployment's secret) is on another host. A client with the secret
//! finds the real one every time; the rogue's answers, which it cannot sign, are ignored.
//!
//! Three Linux network namespaces on a bridge (10.204.0.0/24, which exists only inside them):
//! h1 the nameserver, h2 the rogue, h3 the client. Each role is this test binary, run again
//! inside its namespace with `RPC_DISCOVERY_ROLE` set to the role and the secret. Skips where
//! namespaces cannot be created, except under CI, where it fails.

use rpc_core::{Config, Secret};
use rpc_tests::netns::{self, Namespaces, say};

const ROLE: &str = "RPC_DISCOVERY_ROLE";
const SUBNET_BROADCAST: &str = "10.204.0.255";
/// Discoveries the client makes: fewer than the nameserver answers one host within a second
/// (its per-source limit is 8), so every one of them is answered.
const LOOKUPS: usize = 6;

#[test]
fn a_rogue_responder_that_answers_first_is_ignored_by_a_client_with_the_secret() {
    let network = match Namespaces::hosts_on_a_bridge("ds", "10.204.0", 3) {
        Ok(network) => network,
        Err(reason) => {
            return netns::skip(
                "a_rogue_responder_that_answers_first_is_ignored_by_a_client_with_the_secret",
                &reason,
            );
        }
    };
    // A fresh secret per run, handed to the roles through their environment.
    let secret = format!(
        "{:032x}",
        std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 1u8)
    );
    let spawn = |role: &str, host: &str| {
        network.spawn(host, "discovery_role", ROLE, &format!("{role} {secret}"))
    };
    let mut nameserver = spawn("nameserver", "h1");
    nameserver.expect("READY");
    let mut rogue = spawn("rogue", "h2");
    rogue.expect("READY");
    let mut client = spawn("client", "h3");
    let found = client.expect("FOUND");
    assert_eq!(
        found,
        format!("FOUND {LOOKUPS} of {LOOKUPS} at PYRO:Pyro.NameServer@10.204.0.1:9090"),
        "every lookup found the real nameserver"
    );
    rogue.send("count");
    let answered = rogue.expect("ANSWERED");
    let count: usize = answered["ANSWERED ".len()..].parse().unwrap();
    assert!(
        count >= LOOKUPS,
        "the rogue heard and answered every discovery: {answered}"
    );
}

/// What each role does inside its namespace. Run only by the test above, never on its own.
#[test]
#[ignore = "a role that the discovery test runs inside a network namespace"]
fn discovery_role() {
    let setting = std::env::var(ROLE).expect("the role and the secret");
    let (role, secret) = setting.split_once(' ').expect("`role secret`");
    let secret = Secret::new(secret).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match role {
        "nameserver" => runtime.block_on(run_nameserver(secret)),
        "rogue" => runtime.block_on(run_rogue()),
        "client" => runtime.block_on(run_client(secret)),
        other => panic!("unknown role {other}"),
    }
}

async fn run_nameserver(secret: Secret) {
    let mut options = nameserver::Options::default();
    options.host = "0.0.0.0".into();
    options.config.secret = Some(secret);
    let _ns = nameserver::start(options).await.unwrap();
    say("READY");
    wait_for_stdin_to_close().await;
}

/// Answers every discovery request at once, with a nameserver URI at its own address (which
/// passes the client's same-host check), without a tag and with a forged one.
async fn run_rogue() {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:9091").await.unwrap();
    say("READY");
    let answering = async {
        let mut answered = 0usize;
        let mut buf = [0u8; 128];
        let mut asked = tokio::task::spawn_blocking(netns::hear);
        loop {
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let Ok((_, from)) = received else { continue };
                    let uri = "PYRO:Pyro.NameServer@10.204.0.2:9090";
                    for answer in [uri.to_owned(), format!("{uri} {}", "ab".repeat(32))] {
                        let _ = socket.send_to(answer.as_bytes(), from).await;
                    }
                    answered += 1;
                }
                line = &mut asked => {
                    assert_eq!(line.unwrap(), "count");
                    say(&format!("ANSWERED {answered}"));
                    return;
                }
            }
        }
    };
    answering.await;
    wait_for_stdin_to_close().await;
}

async fn run_client(secret: Secret) {
    let mut config = Config::default().secret(Some(secret));
    config.nameserver.broadcast_addresses = Some(vec![SUBNET_BROADCAST.parse().unwrap()]);
    let mut found = Vec::new();
    for _ in 0..LOOKUPS {
        // Each lookup discovers afresh: nothing is cached between them.
        let names = rpc_core::locate_ns(&config).await.unwrap();
        names.ping().await.unwrap();
        found.push(names.proxy().uri().to_string());
    }
    let real = "PYRO:Pyro.NameServer@10.204.0.1:9090";
    let at_real = found.iter().filter(|uri| *uri == real).count();
    say(&format!("FOUND {at_real} of {LOOKUPS} at {real}"));
    wait_for_stdin_to_close().await;
}

async fn wait_for_stdin_to_close() {
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
}
