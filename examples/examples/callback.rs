//! Callbacks: the client hosts a small daemon of its own and passes a proxy to its listener;
//! the server calls back through it while it works.
//!
//! Run with `cargo run -p rpc-examples --example callback`.

use rpc_core::{Daemon, service};

/// Hosted by the client: receives progress reports.
#[service]
pub trait ProgressListener {
    /// Called by the server as the job advances.
    async fn progress(&self, step: u32, of: u32);
}

/// Hosted by the server: runs jobs, reporting to a listener the caller passes in.
#[service]
pub trait JobRunner {
    /// Runs a job of `steps` steps; the listener hears of each.
    async fn run(&self, steps: u32, listener: ProgressListenerProxy) -> String;
}

struct Printer;

impl ProgressListener for Printer {
    async fn progress(&self, step: u32, of: u32) {
        println!("  client: the server reports step {step} of {of}");
    }
}

struct Runner;

impl JobRunner for Runner {
    async fn run(&self, steps: u32, listener: ProgressListenerProxy) -> String {
        for step in 1..=steps {
            if let Err(error) = listener.progress(step, steps).await {
                return format!("gave up at step {step}: {error}");
            }
        }
        format!("job of {steps} steps done")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = Daemon::bind("127.0.0.1:0").await?;
    let runner_uri = server.register_as("jobs", JobRunnerSkeleton::new(Runner))?;

    // The client's own daemon, hosting the callback object.
    let client_daemon = Daemon::bind("127.0.0.1:0").await?;
    let listener_uri = client_daemon.register(ProgressListenerSkeleton::new(Printer))?;
    println!("client: my listener is at {listener_uri}");

    let runner = JobRunnerProxy::new(runner_uri);
    let outcome = runner
        .run(3, ProgressListenerProxy::new(listener_uri))
        .await?;
    println!("client: {outcome}");

    client_daemon.shutdown().await;
    server.shutdown().await;
    Ok(())
}
