//! The three instance modes side by side: which instance serves each call.
//!
//! `single` builds one instance for everyone, `session` one per client connection, `percall`
//! one per call. Run with `cargo run -p rpc-examples --example instance_modes`.

use rpc_core::{Daemon, InstanceMode};
use rpc_examples::{GreeterProxy, GreeterSkeleton, NumberedGreeter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let daemon = Daemon::bind("127.0.0.1:0").await?;
    for (id, mode) in [
        ("single", InstanceMode::Single),
        ("session", InstanceMode::Session),
        ("percall", InstanceMode::PerCall),
    ] {
        let uri =
            daemon.register_factory(id, mode, || GreeterSkeleton::new(NumberedGreeter::new()))?;
        println!("{mode:?}: two clients, two calls each, at {uri}");
        for client in ["client A", "client B"] {
            let greeter = GreeterProxy::new(uri.clone());
            for _ in 0..2 {
                println!("  {client}: {}", greeter.greet(client.into()).await?);
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}
