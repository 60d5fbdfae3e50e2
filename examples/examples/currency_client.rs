//! The currency client on its own: finds `MyWorker` through the nameserver on your network.
//!
//! Run with `cargo run -p rpc-examples --example currency_client -- [PAIR ...]`.

use clap::Parser;
use rpc_examples::currency::{self, DEFAULT_PAIRS, NameServerArgs};

/// Fetch exchange rates from `MyWorker`, one after another and then all at once.
#[derive(Debug, Parser)]
struct Args {
    /// Currency pairs such as EUR/USD (default: six common pairs).
    pairs: Vec<String>,
    #[command(flatten)]
    nameserver: NameServerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.nameserver.config()?;
    let pairs = if args.pairs.is_empty() {
        DEFAULT_PAIRS.iter().map(|p| (*p).to_owned()).collect()
    } else {
        args.pairs
    };
    currency::run_client(&pairs, &config).await
}
