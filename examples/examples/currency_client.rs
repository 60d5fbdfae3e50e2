//! The currency client on its own: finds `MyWorker` through the nameserver on your network.
//!
//! Run with `cargo run -p rpc-examples --example currency_client -- [PAIR ...]`.

use clap::Parser;
use rpc_core::Config;
use rpc_examples::currency::{self, DEFAULT_PAIRS};

/// Fetch exchange rates from `MyWorker`, one after another and then all at once.
#[derive(Debug, Parser)]
struct Args {
    /// Currency pairs such as EUR/USD (default: six common pairs).
    pairs: Vec<String>,
    /// The nameserver's host (default: $RPC_NS_HOST, else broadcast, else localhost).
    #[arg(long)]
    ns_host: Option<String>,
    /// The nameserver's port (default: $RPC_NS_PORT, else 9090).
    #[arg(long)]
    ns_port: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::default();
    config.nameserver.host = args.ns_host;
    config.nameserver.port = args.ns_port;
    let pairs = if args.pairs.is_empty() {
        DEFAULT_PAIRS.iter().map(|p| (*p).to_owned()).collect()
    } else {
        args.pairs
    };
    currency::run_client(&pairs, &config).await
}
