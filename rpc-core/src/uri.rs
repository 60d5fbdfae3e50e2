//! `Uri`: where an object lives, in Pyro's text form (`PYRO:obj@host:port`, `PYRONAME:name`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The address of a remote object, or of a name that leads to one.
///
/// The text forms are Pyro's, so names and URIs can be shared with Pyro5 programs:
///
/// | form | meaning |
/// |------|---------|
/// | `PYRO:objectid@host:port` | object `objectid` at a daemon on TCP |
/// | `PYRO:objectid@[::1]:port` | the same, with an IPv6 address |
/// | `PYRO:objectid@./u:/path/to/socket` | the same, on a Unix domain socket |
/// | `PYRONAME:name[@host[:port]]` | whatever the nameserver (optionally at `host:port`) has under `name` |
/// | `PYROMETA:tag1,tag2[@host[:port]]` | an object whose metadata carries all of the tags |
///
/// [`Display`](fmt::Display) and [`FromStr`] round-trip.
///
/// ```
/// use rpc_core::{Location, Uri};
///
/// let uri: Uri = "PYRO:greeter@127.0.0.1:9999".parse()?;
/// assert_eq!(uri.object(), Some("greeter"));
/// assert_eq!(
///     uri.location(),
///     Some(&Location::Tcp { host: "127.0.0.1".into(), port: 9999 })
/// );
/// assert_eq!(uri.to_string(), "PYRO:greeter@127.0.0.1:9999");
/// assert!("PYRO:greeter@nohost".parse::<Uri>().is_err());
/// # Ok::<(), rpc_core::UriError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// `PYRO:`: an object at a known daemon.
    Direct {
        /// The object id at the daemon.
        object: String,
        /// Where the daemon listens.
        location: Location,
    },
    /// `PYRONAME:`: a name to look up in a nameserver.
    Name {
        /// The registered name.
        name: String,
        /// The nameserver to ask; `None` means locate one.
        nameserver: Option<HostPort>,
    },
    /// `PYROMETA:`: metadata tags to look up in a nameserver.
    Meta {
        /// Every tag the object's metadata must carry.
        tags: Vec<String>,
        /// The nameserver to ask; `None` means locate one.
        nameserver: Option<HostPort>,
    },
}

/// Where a daemon listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A TCP socket; `host` is a name, an IPv4 address or an IPv6 address without brackets.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

/// A host and optional port, as in `PYRONAME:name@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port; `None` means the default for the service.
    pub port: Option<u16>,
}

/// Text that is not a valid URI, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI `{text}`: {reason}")]
pub struct UriError {
    text: String,
    reason: &'static str,
}

/// An object id or name that a URI cannot carry, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` cannot appear in a URI: {reason}")]
pub struct IdError {
    id: String,
    reason: &'static str,
}

impl IdError {
    /// Why the id was refused.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Checks that `id` can be the object id of a `PYRO:` URI or the name of a `PYRONAME:` one,
/// so the URI's text parses back to the same id: it is not empty and has no whitespace, no
/// control characters and no `@` (which starts the location, in Pyro's grammar too).
///
/// ```
/// assert!(rpc_core::validate_id("my.worker_2").is_ok());
/// assert!(rpc_core::validate_id("my listener").is_err());
/// assert!(rpc_core::validate_id("svc@v2").is_err());
/// ```
///
/// # Errors
///
/// [`IdError`] saying what is wrong.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.chars().any(char::is_whitespace) {
        "URIs contain no whitespace"
    } else if id.chars().any(char::is_control) {
        "URIs contain no control characters"
    } else if id.contains('@') {
        "`@` starts the location part of a URI"
    } else {
        return Ok(());
    };
    Err(IdError {
        id: id.chars().take(64).collect(),
        reason,
    })
}

impl Uri {
    /// A `PYRO:` URI for `object` at `location`.
    pub fn direct(object: impl Into<String>, location: Location) -> Uri {
        Uri::Direct {
            object: object.into(),
            location,
        }
    }

    /// The object id of a `PYRO:` URI.
    pub fn object(&self) -> Option<&str> {
        match self {
            Uri::Direct { object, .. } => Some(object),
            _ => None,
        }
    }

    /// The daemon location of a `PYRO:` URI.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Uri::Direct { location, .. } => Some(location),
            _ => None,
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Uri, UriError> {
        let error = |reason| UriError {
            text: text.to_owned(),
            reason,
        };
        if text.chars().any(char::is_whitespace) {
            return Err(error("URIs contain no whitespace"));
        }
        if text.chars().any(char::is_control) {
            return Err(error("URIs contain no control characters"));
        }
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| error("expected `PYRO:`, `PYRONAME:` or `PYROMETA:`"))?;
        let (target, at) = match rest.split_once('@') {
            Some((target, at)) => (target, Some(at)),
            None => (rest, None),
        };
        if target.is_empty() {
            return Err(error("the part before `@` is empty"));
        }
        if scheme.eq_ignore_ascii_case("PYRO") {
            let at = at.ok_or_else(|| error("`PYRO:` URIs need `@host:port` or `@./u:path`"))?;
            let location = match at.strip_prefix("./u:") {
                Some("") => return Err(error("the Unix socket path is empty")),
                Some(path) => Location::Unix(PathBuf::from(path)),
                None => {
                    let HostPort { host, port } = parse_host_port(at).map_err(error)?;
                    let port = port.ok_or_else(|| error("`PYRO:` URIs need a port"))?;
                    Location::Tcp { host, port }
                }
            };
            Ok(Uri::direct(target, location))
        } else {
            let nameserver = at.map(parse_host_port).transpose().map_err(error)?;
            if scheme.eq_ignore_ascii_case("PYRONAME") {
                Ok(Uri::Name {
                    name: target.to_owned(),
                    nameserver,
                })
            } else if scheme.eq_ignore_ascii_case("PYROMETA") {
                let tags: Vec<String> = target.split(',').map(str::to_owned).collect();
                if tags.iter().any(String::is_empty) {
                    return Err(error("a metadata tag is empty"));
                }
                Ok(Uri::Meta { tags, nameserver })
            } else {
                Err(error("expected `PYRO:`, `PYRONAME:` or `PYROMETA:`"))
            }
        }
    }
}

impl FromStr for HostPort {
    type Err = UriError;

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    fn from_str(text: &str) -> Result<HostPort, UriError> {
        parse_host_port(text).map_err(|reason| UriError {
            text: text.to_owned(),
            reason,
        })
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host_port(text: &str) -> Result<HostPort, &'static str> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address lacks its closing `]`")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected `:port` after `]`")?,
            ),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 address must be written in brackets, as `[::1]:port`");
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| "the port is not a number from 0 to 65535")
        })
        .transpose()?;
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Tcp { host, port } => HostPort {
                host: host.clone(),
                port: Some(*port),
            }
            .fmt(f),
            Location::Unix(path) => write!(f, "./u:{}", path.display()),
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>, ns: &Option<HostPort>| match ns {
            Some(ns) => write!(f, "@{ns}"),
            None => Ok(()),
        };
        match self {
            Uri::Direct { object, location } => write!(f, "PYRO:{object}@{location}"),
            Uri::Name { name, nameserver } => {
                write!(f, "PYRONAME:{name}")?;
                at(f, nameserver)
            }
            Uri::Meta { tags, nameserver } => {
                write!(f, "PYROMETA:{}", tags.join(","))?;
                at(f, nameserver)
            }
        }
    }
}

impl Serialize for Uri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Uri, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        for text in [
            "PYRO:obj@localhost:9090",
            "PYRO:obj_12ab@127.0.0.1:0",
            "PYRO:obj@[::1]:4000",
            "PYRO:obj@./u:/tmp/sock",
            "PYRONAME:my.worker",
            "PYRONAME:my.worker@nshost",
            "PYRONAME:my.worker@nshost:9090",
            "PYRONAME:w@[fe80::1]:9090",
            "PYROMETA:fast,green",
            "PYROMETA:fast@[::1]",
        ] {
            let uri: Uri = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(uri.to_string(), text);
        }
    }

    #[test]
    fn parts_are_parsed() {
        assert_eq!(
            "PYRO:a@[::1]:7".parse(),
            Ok(Uri::direct(
                "a",
                Location::Tcp {
                    host: "::1".into(),
                    port: 7
                }
            ))
        );
        assert_eq!(
            "pyroname:a@h".parse(),
            Ok(Uri::Name {
                name: "a".into(),
                nameserver: Some(HostPort {
                    host: "h".into(),
                    port: None
                })
            })
        );
        assert_eq!(
            "PYROMETA:x,y".parse::<Uri>().unwrap(),
            Uri::Meta {
                tags: vec!["x".into(), "y".into()],
                nameserver: None
            }
        );
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        for (text, reason) in [
            ("", "expected"),
            ("HTTP:x@h:1", "expected"),
            ("PYRO:@h:1", "empty"),
            ("PYRO:x", "need"),
            ("PYRO:x@h", "port"),
            ("PYRO:x@h:99999", "port"),
            ("PYRO:x@:1", "host is empty"),
            ("PYRO:x@::1:80", "brackets"),
            ("PYRO:x@[::1", "closing"),
            ("PYRO:x@[::1]80", "after"),
            ("PYRO:x@./u:", "path"),
            ("PYRO:a b@h:1", "whitespace"),
            ("PYROMETA:a,,b", "tag"),
        ] {
            let error = text.parse::<Uri>().unwrap_err();
            assert!(error.to_string().contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn ids_a_uri_cannot_carry_are_refused() {
        for (id, reason) in [
            ("", "empty"),
            ("my listener", "whitespace"),
            ("tab\there", "whitespace"),
            ("nul\0", "control"),
            ("a@b", "`@`"),
        ] {
            let error = validate_id(id).unwrap_err();
            assert!(error.to_string().contains(reason), "{id:?}: {error}");
        }
    }

    proptest::proptest! {
        /// Every id `validate_id` accepts round-trips through the text of every URI form a
        /// daemon or nameserver hands out.
        #[test]
        fn accepted_ids_round_trip(
            id in "\\PC{1,40}",
            host in "[a-z0-9.-]{1,20}|([0-9a-f]{0,4}:){2,7}[0-9a-f]{1,4}",
            port: u16,
            path in "/[^\\s\\p{Cc}]{1,30}",
        ) {
            proptest::prop_assume!(validate_id(&id).is_ok());
            for location in [Location::Tcp { host: host.clone(), port }, Location::Unix(path.into())] {
                let uri = Uri::direct(id.clone(), location);
                proptest::prop_assert_eq!(uri.to_string().parse::<Uri>(), Ok(uri.clone()));
            }
            let named = Uri::Name { name: id, nameserver: Some(HostPort { host, port: Some(port) }) };
            proptest::prop_assert_eq!(named.to_string().parse::<Uri>(), Ok(named));
        }

        /// Whatever text parses as a URI prints as text that parses to the same URI.
        #[test]
        fn parsed_text_round_trips(text in "(PYRO|PYRONAME|PYROMETA):\\PC{1,30}(@\\PC{0,20})?") {
            if let Ok(uri) = text.parse::<Uri>() {
                proptest::prop_assert_eq!(uri.to_string().parse::<Uri>(), Ok(uri));
            }
        }
    }

    #[test]
    fn serializes_as_its_text() {
        let uri: Uri = "PYRO:o@h:1".parse().unwrap();
        let mut buf = bytes::BytesMut::new();
        crate::codec::Format::Bincode
            .encode_into(&uri, &mut buf)
            .unwrap();
        let text: String = crate::codec::Format::Bincode.decode(&buf).unwrap();
        assert_eq!(text, "PYRO:o@h:1");
        assert_eq!(
            crate::codec::Format::Bincode.decode::<Uri>(&buf).unwrap(),
            uri
        );
    }
}
