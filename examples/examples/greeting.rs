//! A daemon and a proxy in one process: register an object, call it through its URI.
//!
//! Run with `cargo run -p rpc-examples --example greeting`.

use rpc_core::Daemon;
use rpc_examples::{GreeterProxy, GreeterSkeleton, NumberedGreeter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let daemon = Daemon::bind("127.0.0.1:0").await?;
    let uri = daemon.register_as(
        "example.greeter",
        GreeterSkeleton::new(NumberedGreeter::new()),
    )?;
    println!("serving {uri}");

    // A client needs nothing but the URI text.
    let greeter = GreeterProxy::new(uri.to_string().parse()?);
    println!("{}", greeter.greet("world".into()).await?);
    println!("{}", greeter.greet("again".into()).await?);

    daemon.shutdown().await;
    Ok(())
}
