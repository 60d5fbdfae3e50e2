//! What the call a daemon is serving knows about itself while its method runs: its deadline,
//! so that calls the method makes in turn get no more time than is left of it, and the
//! address of the client that made it, and whether that client proved the shared secret.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// The call being served on a task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallScope {
    /// When it must be done, if ever.
    pub(crate) deadline: Option<Instant>,
    /// The IP address of its client; `None` over a Unix socket.
    pub(crate) caller: Option<IpAddr>,
    /// Whether its client proved the daemon's shared secret.
    pub(crate) authenticated: bool,
}

tokio::task_local! {
    static CALL: CallScope;
}

impl CallScope {
    /// Polls `future` once within this scope.
    pub(crate) fn poll<F: Future + Unpin>(
        self,
        future: &mut F,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        CALL.sync_scope(self, || Pin::new(future).poll(cx))
    }

    /// Runs `future` within this scope, giving up on it at the deadline (`None`).
    pub(crate) async fn run<F: Future>(self, future: F) -> Option<F::Output> {
        let scoped = CALL.scope(self, future);
        match self.deadline {
            Some(at) => tokio::time::timeout_at(at, scoped).await.ok(),
            None => Some(scoped.await),
        }
    }
}

/// How long a call may take: `timeout`, or less if the call being served has less left.
pub(crate) fn limit(timeout: Duration) -> Duration {
    match remaining() {
        Some(left) => left.min(timeout),
        None => timeout,
    }
}

/// What is left of the deadline of the call being served on this task, if any.
///
/// Proxies apply it by themselves; this is for methods that want to know, for example to give
/// up on work that cannot finish in time.
pub fn remaining() -> Option<Duration> {
    CALL.try_with(|call| call.deadline)
        .ok()
        .flatten()
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// The IP address of the client whose call is being served on this task: `None` outside a
/// call, or for a client on a Unix socket.
///
/// ```
/// // Outside a call served by a daemon there is no caller.
/// assert_eq!(rpc_core::caller_address(), None);
/// ```
pub fn caller_address() -> Option<IpAddr> {
    CALL.try_with(|call| call.caller).ok().flatten()
}

/// Whether the client whose call is being served on this task proved the daemon's shared
/// [`Secret`](crate::Secret): `false` outside a call, and for every client of a daemon without
/// a secret. A daemon with a secret serves clients without it only when
/// [`Config::allow_unauthenticated`](crate::Config::allow_unauthenticated) is set; this tells
/// its methods which is which.
///
/// ```
/// assert!(!rpc_core::caller_authenticated());
/// ```
pub fn caller_authenticated() -> bool {
    CALL.try_with(|call| call.authenticated).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_gets_no_more_than_what_is_left() {
        assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(remaining(), None);
        let scope = CallScope {
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            caller: Some(IpAddr::from([192, 0, 2, 1])),
            authenticated: true,
        };
        let finished = scope
            .run(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(3));
                assert_eq!(limit(Duration::from_secs(1)), Duration::from_secs(1));
                assert_eq!(remaining(), Some(Duration::from_secs(3)));
                assert_eq!(caller_address(), Some(IpAddr::from([192, 0, 2, 1])));
                assert!(caller_authenticated());
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(1));
            })
            .await;
        assert_eq!(finished, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_is_given_up_at_its_deadline() {
        let started = Instant::now();
        let scope = CallScope {
            deadline: Some(started + Duration::from_secs(5)),
            caller: None,
            authenticated: false,
        };
        let finished = scope.run(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(finished, None);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_call_done_at_its_first_poll_sees_its_deadline() {
        let scope = CallScope {
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            caller: None,
            authenticated: false,
        };
        let left = scope.run(async { remaining() }).await;
        assert!(
            left.flatten()
                .is_some_and(|left| left <= Duration::from_secs(5))
        );
    }

    #[tokio::test]
    async fn a_call_without_a_deadline_still_knows_its_caller() {
        let caller = Some(IpAddr::from([192, 0, 2, 9]));
        let scope = CallScope {
            deadline: None,
            caller,
            authenticated: false,
        };
        let seen = scope.run(async { (caller_address(), remaining()) }).await;
        assert_eq!(seen, Some((caller, None)));
        assert_eq!(caller_address(), None);
    }
}
