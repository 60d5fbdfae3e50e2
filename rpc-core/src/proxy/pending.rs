//! Calls in flight on one connection: request id -> the call's outcome once known, the task to
//! wake then, and the call's deadline.
//!
//! # A call's life
//!
//! ```text
//!                     ┌──reply routed────────> replied ───┐
//!   insert ──> waiting ──deadline passed───> timed out ──┼──taken by its caller──> removed
//!                 │   └──connection lost───> lost ───────┘                          ^
//!                 └──caller stops waiting (future dropped): cancelled ─────────────┘
//! ```
//!
//! Whoever reads a reply off the socket hands it in with [`Pending::complete`]; the caller
//! takes it with [`Pending::poll_reply`]. An entry is removed in one place,
//! [`Pending::remove`], when its caller's future ends, however it ends; a call removed while
//! still waiting was cancelled, and the daemon is told.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Disconnect, Error};
use crate::protocol::{Message, ProtocolError, RemoteError};

/// Why a connection ended; turned into an [`Error`] for each call it fails.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The socket closed or failed.
    Lost(Disconnect),
    /// The daemon broke the protocol, or sent a frame over our limit.
    Protocol(ProtocolError),
    /// The daemon refused the connection or its handshake (an unknown object, a full
    /// daemon), before reading any call.
    Refused(RemoteError),
}

impl Ended {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Ended::Lost(reason) => Error::ConnectionLost(reason.clone()),
            Ended::Protocol(error) => Error::Protocol(error.clone()),
            Ended::Refused(RemoteError::UnknownObject { object }) => {
                Error::UnknownObject(object.clone())
            }
            Ended::Refused(RemoteError::AuthenticationFailed { reason }) => {
                Error::AuthenticationFailed(reason.clone())
            }
            Ended::Refused(refusal) => Error::Refused(refusal.clone()),
        }
    }
}

/// The calls waiting for a reply on one connection, and their deadlines. Once the connection
/// has ended, every waiting call has failed and no new one is accepted, so no call can wait
/// forever.
///
/// A call's reply is left in its entry and the call woken; the call takes it from there
/// ([`poll_reply`](Pending::poll_reply)).
///
/// Deadlines are kept here rather than in a timer per call: one task per connection sleeps
/// until the earliest of them ([`next_deadline`](Pending::next_deadline)) and fails the calls
/// whose deadline passed ([`expire`](Pending::expire)). A call whose deadline is later than
/// that task's wake-up, as with a proxy's uniform timeout, costs no timer and no wake-up.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    state: Mutex<State>,
    /// Wakes the deadline task when a call comes with a deadline earlier than it knows of.
    earlier_deadline: Notify,
    /// Whether `State::ended` is set, readable without the lock (every call asks).
    has_ended: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<u64, Waiting, BuildHasherDefault<IdHasher>>,
    ended: Option<Ended>,
    /// When the deadline task wakes next, if it waits for a deadline.
    watched: Option<Instant>,
}

/// Where a call stands.
#[derive(Debug)]
enum Stage {
    /// No outcome yet.
    Waiting,
    /// The reply, or why there is none, for the caller to take.
    Settled(Result<Message, Error>),
    /// The caller took its outcome.
    Taken,
}

#[derive(Debug)]
struct Waiting {
    stage: Stage,
    /// The task to wake when the outcome is known.
    waker: Option<Waker>,
    /// `None` for a timeout too long to be a point in time.
    deadline: Option<Instant>,
    timeout: Duration,
    cancellable: bool,
}

impl Waiting {
    fn is_waiting(&self) -> bool {
        matches!(self.stage, Stage::Waiting)
    }

    /// Settles the call with `outcome`, if it still waits; the waker to wake, if any.
    fn settle(&mut self, outcome: Result<Message, Error>) -> Option<Waker> {
        if !self.is_waiting() {
            return None;
        }
        self.stage = Stage::Settled(outcome);
        self.waker.take()
    }
}

/// Hashes the proxy's own request ids: a counter, never chosen by the peer, so a
/// multiplicative hash spreads them well and no defence against crafted keys is needed.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte) ^ self.0.rotate_left(8));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: the golden ratio's odd multiplier mixes the bits upwards.
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Pending {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock is never held across a panic point, but recover anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call that waits for a reply for at most `timeout`; a `cancellable` one is
    /// reported by [`expire`](Pending::expire) so the daemon can be told to stop it. Returns
    /// how many other calls are in flight.
    ///
    /// # Errors
    ///
    /// The connection's end, if it has ended.
    pub(crate) fn insert(
        &self,
        request_id: u64,
        timeout: Duration,
        cancellable: bool,
    ) -> Result<usize, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.state();
        if let Some(ended) = &state.ended {
            return Err(ended.to_error());
        }
        let others = state.calls.len();
        let earlier = deadline.filter(|at| state.watched.is_none_or(|watched| *at < watched));
        if earlier.is_some() {
            state.watched = earlier;
        }
        state.calls.insert(
            request_id,
            Waiting {
                stage: Stage::Waiting,
                waker: None,
                deadline,
                timeout,
                cancellable,
            },
        );
        drop(state);
        if earlier.is_some() {
            self.earlier_deadline.notify_one();
        }
        Ok(others)
    }

    /// The outcome of the call `request_id` once it is known, else `Pending`, and the task in
    /// `cx` is woken when it is.
    pub(crate) fn poll_reply(
        &self,
        request_id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Message, Error>> {
        let mut state = self.state();
        let Some(call) = state.calls.get_mut(&request_id) else {
            unreachable!("a call is polled only between its insert and its removal");
        };
        match std::mem::replace(&mut call.stage, Stage::Taken) {
            Stage::Settled(outcome) => return Poll::Ready(outcome),
            Stage::Taken => unreachable!("a call's outcome is taken once: its caller returns"),
            Stage::Waiting => call.stage = Stage::Waiting,
        }
        match &mut call.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Delivers a reply to the call with its request id; false if no call waits for it (it
    /// was cancelled, or never existed). The caller waiting for `reading_for` delivers it
    /// while reading, and so is not woken for its own reply: it looks next.
    pub(crate) fn complete(&self, reply: Message, reading_for: Option<u64>) -> bool {
        let request_id = reply.header.request_id;
        let waker = {
            let mut state = self.state();
            match state.calls.get_mut(&request_id) {
                Some(call) if call.is_waiting() => call.settle(Ok(reply)),
                _ => return false,
            }
        };
        if let Some(waker) = waker.filter(|_| reading_for != Some(request_id)) {
            waker.wake();
        }
        true
    }

    /// Forgets a call whose caller's future ended, however it ended; true if it was still
    /// waiting for an outcome (so it was cancelled).
    pub(crate) fn remove(&self, request_id: u64) -> bool {
        self.state()
            .calls
            .remove(&request_id)
            .is_some_and(|call| call.is_waiting())
    }

    /// The earliest deadline of the waiting calls, which the caller promises to wait for;
    /// a call with an earlier one wakes [`deadline_changed`](Pending::deadline_changed).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut state = self.state();
        state.watched = state
            .calls
            .values()
            .filter(|call| call.is_waiting())
            .filter_map(|call| call.deadline)
            .min();
        state.watched
    }

    /// Completes when a call came with a deadline earlier than the last
    /// [`next_deadline`](Pending::next_deadline), or at once if one came since.
    pub(crate) async fn deadline_changed(&self) {
        self.earlier_deadline.notified().await;
    }

    /// Fails every waiting call whose deadline is not after `now` with [`Error::Timeout`];
    /// returns the request ids of those that were cancellable.
    pub(crate) fn expire(&self, now: Instant) -> Vec<u64> {
        let mut cancellable = Vec::new();
        let mut wakers = Vec::new();
        {
            let mut state = self.state();
            for (id, call) in &mut state.calls {
                if call.is_waiting() && call.deadline.is_some_and(|at| at <= now) {
                    if call.cancellable {
                        cancellable.push(*id);
                    }
                    let timeout = call.timeout;
                    wakers.extend(call.settle(Err(Error::Timeout(timeout))));
                }
            }
        }
        wakers.into_iter().for_each(Waker::wake);
        cancellable
    }

    /// Marks the connection ended and fails every waiting call.
    pub(crate) fn end(&self, ended: Ended) {
        let wakers: Vec<Waker> = {
            let mut state = self.state();
            if state.ended.is_some() {
                return;
            }
            state.ended = Some(ended.clone());
            self.has_ended.store(true, Ordering::Release);
            state
                .calls
                .values_mut()
                .filter_map(|call| call.settle(Err(ended.to_error())))
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.has_ended.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::protocol::{Flags, Kind};

    const LONG: Duration = Duration::from_secs(60);

    fn reply(id: u64) -> Message {
        let frame = Message::encode(Kind::Reply, Flags::NONE, id, b"", 0).unwrap();
        Message::decode(&mut bytes::BytesMut::from(&frame[..]), 0)
            .unwrap()
            .unwrap()
    }

    /// The outcome of call `id`, as its caller awaits it.
    async fn outcome(pending: &Pending, id: u64) -> Result<Message, Error> {
        std::future::poll_fn(|cx| pending.poll_reply(id, cx)).await
    }

    #[tokio::test]
    async fn replies_reach_their_own_call() {
        let pending = Pending::default();
        pending.insert(1, LONG, false).unwrap();
        pending.insert(2, LONG, false).unwrap();
        assert!(
            outcome(&pending, 1).now_or_never().is_none(),
            "no reply yet"
        );
        assert!(pending.complete(reply(2), None));
        assert!(!pending.complete(reply(3), None));
        assert!(!pending.complete(reply(2), None), "a call gets one reply");
        assert!(pending.complete(reply(1), None));
        assert_eq!(outcome(&pending, 1).await.unwrap().header.request_id, 1);
        assert_eq!(outcome(&pending, 2).await.unwrap().header.request_id, 2);
        assert!(
            !pending.remove(1) && !pending.remove(2),
            "a call whose reply was taken is not cancelled when it ends"
        );
    }

    #[tokio::test]
    async fn a_waiting_call_is_woken_by_its_reply() {
        let pending = std::sync::Arc::new(Pending::default());
        pending.insert(7, LONG, false).unwrap();
        let waiting = {
            let pending = pending.clone();
            tokio::spawn(async move { outcome(&pending, 7).await })
        };
        // Let the call register its waker before the reply comes.
        tokio::task::yield_now().await;
        assert!(pending.complete(reply(7), None));
        let delivered = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting call was not woken");
        assert_eq!(delivered.unwrap().unwrap().header.request_id, 7);
    }

    #[tokio::test]
    async fn ending_fails_every_call_and_refuses_new_ones() {
        let pending = Pending::default();
        pending.insert(1, LONG, false).unwrap();
        pending.end(Ended::Lost(Disconnect::Closed));
        assert!(matches!(
            outcome(&pending, 1).await,
            Err(Error::ConnectionLost(Disconnect::Closed))
        ));
        assert!(matches!(
            pending.insert(2, LONG, false),
            Err(Error::ConnectionLost(_))
        ));
        assert!(pending.has_ended());
    }

    #[test]
    fn removed_calls_get_no_reply() {
        let pending = Pending::default();
        pending.insert(1, LONG, false).unwrap();
        assert!(pending.remove(1), "it was waiting");
        assert!(!pending.remove(1));
        assert!(!pending.complete(reply(1), None));
        pending.insert(2, LONG, false).unwrap();
        assert!(pending.complete(reply(2), None));
        assert!(!pending.remove(2), "it had its reply: nothing to cancel");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_their_deadline_time_out_and_the_rest_wait() {
        let pending = Pending::default();
        let started = Instant::now();
        pending.insert(1, Duration::from_secs(1), true).unwrap();
        pending.insert(2, Duration::from_secs(5), false).unwrap();
        pending.insert(3, Duration::from_secs(1), false).unwrap();
        pending.insert(4, Duration::MAX, true).unwrap();
        assert_eq!(
            pending.next_deadline(),
            Some(started + Duration::from_secs(1))
        );

        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            pending.expire(Instant::now()),
            vec![1],
            "only call 1 is cancellable"
        );
        for expired in [1, 3] {
            assert!(matches!(
                outcome(&pending, expired).await,
                Err(Error::Timeout(timeout)) if timeout == Duration::from_secs(1)
            ));
        }
        assert_eq!(
            pending.next_deadline(),
            Some(started + Duration::from_secs(5))
        );
        assert!(pending.complete(reply(2), None));
        assert_eq!(outcome(&pending, 2).await.unwrap().header.request_id, 2);
        // A timeout too long to be a point in time never expires.
        assert_eq!(pending.next_deadline(), None);
        assert!(pending.expire(Instant::now() + LONG).is_empty());
        assert!(pending.remove(4));
    }

    /// Counts its wake-ups.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_caller_reading_its_own_reply_is_not_woken_for_it() {
        let pending = Pending::default();
        let counter = std::sync::Arc::new(Counter(Default::default()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for id in [1, 2] {
            pending.insert(id, LONG, false).unwrap();
            assert!(pending.poll_reply(id, &mut cx).is_pending());
        }
        assert!(pending.complete(reply(1), Some(1)));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "its own reply");
        assert!(pending.complete(reply(2), Some(1)));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "another's reply");
        for id in [1, 2] {
            assert!(matches!(
                pending.poll_reply(id, &mut cx),
                Poll::Ready(Ok(_))
            ));
            assert!(!pending.remove(id));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_earlier_deadline_wakes_the_deadline_task() {
        let pending = Pending::default();
        pending.insert(1, Duration::from_secs(10), false).unwrap();
        assert!(
            pending.deadline_changed().now_or_never().is_some(),
            "the first deadline is news"
        );
        pending.next_deadline();
        pending.insert(2, Duration::from_secs(20), false).unwrap();
        assert!(pending.deadline_changed().now_or_never().is_none());
        pending.insert(3, Duration::from_secs(1), false).unwrap();
        assert!(pending.deadline_changed().now_or_never().is_some());
    }
}
