//! The nameserver's data: name -> (URI, metadata), with the rules of Pyro's nameserver. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::{Duration, Instant};

use imbl::{OrdMap, OrdSet};

use crate::limits::{Limits, validate_name};
use regex::Regex;
use rpc_core::{
    ListPage, MetadataQuery, NAMESERVER_OBJECT_ID, NameFilter, NamingError, Registration, Uri,
};

/// The largest compiled regular expression a client may make the nameserver build. This
/// bounds memory, not time: a 21-byte pattern well under it took 225 s over 20,000 names, so
/// queries also run against a time budget ([`Deadline`]).
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The longest regular expression accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// The most entries one page of a listing holds.
pub const MAX_PAGE_LEN: usize = 1000;

/// About how many bytes one page of a listing holds, far under the default message limit
/// even with the longest names, URIs and tags.
const PAGE_BYTES: usize = 1 << 20;

/// About how many bytes `registration` takes in a reply.
fn approximate_size(registration: &Registration) -> usize {
    64 + registration.uri.to_string().len()
        + registration
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
    /// The owner token of each owned name; others are unowned, as all names are in Pyro.
    owners: OrdMap<String, String>,
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
        entries.insert(
            NAMESERVER_OBJECT_ID.to_owned(),
            Registration::new(own_uri, BTreeSet::new()),
        );
        Registry {
            entries,
            leases: OrdMap::new(),
            expiries: OrdSet::new(),
            owners: OrdMap::new(),
            admin_token: None,
            limits,
        }
    }

    /// Lets `token` change or remove any name, owned or not (the operator's cleanup).
    pub fn set_admin_token(&mut self, token: Option<String>) {
        self.admin_token = token;
    }

    /// Refuses a change of `name` unless it is unowned, or `token` is its owner's or the
    /// admin's.
    fn check_owner(&self, name: &str, token: Option<&str>) -> Result<(), NamingError> {
        let Some(owner) = self.owners.get(name) else {
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

    /// Registers `name`. In `safe` mode an existing name is left alone.
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
    ) -> Result<(), NamingError> {
        self.check_owner(&name, None)?;
        self.insert(name, uri, safe, metadata)
    }

    /// Registers `name` after its owner was checked.
    fn insert(
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
        self.entries.insert(name, Registration::new(uri, metadata));
        Ok(())
    }

    /// Registers (or renews) `name` until `now + ttl`, replacing what the name held, owned by
    /// `owner`: from then on only `owner` (or the admin token) may renew, overwrite, change or
    /// remove it.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register) without safe mode; [`NamingError::Owned`] if another
    /// token owns the name.
    pub fn register_lease(
        &mut self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        now: Instant,
        owner: &str,
    ) -> Result<(), NamingError> {
        if owner.len() < MIN_TOKEN_LEN {
            return Err(NamingError::InvalidName {
                name,
                reason: format!("an owner token has at least {MIN_TOKEN_LEN} characters"),
            });
        }
        self.check_owner(&name, Some(owner))?;
        let too_long = NamingError::LimitReached {
            setting: "max_ttl_secs".into(),
            limit: self.limits.max_ttl_secs as usize,
        };
        if ttl.as_secs() >= self.limits.max_ttl_secs {
            return Err(too_long);
        }
        let expires = now.checked_add(ttl).ok_or(too_long)?;
        self.insert(name.clone(), uri, false, metadata)?;
        self.end_lease(&name);
        self.owners.insert(name.clone(), owner.to_owned());
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
            self.owners.remove(&name);
            self.entries.remove(&name);
            expired += 1;
        }
        expired
    }

    /// What `name` stands for, with its lease's time left and whether it is owned, as a
    /// client is told it.
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`].
    pub fn lookup_described(&self, name: &str) -> Result<Registration, NamingError> {
        let registration = self.lookup(name)?;
        Ok(self.described(name, registration, Instant::now()))
    }

    fn described(&self, name: &str, registration: &Registration, now: Instant) -> Registration {
        let mut described = registration.clone();
        described.lease = self.lease_left(name, now);
        described.owned = self.owners.contains_key(name);
        described
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

    /// One page of what the filter selects: the entries after the name `after` (from the start
    /// if `None`), at most `limit` of them and about 1 MiB in all, and the name to
    /// continue after if more may follow.
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
        for (name, registration) in self.entries.range((start, Bound::Unbounded)) {
            if page.entries.len() >= limit || bytes >= PAGE_BYTES {
                page.next = page.entries.keys().next_back().cloned();
                break;
            }
            deadline.check()?;
            if matcher.matches(name) {
                bytes += name.len() + approximate_size(registration);
                page.entries
                    .insert(name.clone(), self.described(name, registration, now));
            }
        }
        Ok(page)
    }

    /// The entries `wanted` selects, checking the deadline before each.
    fn select(
        &self,
        deadline: Deadline,
        mut wanted: impl FnMut(&str, &Registration) -> bool,
    ) -> Result<BTreeMap<String, Registration>, NamingError> {
        let mut found = BTreeMap::new();
        let now = Instant::now();
        for (name, registration) in &self.entries {
            deadline.check()?;
            if wanted(name, registration) {
                found.insert(name.clone(), self.described(name, registration, now));
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
        self.check_owner(name, None)?;
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
            name != NAMESERVER_OBJECT_ID
                && matcher.matches(name)
                && self.check_owner(name, token).is_ok()
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
                && self.entries.remove(name).is_some()
            {
                self.end_lease(name);
                self.owners.remove(name);
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
            registry.names_to_remove(&NameFilter::Regex("app".into()), None, spent),
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
            .register_lease("leased".into(), uri("l"), tags(&[]), ttl, start, OWNER)
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
            )
            .unwrap();
        assert_eq!(registry.expire(start + ttl), 0);
        assert!(registry.lookup("leased").is_ok());
        assert_eq!(registry.expire(start + ttl * 3 / 2), 1);
        assert!(registry.lookup("leased").is_err());
        // Removing a leased name forgets its lease: registered again, it is permanent.
        registry
            .register_lease("gone".into(), uri("g"), tags(&[]), ttl, start, OWNER)
            .unwrap();
        registry
            .remove_as(&NameFilter::Name("gone".into()), Some(OWNER))
            .unwrap();
        registry
            .register("gone".into(), uri("g2"), false, tags(&[]))
            .unwrap();
        assert_eq!(registry.expire(start + ttl * 10), 0);
        assert!(registry.lookup("gone").is_ok());
    }

    const OWNER: &str = "owner-token-0123456789";

    #[test]
    fn an_owned_name_changes_only_with_its_owner_or_the_admin_token() {
        let mut registry = registry();
        registry.set_admin_token(Some("admin-token-0123456789".into()));
        let (now, ttl) = (Instant::now(), Duration::from_secs(60));
        registry
            .register_lease("owned".into(), uri("w"), tags(&[]), ttl, now, OWNER)
            .unwrap();
        fn owned<T>(result: Result<T, NamingError>) -> bool {
            matches!(result, Err(NamingError::Owned(name)) if name == "owned")
        }
        // Pyro's API, which has no owners, cannot touch it.
        assert!(owned(registry.register(
            "owned".into(),
            uri("evil"),
            false,
            tags(&[])
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
            thief
        )));
        assert!(owned(
            registry.remove_as(&NameFilter::Name("owned".into()), Some(thief))
        ));
        // A pattern passes over it.
        assert_eq!(registry.remove(&NameFilter::Regex(".*".into())).unwrap(), 3);
        assert_eq!(registry.lookup("owned").unwrap().uri, uri("w"));
        // Its owner renews it; the admin removes it.
        registry
            .register_lease("owned".into(), uri("w2"), tags(&[]), ttl, now, OWNER)
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
            .register("owned".into(), uri("new"), false, tags(&[]))
            .unwrap();
        // A token short enough to guess is refused.
        assert!(
            registry
                .register_lease("short".into(), uri("s"), tags(&[]), ttl, now, "short")
                .is_err()
        );
    }

    #[test]
    fn a_listing_in_pages_returns_every_name_once_in_order() {
        let mut registry = registry();
        for n in 0..2500 {
            registry
                .register(format!("many.{n:05}"), uri("m"), false, tags(&[]))
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
}
