//! The nameserver's data: name -> (URI, metadata), with the rules of Pyro's nameserver. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use imbl::{OrdMap, OrdSet};

use crate::limits::{Limits, validate_name};
use regex::Regex;
use rpc_core::{MetadataQuery, NAMESERVER_OBJECT_ID, NameFilter, NamingError, Registration, Uri};

/// The largest compiled regular expression a client may make the nameserver build. This
/// bounds memory, not time: a 21-byte pattern well under it took 225 s over 20,000 names, so
/// queries also run against a time budget ([`Deadline`]).
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The longest regular expression accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// When a query must give up, and the budget it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A query may run for `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// No deadline: for callers that own the registry alone.
    pub fn never() -> Deadline {
        Deadline::after(Duration::from_secs(86_400 * 365))
    }

    fn check(&self) -> Result<(), NamingError> {
        if Instant::now() >= self.at {
            return Err(NamingError::QueryTooSlow {
                budget: self.budget,
            });
        }
        Ok(())
    }
}

/// Names and what they stand for. The nameserver's own entry is always present.
///
/// Cloning is cheap (the map is persistent, its parts shared until changed), so queries run on
/// a snapshot while registrations go on.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: OrdMap<String, Registration>,
    /// When each leased name expires; names without a lease are permanent.
    leases: OrdMap<String, Instant>,
    /// The same leases by expiry, so expired ones are found without a scan.
    expiries: OrdSet<(Instant, String)>,
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
        entries.insert(
            NAMESERVER_OBJECT_ID.to_owned(),
            Registration {
                uri: own_uri,
                metadata: BTreeSet::new(),
            },
        );
        Registry {
            entries,
            leases: OrdMap::new(),
            expiries: OrdSet::new(),
            limits,
        }
    }

    /// Registers `name`. In `safe` mode an existing name is left alone.
    ///
    /// # Errors
    ///
    /// An invalid name or metadata, a URI that is not `PYRO:`, a taken name in safe mode, the
    /// nameserver's own name, or a limit reached.
    pub fn register(
        &mut self,
        name: String,
        uri: Uri,
        safe: bool,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        validate_name(&name)?;
        if name == NAMESERVER_OBJECT_ID {
            return Err(NamingError::Protected(name));
        }
        if !matches!(uri, Uri::Direct { .. }) {
            return Err(NamingError::NotDirect(uri.to_string()));
        }
        self.limits.check_uri(&uri)?;
        self.limits.check_metadata(&metadata)?;
        let known = self.entries.contains_key(&name);
        if safe && known {
            return Err(NamingError::NameTaken(name));
        }
        // The nameserver's own entry does not count.
        if !known && self.entries.len() > self.limits.max_registrations {
            return Err(NamingError::LimitReached {
                setting: "max_registrations".into(),
                limit: self.limits.max_registrations,
            });
        }
        self.end_lease(&name);
        self.entries.insert(name, Registration { uri, metadata });
        Ok(())
    }

    /// Registers (or renews) `name` until `now + ttl`, replacing what the name held.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register) without safe mode.
    pub fn register_lease(
        &mut self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), NamingError> {
        let too_long = NamingError::LimitReached {
            setting: "max_ttl_secs".into(),
            limit: self.limits.max_ttl_secs as usize,
        };
        if ttl.as_secs() >= self.limits.max_ttl_secs {
            return Err(too_long);
        }
        let expires = now.checked_add(ttl).ok_or(too_long)?;
        self.register(name.clone(), uri, false, metadata)?;
        self.leases.insert(name.clone(), expires);
        self.expiries.insert((expires, name));
        Ok(())
    }

    /// Removes the registrations whose lease ran out by `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some((at, name)) = self.expiries.get_min().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, name.clone()));
            self.leases.remove(&name);
            self.entries.remove(&name);
            expired += 1;
        }
        expired
    }

    /// How long the lease of `name` has left at `now`; `None` for a permanent registration.
    pub fn lease_left(&self, name: &str, now: Instant) -> Option<Duration> {
        self.leases
            .get(name)
            .map(|at| at.saturating_duration_since(now))
    }

    /// Makes `name` permanent (or forgets it), dropping its lease if it has one.
    fn end_lease(&mut self, name: &str) {
        if let Some(at) = self.leases.remove(name) {
            self.expiries.remove(&(at, name.to_owned()));
        }
    }

    /// What `name` stands for.
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`].
    pub fn lookup(&self, name: &str) -> Result<&Registration, NamingError> {
        self.entries
            .get(name)
            .ok_or_else(|| NamingError::UnknownName(name.to_owned()))
    }

    /// The entries the filter selects, found before `deadline`.
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
        self.select(deadline, |name, _| matcher.matches(name))
    }

    /// The entries whose metadata matches the query, found before `deadline`. An empty `All`
    /// matches every entry; an empty `Any` matches none.
    ///
    /// # Errors
    ///
    /// [`NamingError::QueryTooSlow`] past the deadline.
    pub fn yplookup(
        &self,
        query: &MetadataQuery,
        deadline: Deadline,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        self.select(deadline, |_, registration| match query {
            MetadataQuery::All(tags) => tags.is_subset(&registration.metadata),
            MetadataQuery::Any(tags) => !tags.is_disjoint(&registration.metadata),
        })
    }

    /// The entries `wanted` selects, checking the deadline before each.
    fn select(
        &self,
        deadline: Deadline,
        mut wanted: impl FnMut(&str, &Registration) -> bool,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        let mut found = BTreeMap::new();
        for (name, registration) in &self.entries {
            deadline.check()?;
            if wanted(name, registration) {
                found.insert(name.clone(), registration.clone());
            }
        }
        Ok(found)
    }

    /// Replaces the metadata of `name`.
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
        self.limits.check_metadata(&metadata)?;
        let registration = self
            .entries
            .get_mut(name)
            .ok_or_else(|| NamingError::UnknownName(name.to_owned()))?;
        registration.metadata = metadata;
        Ok(())
    }

    /// Removes the entries the filter selects, except the nameserver's own; returns how many.
    ///
    /// # Errors
    ///
    /// [`NamingError::Protected`] when asked to remove the nameserver's own entry by name,
    /// [`NamingError::BadPattern`] for a bad regular expression.
    pub fn remove(&mut self, filter: &NameFilter) -> Result<u64, NamingError> {
        let names = self.names_to_remove(filter, Deadline::never())?;
        Ok(self.remove_names(&names))
    }

    /// The names `remove(filter)` would remove, found before `deadline` (on a snapshot, say).
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove), and [`NamingError::QueryTooSlow`] past the deadline.
    pub fn names_to_remove(
        &self,
        filter: &NameFilter,
        deadline: Deadline,
    ) -> Result<Vec<String>, NamingError> {
        if matches!(filter, NameFilter::Name(name) if name == NAMESERVER_OBJECT_ID) {
            return Err(NamingError::Protected(NAMESERVER_OBJECT_ID.to_owned()));
        }
        if let NameFilter::Name(name) = filter {
            return Ok(self
                .entries
                .get(name)
                .map(|_| name.clone())
                .into_iter()
                .collect());
        }
        let matcher = Matcher::new(filter)?;
        let found = self.select(deadline, |name, _| {
            name != NAMESERVER_OBJECT_ID && matcher.matches(name)
        })?;
        Ok(found.into_keys().collect())
    }

    /// Removes `names` (never the nameserver's own); returns how many were there.
    pub fn remove_names(&mut self, names: &[String]) -> u64 {
        let mut removed = 0;
        for name in names {
            if name != NAMESERVER_OBJECT_ID && self.entries.remove(name).is_some() {
                self.end_lease(name);
                removed += 1;
            }
        }
        removed
    }

    /// How many names are registered, the nameserver's own included.
    pub fn count(&self) -> u64 {
        self.entries.len() as u64
    }
}

/// A compiled name filter.
enum Matcher<'a> {
    Name(&'a str),
    Prefix(&'a str),
    Regex(Regex),
}

impl<'a> Matcher<'a> {
    fn new(filter: &'a NameFilter) -> Result<Matcher<'a>, NamingError> {
        Ok(match filter {
            NameFilter::Name(name) => Matcher::Name(name),
            NameFilter::Prefix(prefix) => Matcher::Prefix(prefix),
            NameFilter::Regex(pattern) if pattern.len() > MAX_PATTERN_LEN => {
                return Err(NamingError::BadPattern {
                    pattern: pattern.chars().take(64).collect(),
                    detail: format!("patterns are at most {MAX_PATTERN_LEN} bytes long"),
                });
            }
            NameFilter::Regex(pattern) => {
                // Anchored at the start only, as Python's `re.match` is.
                let anchored = format!("^(?:{pattern})");
                let regex = regex::RegexBuilder::new(&anchored)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|error| NamingError::BadPattern {
                        pattern: pattern.clone(),
                        detail: error.to_string(),
                    })?;
                Matcher::Regex(regex)
            }
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Name(wanted) => name == *wanted,
            Matcher::Prefix(prefix) => name.starts_with(prefix),
            Matcher::Regex(regex) => regex.is_match(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            )
            .unwrap();
        registry
            .register(
                "app.worker.2".into(),
                uri("w2"),
                false,
                tags(&["slow", "eu"]),
            )
            .unwrap();
        registry
            .register("other".into(), uri("o"), false, tags(&[]))
            .unwrap();
        registry
    }

    #[test]
    fn register_and_lookup() {
        let registry = registry();
        assert_eq!(registry.lookup("other").unwrap().uri, uri("o"));
        assert_eq!(
            registry.lookup("app.worker.1").unwrap().metadata,
            tags(&["eu", "fast"])
        );
        assert_eq!(
            registry.lookup("nope"),
            Err(NamingError::UnknownName("nope".into()))
        );
        assert_eq!(registry.count(), 4);
    }

    #[test]
    fn safe_mode_refuses_to_overwrite_and_plain_mode_overwrites() {
        let mut registry = registry();
        assert_eq!(
            registry.register("other".into(), uri("x"), true, tags(&[])),
            Err(NamingError::NameTaken("other".into()))
        );
        assert_eq!(registry.lookup("other").unwrap().uri, uri("o"));
        registry
            .register("other".into(), uri("x"), false, tags(&[]))
            .unwrap();
        assert_eq!(registry.lookup("other").unwrap().uri, uri("x"));
    }

    #[test]
    fn bad_names_and_indirect_uris_are_refused() {
        let mut registry = registry();
        for bad in ["", "two words", "tab\there", "new\nline", "svc@v2"] {
            assert!(matches!(
                registry.register(bad.into(), uri("x"), false, tags(&[])),
                Err(NamingError::InvalidName { .. })
            ));
        }
        assert!(matches!(
            registry.register("n".into(), "PYRONAME:x".parse().unwrap(), false, tags(&[])),
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
                .yplookup(&query, Deadline::never())
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
        assert_eq!(registry.lookup("other").unwrap().metadata, tags(&["new"]));
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
        assert!(registry.lookup(NAMESERVER_OBJECT_ID).is_ok());
        assert_eq!(
            registry.register(NAMESERVER_OBJECT_ID.into(), uri("x"), false, tags(&[])),
            Err(NamingError::Protected(NAMESERVER_OBJECT_ID.into()))
        );
    }

    #[test]
    fn a_query_past_its_deadline_fails_with_a_typed_error() {
        let registry = registry();
        let spent = Deadline::after(Duration::ZERO);
        assert!(matches!(
            registry.list(&NameFilter::Prefix(String::new()), spent),
            Err(NamingError::QueryTooSlow { .. })
        ));
        assert!(matches!(
            registry.yplookup(&MetadataQuery::All(tags(&[])), spent),
            Err(NamingError::QueryTooSlow { .. })
        ));
        assert!(matches!(
            registry.names_to_remove(&NameFilter::Regex("app".into()), spent),
            Err(NamingError::QueryTooSlow { .. })
        ));
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
                .register(name.into(), uri(name), false, tags(&[]))
                .unwrap();
        }
        assert_eq!(
            registry.register("c".into(), uri("c"), false, tags(&[])),
            Err(NamingError::LimitReached {
                setting: "max_registrations".into(),
                limit: 2
            })
        );
        // Replacing a registered name is no new registration.
        registry
            .register("a".into(), uri("a2"), false, tags(&[]))
            .unwrap();
        assert!(matches!(
            registry.set_metadata(NAMESERVER_OBJECT_ID, tags(&["worker"])),
            Err(NamingError::Protected(_))
        ));
        let long_uri: Uri = format!("PYRO:{}@127.0.0.1:1", "o".repeat(2000))
            .parse()
            .unwrap();
        assert!(matches!(
            registry.register("a".into(), long_uri, false, tags(&[])),
            Err(NamingError::LimitReached { setting, .. }) if setting == "max_uri_len"
        ));
    }

    #[test]
    fn leased_names_expire_unless_renewed_and_plain_registration_is_permanent() {
        let mut registry = registry();
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        registry
            .register_lease("leased".into(), uri("l"), tags(&[]), ttl, start)
            .unwrap();
        assert_eq!(registry.lease_left("leased", start), Some(ttl));
        assert_eq!(registry.lease_left("other", start), None);
        // Renewed halfway: it outlives its first expiry.
        registry
            .register_lease("leased".into(), uri("l"), tags(&[]), ttl, start + ttl / 2)
            .unwrap();
        assert_eq!(registry.expire(start + ttl), 0);
        assert!(registry.lookup("leased").is_ok());
        assert_eq!(registry.expire(start + ttl * 3 / 2), 1);
        assert!(registry.lookup("leased").is_err());
        // A plain registration ends a lease; removing a leased name forgets its lease.
        registry
            .register_lease("kept".into(), uri("k"), tags(&[]), ttl, start)
            .unwrap();
        registry
            .register("kept".into(), uri("k"), false, tags(&[]))
            .unwrap();
        registry
            .register_lease("gone".into(), uri("g"), tags(&[]), ttl, start)
            .unwrap();
        registry.remove(&NameFilter::Name("gone".into())).unwrap();
        registry
            .register("gone".into(), uri("g2"), false, tags(&[]))
            .unwrap();
        assert_eq!(registry.expire(start + ttl * 10), 0);
        assert!(registry.lookup("kept").is_ok() && registry.lookup("gone").is_ok());
    }
}
