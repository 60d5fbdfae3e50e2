//! `View`: what a nameserver last saw of the registry's keys in etcd, with what it needs to
//! change them (each instance's lease, and the version the next change must find).

use std::collections::BTreeMap;

use crate::entry::{Entry, Instance};

/// One instance key as last seen.
#[derive(Debug, Clone)]
pub(super) struct Kept {
    /// The instance as the registry holds it (its expiry the very instant the registry has,
    /// so that an instance a change leaves alone compares equal and is not written again).
    pub(super) instance: Instance,
    pub(super) owner: Option<String>,
    /// The etcd lease the key is under; 0 for none.
    pub(super) lease: i64,
    /// The revision the key was created at: instances are ordered by it, first registered
    /// first.
    pub(super) created: i64,
}

/// The registry's keys by name, then by URI.
#[derive(Debug, Default)]
pub(super) struct View {
    pub(super) names: BTreeMap<String, BTreeMap<String, Kept>>,
    /// The mod revision of the version key; 0 while there is none.
    pub(super) version: i64,
}

impl View {
    pub(super) fn put(&mut self, name: String, uri: String, kept: Kept) {
        self.names.entry(name).or_default().insert(uri, kept);
    }

    pub(super) fn delete(&mut self, name: &str, uri: &str) {
        if let Some(instances) = self.names.get_mut(name) {
            instances.remove(uri);
            if instances.is_empty() {
                self.names.remove(name);
            }
        }
    }

    /// What `name` holds, in the order its instances were first registered.
    pub(super) fn entry(&self, name: &str) -> Entry {
        let Some(instances) = self.names.get(name) else {
            return Entry::default();
        };
        let mut kept: Vec<&Kept> = instances.values().collect();
        kept.sort_by_key(|kept| kept.created);
        Entry {
            owner: kept.first().and_then(|first| first.owner.clone()),
            instances: kept.into_iter().map(|kept| kept.instance.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(uri: &str, created: i64) -> Kept {
        Kept {
            instance: Instance {
                uri: uri.parse().unwrap(),
                metadata: Default::default(),
                expires: None,
                source: None,
            },
            owner: Some("owner-token-0123456789".into()),
            lease: 0,
            created,
        }
    }

    #[test]
    fn an_entry_lists_instances_first_registered_first_and_goes_with_its_last() {
        let mut view = View::default();
        view.put("w".into(), "b".into(), kept("PYRO:b@127.0.0.1:2", 7));
        view.put("w".into(), "a".into(), kept("PYRO:a@127.0.0.1:1", 9));
        let entry = view.entry("w");
        let uris: Vec<String> = entry.instances.iter().map(|i| i.uri.to_string()).collect();
        assert_eq!(uris, ["PYRO:b@127.0.0.1:2", "PYRO:a@127.0.0.1:1"]);
        assert_eq!(entry.owner.as_deref(), Some("owner-token-0123456789"));
        view.delete("w", "b");
        view.delete("w", "a");
        assert!(view.names.is_empty());
        assert_eq!(view.entry("w"), Entry::default());
    }
}
