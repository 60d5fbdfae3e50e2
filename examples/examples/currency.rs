//! The currency demo in one command: an embedded nameserver, the worker and the client, in one
//! process, on loopback. The same parts run separately as `nameserver serve`,
//! `currency_worker` and `currency_client` (see the README).
//!
//! Run with `cargo run -p rpc-examples --example currency [PAIR ...]`.

use rpc_core::{Config, Daemon, NameServerConfig};
use rpc_examples::currency::{self, DEFAULT_PAIRS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pairs: Vec<String> = std::env::args().skip(1).collect();
    let pairs = if pairs.is_empty() {
        DEFAULT_PAIRS.iter().map(|p| (*p).to_owned()).collect()
    } else {
        pairs
    };

    let ns = nameserver::start(nameserver::Options::loopback(0)).await?;
    println!("nameserver: running at {}", ns.uri());
    let ns_port = ns.daemon().local_addr().expect("a TCP nameserver").port();
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", ns_port);

    let worker = Daemon::bind("127.0.0.1:0").await?;
    let lease = currency::serve_worker(&worker, &config).await?;

    currency::run_client(&pairs, &config).await?;

    lease.remove().await?;
    worker.shutdown().await;
    ns.shutdown().await;
    Ok(())
}
