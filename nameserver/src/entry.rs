//! `Entry`: what one name holds: its instances (the workers registered under it) and its owner.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::source::Source;
use rpc_core::{Registration, Uri};

/// One worker registered under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Where the worker's object lives.
    pub uri: Uri,
    /// Its tags, searched by `yplookup` and `PYROMETA:`.
    pub metadata: BTreeSet<String>,
    /// When its lease runs out; `None` for a permanent registration.
    pub expires: Option<Instant>,
    /// The client address it was registered from, for the per-address cap; `None` when not
    /// known (a Unix socket, a registration read back from a store).
    pub source: Option<Source>,
}

/// What one name holds: one instance in Pyro's way of registering, several when workers join
/// it as instances, in the order they first registered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The workers under the name; never empty in a registry.
    pub instances: Vec<Instance>,
    /// The token that may change the name, if it is owned; every instance shares it.
    pub owner: Option<String>,
}

impl Entry {
    /// The instance at `turn`, counting round from the first, as a client is told it.
    pub(crate) fn registration(&self, turn: usize, now: Instant) -> Registration {
        self.describe(&self.instances[turn % self.instances.len()], now)
    }

    /// Every instance, starting at `turn` and wrapping round, as a client is told them.
    pub(crate) fn registrations(&self, turn: usize, now: Instant) -> Vec<Registration> {
        let len = self.instances.len();
        (0..len)
            .map(|n| self.describe(&self.instances[(turn + n) % len], now))
            .collect()
    }

    /// `instance` as a client is told it: its lease's time left, and whether the name is
    /// owned.
    pub(crate) fn describe(&self, instance: &Instance, now: Instant) -> Registration {
        let mut registration = Registration::new(instance.uri.clone(), instance.metadata.clone());
        registration.lease = instance.expires.map(|at| at.saturating_duration_since(now));
        registration.owned = self.owner.is_some();
        registration
    }
}
