//! The nameserver's data: name -> instances (URI, metadata, lease) and owner, with the rules
//! of Pyro's nameserver and ours (leases, owners, several workers under one name). No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::{Duration, Instant};

use imbl::{OrdMap, OrdSet};

use crate::deadline::Deadline;
use crate::entry::{Entry, Instance};
use crate::filter::Matcher;
use crate::limits::{Limits, validate_name};
use crate::source::Source;
use rpc_core::{
    ListPage, MetadataQuery, NAMESERVER_OBJECT_ID, NameFilter, NamingError, Registration, Uri,
};

/// The most entries one page of a listing holds.
pub const MAX_PAGE_LEN: usize = 1000;

/// About how many bytes one page of a listing holds, far under the default message limit
/// even with the longest names, URIs and tags.
const PAGE_BYTES: usize = 1 << 20;

/// About how many bytes `instance` takes in a reply.
fn approximate_size(instance: &Instance) -> usize {
    64 + instance.uri.to_string().len()
        + instance
            .metadata
            .iter()
            .map(|tag| tag.len() + 8)
            .sum::<usize>()
}

/// The shortest owner token accepted: a token is a secret, and a short one is guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Refuses an owner token short enough to guess.
fn check_token(token: &str) -> Result<(), NamingError> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(NamingError::WeakToken {
            min_len: MIN_TOKEN_LEN,
        });
    }
    Ok(())
}

/// Names and what they stand for. The nameserver's own entry is always present.
///
/// Cloning is cheap (the maps are persistent, their parts shared until changed), so queries
/// run on a snapshot while registrations go on, and a change can be made on a copy that
/// replaces the original only once the change is stored.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: OrdMap<String, Entry>,
    /// Every leased instance by expiry (name, URI text), so expired ones are found without a
    /// scan.
    expiries: OrdSet<(Instant, String, String)>,
    /// Instances registered in all, the nameserver's own not counted.
    instances: usize,
    /// Instances registered from each client address that is known.
    per_source: OrdMap<Source, usize>,
    /// Names changed since [`take_changes`](Self::take_changes) was last called.
    changed: OrdSet<String>,
    /// A token that may change or remove any name, the operator's.
    admin_token: Option<String>,
    limits: Limits,
}

impl Registry {
    /// A registry holding only the nameserver's own entry, for `own_uri`, with the default
    /// [`Limits`].
    pub fn new(own_uri: Uri) -> Registry {
        Registry::with_limits(own_uri, Limits::default())
    }

    /// A registry holding only the nameserver's own entry, for `own_uri`, within `limits`.
    pub fn with_limits(own_uri: Uri, limits: Limits) -> Registry {
        let mut entries = OrdMap::new();
        let own = Instance {
            uri: own_uri,
            metadata: BTreeSet::new(),
            expires: None,
            source: None,
        };
        entries.insert(
            NAMESERVER_OBJECT_ID.to_owned(),
            Entry {
                instances: vec![own],
                owner: None,
            },
        );
        Registry {
            entries,
            expiries: OrdSet::new(),
            instances: 0,
            per_source: OrdMap::new(),
            changed: OrdSet::new(),
            admin_token: None,
            limits,
        }
    }

    /// Adds entries read back from a store, as they were (the nameserver's own entry skipped;
    /// limits not applied, since they held when stored), less the instances that expired by
    /// `now`: those names are left changed, for the store to catch up.
    pub fn restore(&mut self, stored: impl IntoIterator<Item = (String, Entry)>, now: Instant) {
        let mut outdated = OrdSet::new();
        for (name, mut entry) in stored {
            if name == NAMESERVER_OBJECT_ID {
                continue;
            }
            let before = entry.instances.len();
            entry
                .instances
                .retain(|instance| instance.expires.is_none_or(|at| at > now));
            if entry.instances.len() < before {
                outdated.insert(name.clone());
            }
            self.put(name, entry);
        }
        self.changed = outdated;
    }

    /// Lets `token` change or remove any name, owned or not (the operator's cleanup).
    pub fn set_admin_token(&mut self, token: Option<String>) {
        self.admin_token = token;
    }

    /// Refuses a change of `name` unless it is unowned, or `token` is its owner's or the
    /// admin's.
    fn check_owner(&self, name: &str, token: Option<&str>) -> Result<(), NamingError> {
        let Some(owner) = self
            .entries
            .get(name)
            .and_then(|entry| entry.owner.as_ref())
        else {
            return Ok(());
        };
        let allowed = token.is_some_and(|token| {
            same_secret(token, owner)
                || self
                    .admin_token
                    .as_deref()
                    .is_some_and(|admin| same_secret(token, admin))
        });
        if allowed {
            Ok(())
        } else {
            Err(NamingError::Owned(name.to_owned()))
        }
    }

    /// Refuses a registration of `uri` with `metadata` under `name` that breaks a rule.
    fn check_registration(
        &self,
        name: &str,
        uri: &Uri,
        metadata: &BTreeSet<String>,
    ) -> Result<(), NamingError> {
        validate_name(name)?;
        if name == NAMESERVER_OBJECT_ID {
            return Err(NamingError::Protected(name.to_owned()));
        }
        if !matches!(uri, Uri::Direct { .. }) {
            return Err(NamingError::NotDirect(uri.to_string()));
        }
        self.limits.check_uri(uri)?;
        self.limits.check_metadata(metadata)
    }

    /// Refuses to let `name` hold `after` if that grows the registry past its cap, or the
    /// instances of `source` past theirs.
    fn check_room(
        &self,
        name: &str,
        after: &Entry,
        source: Option<Source>,
    ) -> Result<(), NamingError> {
        let before = self.entries.get(name);
        let held = before.map_or(0, |entry| entry.instances.len());
        if after.instances.len() > held
            && self.instances + after.instances.len() - held > self.limits.max_registrations
        {
            return Err(NamingError::LimitReached {
                setting: "max_registrations".into(),
                limit: self.limits.max_registrations,
            });
        }
        let Some(source) = source else {
            return Ok(());
        };
        let from = |entry: &Entry| {
            entry
                .instances
                .iter()
                .filter(|instance| instance.source == Some(source))
                .count()
        };
        let (held, wanted) = (before.map_or(0, from), from(after));
        let now = self.per_source.get(&source).copied().unwrap_or(0);
        if wanted > held && now + wanted - held > self.limits.max_registrations_per_address {
            return Err(NamingError::LimitReached {
                setting: "max_registrations_per_address".into(),
                limit: self.limits.max_registrations_per_address,
            });
        }
        Ok(())
    }

    /// When a lease of `ttl` from `now` runs out.
    fn expiry(&self, ttl: Duration, now: Instant) -> Result<Instant, NamingError> {
        let too_long = NamingError::LimitReached {
            setting: "max_ttl_secs".into(),
            limit: self.limits.max_ttl_secs as usize,
        };
        if ttl.as_secs() >= self.limits.max_ttl_secs {
            return Err(too_long);
        }
        now.checked_add(ttl).ok_or(too_long)
    }

    /// Registers `name`, replacing what it held. In `safe` mode an existing name is left
    /// alone.
    ///
    /// # Errors
    ///
    /// An invalid name or metadata, a URI that is not `PYRO:`, a taken name in safe mode, the
    /// nameserver's own name, a name owned by someone (see
    /// [`register_lease`](Self::register_lease)), or a limit reached.
    pub fn register(
        &mut self,
        name: String,
        uri: Uri,
        safe: bool,
        metadata: BTreeSet<String>,
        source: Option<Source>,
    ) -> Result<(), NamingError> {
        self.check_owner(&name, None)?;
        self.check_registration(&name, &uri, &metadata)?;
        if safe && self.entries.contains_key(&name) {
            return Err(NamingError::NameTaken(name));
        }
        let instance = Instance {
            uri,
            metadata,
            expires: None,
            source,
        };
        self.replace(name, instance, None)
    }

    /// Registers (or renews) `name` until `now + ttl`, replacing what the name held, owned by
    /// `owner`: from then on only `owner` (or the admin token) may renew, overwrite, change or
    /// remove it.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register) without safe mode; [`NamingError::Owned`] if another
    /// token owns the name, [`NamingError::WeakToken`] for a short one.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one fact of the registration; a struct would only rename them"
    )]
    pub fn register_lease(
        &mut self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        now: Instant,
        owner: &str,
        source: Option<Source>,
    ) -> Result<(), NamingError> {
        check_token(owner)?;
        self.check_owner(&name, Some(owner))?;
        self.check_registration(&name, &uri, &metadata)?;
        let instance = Instance {
            uri,
            metadata,
            expires: Some(self.expiry(ttl, now)?),
            source,
        };
        self.replace(name, instance, Some(owner.to_owned()))
    }

    /// `name` now holds `instance` alone.
    fn replace(
        &mut self,
        name: String,
        instance: Instance,
        owner: Option<String>,
    ) -> Result<(), NamingError> {
        let source = instance.source;
        let entry = Entry {
            instances: vec![instance],
            owner,
        };
        self.check_room(&name, &entry, source)?;
        self.put(name, entry);
        Ok(())
    }

    /// Adds `uri` as one more instance of `name`, or renews it if the name holds it already
    /// (its metadata and lease replaced), leaving the name's other instances alone. With a
    /// `ttl` the instance expires unless registered again within it; with an `owner` the
    /// name becomes owned by that token, which every instance of an owned name must give.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register) and [`register_lease`](Self::register_lease), and
    /// [`NamingError::LimitReached`] for `max_instances_per_name`.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one fact of the registration; a struct would only rename them"
    )]
    pub fn add_instance(
        &mut self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Option<Duration>,
        now: Instant,
        owner: Option<&str>,
        source: Option<Source>,
    ) -> Result<(), NamingError> {
        if let Some(owner) = owner {
            check_token(owner)?;
        }
        self.check_owner(&name, owner)?;
        self.check_registration(&name, &uri, &metadata)?;
        let expires = ttl.map(|ttl| self.expiry(ttl, now)).transpose()?;
        let mut entry = self.entries.get(&name).cloned().unwrap_or_default();
        let instance = Instance {
            uri,
            metadata,
            expires,
            source,
        };
        match entry.instances.iter().position(|i| i.uri == instance.uri) {
            Some(at) => entry.instances[at] = instance,
            None => {
                if entry.instances.len() >= self.limits.max_instances_per_name {
                    return Err(NamingError::LimitReached {
                        setting: "max_instances_per_name".into(),
                        limit: self.limits.max_instances_per_name,
                    });
                }
                entry.instances.push(instance);
            }
        }
        if let Some(owner) = owner {
            entry.owner = Some(owner.to_owned());
        }
        self.check_room(&name, &entry, source)?;
        self.put(name, entry);
        Ok(())
    }

    /// Removes the instance `uri` of `name`, if `token` may change the name; returns how many
    /// were removed (0 or 1). The name goes when its last instance does.
    ///
    /// # Errors
    ///
    /// [`NamingError::Owned`], [`NamingError::Protected`] for the nameserver's own entry.
    pub fn remove_instance(
        &mut self,
        name: &str,
        uri: &Uri,
        token: Option<&str>,
    ) -> Result<u64, NamingError> {
        if name == NAMESERVER_OBJECT_ID {
            return Err(NamingError::Protected(name.to_owned()));
        }
        self.check_owner(name, token)?;
        let Some(mut entry) = self.entries.get(name).cloned() else {
            return Ok(0);
        };
        let before = entry.instances.len();
        entry.instances.retain(|instance| instance.uri != *uri);
        let removed = (before - entry.instances.len()) as u64;
        if removed > 0 {
            self.put(name.to_owned(), entry);
        }
        Ok(removed)
    }

    /// Stores `entry` under `name` (forgets the name if it holds no instance), keeping the
    /// expiries, the count and the changed names in step: every change goes through here or
    /// [`forget`](Self::forget).
    fn put(&mut self, name: String, entry: Entry) {
        self.forget(&name);
        for instance in &entry.instances {
            if let Some(at) = instance.expires {
                self.expiries
                    .insert((at, name.clone(), instance.uri.to_string()));
            }
            if let Some(source) = instance.source {
                *self.per_source.entry(source).or_insert(0) += 1;
            }
        }
        self.instances += entry.instances.len();
        if !entry.instances.is_empty() {
            self.entries.insert(name, entry);
        }
    }

    /// Removes `name` with all its instances.
    fn forget(&mut self, name: &str) -> Option<Entry> {
        self.changed.insert(name.to_owned());
        let old = self.entries.remove(name)?;
        for instance in &old.instances {
            if let Some(at) = instance.expires {
                self.expiries
                    .remove(&(at, name.to_owned(), instance.uri.to_string()));
            }
            if let Some(source) = instance.source {
                let left = self.per_source.get(&source).map_or(0, |n| n - 1);
                if left == 0 {
                    self.per_source.remove(&source);
                } else {
                    self.per_source.insert(source, left);
                }
            }
        }
        self.instances -= old.instances.len();
        Some(old)
    }

    /// Removes the instances whose lease ran out by `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some((at, name, uri)) = self.expiries.get_min().cloned() {
            if at > now {
                break;
            }
            match self.entries.get(&name).cloned() {
                Some(mut entry) => {
                    entry.instances.retain(|instance| {
                        !(instance.expires == Some(at) && instance.uri.to_string() == uri)
                    });
                    self.put(name, entry);
                }
                // Bookkeeping that lost its entry cannot happen; drop it rather than spin.
                None => {
                    self.expiries.remove(&(at, name, uri));
                }
            }
            expired += 1;
        }
        expired
    }

    /// Sets `name` to hold `entry` (nothing, if it has no instance) as a shared store says
    /// it does, without checking rules or noting a change: for a registry that mirrors one
    /// kept elsewhere. The nameserver's own entry is left alone.
    #[cfg(feature = "etcd")]
    pub(crate) fn mirror(&mut self, name: String, entry: Entry) {
        if name == NAMESERVER_OBJECT_ID {
            return;
        }
        self.put(name.clone(), entry);
        self.changed.remove(&name);
    }

    /// Forgets which names changed: a mirror's changes are made elsewhere.
    #[cfg(feature = "etcd")]
    pub(crate) fn forget_changes(&mut self) {
        self.changed = OrdSet::new();
    }

    /// The names changed since the last call, each with what it holds now (`None` for a name
    /// that is gone): what a store must write to catch up.
    pub fn take_changes(&mut self) -> Vec<(String, Option<Entry>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|name| {
                let entry = self.entries.get(&name).cloned();
                (name, entry)
            })
            .collect()
    }

    /// One instance of `name`: the one at `turn`, counting round, so that successive lookups
    /// spread over the instances. Its lease's time left and whether it is owned are filled
    /// in.
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`].
    pub fn lookup(&self, name: &str, turn: usize) -> Result<Registration, NamingError> {
        Ok(self.entry(name)?.registration(turn, Instant::now()))
    }

    /// Every instance of `name`, starting at the one at `turn` and wrapping round.
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`].
    pub fn lookup_all(&self, name: &str, turn: usize) -> Result<Vec<Registration>, NamingError> {
        Ok(self.entry(name)?.registrations(turn, Instant::now()))
    }

    fn entry(&self, name: &str) -> Result<&Entry, NamingError> {
        self.entries
            .get(name)
            .ok_or_else(|| NamingError::UnknownName(name.to_owned()))
    }

    /// How long the lease of `name`'s first instance has left at `now`; `None` for a
    /// permanent registration or an unknown name.
    pub fn lease_left(&self, name: &str, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(name)?;
        entry.instances[0]
            .expires
            .map(|at| at.saturating_duration_since(now))
    }

    /// The entries the filter selects (the first instance of each), found before `deadline`.
    ///
    /// # Errors
    ///
    /// [`NamingError::BadPattern`] for a regular expression that does not compile or is too
    /// long, [`NamingError::QueryTooSlow`] past the deadline.
    pub fn list(
        &self,
        filter: &NameFilter,
        deadline: Deadline,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        let matcher = Matcher::new(filter)?;
        let now = Instant::now();
        self.select(deadline, |name, entry| {
            matcher.matches(name).then(|| entry.registration(0, now))
        })
    }

    /// The entries whose metadata matches the query, found before `deadline`: per name, one
    /// of its matching instances (the one at `turn`, counting round). An empty `All` matches
    /// every entry; an empty `Any` matches none.
    ///
    /// # Errors
    ///
    /// [`NamingError::QueryTooSlow`] past the deadline.
    pub fn yplookup(
        &self,
        query: &MetadataQuery,
        deadline: Deadline,
        turn: usize,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        let now = Instant::now();
        self.select(deadline, |_, entry| {
            let matching: Vec<&Instance> = entry
                .instances
                .iter()
                .filter(|instance| match query {
                    MetadataQuery::All(tags) => tags.is_subset(&instance.metadata),
                    MetadataQuery::Any(tags) => !tags.is_disjoint(&instance.metadata),
                })
                .collect();
            (!matching.is_empty()).then(|| entry.describe(matching[turn % matching.len()], now))
        })
    }

    /// One page of what the filter selects, every instance of each name: the names after
    /// `after` (from the start if `None`), at most `limit` of them and about 1 MiB in all,
    /// and the name to continue after if more may follow.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub fn list_page(
        &self,
        filter: &NameFilter,
        after: Option<&str>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<ListPage, NamingError> {
        let matcher = Matcher::new(filter)?;
        let start = match after {
            Some(after) => Bound::Excluded(after.to_owned()),
            None => Bound::Unbounded,
        };
        let (limit, now) = (limit.clamp(1, MAX_PAGE_LEN), Instant::now());
        let mut page = ListPage::default();
        let mut bytes = 0;
        for (name, entry) in self.entries.range((start, Bound::Unbounded)) {
            if page.entries.len() >= limit || bytes >= PAGE_BYTES {
                page.next = page.entries.keys().next_back().cloned();
                break;
            }
            deadline.check()?;
            if matcher.matches(name) {
                bytes += name.len() + entry.instances.iter().map(approximate_size).sum::<usize>();
                page.entries
                    .insert(name.clone(), entry.registrations(0, now));
            }
        }
        Ok(page)
    }

    /// What `wanted` makes of each entry it selects, checking the deadline before each.
    fn select<T>(
        &self,
        deadline: Deadline,
        mut wanted: impl FnMut(&str, &Entry) -> Option<T>,
    ) -> Result<BTreeMap<String, T>, NamingError> {
        let mut found = BTreeMap::new();
        for (name, entry) in &self.entries {
            deadline.check()?;
            if let Some(value) = wanted(name, entry) {
                found.insert(name.clone(), value);
            }
        }
        Ok(found)
    }

    /// Replaces the metadata of `name` (of every instance it holds).
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`], [`NamingError::Protected`] for the nameserver's own
    /// entry, and invalid or too much metadata.
    pub fn set_metadata(
        &mut self,
        name: &str,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        if name == NAMESERVER_OBJECT_ID {
            return Err(NamingError::Protected(name.to_owned()));
        }
        self.check_owner(name, None)?;
        self.limits.check_metadata(&metadata)?;
        let mut entry = self.entry(name)?.clone();
        for instance in &mut entry.instances {
            instance.metadata = metadata.clone();
        }
        self.put(name.to_owned(), entry);
        Ok(())
    }

    /// Removes the entries the filter selects, except the nameserver's own; returns how many.
    ///
    /// # Errors
    ///
    /// [`NamingError::Protected`] when asked to remove the nameserver's own entry by name,
    /// [`NamingError::BadPattern`] for a bad regular expression.
    pub fn remove(&mut self, filter: &NameFilter) -> Result<u64, NamingError> {
        self.remove_as(filter, None)
    }

    /// Removes what the filter selects that `token` may remove: unowned names, names `token`
    /// owns, or any name for the admin token. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove); [`NamingError::Owned`] for a single name owned by another.
    pub fn remove_as(
        &mut self,
        filter: &NameFilter,
        token: Option<&str>,
    ) -> Result<u64, NamingError> {
        let names = self.names_to_remove(filter, token, Deadline::never())?;
        Ok(self.remove_names(&names, token))
    }

    /// The names `remove(filter)` would remove, found before `deadline` (on a snapshot, say).
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove), and [`NamingError::QueryTooSlow`] past the deadline.
    pub fn names_to_remove(
        &self,
        filter: &NameFilter,
        token: Option<&str>,
        deadline: Deadline,
    ) -> Result<Vec<String>, NamingError> {
        if matches!(filter, NameFilter::Name(name) if name == NAMESERVER_OBJECT_ID) {
            return Err(NamingError::Protected(NAMESERVER_OBJECT_ID.to_owned()));
        }
        if let NameFilter::Name(name) = filter {
            self.check_owner(name, token)?;
            return Ok(self
                .entries
                .get(name)
                .map(|_| name.clone())
                .into_iter()
                .collect());
        }
        let matcher = Matcher::new(filter)?;
        // A pattern passes over the names it may not remove.
        let found = self.select(deadline, |name, _| {
            (name != NAMESERVER_OBJECT_ID
                && matcher.matches(name)
                && self.check_owner(name, token).is_ok())
            .then_some(())
        })?;
        Ok(found.into_keys().collect())
    }

    /// Removes those of `names` that `token` may remove (never the nameserver's own); returns
    /// how many were there.
    pub fn remove_names(&mut self, names: &[String], token: Option<&str>) -> u64 {
        let mut removed = 0;
        for name in names {
            if name != NAMESERVER_OBJECT_ID
                && self.check_owner(name, token).is_ok()
                && self.entries.contains_key(name)
            {
                self.forget(name);
                removed += 1;
            }
        }
        removed
    }

    /// How many names are registered, the nameserver's own included.
    pub fn count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// How many instances are registered in all, the nameserver's own not counted.
    pub fn instances(&self) -> usize {
        self.instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::MAX_PATTERN_LEN;

    fn uri(object: &str) -> Uri {
        format!("PYRO:{object}@127.0.0.1:1").parse().unwrap()
    }

    fn tags(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn registry() -> Registry {
        let mut registry = Registry::new(uri(NAMESERVER_OBJECT_ID));
        registry
            .register(
                "app.worker.1".into(),
                uri("w1"),
                false,
                tags(&["fast", "eu"]),
                None,
            )
            .unwrap();
        registry
            .register(
                "app.worker.2".into(),
                uri("w2"),
                false,
                tags(&["slow", "eu"]),
                None,
            )
            .unwrap();
        registry
            .register("other".into(), uri("o"), false, tags(&[]), None)
            .unwrap();
        registry
    }

    #[test]
    fn register_and_lookup() {
        let registry = registry();
        assert_eq!(registry.lookup("other", 0).unwrap().uri, uri("o"));
        assert_eq!(
            registry.lookup("app.worker.1", 0).unwrap().metadata,
            tags(&["eu", "fast"])
        );
        assert_eq!(
            registry.lookup("nope", 0),
            Err(NamingError::UnknownName("nope".into()))
        );
        assert_eq!(registry.count(), 4);
    }

    #[test]
    fn safe_mode_refuses_to_overwrite_and_plain_mode_overwrites() {
        let mut registry = registry();
        assert_eq!(
            registry.register("other".into(), uri("x"), true, tags(&[]), None),
            Err(NamingError::NameTaken("other".into()))
        );
        assert_eq!(registry.lookup("other", 0).unwrap().uri, uri("o"));
        registry
            .register("other".into(), uri("x"), false, tags(&[]), None)
            .unwrap();
        assert_eq!(registry.lookup("other", 0).unwrap().uri, uri("x"));
    }

    #[test]
    fn bad_names_and_indirect_uris_are_refused() {
        let mut registry = registry();
        for bad in ["", "two words", "tab\there", "new\nline", "svc@v2"] {
            assert!(matches!(
                registry.register(bad.into(), uri("x"), false, tags(&[]), None),
                Err(NamingError::InvalidName { .. })
            ));
        }
        assert!(matches!(
            registry.register(
                "n".into(),
                "PYRONAME:x".parse().unwrap(),
                false,
                tags(&[]),
                None
            ),
            Err(NamingError::NotDirect(_))
        ));
    }

    #[test]
    fn list_by_prefix_and_by_regex_anchored_at_the_start() {
        let registry = registry();
        let names = |filter| {
            registry
                .list(&filter, Deadline::never())
                .unwrap()
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(NameFilter::Prefix("app.".into())),
            ["app.worker.1", "app.worker.2"]
        );
        assert_eq!(names(NameFilter::Prefix(String::new())).len(), 4);
        assert_eq!(names(NameFilter::Regex(r"app\.worker\.\d".into())).len(), 2);
        assert_eq!(
            names(NameFilter::Regex("worker".into())),
            Vec::<String>::new(),
            "anchored at the start"
        );
        assert_eq!(
            names(NameFilter::Regex("oth|app.worker.2".into())),
            ["app.worker.2", "other"]
        );
        assert!(matches!(
            registry.list(&NameFilter::Regex("(".into()), Deadline::never()),
            Err(NamingError::BadPattern { .. })
        ));
    }

    #[test]
    fn yplookup_by_all_and_by_any() {
        let registry = registry();
        let names = |query| {
            registry
                .yplookup(&query, Deadline::never(), 0)
                .unwrap()
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(MetadataQuery::All(tags(&["eu"]))),
            ["app.worker.1", "app.worker.2"]
        );
        assert_eq!(
            names(MetadataQuery::All(tags(&["eu", "fast"]))),
            ["app.worker.1"]
        );
        assert_eq!(
            names(MetadataQuery::Any(tags(&["fast", "slow"]))),
            ["app.worker.1", "app.worker.2"]
        );
        assert_eq!(
            names(MetadataQuery::Any(tags(&["none"]))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn set_metadata_replaces_it() {
        let mut registry = registry();
        registry.set_metadata("other", tags(&["new"])).unwrap();
        assert_eq!(
            registry.lookup("other", 0).unwrap().metadata,
            tags(&["new"])
        );
        assert!(registry.set_metadata("nope", tags(&[])).is_err());
    }

    #[test]
    fn remove_counts_and_never_removes_the_nameserver() {
        let mut registry = registry();
        assert_eq!(registry.remove(&NameFilter::Name("other".into())), Ok(1));
        assert_eq!(registry.remove(&NameFilter::Name("other".into())), Ok(0));
        assert_eq!(
            registry.remove(&NameFilter::Name(NAMESERVER_OBJECT_ID.into())),
            Err(NamingError::Protected(NAMESERVER_OBJECT_ID.into()))
        );
        assert_eq!(
            registry.remove(&NameFilter::Regex(r"app\.worker\.2".into())),
            Ok(1)
        );
        assert_eq!(registry.remove(&NameFilter::Prefix(String::new())), Ok(1));
        assert_eq!(registry.count(), 1);
        assert!(registry.lookup(NAMESERVER_OBJECT_ID, 0).is_ok());
        assert_eq!(
            registry.register(
                NAMESERVER_OBJECT_ID.into(),
                uri("x"),
                false,
                tags(&[]),
                None
            ),
            Err(NamingError::Protected(NAMESERVER_OBJECT_ID.into()))
        );
    }

    #[test]
    fn a_query_past_its_deadline_fails_with_a_typed_error() {
        let registry = registry();
        let spent = Deadline::after(Duration::ZERO);
        assert!(matches!(
            registry.list(&NameFilter::Prefix(String::new()), spent.clone()),
            Err(NamingError::QueryTooSlow { .. })
        ));
        assert!(matches!(
            registry.yplookup(&MetadataQuery::All(tags(&[])), spent.clone(), 0),
            Err(NamingError::QueryTooSlow { .. })
        ));
        assert!(matches!(
            registry.names_to_remove(&NameFilter::Regex("app".into()), None, spent),
            Err(NamingError::QueryTooSlow { .. })
        ));
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stoppable = Deadline::never().or_when(&stopping);
        assert!(
            registry
                .list(&NameFilter::Prefix(String::new()), stoppable.clone())
                .is_ok()
        );
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            registry.list(&NameFilter::Prefix(String::new()), stoppable),
            Err(NamingError::Stopping)
        );
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(matches!(
            registry.list(&NameFilter::Regex(long), Deadline::never()),
            Err(NamingError::BadPattern { .. })
        ));
    }

    #[test]
    fn registrations_are_capped_and_the_own_entry_keeps_its_metadata() {
        let limits = Limits {
            max_registrations: 2,
            ..Limits::default()
        };
        let mut registry = Registry::with_limits(uri(NAMESERVER_OBJECT_ID), limits);
        for name in ["a", "b"] {
            registry
                .register(name.into(), uri(name), false, tags(&[]), None)
                .unwrap();
        }
        assert_eq!(
            registry.register("c".into(), uri("c"), false, tags(&[]), None),
            Err(NamingError::LimitReached {
                setting: "max_registrations".into(),
                limit: 2
            })
        );
        // Replacing a registered name is no new registration.
        registry
            .register("a".into(), uri("a2"), false, tags(&[]), None)
            .unwrap();
        assert!(matches!(
            registry.set_metadata(NAMESERVER_OBJECT_ID, tags(&["worker"])),
            Err(NamingError::Protected(_))
        ));
        let long_uri: Uri = format!("PYRO:{}@127.0.0.1:1", "o".repeat(2000))
            .parse()
            .unwrap();
        assert!(matches!(
            registry.register("a".into(), long_uri, false, tags(&[]), None),
            Err(NamingError::LimitReached { setting, .. }) if setting == "max_uri_len"
        ));
    }

    #[test]
    fn leased_names_expire_unless_renewed_and_plain_registration_is_permanent() {
        let mut registry = registry();
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        registry
            .register_lease(
                "leased".into(),
                uri("l"),
                tags(&[]),
                ttl,
                start,
                OWNER,
                None,
            )
            .unwrap();
        assert_eq!(registry.lease_left("leased", start), Some(ttl));
        assert_eq!(registry.lease_left("other", start), None);
        // Renewed halfway: it outlives its first expiry.
        registry
            .register_lease(
                "leased".into(),
                uri("l"),
                tags(&[]),
                ttl,
                start + ttl / 2,
                OWNER,
                None,
            )
            .unwrap();
        assert_eq!(registry.expire(start + ttl), 0);
        assert!(registry.lookup("leased", 0).is_ok());
        assert_eq!(registry.expire(start + ttl * 3 / 2), 1);
        assert!(registry.lookup("leased", 0).is_err());
        // Removing a leased name forgets its lease: registered again, it is permanent.
        registry
            .register_lease("gone".into(), uri("g"), tags(&[]), ttl, start, OWNER, None)
            .unwrap();
        registry
            .remove_as(&NameFilter::Name("gone".into()), Some(OWNER))
            .unwrap();
        registry
            .register("gone".into(), uri("g2"), false, tags(&[]), None)
            .unwrap();
        assert_eq!(registry.expire(start + ttl * 10), 0);
        assert!(registry.lookup("gone", 0).is_ok());
    }

    const OWNER: &str = "owner-token-0123456789";

    #[test]
    fn an_owned_name_changes_only_with_its_owner_or_the_admin_token() {
        let mut registry = registry();
        registry.set_admin_token(Some("admin-token-0123456789".into()));
        let (now, ttl) = (Instant::now(), Duration::from_secs(60));
        registry
            .register_lease("owned".into(), uri("w"), tags(&[]), ttl, now, OWNER, None)
            .unwrap();
        fn owned<T>(result: Result<T, NamingError>) -> bool {
            matches!(result, Err(NamingError::Owned(name)) if name == "owned")
        }
        // Pyro's API, which has no owners, cannot touch it.
        assert!(owned(registry.register(
            "owned".into(),
            uri("evil"),
            false,
            tags(&[]),
            None
        )));
        assert!(owned(registry.set_metadata("owned", tags(&["x"]))));
        assert!(owned(registry.remove(&NameFilter::Name("owned".into()))));
        // Nor can another token.
        let thief = "thief-token-0123456789";
        assert!(owned(registry.register_lease(
            "owned".into(),
            uri("evil"),
            tags(&[]),
            ttl,
            now,
            thief,
            None
        )));
        assert!(owned(
            registry.remove_as(&NameFilter::Name("owned".into()), Some(thief))
        ));
        // A pattern passes over it.
        assert_eq!(registry.remove(&NameFilter::Regex(".*".into())).unwrap(), 3);
        assert_eq!(registry.lookup("owned", 0).unwrap().uri, uri("w"));
        // Its owner renews it; the admin removes it.
        registry
            .register_lease("owned".into(), uri("w2"), tags(&[]), ttl, now, OWNER, None)
            .unwrap();
        assert_eq!(
            registry
                .remove_as(
                    &NameFilter::Prefix("own".into()),
                    Some("admin-token-0123456789")
                )
                .unwrap(),
            1
        );
        // Once gone, the name is free for anyone.
        registry
            .register("owned".into(), uri("new"), false, tags(&[]), None)
            .unwrap();
        // A token short enough to guess is refused.
        assert!(
            registry
                .register_lease("short".into(), uri("s"), tags(&[]), ttl, now, "short", None)
                .is_err()
        );
    }

    #[test]
    fn a_listing_in_pages_returns_every_name_once_in_order() {
        let mut registry = registry();
        for n in 0..2500 {
            registry
                .register(format!("many.{n:05}"), uri("m"), false, tags(&[]), None)
                .unwrap();
        }
        let filter = NameFilter::Prefix("many.".into());
        let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = registry
                .list_page(&filter, after.as_deref(), 5000, Deadline::never())
                .unwrap();
            assert!(page.entries.len() <= MAX_PAGE_LEN);
            seen.extend(page.entries.into_keys());
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..2500).map(|n| format!("many.{n:05}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn instances_of_one_name_are_added_renewed_expired_and_removed_one_by_one() {
        let mut registry = registry();
        let (now, ttl) = (Instant::now(), Duration::from_secs(10));
        for (n, worker) in ["w1", "w2", "w3"].into_iter().enumerate() {
            let at = now + Duration::from_secs(n as u64);
            registry
                .add_instance(
                    "pool".into(),
                    uri(worker),
                    tags(&[worker]),
                    Some(ttl),
                    at,
                    Some(OWNER),
                    None,
                )
                .unwrap();
        }
        // Registered again, an instance is renewed, not added twice.
        registry
            .add_instance(
                "pool".into(),
                uri("w1"),
                tags(&["w1"]),
                Some(ttl),
                now + ttl / 2,
                Some(OWNER),
                None,
            )
            .unwrap();
        let uris = |registry: &Registry, turn| {
            registry
                .lookup_all("pool", turn)
                .unwrap()
                .into_iter()
                .map(|found| found.uri)
                .collect::<Vec<_>>()
        };
        assert_eq!(uris(&registry, 0), [uri("w1"), uri("w2"), uri("w3")]);
        assert_eq!(uris(&registry, 4), [uri("w2"), uri("w3"), uri("w1")]);
        // Successive lookups go round the instances.
        let picked: Vec<Uri> = (0..3)
            .map(|turn| registry.lookup("pool", turn).unwrap().uri)
            .collect();
        assert_eq!(picked, [uri("w1"), uri("w2"), uri("w3")]);
        assert_eq!(registry.count(), 5, "one name, however many instances");
        // w2 stops renewing; w1 renewed; w3 registered last.
        assert_eq!(registry.expire(now + ttl + Duration::from_millis(1500)), 1);
        assert_eq!(uris(&registry, 0), [uri("w1"), uri("w3")]);
        // Another token can neither join nor remove an instance.
        let thief = "thief-token-0123456789";
        assert!(matches!(
            registry.add_instance(
                "pool".into(),
                uri("evil"),
                tags(&[]),
                None,
                now,
                Some(thief),
                None
            ),
            Err(NamingError::Owned(_))
        ));
        assert!(matches!(
            registry.add_instance("pool".into(), uri("evil"), tags(&[]), None, now, None, None),
            Err(NamingError::Owned(_))
        ));
        assert!(matches!(
            registry.remove_instance("pool", &uri("w1"), Some(thief)),
            Err(NamingError::Owned(_))
        ));
        assert_eq!(
            registry.remove_instance("pool", &uri("w1"), Some(OWNER)),
            Ok(1)
        );
        assert_eq!(
            registry.remove_instance("pool", &uri("w1"), Some(OWNER)),
            Ok(0)
        );
        assert_eq!(uris(&registry, 0), [uri("w3")]);
        // The name goes with its last instance, and its owner with it.
        assert_eq!(registry.expire(now + ttl * 3), 1);
        assert!(registry.lookup("pool", 0).is_err());
        registry
            .add_instance("pool".into(), uri("new"), tags(&[]), None, now, None, None)
            .unwrap();
        assert_eq!(registry.instances(), 4);
    }

    #[test]
    fn a_name_holds_at_most_its_share_of_instances_and_yplookup_picks_matching_ones() {
        let limits = Limits {
            max_instances_per_name: 2,
            ..Limits::default()
        };
        let mut registry = Registry::with_limits(uri(NAMESERVER_OBJECT_ID), limits);
        let now = Instant::now();
        registry
            .add_instance(
                "pool".into(),
                uri("a"),
                tags(&["eu"]),
                None,
                now,
                None,
                None,
            )
            .unwrap();
        registry
            .add_instance(
                "pool".into(),
                uri("b"),
                tags(&["us"]),
                None,
                now,
                None,
                None,
            )
            .unwrap();
        assert_eq!(
            registry.add_instance("pool".into(), uri("c"), tags(&[]), None, now, None, None),
            Err(NamingError::LimitReached {
                setting: "max_instances_per_name".into(),
                limit: 2
            })
        );
        for turn in 0..4 {
            let found = registry
                .yplookup(&MetadataQuery::All(tags(&["us"])), Deadline::never(), turn)
                .unwrap();
            assert_eq!(found["pool"].uri, uri("b"));
        }
        // Pyro's register replaces every instance.
        registry
            .register("pool".into(), uri("only"), false, tags(&[]), None)
            .unwrap();
        assert_eq!(registry.lookup_all("pool", 0).unwrap().len(), 1);
        assert_eq!(registry.instances(), 1);
    }

    #[test]
    fn changes_are_handed_out_once_and_a_restore_drops_what_expired_meanwhile() {
        let mut registry = registry();
        let changed: Vec<String> = registry
            .take_changes()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(changed, ["app.worker.1", "app.worker.2", "other"]);
        assert!(registry.take_changes().is_empty());
        registry.remove(&NameFilter::Name("other".into())).unwrap();
        assert_eq!(registry.take_changes(), vec![("other".to_owned(), None)]);

        let now = Instant::now();
        let live = Entry {
            instances: vec![Instance {
                uri: uri("live"),
                metadata: tags(&[]),
                expires: Some(now + Duration::from_secs(5)),
                source: None,
            }],
            owner: Some(OWNER.into()),
        };
        let mut dead = live.clone();
        dead.instances[0].expires = Some(now - Duration::from_secs(1));
        let mut restored = Registry::new(uri(NAMESERVER_OBJECT_ID));
        restored.restore([("live".to_owned(), live), ("dead".to_owned(), dead)], now);
        assert_eq!(restored.lookup("live", 0).unwrap().uri, uri("live"));
        assert!(restored.lookup("dead", 0).is_err());
        // Only the name that lost an instance is for the store to write.
        assert_eq!(restored.take_changes(), vec![("dead".to_owned(), None)]);
        // The owner came back with it.
        assert!(matches!(
            restored.register("live".into(), uri("evil"), false, tags(&[]), None),
            Err(NamingError::Owned(_))
        ));
    }

    #[test]
    fn each_client_address_holds_at_most_its_share_and_gets_it_back_as_its_names_go() {
        let limits = Limits {
            max_registrations_per_address: 2,
            ..Limits::default()
        };
        let mut registry = Registry::with_limits(uri(NAMESERVER_OBJECT_ID), limits);
        let a = Some(Source::of([192, 0, 2, 1].into()));
        let b = Some(Source::of([192, 0, 2, 2].into()));
        let now = Instant::now();
        let ttl = Duration::from_secs(5);
        registry
            .register("a.1".into(), uri("a1"), false, tags(&[]), a)
            .unwrap();
        registry
            .add_instance("a.2".into(), uri("a2"), tags(&[]), Some(ttl), now, None, a)
            .unwrap();
        let refused = NamingError::LimitReached {
            setting: "max_registrations_per_address".into(),
            limit: 2,
        };
        assert_eq!(
            registry.register("a.3".into(), uri("a3"), false, tags(&[]), a),
            Err(refused.clone())
        );
        assert_eq!(
            registry.add_instance("a.1".into(), uri("a1b"), tags(&[]), None, now, None, a),
            Err(refused.clone())
        );
        // At its cap, a client may still replace and renew what it holds; another address
        // and an unknown one are not held back.
        registry
            .register("a.1".into(), uri("a1c"), false, tags(&[]), a)
            .unwrap();
        registry
            .add_instance("a.2".into(), uri("a2"), tags(&[]), Some(ttl), now, None, a)
            .unwrap();
        registry
            .register("b.1".into(), uri("b1"), false, tags(&[]), b)
            .unwrap();
        registry
            .register("unix.1".into(), uri("u1"), false, tags(&[]), None)
            .unwrap();
        // A name taken over by another address moves to that address's count.
        registry
            .register("a.1".into(), uri("b2"), false, tags(&[]), b)
            .unwrap();
        registry
            .register("a.3".into(), uri("a3"), false, tags(&[]), a)
            .unwrap();
        assert_eq!(
            registry.register("b.3".into(), uri("b3"), false, tags(&[]), b),
            Err(refused)
        );
        // Removed and expired instances give their room back.
        registry.remove(&NameFilter::Name("a.3".into())).unwrap();
        assert_eq!(registry.expire(now + ttl), 1);
        registry
            .register("a.4".into(), uri("a4"), false, tags(&[]), a)
            .unwrap();
        registry
            .register("a.5".into(), uri("a5"), false, tags(&[]), a)
            .unwrap();
    }
}
