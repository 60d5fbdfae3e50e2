//! The currency demo in one command: an embedded nameserver, the worker and the client, in one
//! process, on loopback. The same parts run separately as `nameserver serve`,
//! `currency_worker` and `currency_client` (see the README).
//!
//! Run with `cargo run -p rpc-examples --example currency [PAIR ...]`. With `RPC_SECRET` (or
//! `RPC_SECRET_FILE`) set, all three parts use it as the deployment's shared secret.

use rpc_core::{Config, Daemon, NameServerConfig, Secret};
use rpc_examples::currency::{self, DEFAULT_PAIRS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pairs: Vec<String> = std::env::args().skip(1).collect();
    let pairs = if pairs.is_empty() {
        DEFAULT_PAIRS.iter().map(|p| (*p).to_owned()).collect()
    } else {
        pairs
    };

    let secret = Secret::from_env()?;
    println!(
        "shared secret: {}",
        if secret.is_some() {
            "on (from the environment)"
        } else {
            "off (set RPC_SECRET to turn it on)"
        }
    );
    let mut options = nameserver::Options::loopback(0);
    options.config.secret = secret.clone();
    let ns = nameserver::start(options).await?;
    println!("nameserver: running at {}", ns.uri());
    let ns_port = ns.daemon().local_addr().expect("a TCP nameserver").port();
    let mut config = Config::default().secret(secret);
    config.nameserver = NameServerConfig::at("127.0.0.1", ns_port);

    let worker = Daemon::bind_with("127.0.0.1:0", config.clone()).await?;
    let lease = currency::serve_worker(&worker, &config).await?;

    currency::run_client(&pairs, &config).await?;

    lease.remove().await?;
    worker.shutdown().await;
    ns.shutdown().await;
    Ok(())
}
