//! The registry on etcd: several nameservers serve one registry, kept in an etcd cluster, so
//! that any of them may die (and any minority of etcd's members) while names stay served and
//! leases keep running out on time.
//!
//! Each nameserver keeps the whole registry in memory, a mirror of etcd's, fed by one watch
//! (`etcd/follow.rs`), and applies the same rules as an embedded nameserver, through the same
//! [`Registry`]. What a client can observe:
//!
//! - **Reads are linearizable while etcd has a quorum.** Before a lookup, list or count the
//!   nameserver reads the version key that every change writes (a linearizable read) and
//!   waits until its mirror has seen that write: a lookup through any nameserver sees every
//!   change that any nameserver acknowledged before the lookup was sent.
//! - **Without a quorum, reads are answered from the mirror**, as it was when etcd was last
//!   reachable, and changes are refused with [`NamingError::StoreLostQuorum`]. Nothing can be
//!   committed without a quorum, so the mirror lacks only what was committed in the moments
//!   before; leases still run out on time, by each record's expiry. A read asks each member
//!   once at most before it falls back: members that are down or have no leader refuse at
//!   once, and a silent one costs a third of the request timeout.
//! - **Changes are compare-and-swap.** A change is checked against the mirror by the
//!   registry's rules (owners, limits), then written in one etcd transaction that succeeds
//!   only if no other change was committed since that mirror's version (a version key every
//!   change writes). If one was, the mirror catches up and the change is checked again, so
//!   rules hold across nameservers exactly as in one.
//! - **Leases are etcd leases.** A registration with a time to live is written under an etcd
//!   lease of that many seconds (rounded up), so it goes even if every nameserver is dead. Each
//!   nameserver also drops it at its recorded expiry, so none serves it past its time.
//!
//! The keys are laid out as `etcd/layout.rs` says: `{prefix}names/{name}\0{uri}` per
//! instance, and `{prefix}version`.

mod follow;
mod layout;
mod members;
mod plan;
mod reads;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, ResponseHeader, Txn, TxnOp};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use self::follow::Follower;
use self::layout::Layout;
use self::members::Members;
use self::plan::{LeaseFor, Plan, Write};
use self::reads::Reads;
use self::view::View;
use crate::registry::Registry;
use crate::store::{Clocks, StoreError};
use rpc_core::NamingError;

/// The prefix the registry's keys go under by default.
pub const DEFAULT_ETCD_PREFIX: &str = "rpc-nameserver/";

/// How long one request to etcd may take by default, failing over from member to member,
/// before it counts as lost quorum: long enough to wait out a leader's election.
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a change is checked again after other nameservers' changes got in first.
const MAX_ATTEMPTS: usize = 16;

/// etcd refuses a transaction of more than 128 operations (`--max-txn-ops`) or about 1.5 MiB
/// (`--max-request-bytes`); one write is the version key.
const MAX_TXN_WRITES: usize = 120;
const MAX_TXN_BYTES: usize = 1 << 20;

/// How to reach the etcd cluster a registry lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// The client URLs of the cluster's members (`http://127.0.0.1:2379`, ...); requests are
    /// spread over those that answer.
    pub endpoints: Vec<String>,
    /// The prefix of every key; nameservers with the same prefix share a registry. Default
    /// [`DEFAULT_ETCD_PREFIX`].
    pub prefix: String,
    /// How long one request may take, tried on one member after another, before the
    /// nameserver gives up on it: a change then fails with [`NamingError::StoreLostQuorum`], a
    /// read is answered from the mirror (after asking each member once). Default
    /// [`DEFAULT_ETCD_TIMEOUT`].
    pub request_timeout: Duration,
}

impl EtcdOptions {
    /// The cluster at `endpoints`, with the default prefix and timeout.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdOptions {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: DEFAULT_ETCD_PREFIX.to_owned(),
            request_timeout: DEFAULT_ETCD_TIMEOUT,
        }
    }
}

/// Why a request to etcd failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd cancelled the watch: {0}")]
    Cancelled(String),
}

impl Failure {
    /// Whether it says the cluster cannot commit: no leader, no member reachable, no answer.
    fn lost_quorum(&self) -> bool {
        match self {
            Failure::Timeout(_) | Failure::Cancelled(_) => true,
            Failure::Etcd(etcd_client::Error::TransportError(_)) => true,
            // Unavailable: a member down, or electing a leader. Cancelled: the connection to
            // a member closed under the request.
            Failure::Etcd(etcd_client::Error::GRpcStatus(status)) => {
                matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) || status.message().contains("no leader")
                    || status.message().contains("timed out")
            }
            Failure::Etcd(_) => false,
        }
    }

    fn naming(self) -> NamingError {
        if self.lost_quorum() {
            NamingError::StoreLostQuorum(self.to_string())
        } else {
            NamingError::StoreFailed(self.to_string())
        }
    }
}

/// `request`, failing with [`Failure::Timeout`] after `timeout`.
async fn within<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// Neither lock is held across a panic midway through a change, so a poisoned one still holds
/// sound data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a commit failed.
enum Refused {
    /// Another change got in first (or a lease ran out under it): catch up and check again.
    Conflict,
    Failed(Failure),
}

/// A nameserver's link to the registry in etcd: its mirror, and the writes it makes.
pub(crate) struct EtcdRegistry {
    members: Members,
    reads: Arc<Reads>,
    layout: Layout,
    endpoints: Vec<String>,
    /// Locked after the registry, never before.
    view: Arc<Mutex<View>>,
    applied: watch::Receiver<i64>,
    wake: Arc<Notify>,
    /// One change at a time from this nameserver: they would only conflict with each other.
    changing: tokio::sync::Mutex<()>,
    /// Whether the last read was answered from the mirror without catching up.
    stale: AtomicBool,
    follower: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.layout.prefix())
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl EtcdRegistry {
    /// Connects to the cluster, reads the registry into `registry` (which holds only the
    /// nameserver's own entry), and starts following it.
    pub(crate) async fn connect(
        options: &EtcdOptions,
        registry: Arc<Mutex<Registry>>,
    ) -> Result<EtcdRegistry, StoreError> {
        let members = Members::connect(&options.endpoints, options.request_timeout)
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        let template = {
            let mut template = lock(&registry).clone();
            template.forget_changes();
            template
        };
        let (applied_tx, applied) = watch::channel(0);
        let view = Arc::new(Mutex::new(View::default()));
        let wake = Arc::new(Notify::new());
        let layout = Layout::new(&options.prefix);
        let follower = Follower {
            members: members.clone(),
            layout: layout.clone(),
            view: view.clone(),
            registry,
            template,
            applied: applied_tx,
            wake: wake.clone(),
        };
        let revision = follower
            .reload()
            .await
            .map_err(|failure| StoreError::Backend(Box::new(failure)))?;
        Ok(EtcdRegistry {
            reads: Reads::new(members.clone(), layout.version_key()),
            members,
            layout,
            endpoints: options.endpoints.clone(),
            view,
            applied,
            wake,
            changing: tokio::sync::Mutex::new(()),
            stale: AtomicBool::new(false),
            follower: tokio::spawn(follower.run(revision)),
        })
    }

    /// Waits until the mirror shows every change etcd committed before now, waiting out a
    /// leader's election if one is under way.
    ///
    /// Every change writes the version key, so the mirror is current once it has seen the
    /// version key's latest write: a linearizable read of that key says which it is. (The
    /// watch's progress reports would also say, but etcd 3.4 can send one before the events
    /// it vouches for.)
    async fn catch_up(&self) -> Result<(), Failure> {
        let version = reads::read_version(&self.members, &self.layout.version_key(), true).await?;
        self.wait_applied(version).await
    }

    /// Waits until the mirror has applied `revision`.
    async fn wait_applied(&self, revision: i64) -> Result<(), Failure> {
        let mut applied = self.applied.clone();
        if *applied.borrow() >= revision {
            return Ok(());
        }
        // A follower pausing between attempts to read etcd again tries at once.
        self.wake.notify_one();
        let timeout = self.members.timeout();
        match tokio::time::timeout(timeout, applied.wait_for(|at| *at >= revision)).await {
            Ok(Ok(_)) => Ok(()),
            // The follower only stops with the nameserver.
            Ok(Err(_)) => Err(Failure::Cancelled("the nameserver is stopping".into())),
            Err(_) => Err(Failure::Timeout(timeout)),
        }
    }

    /// Before a read: catches the mirror up, asking each member once at most, in a read shared
    /// with the lookups that wait at the same time (see [`Reads`]). A read that cannot catch
    /// up is answered from the mirror as it is.
    pub(crate) async fn before_read(&self) {
        let caught_up = match self.reads.version().await {
            Ok(version) => self.wait_applied(version).await.map_err(Arc::new),
            Err(failure) => Err(failure),
        };
        let was_stale = self.stale.swap(caught_up.is_err(), Ordering::Relaxed);
        match caught_up {
            Ok(()) if was_stale => {
                tracing::info!(target: "nameserver", "etcd answers again; reads are linearizable again");
            }
            Err(failure) if !was_stale => {
                tracing::warn!(target: "nameserver", %failure, "etcd cannot be read linearizably; reads are answered from this nameserver's mirror");
            }
            _ => {}
        }
    }

    /// Makes `change` on the registry in etcd: checks it against an up-to-date mirror, then
    /// commits what it changed if no other change got in first, and otherwise checks it
    /// again. Answers once the mirror shows it.
    pub(crate) async fn change<T>(
        &self,
        registry: &Mutex<Registry>,
        change: impl Fn(&mut Registry, Instant) -> Result<T, NamingError>,
    ) -> Result<T, NamingError> {
        let _turn = self.changing.lock().await;
        self.catch_up().await.map_err(Failure::naming)?;
        for _ in 0..MAX_ATTEMPTS {
            let (mut next, version) = {
                let mut current = lock(registry);
                current.expire(Instant::now());
                let next = current.clone();
                (next, lock(&self.view).version)
            };
            next.forget_changes();
            let outcome = change(&mut next, Instant::now())?;
            let changes = next.take_changes();
            if changes.is_empty() {
                return Ok(outcome);
            }
            let plan = {
                let view = lock(&self.view);
                // The mirror moved on since the check: check again.
                if view.version != version {
                    continue;
                }
                plan::plan(&self.layout, &view, &changes, Clocks::now())
            };
            match self.commit(plan, version).await {
                Ok(revision) => {
                    if let Err(failure) = self.wait_applied(revision).await {
                        tracing::debug!(target: "nameserver", %failure, "a change was committed before the mirror showed it");
                    }
                    return Ok(outcome);
                }
                Err(Refused::Conflict) => self.catch_up().await.map_err(Failure::naming)?,
                Err(Refused::Failed(failure)) => return Err(failure.naming()),
            }
        }
        Err(NamingError::StoreFailed(format!(
            "other nameservers changed the registry first {MAX_ATTEMPTS} times in a row"
        )))
    }

    /// Writes `plan`, in as few transactions as etcd allows, each only if the version key is
    /// still at the version the last left it at; returns the revision of the last.
    async fn commit(&self, plan: Plan, version: i64) -> Result<i64, Refused> {
        let mut granted = Vec::new();
        let mut writes = Vec::with_capacity(plan.writes.len());
        let mut failure = None;
        for write in plan.writes {
            let size = write.size();
            let op = match write {
                Write::Put { key, value, lease } => {
                    let lease = match lease {
                        LeaseFor::None => None,
                        LeaseFor::Existing(id) => Some(id),
                        LeaseFor::New(ttl) => {
                            let grant = self.members.request(|mut client| async move {
                                client.lease_grant(ttl, None).await
                            });
                            match grant.await {
                                Ok(lease) => {
                                    granted.push(lease.id());
                                    Some(lease.id())
                                }
                                Err(error) => {
                                    failure = Some(error);
                                    break;
                                }
                            }
                        }
                    };
                    TxnOp::put(key, value, lease.map(|id| PutOptions::new().with_lease(id)))
                }
                Write::Delete { key } => TxnOp::delete(key, None),
            };
            writes.push((size, op));
        }
        let outcome = match failure {
            Some(failure) => Err(Refused::Failed(failure)),
            None => self.transact(writes, version).await,
        };
        // Leases no key is under any more; etcd would drop them at their time anyway.
        let unused = match outcome {
            Ok(_) => plan.retired,
            Err(_) => granted,
        };
        if !unused.is_empty() {
            let mut client = self.members.current();
            tokio::spawn(async move {
                for id in unused {
                    let _ = client.lease_revoke(id).await;
                }
            });
        }
        outcome
    }

    async fn transact(
        &self,
        writes: Vec<(usize, TxnOp)>,
        mut version: i64,
    ) -> Result<i64, Refused> {
        let mut writes = writes.into_iter().peekable();
        loop {
            let (mut batch, mut bytes) = (Vec::new(), 0);
            while let Some((size, op)) = writes.next_if(|(size, _)| {
                batch.is_empty() || (batch.len() < MAX_TXN_WRITES && bytes + size <= MAX_TXN_BYTES)
            }) {
                bytes += size;
                batch.push(op);
            }
            batch.push(TxnOp::put(self.layout.version_key(), Vec::new(), None));
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    self.layout.version_key(),
                    CompareOp::Equal,
                    version,
                )])
                .and_then(batch);
            let committing = self.members.request(|mut client| {
                let txn = txn.clone();
                async move { client.txn(txn).await }
            });
            let response = match committing.await {
                Ok(response) => response,
                // A lease that ran out between the check and the write.
                Err(Failure::Etcd(etcd_client::Error::GRpcStatus(status)))
                    if status.message().contains("lease not found") =>
                {
                    return Err(Refused::Conflict);
                }
                Err(failure) => return Err(Refused::Failed(failure)),
            };
            if !response.succeeded() {
                return Err(Refused::Conflict);
            }
            version = response.header().map_or(0, ResponseHeader::revision);
            if writes.peek().is_none() {
                return Ok(version);
            }
        }
    }
}
