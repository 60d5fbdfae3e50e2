//! A blocking client: plain `fn main`, no async runtime of its own, yet many calls at once.
//!
//! The daemon runs on a runtime in a background thread, as another process would host it.
//! Run with `cargo run -p rpc-examples --example blocking`.

use std::time::Instant;

use rpc_core::Daemon;
use rpc_examples::{GreeterBlockingProxy, GreeterSkeleton, NumberedGreeter};

fn main() -> anyhow::Result<()> {
    let server = tokio::runtime::Runtime::new()?;
    let daemon = server.block_on(Daemon::bind("127.0.0.1:0"))?;
    let uri = daemon.register(GreeterSkeleton::new(NumberedGreeter::new()))?;

    let greeter = GreeterBlockingProxy::new(uri);
    println!("{}", greeter.greet("blocking world".into())?);

    // Start five slow calls, then collect them: they run concurrently.
    let started = Instant::now();
    let pending: Vec<_> = (1..=5)
        .map(|i| greeter.start_slow_greet(format!("caller {i}"), 200))
        .collect();
    for call in pending {
        println!("{}", call.wait()?);
    }
    println!("five 200 ms calls took {:?} together", started.elapsed());

    drop(daemon);
    Ok(())
}
