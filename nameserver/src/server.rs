//! `NameServerImpl`: the core's `NameServer` service, served from a [`Registry`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rpc_core::{ListPage, MetadataQuery, NameFilter, NameServer, NamingError, Registration, Uri};
use tokio::sync::Semaphore;

use crate::Registry;
use crate::registry::Deadline;

/// The default time budget of one query: far more than listing 100,000 names by prefix takes
/// (tens of milliseconds), little enough that a hostile pattern cannot hold a thread for long.
pub const DEFAULT_QUERY_BUDGET: Duration = Duration::from_secs(1);

/// Queries (`list`, `yplookup`, `remove` by pattern) running at once; more wait their turn.
/// Each may keep a blocking thread busy for its whole budget.
const QUERIES_AT_ONCE: usize = 2;

/// The nameserver object that a daemon hosts under `Pyro.NameServer`.
///
/// Lookups and registrations take the registry's lock for a moment. Queries that scan the
/// registry run on a snapshot of it, outside the lock, on tokio's blocking threads (never a
/// runtime worker), two at a time, each within a time budget after which it fails with
/// [`NamingError::QueryTooSlow`]: a costly regular expression cannot stall anyone else.
#[derive(Debug)]
pub struct NameServerImpl {
    registry: Mutex<Registry>,
    queries: Semaphore,
    query_budget: Duration,
}

impl NameServerImpl {
    /// A nameserver whose own entry points at `own_uri`, with [`DEFAULT_QUERY_BUDGET`].
    pub fn new(own_uri: Uri) -> NameServerImpl {
        NameServerImpl::with_registry(Registry::new(own_uri), DEFAULT_QUERY_BUDGET)
    }

    /// A nameserver serving `registry`, whose queries each get `budget`.
    pub fn with_registry(registry: Registry, budget: Duration) -> NameServerImpl {
        NameServerImpl {
            registry: Mutex::new(registry),
            queries: Semaphore::new(QUERIES_AT_ONCE),
            query_budget: budget,
        }
    }

    /// Runs `query` on a snapshot of the registry, on a blocking thread, within the budget
    /// (counted from when its turn comes).
    async fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Registry, Deadline) -> Result<T, NamingError> + Send + 'static,
    ) -> Result<T, NamingError> {
        // The semaphore is never closed.
        let _turn = self.queries.acquire().await;
        let snapshot = self.registry().clone();
        let deadline = Deadline::after(self.query_budget);
        let budget = self.query_budget;
        tokio::task::spawn_blocking(move || query(&snapshot, deadline))
            .await
            .unwrap_or(Err(NamingError::QueryTooSlow { budget }))
    }

    /// The registry, its expired leases gone: no answer names a worker that stopped renewing.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry operations do not panic midway, so a poisoned lock still holds sound data.
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = registry.expire(Instant::now());
        if expired > 0 {
            tracing::info!(target: "nameserver", expired, "leases ran out");
        }
        registry
    }
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
        self.registry().register(name, uri, safe, metadata)
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
        self.registry()
            .register_lease(name, uri, metadata, ttl, Instant::now(), &owner)
    }

    async fn lookup(&self, name: String) -> Result<Uri, NamingError> {
        Ok(self.registry().lookup(&name)?.uri.clone())
    }

    async fn lookup_with_metadata(&self, name: String) -> Result<Registration, NamingError> {
        self.registry().lookup_described(&name)
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
        self.query(move |registry, deadline| registry.yplookup(&query, deadline))
            .await
    }

    async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        self.registry().set_metadata(&name, metadata)
    }

    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError> {
        self.remove_as(filter, None).await
    }

    async fn remove_owned(&self, filter: NameFilter, token: String) -> Result<u64, NamingError> {
        self.remove_as(filter, Some(token)).await
    }

    async fn count(&self) -> u64 {
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
        let removed = match &filter {
            NameFilter::Name(_) => self.registry().remove_as(&filter, token.as_deref())?,
            _ => {
                let selector = filter.clone();
                let asker = token.clone();
                let names = self
                    .query(move |registry, deadline| {
                        registry.names_to_remove(&selector, asker.as_deref(), deadline)
                    })
                    .await?;
                self.registry().remove_names(&names, token.as_deref())
            }
        };
        tracing::info!(target: "nameserver", ?filter, removed, "remove");
        Ok(removed)
    }
}
