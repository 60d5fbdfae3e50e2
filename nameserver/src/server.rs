//! `NameServerImpl`: the core's `NameServer` service, served from a [`Registry`] (kept in a
//! [`Store`] if it has one).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rpc_core::{ListPage, MetadataQuery, NameFilter, NameServer, NamingError, Registration, Uri};
use tokio::sync::Semaphore;

use crate::deadline::Deadline;
use crate::registry::Registry;
use crate::release::Shrinkage;
use crate::source::Source;
use crate::store::{Clocks, Store, StoreError, StoredEntry};

/// The default time budget of one query: far more than listing 100,000 names by prefix takes
/// (tens of milliseconds), little enough that a hostile pattern cannot hold a thread for long.
pub const DEFAULT_QUERY_BUDGET: Duration = Duration::from_secs(1);

/// Queries (`list`, `yplookup`, `remove` by pattern) running at once; more wait their turn.
/// Each may keep a blocking thread busy for its whole budget.
const QUERIES_AT_ONCE: usize = 2;

/// The nameserver object that a daemon hosts under `Pyro.NameServer`.
///
/// Lookups take the registry's lock for a moment. A change is made on a copy of the
/// registry, one change at a time; with a store, the copy replaces the registry (and the
/// client hears of the change) only once the store has it durably. Queries that scan the
/// registry run on a snapshot of it, outside the lock, on tokio's blocking threads (never a
/// runtime worker), two at a time, each within a time budget after which it fails with
/// [`NamingError::QueryTooSlow`]: a costly regular expression cannot stall anyone else.
#[derive(Debug)]
pub struct NameServerImpl {
    /// Shared with the follower of the registry in etcd, if it is kept there.
    registry: Arc<Mutex<Registry>>,
    /// Held while a change is made and stored, so changes reach the store in order.
    changing: tokio::sync::Mutex<()>,
    keeping: Keeping,
    /// Counts lookups, to hand out the instances of a name in turn.
    turn: AtomicUsize,
    queries: Semaphore,
    query_budget: Duration,
    shrinkage: Shrinkage,
    /// Set when the nameserver stops: queries still scanning give up.
    stopping: Arc<AtomicBool>,
    /// Whether only clients that proved the daemon's secret may change names.
    changes_need_auth: bool,
}

/// Where the registry is kept besides this process's memory.
#[derive(Debug)]
enum Keeping {
    /// Nowhere: it lives as long as the process.
    Memory,
    /// In a store, written before each change is acknowledged.
    Store(Arc<dyn Store>),
    /// In etcd, shared with other nameservers; the registry here is its mirror.
    #[cfg(feature = "etcd")]
    Etcd(Box<crate::etcd::EtcdRegistry>),
}

impl NameServerImpl {
    /// A nameserver whose own entry points at `own_uri`, with [`DEFAULT_QUERY_BUDGET`].
    pub fn new(own_uri: Uri) -> NameServerImpl {
        NameServerImpl::with_registry(Registry::new(own_uri), DEFAULT_QUERY_BUDGET)
    }

    /// A nameserver serving `registry` from memory, whose queries each get `budget`.
    pub fn with_registry(registry: Registry, budget: Duration) -> NameServerImpl {
        NameServerImpl {
            registry: Arc::new(Mutex::new(registry)),
            changing: tokio::sync::Mutex::new(()),
            keeping: Keeping::Memory,
            turn: AtomicUsize::new(0),
            queries: Semaphore::new(QUERIES_AT_ONCE),
            query_budget: budget,
            shrinkage: Shrinkage::default(),
            stopping: Arc::default(),
            changes_need_auth: false,
        }
    }

    /// This nameserver, letting only clients that proved its daemon's shared secret register,
    /// remove or change metadata; others get [`NamingError::NotAuthenticated`]. Lookups stay
    /// open to whoever the daemon serves.
    #[must_use]
    pub fn changes_need_auth(mut self) -> NameServerImpl {
        self.changes_need_auth = true;
        self
    }

    /// Whether the caller may change names.
    fn may_change(&self) -> Result<(), NamingError> {
        if self.changes_need_auth && !rpc_core::caller_authenticated() {
            // Debug, not info: anyone may send these, as fast as they like.
            tracing::debug!(target: "nameserver", caller = ?rpc_core::caller_address(), "a change without the secret refused");
            return Err(NamingError::NotAuthenticated);
        }
        Ok(())
    }

    /// A nameserver serving `registry` with what `store` holds added, keeping every change
    /// in `store` before it answers. Registrations whose lease ran out while no nameserver
    /// ran are dropped, from the store too.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the store cannot be read or written.
    pub async fn with_store(
        mut registry: Registry,
        budget: Duration,
        store: Arc<dyn Store>,
    ) -> Result<NameServerImpl, StoreError> {
        let reader = store.clone();
        let loaded = tokio::task::spawn_blocking(move || reader.load())
            .await
            .map_err(|panic| StoreError::Backend(panic.to_string().into()))??;
        let clocks = Clocks::now();
        let entries = loaded
            .into_iter()
            .map(|(name, stored)| {
                let entry = stored.into_entry(&name, clocks)?;
                Ok((name, entry))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let restored = entries.len();
        registry.restore(entries, clocks.instant());
        save(&store, &mut registry).await?;
        tracing::info!(target: "nameserver", restored, instances = registry.instances(), "registry restored from its store");
        let mut server = NameServerImpl::with_registry(registry, budget);
        server.keeping = Keeping::Store(store);
        Ok(server)
    }

    /// A nameserver serving the registry kept in the etcd cluster `etcd`, shared with every
    /// nameserver on the same cluster and prefix; `registry` gives its own entry, limits and
    /// admin token. See [`crate::etcd`] for what clients observe.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the cluster cannot be reached or read.
    #[cfg(feature = "etcd")]
    pub async fn with_etcd(
        registry: Registry,
        budget: Duration,
        etcd: &crate::etcd::EtcdOptions,
    ) -> Result<NameServerImpl, StoreError> {
        let mut server = NameServerImpl::with_registry(registry, budget);
        let linked = crate::etcd::EtcdRegistry::connect(etcd, server.registry.clone()).await?;
        tracing::info!(target: "nameserver", endpoints = ?etcd.endpoints, prefix = %etcd.prefix, names = server.registry().count(), "registry read from etcd");
        server.keeping = Keeping::Etcd(Box::new(linked));
        Ok(server)
    }

    /// Before a read: with the registry in etcd, lets the mirror catch up.
    async fn catch_up(&self) {
        #[cfg(feature = "etcd")]
        if let Keeping::Etcd(etcd) = &self.keeping {
            etcd.before_read().await;
        }
    }

    /// A flag that, once set, makes the queries still scanning give up with
    /// [`NamingError::Stopping`], so that a graceful shutdown does not wait for them.
    pub fn query_stop(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// Runs `query` on a snapshot of the registry, on a blocking thread, within the budget
    /// (counted from when its turn comes).
    async fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Registry, Deadline) -> Result<T, NamingError> + Send + 'static,
    ) -> Result<T, NamingError> {
        // The semaphore is never closed.
        let _turn = self.queries.acquire().await;
        self.catch_up().await;
        let snapshot = self.registry().clone();
        let deadline = Deadline::after(self.query_budget).or_when(&self.stopping);
        let budget = self.query_budget;
        tokio::task::spawn_blocking(move || query(&snapshot, deadline))
            .await
            .unwrap_or(Err(NamingError::QueryTooSlow { budget }))
    }

    /// Makes `change` on a copy of the registry, stores what it changed, and only then puts
    /// the copy in the registry's place: a change that could not be stored is not made. With
    /// the registry in etcd, `change` may run again, on a newer registry, if other
    /// nameservers' changes got in first.
    async fn change<T>(
        &self,
        change: impl Fn(&mut Registry, Instant) -> Result<T, NamingError>,
    ) -> Result<T, NamingError> {
        self.may_change()?;
        #[cfg(feature = "etcd")]
        if let Keeping::Etcd(etcd) = &self.keeping {
            return etcd.change(&self.registry, change).await;
        }
        let changing = self.changing.lock().await;
        let mut next = self.registry().clone();
        let outcome = change(&mut next, Instant::now())?;
        match &self.keeping {
            Keeping::Store(store) => save(store, &mut next)
                .await
                .map_err(|error| NamingError::StoreFailed(error_chain(&error)))?,
            _ => drop(next.take_changes()),
        }
        let instances = next.instances();
        let replaced = std::mem::replace(
            &mut *self.registry.lock().unwrap_or_else(PoisonError::into_inner),
            next,
        );
        // Freed outside the lock, before memory is given back.
        drop(replaced);
        // Other changes need not wait for the memory to be given back; this answer does, so
        // that the client that removed a flood sees it given back.
        drop(changing);
        if let Some(releasing) = self.shrinkage.note(instances) {
            let _ = releasing.await;
        }
        Ok(outcome)
    }

    /// The registry, its expired leases gone: no answer names a worker that stopped renewing.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry operations do not panic midway, so a poisoned lock still holds sound data.
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = registry.expire(Instant::now());
        if expired > 0 {
            tracing::info!(target: "nameserver", expired, "leases ran out");
            drop(self.shrinkage.note(registry.instances()));
        }
        registry
    }

    fn next_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Writes what `registry` changed to `store`, on a blocking thread.
async fn save(store: &Arc<dyn Store>, registry: &mut Registry) -> Result<(), StoreError> {
    let changes = registry.take_changes();
    if changes.is_empty() {
        return Ok(());
    }
    let clocks = Clocks::now();
    let records: Vec<(String, Option<StoredEntry>)> = changes
        .into_iter()
        .map(|(name, entry)| {
            let record = entry.map(|entry| StoredEntry::from_entry(&entry, clocks));
            (name, record)
        })
        .collect();
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.save(&records))
        .await
        .map_err(|panic| StoreError::Backend(panic.to_string().into()))?
}

/// The client address the registration being served is counted against.
fn caller() -> Option<Source> {
    rpc_core::caller_address().map(Source::of)
}

/// `error` and its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl NameServer for NameServerImpl {
    async fn register(
        &self,
        name: String,
        uri: Uri,
        safe: bool,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        tracing::info!(target: "nameserver", %name, %uri, "register");
        self.change(|registry, _| {
            registry.register(name.clone(), uri.clone(), safe, metadata.clone(), caller())
        })
        .await
    }

    async fn register_lease(
        &self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        owner: String,
    ) -> Result<(), NamingError> {
        tracing::debug!(target: "nameserver", %name, %uri, ?ttl, "register with a lease");
        self.change(|registry, now| {
            let (name, uri, metadata) = (name.clone(), uri.clone(), metadata.clone());
            registry.register_lease(name, uri, metadata, ttl, now, &owner, caller())
        })
        .await
    }

    async fn register_instance(
        &self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Option<Duration>,
        owner: Option<String>,
    ) -> Result<(), NamingError> {
        tracing::debug!(target: "nameserver", %name, %uri, ?ttl, "register an instance");
        self.change(|registry, now| {
            let (name, uri, metadata) = (name.clone(), uri.clone(), metadata.clone());
            registry.add_instance(name, uri, metadata, ttl, now, owner.as_deref(), caller())
        })
        .await
    }

    async fn remove_instance(
        &self,
        name: String,
        uri: Uri,
        token: Option<String>,
    ) -> Result<u64, NamingError> {
        let removed = self
            .change(|registry, _| registry.remove_instance(&name, &uri, token.as_deref()))
            .await?;
        tracing::info!(target: "nameserver", %name, %uri, removed, "remove an instance");
        Ok(removed)
    }

    async fn lookup(&self, name: String) -> Result<Uri, NamingError> {
        self.catch_up().await;
        Ok(self.registry().lookup(&name, self.next_turn())?.uri)
    }

    async fn lookup_with_metadata(&self, name: String) -> Result<Registration, NamingError> {
        self.catch_up().await;
        self.registry().lookup(&name, self.next_turn())
    }

    async fn lookup_all(&self, name: String) -> Result<Vec<Registration>, NamingError> {
        self.catch_up().await;
        self.registry().lookup_all(&name, self.next_turn())
    }

    async fn list(&self, filter: NameFilter) -> Result<BTreeMap<String, Uri>, NamingError> {
        let found = self.list_with_metadata(filter).await?;
        Ok(found
            .into_iter()
            .map(|(name, registration)| (name, registration.uri))
            .collect())
    }

    async fn list_with_metadata(
        &self,
        filter: NameFilter,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        self.query(move |registry, deadline| registry.list(&filter, deadline))
            .await
    }

    async fn list_page(
        &self,
        filter: NameFilter,
        after: Option<String>,
        limit: u32,
    ) -> Result<ListPage, NamingError> {
        self.query(move |registry, deadline| {
            registry.list_page(&filter, after.as_deref(), limit as usize, deadline)
        })
        .await
    }

    async fn yplookup(
        &self,
        query: MetadataQuery,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        let turn = self.next_turn();
        self.query(move |registry, deadline| registry.yplookup(&query, deadline, turn))
            .await
    }

    async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        self.change(|registry, _| registry.set_metadata(&name, metadata.clone()))
            .await
    }

    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError> {
        self.remove_as(filter, None).await
    }

    async fn remove_owned(&self, filter: NameFilter, token: String) -> Result<u64, NamingError> {
        self.remove_as(filter, Some(token)).await
    }

    async fn count(&self) -> u64 {
        self.catch_up().await;
        self.registry().count()
    }

    async fn ping(&self) {}
}

impl NameServerImpl {
    async fn remove_as(
        &self,
        filter: NameFilter,
        token: Option<String>,
    ) -> Result<u64, NamingError> {
        // Before any scan: a pattern's cost is not spent for a caller who may not remove.
        self.may_change()?;
        let removed = match &filter {
            NameFilter::Name(_) => {
                self.change(|registry, _| registry.remove_as(&filter, token.as_deref()))
                    .await?
            }
            _ => {
                let selector = filter.clone();
                let asker = token.clone();
                let names = self
                    .query(move |registry, deadline| {
                        registry.names_to_remove(&selector, asker.as_deref(), deadline)
                    })
                    .await?;
                self.change(|registry, _| Ok(registry.remove_names(&names, token.as_deref())))
                    .await?
            }
        };
        tracing::info!(target: "nameserver", ?filter, removed, "remove");
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A store whose writes fail while `broken` is set.
    #[derive(Debug, Default)]
    struct Flaky {
        broken: AtomicBool,
        saved: Mutex<Vec<String>>,
    }

    impl Store for Arc<Flaky> {
        fn load(&self) -> Result<Vec<(String, StoredEntry)>, StoreError> {
            Ok(Vec::new())
        }

        fn save(&self, changes: &[(String, Option<StoredEntry>)]) -> Result<(), StoreError> {
            if self.broken.load(Ordering::Relaxed) {
                return Err(StoreError::Backend("the disk is full".into()));
            }
            let mut saved = self.saved.lock().unwrap();
            saved.extend(changes.iter().map(|(name, _)| name.clone()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_change_the_store_refuses_is_not_made_and_says_why() {
        let flaky = Arc::new(Flaky::default());
        let own: Uri = "PYRO:Pyro.NameServer@127.0.0.1:1".parse().unwrap();
        let server = NameServerImpl::with_store(
            Registry::new(own),
            DEFAULT_QUERY_BUDGET,
            Arc::new(flaky.clone()),
        )
        .await
        .unwrap();
        let uri: Uri = "PYRO:w@127.0.0.1:2".parse().unwrap();
        server
            .register("kept".into(), uri.clone(), false, BTreeSet::new())
            .await
            .unwrap();
        flaky.broken.store(true, Ordering::Relaxed);
        let refused = server
            .register("lost".into(), uri.clone(), false, BTreeSet::new())
            .await;
        assert!(
            matches!(&refused, Err(NamingError::StoreFailed(why)) if why.contains("disk is full")),
            "{refused:?}"
        );
        assert!(matches!(
            server.lookup("lost".into()).await,
            Err(NamingError::UnknownName(_))
        ));
        // Once the store works again, the next change goes through, and only it is written.
        flaky.broken.store(false, Ordering::Relaxed);
        server
            .register("later".into(), uri, false, BTreeSet::new())
            .await
            .unwrap();
        assert_eq!(*flaky.saved.lock().unwrap(), ["kept", "later"]);
    }
}
