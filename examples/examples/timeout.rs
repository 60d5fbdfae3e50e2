//! A slow method meets a short timeout: the call fails with `Error::Timeout`, and the daemon
//! drops the work.
//!
//! Run with `cargo run -p rpc-examples --example timeout`.

use std::time::Duration;

use rpc_core::{Daemon, Error};
use rpc_examples::{GreeterProxy, GreeterSkeleton, NumberedGreeter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let daemon = Daemon::bind("127.0.0.1:0").await?;
    let uri = daemon.register(GreeterSkeleton::new(NumberedGreeter::new()))?;
    let greeter = GreeterProxy::new(uri).with_timeout(Duration::from_millis(100));

    match greeter.slow_greet("patient".into(), 2_000).await {
        Err(Error::Timeout(after)) => println!("timed out after {after:?}, as expected"),
        other => anyhow::bail!("expected a timeout, got {other:?}"),
    }
    // The connection is still fine for calls that fit the timeout.
    println!("{}", greeter.slow_greet("quick".into(), 10).await?);
    daemon.shutdown().await;
    Ok(())
}
