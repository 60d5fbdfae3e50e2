//! The deadline of the call a daemon is serving, so that calls the method makes in turn get no
//! more time than is left of it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    /// When the call being served on this task must be done.
    static CALL_DEADLINE: Instant;
}

/// Polls `future` once with `deadline` visible to the proxy calls it makes.
pub(crate) fn poll_within<F: Future + Unpin>(
    deadline: Instant,
    future: &mut F,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    CALL_DEADLINE.sync_scope(deadline, || Pin::new(future).poll(cx))
}

/// Runs `future` with `deadline` visible to the proxy calls it makes, and gives up on it at
/// the deadline (`None`).
pub(crate) async fn run_within<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    tokio::time::timeout_at(deadline, CALL_DEADLINE.scope(deadline, future))
        .await
        .ok()
}

/// How long a call may take: `timeout`, or less if the call being served has less left.
pub(crate) fn limit(timeout: Duration) -> Duration {
    match CALL_DEADLINE.try_with(|deadline| deadline.saturating_duration_since(Instant::now())) {
        Ok(left) => left.min(timeout),
        Err(_) => timeout,
    }
}

/// What is left of the deadline of the call being served on this task, if any.
///
/// Proxies apply it by themselves; this is for methods that want to know, for example to give
/// up on work that cannot finish in time.
pub fn remaining() -> Option<Duration> {
    CALL_DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_gets_no_more_than_what_is_left() {
        assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(remaining(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let finished = run_within(deadline, async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(3));
            assert_eq!(limit(Duration::from_secs(1)), Duration::from_secs(1));
            assert_eq!(remaining(), Some(Duration::from_secs(3)));
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(1));
        })
        .await;
        assert_eq!(finished, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_is_given_up_at_its_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        let finished = run_within(deadline, tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(finished, None);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_call_done_at_its_first_poll_sees_its_deadline() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = run_within(deadline, async { remaining() }).await;
        assert!(
            left.flatten()
                .is_some_and(|left| left <= Duration::from_secs(5))
        );
    }
}
