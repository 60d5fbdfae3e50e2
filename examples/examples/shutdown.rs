//! Graceful shutdown: the daemon stops accepting, lets the call in flight finish, then returns.
//!
//! Run with `cargo run -p rpc-examples --example shutdown`.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Daemon, service};
use tokio::sync::{Notify, oneshot};

/// A job that takes a while.
#[service]
pub trait Job {
    /// Works for 300 ms.
    async fn work(&self) -> String;
}

struct SlowJob {
    started: Arc<Notify>,
}

impl Job for SlowJob {
    async fn work(&self) -> String {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        "work done".into()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let daemon = Daemon::bind("127.0.0.1:0").await?;
    let started = Arc::new(Notify::new());
    let uri = daemon.register(JobSkeleton::new(SlowJob {
        started: started.clone(),
    }))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(daemon.run_until(stopped));

    let job = JobProxy::new(uri);
    let call = tokio::spawn(async move { job.work().await });
    started.notified().await;
    println!("a call is in flight; asking the daemon to stop");
    stop.send(()).ok();

    println!("the call in flight still gets its reply: {}", call.await??);
    serving.await?;
    println!("run_until returned: the daemon is down");
    Ok(())
}
