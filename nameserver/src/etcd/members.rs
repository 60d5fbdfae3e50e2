//! `Members`: the etcd cluster as a nameserver reaches it: one client per member, requests to
//! the member that last answered, and on to the next when it cannot answer.
//!
//! etcd-client can spread requests over several endpoints itself, but it keeps sending some
//! to a member that is down, and those fail: a nameserver would refuse a registration while
//! two members of three serve. Failing over here, member by member, is what keeps one dead
//! member invisible to clients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use super::{Failure, within};

/// The pause after every member failed once, doubling up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_millis(400);

#[derive(Clone)]
pub(super) struct Members {
    clients: Vec<Client>,
    current: std::sync::Arc<AtomicUsize>,
    timeout: Duration,
}

impl Members {
    /// Clients for each of `endpoints`; no member need be up yet (they connect on first use).
    pub(super) async fn connect(
        endpoints: &[String],
        timeout: Duration,
    ) -> Result<Members, etcd_client::Error> {
        let options = ConnectOptions::new()
            // A member cut off from the leader refuses at once instead of hanging.
            .with_require_leader(true)
            .with_connect_timeout(timeout)
            .with_keep_alive(timeout, timeout);
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            clients.push(Client::connect([endpoint], Some(options.clone())).await?);
        }
        if clients.is_empty() {
            return Err(etcd_client::Error::InvalidArgs(
                "no etcd endpoint given".into(),
            ));
        }
        Ok(Members {
            clients,
            current: std::sync::Arc::default(),
            timeout,
        })
    }

    /// The client of the member that last answered.
    pub(super) fn current(&self) -> Client {
        self.clients[self.current.load(Ordering::Relaxed) % self.clients.len()].clone()
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `request` against the member that last answered, then against each other in
    /// turn while the one asked cannot answer (down, cut off from the leader, electing one,
    /// or silent), round after round with a short pause, until one answers or the timeout
    /// has passed; returns the answer, or the last failure. A leader's election takes about
    /// a second, and a request that arrives during one waits it out.
    ///
    /// Every request we make is safe to repeat: changes compare the version they expect, so
    /// one that did commit on a member that then went silent fails its compare when repeated.
    pub(super) async fn request<T, F, R>(&self, request: R) -> Result<T, Failure>
    where
        R: FnMut(Client) -> F,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.ask(request, usize::MAX).await
    }

    /// As [`request`](Self::request), but one round over the members at most: for a read
    /// that has an answer of its own to fall back on.
    pub(super) async fn request_once<T, F, R>(&self, request: R) -> Result<T, Failure>
    where
        R: FnMut(Client) -> F,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.ask(request, self.clients.len()).await
    }

    async fn ask<T, F, R>(&self, mut request: R, attempts: usize) -> Result<T, Failure>
    where
        R: FnMut(Client) -> F,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let deadline = started + self.timeout;
        // One silent member must leave time to ask the others.
        let per_attempt = (self.timeout / 3).max(Duration::from_millis(500));
        let first = self.current.load(Ordering::Relaxed);
        let mut pause = FIRST_PAUSE;
        let mut last = Failure::Timeout(self.timeout);
        for attempt in 0..attempts {
            let n = (first + attempt) % self.clients.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match within(per_attempt.min(left), request(self.clients[n].clone())).await {
                Ok(answer) => {
                    self.current.store(n, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(failure) if failure.lost_quorum() => last = failure,
                Err(failure) => return Err(failure),
            }
            if (attempt + 1) % self.clients.len() == 0 && attempt + 1 < attempts {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
        Err(match last {
            // Silent to the end: say for how long in all, not the last attempt's share.
            Failure::Timeout(_) => Failure::Timeout(self.timeout.min(started.elapsed())),
            other => other,
        })
    }
}
