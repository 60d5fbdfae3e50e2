//! Calls in flight on one connection: request id -> the sender that completes the call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use tokio::sync::oneshot;

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

/// The calls waiting for a reply on one connection. Once the connection has ended, every
/// waiting call has failed and no new one is accepted, so no call can wait forever.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<u64, Deliver, BuildHasherDefault<IdHasher>>,
    ended: Option<Ended>,
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

    /// Registers a call that waits for a reply.
    ///
    /// # Errors
    ///
    /// The connection's end, if it has ended.
    pub(crate) fn insert(&self, request_id: u64) -> Result<Reply, Error> {
        let mut state = self.state();
        if let Some(ended) = &state.ended {
            return Err(ended.to_error());
        }
        let (tx, rx) = oneshot::channel();
        state.calls.insert(request_id, tx);
        Ok(rx)
    }

    /// Delivers a reply; false if no call waits for it (it was cancelled, or never existed).
    pub(crate) fn complete(&self, request_id: u64, reply: Message) -> bool {
        let waiting = self.state().calls.remove(&request_id);
        match waiting {
            Some(tx) => {
                let _ = tx.send(Ok(reply));
                true
            }
            None => false,
        }
    }

    /// Forgets a call whose caller stopped waiting; true if it was still waiting.
    pub(crate) fn remove(&self, request_id: u64) -> bool {
        self.state().calls.remove(&request_id).is_some()
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
        for (_, tx) in calls {
            let _ = tx.send(Err(ended.to_error()));
        }
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.state().ended.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Flags, Kind};

    fn reply(id: u64) -> Message {
        let frame = Message::encode(Kind::Reply, Flags::NONE, id, b"", 0).unwrap();
        Message::decode(&mut bytes::BytesMut::from(&frame[..]), 0)
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn replies_reach_their_own_call() {
        let pending = Pending::default();
        let first = pending.insert(1).unwrap();
        let second = pending.insert(2).unwrap();
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
        let waiting = pending.insert(1).unwrap();
        pending.end(Ended::Lost("gone".into()));
        assert!(
            matches!(waiting.await.unwrap(), Err(Error::ConnectionLost(reason)) if reason == "gone")
        );
        assert!(matches!(pending.insert(2), Err(Error::ConnectionLost(_))));
        assert!(pending.has_ended());
    }

    #[test]
    fn removed_calls_get_no_reply() {
        let pending = Pending::default();
        let _rx = pending.insert(1).unwrap();
        assert!(pending.remove(1));
        assert!(!pending.remove(1));
        assert!(!pending.complete(1, reply(1)));
    }
}
