//! `plan`: the writes that take etcd from what a nameserver saw to what a change made of it,
//! instance by instance, leaving alone every instance the change did not touch (and so its
//! lease).

use std::time::Duration;

use super::layout::{Layout, Record};
use super::view::View;
use crate::entry::Entry;
use crate::store::{Clocks, StoredInstance};

/// The lease a written key goes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaseFor {
    /// A permanent registration.
    None,
    /// The lease it has (only its metadata changed).
    Existing(i64),
    /// A new lease of this many seconds (a new or renewed registration).
    New(i64),
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseFor,
    },
    Delete {
        key: Vec<u8>,
    },
}

impl Write {
    /// About how many bytes it takes in a transaction.
    pub(super) fn size(&self) -> usize {
        match self {
            Write::Put { key, value, .. } => key.len() + value.len() + 16,
            Write::Delete { key } => key.len() + 8,
        }
    }
}

/// The writes of a change, and the leases that no key will be under once they are made.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) writes: Vec<Write>,
    pub(super) retired: Vec<i64>,
}

/// What to write so that etcd holds `changes` (each name with what it holds now, `None` if
/// gone) where `view` says it holds what it held.
pub(super) fn plan(
    layout: &Layout,
    view: &View,
    changes: &[(String, Option<Entry>)],
    clocks: Clocks,
) -> Plan {
    let mut plan = Plan::default();
    for (name, entry) in changes {
        let kept = view.names.get(name);
        let (instances, owner) = match entry {
            Some(entry) => (entry.instances.as_slice(), &entry.owner),
            None => (&[][..], &None),
        };
        for instance in instances {
            let uri = instance.uri.to_string();
            let before = kept.and_then(|kept| kept.get(&uri));
            if before.is_some_and(|before| before.instance == *instance && before.owner == *owner) {
                continue;
            }
            let lease = match (before, instance.expires) {
                (_, None) => LeaseFor::None,
                (Some(before), Some(at))
                    if before.instance.expires == Some(at) && before.lease != 0 =>
                {
                    LeaseFor::Existing(before.lease)
                }
                (_, Some(at)) => {
                    LeaseFor::New(lease_secs(at.saturating_duration_since(clocks.instant())))
                }
            };
            if let Some(before) = before
                && before.lease != 0
                && lease != LeaseFor::Existing(before.lease)
            {
                plan.retired.push(before.lease);
            }
            let record = Record {
                instance: StoredInstance::of(instance, clocks),
                owner: owner.clone(),
                source: instance.source,
            };
            plan.writes.push(Write::Put {
                key: layout.instance_key(name, &uri),
                value: record.encode(),
                lease,
            });
        }
        for (uri, before) in kept.into_iter().flatten() {
            if !instances
                .iter()
                .any(|instance| instance.uri.to_string() == *uri)
            {
                plan.writes.push(Write::Delete {
                    key: layout.instance_key(name, uri),
                });
                if before.lease != 0 {
                    plan.retired.push(before.lease);
                }
            }
        }
    }
    plan
}

/// An etcd lease's time to live for `ttl`: whole seconds, rounded up, at least one. The
/// record keeps the exact expiry, which every nameserver applies by itself; the lease is what
/// removes the key when no nameserver is left to.
fn lease_secs(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::view::Kept;
    use super::*;
    use crate::entry::Instance;

    fn instance(uri: &str, expires: Option<std::time::Instant>) -> Instance {
        Instance {
            uri: uri.parse().unwrap(),
            metadata: Default::default(),
            expires,
            source: None,
        }
    }

    #[test]
    fn only_what_changed_is_written_and_replaced_leases_are_retired() {
        let layout = Layout::new("p/");
        let clocks = Clocks::now();
        let soon = Some(clocks.instant() + Duration::from_millis(2_500));
        let (a, b) = ("PYRO:a@127.0.0.1:1", "PYRO:b@127.0.0.1:2");
        let mut view = View::default();
        for (uri, lease) in [(a, 11), (b, 12)] {
            let kept = Kept {
                instance: instance(uri, soon),
                owner: None,
                lease,
                created: lease,
            };
            view.put("w".into(), uri.into(), kept);
        }
        // `a` untouched, `b` renewed, `c` new and permanent; then the name `v` is gone.
        let later = Some(clocks.instant() + Duration::from_secs(9));
        let entry = Entry {
            instances: vec![
                instance(a, soon),
                instance(b, later),
                instance("PYRO:c@127.0.0.1:3", None),
            ],
            owner: None,
        };
        let plan = plan(&layout, &view, &[("w".into(), Some(entry))], clocks);
        let leases: Vec<LeaseFor> = plan
            .writes
            .iter()
            .map(|write| match write {
                Write::Put { lease, .. } => *lease,
                Write::Delete { .. } => panic!("nothing is deleted"),
            })
            .collect();
        assert_eq!(leases, [LeaseFor::New(9), LeaseFor::None]);
        assert_eq!(plan.retired, [12]);

        let gone = super::plan(&layout, &view, &[("w".into(), None)], clocks);
        assert_eq!(
            gone.writes,
            [a, b].map(|uri| Write::Delete {
                key: layout.instance_key("w", uri)
            })
        );
        assert_eq!(gone.retired, [11, 12]);
    }

    #[test]
    fn a_lease_is_whole_seconds_rounded_up() {
        assert_eq!(lease_secs(Duration::from_millis(1)), 1);
        assert_eq!(lease_secs(Duration::ZERO), 1);
        assert_eq!(lease_secs(Duration::from_millis(2_001)), 3);
        assert_eq!(lease_secs(Duration::from_secs(30)), 30);
    }
}
