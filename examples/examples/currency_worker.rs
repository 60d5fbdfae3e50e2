//! The currency worker on its own: registers `MyWorker` with the nameserver on your network and
//! serves until Ctrl-C.
//!
//! Run with `cargo run -p rpc-examples --example currency_worker -- [--host 0.0.0.0]`.

use clap::Parser;
use rpc_core::Daemon;
use rpc_examples::currency::{self, NameServerArgs};

/// Serve exchange rates under the name `MyWorker`.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; `0.0.0.0` lets other machines call the worker.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[command(flatten)]
    nameserver: NameServerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.nameserver.config()?;
    let daemon = Daemon::bind_with(
        format!("{}:{}", args.host, args.port).as_str(),
        config.clone(),
    )
    .await?;
    let lease = currency::serve_worker(&daemon, &config).await?;
    println!("worker: serving until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    // Leave the nameserver before stopping, so no client is sent to a worker that is gone.
    lease.remove().await?;
    daemon.shutdown().await;
    Ok(())
}
