//! The currency worker on its own: registers `MyWorker` with the nameserver on your network and
//! serves until Ctrl-C.
//!
//! Run with `cargo run -p rpc-examples --example currency_worker -- [--host 0.0.0.0]`.

use clap::Parser;
use rpc_core::{Config, Daemon};
use rpc_examples::currency;

/// Serve exchange rates under the name `MyWorker`.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; `0.0.0.0` lets other machines call the worker.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
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
    let daemon = Daemon::bind(format!("{}:{}", args.host, args.port).as_str()).await?;
    currency::serve_worker(&daemon, &config).await?;
    println!("worker: serving until Ctrl-C");
    daemon.run_until(tokio::signal::ctrl_c()).await;
    Ok(())
}
