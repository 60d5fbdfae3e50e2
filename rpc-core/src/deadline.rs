//! The deadline of the call a daemon is serving, so that calls the method makes in turn get no
//! more time than is left of it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    /// When the call being served on this task must be done.
    static CALL_DEADLINE: Instant;
}

/// Runs `future` with `deadline` visible to the proxy calls it makes.
pub(crate) async fn scope<F: Future>(deadline: Instant, future: F) -> F::Output {
    CALL_DEADLINE.scope(deadline, future).await
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
        scope(deadline, async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(limit(Duration::from_secs(30)), Duration::from_secs(3));
            assert_eq!(limit(Duration::from_secs(1)), Duration::from_secs(1));
            assert_eq!(remaining(), Some(Duration::from_secs(3)));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(limit(Duration::from_secs(30)), Duration::ZERO);
        })
        .await;
    }
}
