//! `Store`: where a registry is kept beyond the life of the process, and the records it keeps.
//!
//! The registry's rules (owners, leases, limits) stay in [`Registry`](crate::Registry); a
//! store only keeps what the registry holds, one record per name, and hands it back at start.
//! The nameserver makes every change on a copy of the registry, writes the names it changed,
//! and answers (and lets lookups see the change) only once the store says the write is
//! durable: whatever the nameserver acknowledged survives `kill -9`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Instance};
use crate::source::Source;

/// A place that keeps the registry's records durably.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Every record kept, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the records cannot be read.
    fn load(&self) -> Result<Vec<(String, StoredEntry)>, StoreError>;

    /// Writes `changes` durably, all of them or none: each name with its new record, or
    /// `None` for a name that is gone. Returns once they would survive a crash.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if they could not be written; then none was.
    fn save(&self, changes: &[(String, Option<StoredEntry>)]) -> Result<(), StoreError>;
}

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store itself (its file, its database) failed.
    #[error("the registry's store failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record read back is not one this nameserver wrote.
    #[error("the stored record of `{name}` is unreadable: {detail}")]
    Corrupt {
        /// The name the record is kept under.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// What a store keeps of one name: the registry's [`Entry`], with wall-clock expiries (a
/// monotonic clock does not survive a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The name's instances, in order.
    pub instances: Vec<StoredInstance>,
    /// The owner token, if the name is owned.
    pub owner: Option<String>,
}

/// One instance of a [`StoredEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInstance {
    /// The URI, as text.
    pub uri: String,
    /// The metadata tags.
    pub metadata: BTreeSet<String>,
    /// When the lease runs out, in milliseconds since the Unix epoch; `None` if permanent.
    pub expires_unix_ms: Option<u64>,
}

/// One reading of both clocks, to turn instants into wall-clock times and back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    instant: Instant,
    unix_ms: u64,
}

impl Clocks {
    pub(crate) fn now() -> Clocks {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clocks {
            instant: Instant::now(),
            unix_ms: since_epoch.as_millis() as u64,
        }
    }

    /// The instant of this reading, which `restore` compares expiries with.
    pub(crate) fn instant(&self) -> Instant {
        self.instant
    }

    fn to_unix_ms(self, at: Instant) -> u64 {
        let ahead = at.saturating_duration_since(self.instant).as_millis() as u64;
        self.unix_ms.saturating_add(ahead)
    }

    /// A stored expiry as an instant; one already past is this reading's instant.
    fn to_instant(self, unix_ms: u64) -> Instant {
        let ahead = Duration::from_millis(unix_ms.saturating_sub(self.unix_ms));
        self.instant.checked_add(ahead).unwrap_or(self.instant)
    }
}

impl StoredEntry {
    pub(crate) fn from_entry(entry: &Entry, clocks: Clocks) -> StoredEntry {
        StoredEntry {
            instances: entry
                .instances
                .iter()
                .map(|instance| StoredInstance::of(instance, clocks))
                .collect(),
            owner: entry.owner.clone(),
        }
    }

    pub(crate) fn into_entry(self, name: &str, clocks: Clocks) -> Result<Entry, StoreError> {
        let instances = self
            .instances
            .into_iter()
            // Who registered it is not kept: after a restart no client is charged for what
            // it registered before.
            .map(|stored| stored.into_instance(name, None, clocks))
            .collect::<Result<_, StoreError>>()?;
        Ok(Entry {
            instances,
            owner: self.owner,
        })
    }
}

impl StoredInstance {
    /// `instance` as kept, its expiry on the wall clock.
    pub(crate) fn of(instance: &Instance, clocks: Clocks) -> StoredInstance {
        StoredInstance {
            uri: instance.uri.to_string(),
            metadata: instance.metadata.clone(),
            expires_unix_ms: instance.expires.map(|at| clocks.to_unix_ms(at)),
        }
    }

    /// The instance kept under `name`, registered from `source`.
    pub(crate) fn into_instance(
        self,
        name: &str,
        source: Option<Source>,
        clocks: Clocks,
    ) -> Result<Instance, StoreError> {
        let uri = self.uri.parse().map_err(|error| StoreError::Corrupt {
            name: name.to_owned(),
            detail: format!("{error}"),
        })?;
        Ok(Instance {
            uri,
            metadata: self.metadata,
            expires: self.expires_unix_ms.map(|ms| clocks.to_instant(ms)),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_the_trip_through_wall_clock_time() {
        let clocks = Clocks::now();
        let entry = Entry {
            instances: vec![Instance {
                uri: "PYRO:w@127.0.0.1:1".parse().unwrap(),
                metadata: ["eu".to_owned()].into(),
                expires: Some(clocks.instant() + Duration::from_secs(30)),
                source: None,
            }],
            owner: Some("owner-token-0123456789".into()),
        };
        let stored = StoredEntry::from_entry(&entry, clocks);
        assert_eq!(
            stored.instances[0].expires_unix_ms,
            Some(clocks.unix_ms + 30_000)
        );
        // Read back 10 s later (by the wall clock): 20 s are left.
        let later = Clocks {
            instant: clocks.instant() + Duration::from_secs(500),
            unix_ms: clocks.unix_ms + 10_000,
        };
        let back = stored.into_entry("w", later).unwrap();
        assert_eq!(
            back.instances[0].expires,
            Some(later.instant() + Duration::from_secs(20))
        );
        assert_eq!(back.owner, entry.owner);
        assert_eq!(back.instances[0].uri, entry.instances[0].uri);
    }
}
