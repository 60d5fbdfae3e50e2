//! Proxies travel: a client passes a proxy to an object of its own, and the server calls back.

use rpc_core::service;
use rpc_tests::{spawn_daemon, within};
use tokio::sync::mpsc;

/// What the client hosts.
#[service]
pub trait Listener {
    /// Receives a progress report.
    async fn progress(&self, percent: u8) -> String;
}

/// What the server hosts.
#[service]
pub trait Job {
    /// Runs a job, reporting progress to `listener`; returns the listener's acknowledgements.
    async fn run(&self, listener: ListenerProxy) -> Vec<String>;
    /// Hands out a proxy to another object of the server's.
    async fn helper(&self) -> JobProxy;
}

struct Reporter(mpsc::UnboundedSender<u8>);

impl Listener for Reporter {
    async fn progress(&self, percent: u8) -> String {
        let _ = self.0.send(percent);
        format!("got {percent}%")
    }
}

struct Worker {
    helper: JobProxy,
}

impl Job for Worker {
    async fn run(&self, listener: ListenerProxy) -> Vec<String> {
        let mut acks = Vec::new();
        for percent in [0, 50, 100] {
            acks.push(listener.progress(percent).await.expect("calling back"));
        }
        acks
    }

    async fn helper(&self) -> JobProxy {
        self.helper.clone()
    }
}

#[tokio::test]
async fn the_server_calls_back_through_a_proxy_it_was_given() {
    let server = spawn_daemon().await;
    let helper_uri = server.uri_for("helper");
    let job_uri = server
        .register_as(
            "job",
            JobSkeleton::new(Worker {
                helper: JobProxy::new(helper_uri.clone()),
            }),
        )
        .unwrap();
    server
        .register_as(
            "helper",
            JobSkeleton::new(Worker {
                helper: JobProxy::new(helper_uri),
            }),
        )
        .unwrap();

    let client = spawn_daemon().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener_uri = client
        .register(ListenerSkeleton::new(Reporter(tx)))
        .unwrap();

    let job = JobProxy::new(job_uri);
    let acks = within("the job", job.run(ListenerProxy::new(listener_uri)))
        .await
        .unwrap();
    assert_eq!(acks, ["got 0%", "got 50%", "got 100%"]);
    let mut seen = Vec::new();
    while let Ok(percent) = rx.try_recv() {
        seen.push(percent);
    }
    assert_eq!(seen, [0, 50, 100]);

    // A returned proxy arrives ready to call.
    let helper = job.helper().await.unwrap();
    assert_eq!(helper.proxy().uri().object(), Some("helper"));
    let (tx, _rx) = mpsc::unbounded_channel();
    let again = client
        .register(ListenerSkeleton::new(Reporter(tx)))
        .unwrap();
    assert_eq!(
        helper.run(ListenerProxy::new(again)).await.unwrap().len(),
        3
    );
}
