//! Calls in flight on one connection: request id -> the sender that completes the call, and
//! the call's deadline.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::Error;
use crate::protocol::{Message, ProtocolError, RemoteError};

/// Why a connection ended; turned into an [`Error`] for each call it fails.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The socket closed or failed.
    Lost(String),
    /// The daemon broke the protocol, or sent a frame over our limit.
    Protocol(ProtocolError),
    /// The daemon refused the handshake (an unknown object, say).
    Refused(RemoteError),
}

impl Ended {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Ended::Lost(reason) => Error::ConnectionLost(reason.clone()),
            Ended::Protocol(error) => Error::Protocol(error.clone()),
            Ended::Refused(refusal) => {
                Error::from_remote(refusal.clone(), std::time::Duration::ZERO)
            }
        }
    }
}

type Deliver = oneshot::Sender<Result<Message, Error>>;

/// Where a waiting call receives its reply, or the error that ended its connection.
pub(crate) type Reply = oneshot::Receiver<Result<Message, Error>>;

/// The calls waiting for a reply on one connection, and their deadlines. Once the connection
/// has ended, every waiting call has failed and no new one is accepted, so no call can wait
/// forever.
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
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<u64, Waiting, BuildHasherDefault<IdHasher>>,
    ended: Option<Ended>,
    /// When the deadline task wakes next, if it waits for a deadline.
    watched: Option<Instant>,
}

#[derive(Debug)]
struct Waiting {
    deliver: Deliver,
    /// `None` for a timeout too long to be a point in time.
    deadline: Option<Instant>,
    timeout: Duration,
    cancellable: bool,
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
    /// reported by [`expire`](Pending::expire) so the daemon can be told to stop it.
    ///
    /// # Errors
    ///
    /// The connection's end, if it has ended.
    pub(crate) fn insert(
        &self,
        request_id: u64,
        timeout: Duration,
        cancellable: bool,
    ) -> Result<Reply, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.state();
        if let Some(ended) = &state.ended {
            return Err(ended.to_error());
        }
        let earlier = deadline.filter(|at| state.watched.is_none_or(|watched| *at < watched));
        if earlier.is_some() {
            state.watched = earlier;
        }
        let (deliver, reply) = oneshot::channel();
        state.calls.insert(
            request_id,
            Waiting {
                deliver,
                deadline,
                timeout,
                cancellable,
            },
        );
        drop(state);
        if earlier.is_some() {
            self.earlier_deadline.notify_one();
        }
        Ok(reply)
    }

    /// Delivers a reply; false if no call waits for it (it was cancelled, or never existed).
    pub(crate) fn complete(&self, request_id: u64, reply: Message) -> bool {
        let waiting = self.state().calls.remove(&request_id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.deliver.send(Ok(reply));
                true
            }
            None => false,
        }
    }

    /// Forgets a call whose caller stopped waiting; true if it was still waiting.
    pub(crate) fn remove(&self, request_id: u64) -> bool {
        self.state().calls.remove(&request_id).is_some()
    }

    /// The earliest deadline of the waiting calls, which the caller promises to wait for;
    /// a call with an earlier one wakes [`deadline_changed`](Pending::deadline_changed).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut state = self.state();
        state.watched = state.calls.values().filter_map(|call| call.deadline).min();
        state.watched
    }

    /// Completes when a call came with a deadline earlier than the last
    /// [`next_deadline`](Pending::next_deadline), or at once if one came since.
    pub(crate) async fn deadline_changed(&self) {
        self.earlier_deadline.notified().await;
    }

    /// Fails every call whose deadline is not after `now` with [`Error::Timeout`]; returns
    /// the request ids of those that were cancellable.
    pub(crate) fn expire(&self, now: Instant) -> Vec<u64> {
        let expired: Vec<(u64, Waiting)> = {
            let mut state = self.state();
            let ids: Vec<u64> = state
                .calls
                .iter()
                .filter(|(_, call)| call.deadline.is_some_and(|at| at <= now))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| state.calls.remove(&id).map(|call| (id, call)))
                .collect()
        };
        let mut cancellable = Vec::new();
        for (id, call) in expired {
            if call.cancellable {
                cancellable.push(id);
            }
            let _ = call.deliver.send(Err(Error::Timeout(call.timeout)));
        }
        cancellable
    }

    /// Marks the connection ended and fails every waiting call.
    pub(crate) fn end(&self, ended: Ended) {
        let calls = {
            let mut state = self.state();
            if state.ended.is_some() {
                return;
            }
            state.ended = Some(ended.clone());
            std::mem::take(&mut state.calls)
        };
        for (_, call) in calls {
            let _ = call.deliver.send(Err(ended.to_error()));
        }
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.state().ended.is_some()
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

    #[tokio::test]
    async fn replies_reach_their_own_call() {
        let pending = Pending::default();
        let first = pending.insert(1, LONG, false).unwrap();
        let second = pending.insert(2, LONG, false).unwrap();
        assert!(pending.complete(2, reply(2)));
        assert!(!pending.complete(3, reply(3)));
        assert!(pending.complete(1, reply(1)));
        assert_eq!(first.await.unwrap().unwrap().header.request_id, 1);
        assert_eq!(second.await.unwrap().unwrap().header.request_id, 2);
        assert!(
            !pending.remove(1) && !pending.remove(2),
            "completed calls are gone"
        );
    }

    #[tokio::test]
    async fn ending_fails_every_call_and_refuses_new_ones() {
        let pending = Pending::default();
        let waiting = pending.insert(1, LONG, false).unwrap();
        pending.end(Ended::Lost("gone".into()));
        assert!(
            matches!(waiting.await.unwrap(), Err(Error::ConnectionLost(reason)) if reason == "gone")
        );
        assert!(matches!(
            pending.insert(2, LONG, false),
            Err(Error::ConnectionLost(_))
        ));
        assert!(pending.has_ended());
    }

    #[test]
    fn removed_calls_get_no_reply() {
        let pending = Pending::default();
        let _rx = pending.insert(1, LONG, false).unwrap();
        assert!(pending.remove(1));
        assert!(!pending.remove(1));
        assert!(!pending.complete(1, reply(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_their_deadline_time_out_and_the_rest_wait() {
        let pending = Pending::default();
        let started = Instant::now();
        let short_cancellable = pending.insert(1, Duration::from_secs(1), true).unwrap();
        let long = pending.insert(2, Duration::from_secs(5), false).unwrap();
        let short = pending.insert(3, Duration::from_secs(1), false).unwrap();
        let unbounded = pending.insert(4, Duration::MAX, true).unwrap();
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
        for expired in [short_cancellable, short] {
            assert!(matches!(
                expired.await.unwrap(),
                Err(Error::Timeout(timeout)) if timeout == Duration::from_secs(1)
            ));
        }
        assert_eq!(
            pending.next_deadline(),
            Some(started + Duration::from_secs(5))
        );
        assert!(pending.complete(2, reply(2)));
        assert_eq!(long.await.unwrap().unwrap().header.request_id, 2);
        // A timeout too long to be a point in time never expires.
        assert_eq!(pending.next_deadline(), None);
        assert!(pending.expire(Instant::now() + LONG).is_empty());
        assert!(pending.remove(4));
        drop(unbounded);
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_earlier_deadline_wakes_the_deadline_task() {
        let pending = Pending::default();
        let _first = pending.insert(1, Duration::from_secs(10), false).unwrap();
        assert!(
            pending.deadline_changed().now_or_never().is_some(),
            "the first deadline is news"
        );
        pending.next_deadline();
        let _later = pending.insert(2, Duration::from_secs(20), false).unwrap();
        assert!(pending.deadline_changed().now_or_never().is_none());
        let _earlier = pending.insert(3, Duration::from_secs(1), false).unwrap();
        assert!(pending.deadline_changed().now_or_never().is_some());
    }
}
