//! `Reads`: linearizable reads of the version key, shared by the lookups that wait at once.
//!
//! A lookup needs a read of the version key that starts after the lookup arrived; one read
//! serves every lookup that arrived before it started. So reads go in rounds, one at a time:
//! a lookup that arrives while a round is out waits for the next, which starts when that one
//! ends and serves every lookup that queued meanwhile. Under load each lookup waits at most
//! two reads, and etcd sees one read per round instead of one per lookup. Rounds run in a
//! task of their own, so a lookup whose client leaves does not leave the others waiting.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::members::Members;
use super::{Failure, lock};

/// The outcome of a round: the version key's mod revision, or why it could not be read.
type Outcome = Result<i64, Arc<Failure>>;

#[derive(Debug, Default)]
struct Rounds {
    /// Rounds started so far; the one numbered `started` may still be out.
    started: u64,
    /// Whether one is out now.
    out: bool,
    /// Whether a lookup waits for a round after the one out.
    queued: bool,
}

pub(super) struct Reads {
    members: Members,
    key: Vec<u8>,
    rounds: Mutex<Rounds>,
    /// The last round that ended (0: none yet), and what it read.
    ended: watch::Sender<(u64, Outcome)>,
}

impl Reads {
    pub(super) fn new(members: Members, key: Vec<u8>) -> Arc<Reads> {
        Arc::new(Reads {
            members,
            key,
            rounds: Mutex::new(Rounds::default()),
            ended: watch::Sender::new((0, Ok(0))),
        })
    }

    /// The version key's mod revision, read after this call began (one round over the
    /// members at most).
    pub(super) async fn version(self: &Arc<Self>) -> Outcome {
        let wanted = {
            let mut rounds = lock(&self.rounds);
            if rounds.out {
                rounds.queued = true;
                rounds.started + 1
            } else {
                rounds.started += 1;
                rounds.out = true;
                tokio::spawn(self.clone().run(rounds.started));
                rounds.started
            }
        };
        let mut ended = self.ended.subscribe();
        let seen = ended.wait_for(|(round, _)| *round >= wanted).await;
        match seen {
            Ok(seen) => seen.1.clone(),
            // The sender lives in `self`, which this call holds, so this does not happen.
            Err(_) => Err(Arc::new(Failure::Cancelled("the reads stopped".into()))),
        }
    }

    /// Runs round `round`, then the next while lookups queued for it.
    async fn run(self: Arc<Self>, mut round: u64) {
        loop {
            let read = read_version(&self.members, &self.key, false)
                .await
                .map_err(Arc::new);
            self.ended.send_modify(|ended| *ended = (round, read));
            let mut rounds = lock(&self.rounds);
            if !rounds.queued {
                rounds.out = false;
                return;
            }
            rounds.queued = false;
            rounds.started += 1;
            round = rounds.started;
        }
    }
}

/// The version key's mod revision (0 while there is none), by a linearizable read: waiting
/// out a leader's election if `patient`, else within one round over the members.
pub(super) async fn read_version(
    members: &Members,
    key: &[u8],
    patient: bool,
) -> Result<i64, Failure> {
    let get = |mut client: etcd_client::Client| {
        let key = key.to_vec();
        async move { client.get(key, None).await }
    };
    let current = if patient {
        members.request(get).await?
    } else {
        members.request_once(get).await?
    };
    Ok(current.kvs().first().map_or(0, |kv| kv.mod_revision()))
}
