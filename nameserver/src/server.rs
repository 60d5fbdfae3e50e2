//! `NameServerImpl`: the core's `NameServer` service, served from a [`Registry`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rpc_core::{MetadataQuery, NameFilter, NameServer, NamingError, Registration, Uri};

use crate::Registry;

/// The nameserver object that a daemon hosts under `Pyro.NameServer`.
#[derive(Debug)]
pub struct NameServerImpl {
    registry: Mutex<Registry>,
}

impl NameServerImpl {
    /// A nameserver whose own entry points at `own_uri`.
    pub fn new(own_uri: Uri) -> NameServerImpl {
        NameServerImpl {
            registry: Mutex::new(Registry::new(own_uri)),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry operations do not panic midway, so a poisoned lock still holds sound data.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
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

    async fn lookup(&self, name: String) -> Result<Uri, NamingError> {
        Ok(self.registry().lookup(&name)?.uri.clone())
    }

    async fn lookup_with_metadata(&self, name: String) -> Result<Registration, NamingError> {
        self.registry().lookup(&name).cloned()
    }

    async fn list(&self, filter: NameFilter) -> Result<BTreeMap<String, Uri>, NamingError> {
        let found = self.registry().list(&filter)?;
        Ok(found
            .into_iter()
            .map(|(name, registration)| (name, registration.uri))
            .collect())
    }

    async fn list_with_metadata(
        &self,
        filter: NameFilter,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        self.registry().list(&filter)
    }

    async fn yplookup(&self, query: MetadataQuery) -> BTreeMap<String, Registration> {
        self.registry().yplookup(&query)
    }

    async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        self.registry().set_metadata(&name, metadata)
    }

    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError> {
        let removed = self.registry().remove(&filter)?;
        tracing::info!(target: "nameserver", ?filter, removed, "remove");
        Ok(removed)
    }

    async fn count(&self) -> u64 {
        self.registry().count()
    }

    async fn ping(&self) {}
}
