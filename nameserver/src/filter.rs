//! `Matcher`: a [`NameFilter`] compiled, within the bounds a hostile pattern cannot pass.

use regex::Regex;
use rpc_core::{NameFilter, NamingError};

/// The largest compiled regular expression a client may make the nameserver build. This
/// bounds memory, not time: a 21-byte pattern well under it took 225 s over 20,000 names, so
/// queries also run against a time budget ([`Deadline`](crate::Deadline)).
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The longest regular expression accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// A compiled name filter.
pub(crate) enum Matcher<'a> {
    Name(&'a str),
    Prefix(&'a str),
    Regex(Regex),
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(filter: &'a NameFilter) -> Result<Matcher<'a>, NamingError> {
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

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Name(wanted) => name == *wanted,
            Matcher::Prefix(prefix) => name.starts_with(prefix),
            Matcher::Regex(regex) => regex.is_match(name),
        }
    }
}
