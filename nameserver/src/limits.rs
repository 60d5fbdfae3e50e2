//! What the registry accepts: names and metadata tags that are printable text, and caps on
//! registrations and sizes, so no client can grow the nameserver without bound.

use std::collections::BTreeSet;

use rpc_core::{NamingError, Uri};

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Caps on what the registry holds; each refusal is a [`NamingError::LimitReached`] naming
/// the field, or an [`NamingError::InvalidMetadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Registrations (instances) in all, the nameserver's own not counted. Default 100,000
    /// (about 1 KiB each, so about 100 MiB at worst).
    pub max_registrations: usize,
    /// Registrations (instances) from one client address (IPv4, or IPv6 /64), counted while
    /// they last; the source of a registration read back from a store is not known, so it
    /// counts for no one. Default 10,000.
    pub max_registrations_per_address: usize,
    /// Instances under one name. Default 256.
    pub max_instances_per_name: usize,
    /// The longest URI accepted, in bytes. Default 1024.
    pub max_uri_len: usize,
    /// Metadata tags per registration. Default 32.
    pub max_tags: usize,
    /// The longest metadata tag, in bytes. Default 256.
    pub max_tag_len: usize,
    /// The longest lease, in seconds. Default one day.
    pub max_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_registrations: 100_000,
            max_registrations_per_address: 10_000,
            max_instances_per_name: 256,
            max_uri_len: 1024,
            max_tags: 32,
            max_tag_len: 256,
            max_ttl_secs: 86_400,
        }
    }
}

impl Limits {
    pub(crate) fn check_uri(&self, uri: &Uri) -> Result<(), NamingError> {
        if uri.to_string().len() > self.max_uri_len {
            return Err(NamingError::LimitReached {
                setting: "max_uri_len".into(),
                limit: self.max_uri_len,
            });
        }
        Ok(())
    }

    pub(crate) fn check_metadata(&self, tags: &BTreeSet<String>) -> Result<(), NamingError> {
        if tags.len() > self.max_tags {
            return Err(NamingError::LimitReached {
                setting: "max_tags".into(),
                limit: self.max_tags,
            });
        }
        for tag in tags {
            let reason = if tag.len() > self.max_tag_len {
                "longer than `max_tag_len`"
            } else if tag.is_empty() {
                "empty"
            } else if tag.contains(',') {
                "`,` separates the tags of a `PYROMETA:` URI"
            } else if let Some(reason) = unprintable(tag) {
                reason
            } else {
                continue;
            };
            return Err(NamingError::InvalidMetadata {
                tag: tag.chars().take(64).collect(),
                reason: reason.to_owned(),
            });
        }
        Ok(())
    }
}

/// Checks a name: one a `PYRONAME:` URI can carry (see [`rpc_core::validate_id`]: not empty,
/// no whitespace, control characters or `@`), printable (no invisible Unicode format
/// characters such as bidi overrides or zero-width spaces, which make two names look alike),
/// and not too long.
///
/// # Errors
///
/// [`NamingError::InvalidName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), NamingError> {
    let reason = if name.len() > MAX_NAME_LEN {
        "names are at most 1024 bytes long"
    } else if let Err(error) = rpc_core::validate_id(name) {
        error.reason()
    } else if let Some(reason) = unprintable(name) {
        reason
    } else {
        return Ok(());
    };
    Err(NamingError::InvalidName {
        name: name.chars().take(64).collect(),
        reason: reason.to_owned(),
    })
}

/// Why `text` is not printable, if it is not.
fn unprintable(text: &str) -> Option<&'static str> {
    if text.chars().any(char::is_control) {
        Some("control characters are not allowed")
    } else if text.chars().any(is_format_character) {
        Some("invisible format characters (bidi controls, zero-width characters) are not allowed")
    } else {
        None
    }
}

/// Whether `c` is in Unicode's general category Cf (format): invisible characters that change
/// how text around them is shown, such as bidi overrides and zero-width spaces.
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_refused_in_names() {
        for bad in [
            "admin\u{202E}txt",
            "zero\u{200B}width",
            "bom\u{FEFF}",
            "tag\u{E0041}",
            "bell\u{7}",
            "svc@v2",
            "two words",
        ] {
            assert!(
                matches!(validate_name(bad), Err(NamingError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["my.worker", "données.école", "サービス", "a-b_c:1"] {
            assert_eq!(validate_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn metadata_is_printable_bounded_and_countable() {
        let limits = Limits::default();
        let tags = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect();
        assert_eq!(limits.check_metadata(&tags(&["fast", "eu-west"])), Ok(()));
        for bad in ["new\nline", "nul\0", "a,b", "", "rtl\u{202E}"] {
            assert!(
                matches!(
                    limits.check_metadata(&tags(&[bad])),
                    Err(NamingError::InvalidMetadata { .. })
                ),
                "{bad:?}"
            );
        }
        let long = "t".repeat(limits.max_tag_len + 1);
        assert!(matches!(
            limits.check_metadata(&tags(&[&long])),
            Err(NamingError::InvalidMetadata { .. })
        ));
        let many: BTreeSet<String> = (0..=limits.max_tags).map(|n| n.to_string()).collect();
        assert_eq!(
            limits.check_metadata(&many),
            Err(NamingError::LimitReached {
                setting: "max_tags".into(),
                limit: limits.max_tags
            })
        );
    }
}
