//! The nameserver's data: name -> (URI, metadata), with the rules of Pyro's nameserver. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use rpc_core::{MetadataQuery, NAMESERVER_OBJECT_ID, NameFilter, NamingError, Registration, Uri};

/// The largest compiled regular expression a client may make the nameserver build, so a hostile
/// pattern cannot make it spend much memory or time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Names and what they stand for. The nameserver's own entry is always present.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: BTreeMap<String, Registration>,
}

impl Registry {
    /// A registry holding only the nameserver's own entry, for `own_uri`.
    pub fn new(own_uri: Uri) -> Registry {
        let mut entries = BTreeMap::new();
        entries.insert(
            NAMESERVER_OBJECT_ID.to_owned(),
            Registration {
                uri: own_uri,
                metadata: BTreeSet::new(),
            },
        );
        Registry { entries }
    }

    /// Registers `name`. In `safe` mode an existing name is left alone.
    ///
    /// # Errors
    ///
    /// An invalid name, a URI that is not `PYRO:`, a taken name in safe mode, or the
    /// nameserver's own name.
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
        if safe && self.entries.contains_key(&name) {
            return Err(NamingError::NameTaken(name));
        }
        self.entries.insert(name, Registration { uri, metadata });
        Ok(())
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

    /// The entries the filter selects.
    ///
    /// # Errors
    ///
    /// [`NamingError::BadPattern`] for a regular expression that does not compile.
    pub fn list(&self, filter: &NameFilter) -> Result<BTreeMap<String, Registration>, NamingError> {
        let matcher = Matcher::new(filter)?;
        Ok(self
            .entries
            .iter()
            .filter(|(name, _)| matcher.matches(name))
            .map(|(name, registration)| (name.clone(), registration.clone()))
            .collect())
    }

    /// The entries whose metadata matches the query. An empty `All` matches every entry; an
    /// empty `Any` matches none.
    pub fn yplookup(&self, query: &MetadataQuery) -> BTreeMap<String, Registration> {
        self.entries
            .iter()
            .filter(|(_, registration)| match query {
                MetadataQuery::All(tags) => tags.is_subset(&registration.metadata),
                MetadataQuery::Any(tags) => !tags.is_disjoint(&registration.metadata),
            })
            .map(|(name, registration)| (name.clone(), registration.clone()))
            .collect()
    }

    /// Replaces the metadata of `name`.
    ///
    /// # Errors
    ///
    /// [`NamingError::UnknownName`].
    pub fn set_metadata(
        &mut self,
        name: &str,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
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
        if matches!(filter, NameFilter::Name(name) if name == NAMESERVER_OBJECT_ID) {
            return Err(NamingError::Protected(NAMESERVER_OBJECT_ID.to_owned()));
        }
        let matcher = Matcher::new(filter)?;
        let before = self.entries.len();
        self.entries
            .retain(|name, _| name == NAMESERVER_OBJECT_ID || !matcher.matches(name));
        Ok((before - self.entries.len()) as u64)
    }

    /// How many names are registered, the nameserver's own included.
    pub fn count(&self) -> u64 {
        self.entries.len() as u64
    }
}

/// Checks a name: one a `PYRONAME:` URI can carry (see [`rpc_core::validate_id`]: not empty,
/// no whitespace, control characters or `@`), and not too long.
///
/// # Errors
///
/// [`NamingError::InvalidName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), NamingError> {
    let reason = if name.len() > MAX_NAME_LEN {
        "names are at most 1024 bytes long"
    } else if let Err(error) = rpc_core::validate_id(name) {
        error.reason()
    } else {
        return Ok(());
    };
    Err(NamingError::InvalidName {
        name: name.chars().take(64).collect(),
        reason: reason.to_owned(),
    })
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
            NameFilter::Regex(pattern) => {
                // Anchored at the start only, as Python's `re.match` is.
                let anchored = format!("^(?:{pattern})");
                let regex = regex::RegexBuilder::new(&anchored)
                    .size_limit(REGEX_SIZE_LIMIT)
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
                .list(&filter)
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
            registry.list(&NameFilter::Regex("(".into())),
            Err(NamingError::BadPattern { .. })
        ));
    }

    #[test]
    fn yplookup_by_all_and_by_any() {
        let registry = registry();
        let names = |query| registry.yplookup(&query).into_keys().collect::<Vec<_>>();
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
}
