//! The naming contract: the `NameServer` service, its types and defaults, locating a nameserver
//! and resolving `PYRONAME:` / `PYROMETA:` URIs.
//!
//! The nameserver itself lives in the `nameserver` crate; it implements [`NameServer`]. Proxies
//! resolve names through this module, so the core does not depend on that crate (Pyro keeps
//! `locate_ns` and `resolve` in its core too).

pub mod discovery;
mod lease;
mod locate;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lease::{Lease, new_owner_token};
pub use locate::locate_ns;
pub use resolve::NameResolver;

use crate::uri::{HostPort, Uri};

/// The object id of the nameserver in its daemon, as in Pyro.
pub const NAMESERVER_OBJECT_ID: &str = "Pyro.NameServer";

/// The nameserver's TCP port unless configured otherwise: Pyro's default.
pub const DEFAULT_NS_PORT: u16 = 9090;

/// The UDP port of broadcast discovery unless configured otherwise: Pyro's default.
pub const DEFAULT_BROADCAST_PORT: u16 = 9091;

/// The datagram a client broadcasts to discover a nameserver; the answer is its URI as text.
pub const DISCOVERY_REQUEST: &[u8] = b"GET_NSURI";

/// What the nameserver knows of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Registration {
    /// Where the object lives.
    pub uri: Uri,
    /// Free-form tags, searchable with [`NameServer::yplookup`] and `PYROMETA:` URIs.
    pub metadata: BTreeSet<String>,
    /// For a leased registration, the time its lease had left when the nameserver answered;
    /// `None` for a permanent one.
    pub lease: Option<Duration>,
    /// Whether an owner token guards the registration (see [`NameServer::register_lease`]).
    pub owned: bool,
}

impl Registration {
    /// A permanent, unowned registration of `uri` with `metadata`.
    pub fn new(uri: Uri, metadata: BTreeSet<String>) -> Registration {
        Registration {
            uri,
            metadata,
            lease: None,
            owned: false,
        }
    }
}

/// One page of a listing ([`NameServer::list_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListPage {
    /// The names on this page, each with every instance registered under it.
    pub entries: BTreeMap<String, Vec<Registration>>,
    /// The name to continue after, if more may follow.
    pub next: Option<String>,
}

/// Which names an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameFilter {
    /// Exactly this name.
    Name(String),
    /// Every name that starts with this prefix; `Prefix("")` is every name.
    Prefix(String),
    /// Every name that the regular expression matches at its start (as Python's `re.match`).
    Regex(String),
}

/// A search by metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataQuery {
    /// Names whose metadata holds every one of these tags.
    All(BTreeSet<String>),
    /// Names whose metadata holds at least one of these tags.
    Any(BTreeSet<String>),
}

/// Why the nameserver refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum NamingError {
    /// No such name is registered.
    #[error("name `{0}` is not registered")]
    UnknownName(String),
    /// The name is taken and the registration was in safe mode.
    #[error("name `{0}` is already registered (safe mode does not overwrite)")]
    NameTaken(String),
    /// The name is not acceptable.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Only `PYRO:` URIs can be registered.
    #[error("cannot register `{0}`: only `PYRO:` URIs name an object directly")]
    NotDirect(String),
    /// The regular expression does not compile.
    #[error("invalid regular expression `{pattern}`: {detail}")]
    BadPattern {
        /// The pattern given.
        pattern: String,
        /// What the regex compiler reported.
        detail: String,
    },
    /// The nameserver's own entry cannot be removed or replaced.
    #[error("`{0}` is the nameserver's own entry and cannot be removed or replaced")]
    Protected(String),
    /// No registered object carries the metadata a `PYROMETA:` URI asks for.
    #[error("no registered object has all of the metadata {0:?}")]
    NoMatch(BTreeSet<String>),
    /// A metadata tag is not acceptable.
    #[error("invalid metadata tag `{tag}`: {reason}")]
    InvalidMetadata {
        /// The tag given (at most its first 64 characters).
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name is owned (registered with an owner token, as a [`Lease`] does), and the caller
    /// did not give that token or the nameserver's admin token.
    #[error(
        "`{0}` is owned by whoever registered it; only its owner token (or the nameserver's \
         admin token) may change or remove it"
    )]
    Owned(String),
    /// The registration would break one of the nameserver's limits.
    #[error("the nameserver's limit `{setting}` ({limit}) does not allow this")]
    LimitReached {
        /// The field of the nameserver's `Limits`.
        setting: String,
        /// Its value.
        limit: usize,
    },
    /// An owner token is too short to be a secret.
    #[error("an owner token has at least {min_len} characters; a short one is guessed")]
    WeakToken {
        /// The shortest token accepted.
        min_len: usize,
    },
    /// The nameserver could not store the change durably, so it did not make it.
    #[error("the nameserver could not store the change, so it did not make it: {0}")]
    StoreFailed(String),
    /// A `list`, `yplookup` or `remove` by pattern ran out of its time budget (a costly
    /// regular expression over many names, say) and was stopped.
    #[error("the query did not finish within its budget of {budget:?}; narrow it")]
    QueryTooSlow {
        /// The nameserver's time budget for one query.
        budget: std::time::Duration,
    },
    /// The nameserver is stopping, and gave up the query.
    #[error("the nameserver is stopping; the query was given up")]
    Stopping,
    /// The nameserver has a shared secret, and only clients that proved it may register,
    /// remove or change metadata (set [`Config::secret`](crate::Config::secret)).
    #[error("only clients with the nameserver's secret may change names")]
    NotAuthenticated,
    /// The registry's store is a cluster (etcd) that has lost its quorum, or none of its
    /// members can be reached: no change can be committed, so none was made. Lookups may
    /// still be answered (see the nameserver's documentation).
    #[error("the registry's store has lost its quorum, so the change was not made: {0}")]
    StoreLostQuorum(String),
}

/// The nameserver service (Pyro's API): names to URIs, with metadata.
#[crate::service]
pub trait NameServer {
    /// Registers `name` for `uri` with `metadata`; in `safe` mode an existing name is not
    /// overwritten.
    async fn register(
        &self,
        name: String,
        uri: Uri,
        safe: bool,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError>;
    /// Registers (or renews) `name` for `uri` with `metadata` for `ttl`: unless registered
    /// again within it, the registration disappears, so a worker that dies is not handed out
    /// for longer than one `ttl`. [`Lease`] keeps one alive.
    ///
    /// The registration belongs to `owner`, a secret token of at least 16 characters: renewing,
    /// overwriting, changing or removing the name needs it (or the nameserver's admin token);
    /// anyone else gets [`NamingError::Owned`]. Plain `register`, `set_metadata` and `remove`
    /// (Pyro's API, which has no owners) leave owned names alone.
    async fn register_lease(
        &self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        owner: String,
    ) -> Result<(), NamingError>;
    /// Adds `uri` as one more instance of `name` (or renews it, if the name holds it
    /// already), leaving the name's other instances alone: several workers under one name,
    /// which `PYRONAME:` proxies spread their connections over. With a `ttl` the instance
    /// disappears unless registered again within it; with an `owner` token (at least 16
    /// characters) the name is owned, and every instance of it must give the same token, as
    /// must whoever renews, changes or removes it.
    async fn register_instance(
        &self,
        name: String,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Option<Duration>,
        owner: Option<String>,
    ) -> Result<(), NamingError>;
    /// Removes the instance `uri` of `name`, with the name's owner token if it is owned;
    /// returns how many were removed (0 or 1).
    async fn remove_instance(
        &self,
        name: String,
        uri: Uri,
        token: Option<String>,
    ) -> Result<u64, NamingError>;
    /// The URI registered under `name`; of a name with several instances, each lookup
    /// returns the next (round robin).
    async fn lookup(&self, name: String) -> Result<Uri, NamingError>;
    /// The URI and metadata registered under `name` (of several instances, the next, as
    /// [`lookup`](NameServer::lookup)).
    async fn lookup_with_metadata(&self, name: String) -> Result<Registration, NamingError>;
    /// Every instance registered under `name`, each call starting at the next one (round
    /// robin), so clients that try them in order spread over them.
    async fn lookup_all(&self, name: String) -> Result<Vec<Registration>, NamingError>;
    /// The names the filter selects, with their URIs.
    async fn list(&self, filter: NameFilter) -> Result<BTreeMap<String, Uri>, NamingError>;
    /// The names the filter selects, with their URIs and metadata.
    async fn list_with_metadata(
        &self,
        filter: NameFilter,
    ) -> Result<BTreeMap<String, Registration>, NamingError>;
    /// One page of what [`list_with_metadata`](NameServer::list_with_metadata) would
    /// return: the names after `after`, at most `limit` (and at most 1000, and about 1 MiB),
    /// so that a registry of any size can be listed; ask again with `after = page.next` until
    /// it is `None`.
    async fn list_page(
        &self,
        filter: NameFilter,
        after: Option<String>,
        limit: u32,
    ) -> Result<ListPage, NamingError>;
    /// The names whose metadata matches the query (Pyro's "yellow pages" lookup).
    async fn yplookup(
        &self,
        query: MetadataQuery,
    ) -> Result<BTreeMap<String, Registration>, NamingError>;
    /// Replaces the metadata of `name`.
    async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError>;
    /// Removes the names the filter selects (never the nameserver's own, nor owned names);
    /// returns how many.
    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError>;
    /// As [`remove`](NameServer::remove), with a token: names it owns are removed too, and
    /// the admin token removes any name.
    async fn remove_owned(&self, filter: NameFilter, token: String) -> Result<u64, NamingError>;
    /// How many names are registered, the nameserver's own included.
    async fn count(&self) -> u64;
    /// Answers, to show the nameserver is alive.
    async fn ping(&self);
}

/// How a proxy finds a nameserver. Unset fields fall back to environment variables, then to
/// Pyro's defaults.
///
/// | field | environment variable | default |
/// |-------|----------------------|---------|
/// | `host` | `RPC_NS_HOST` (`host`, or several `host[:port]` separated by commas) | none: broadcast, then localhost |
/// | `port` | `RPC_NS_PORT` | [`DEFAULT_NS_PORT`] (9090) |
/// | `broadcast_port` | `RPC_NS_BCPORT` | [`DEFAULT_BROADCAST_PORT`] (9091) |
/// | `broadcast_addresses` | `RPC_NS_BCADDR` (comma-separated) | `255.255.255.255` |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameServerConfig {
    /// The nameserver's host. When set (here or in the environment), only it and
    /// [`fallbacks`](NameServerConfig::fallbacks) are tried.
    pub host: Option<String>,
    /// More nameservers that serve the same registry (several nameservers on one store),
    /// tried in order when those before cannot be reached; a port of `None` means
    /// `port`. A client that loses its nameserver locates one
    /// again at its next lookup, so it moves on to the next that answers. Default none.
    pub fallbacks: Vec<HostPort>,
    /// The nameserver's TCP port.
    pub port: Option<u16>,
    /// Whether to look for a nameserver by UDP broadcast when no host is set. Default true.
    pub broadcast: bool,
    /// Where to send discovery datagrams.
    pub broadcast_addresses: Option<Vec<IpAddr>>,
    /// The UDP port of discovery.
    pub broadcast_port: Option<u16>,
    /// How many times to broadcast before giving up. Default 3.
    pub broadcast_rounds: u32,
    /// How long to wait for an answer after each broadcast. Default 300 ms.
    pub broadcast_timeout: Duration,
    /// Hosts a discovery answer may name besides the address it came from, for a nameserver
    /// that advertises another address (`nameserver serve --advertise`). Default none: an
    /// answer must name the host that sent it, so a stranger cannot point clients elsewhere.
    pub trusted_hosts: Vec<String>,
}

impl Default for NameServerConfig {
    fn default() -> NameServerConfig {
        NameServerConfig {
            host: None,
            fallbacks: Vec::new(),
            port: None,
            broadcast: true,
            broadcast_addresses: None,
            broadcast_port: None,
            broadcast_rounds: 3,
            broadcast_timeout: Duration::from_millis(300),
            trusted_hosts: Vec::new(),
        }
    }
}

impl NameServerConfig {
    /// A configuration that names the nameserver's address, so nothing else is tried.
    pub fn at(host: impl Into<String>, port: u16) -> NameServerConfig {
        NameServerConfig {
            host: Some(host.into()),
            port: Some(port),
            ..NameServerConfig::default()
        }
    }

    /// This configuration with these nameservers after the first.
    #[must_use]
    pub fn with_fallbacks(
        mut self,
        fallbacks: impl IntoIterator<Item = HostPort>,
    ) -> NameServerConfig {
        self.fallbacks.extend(fallbacks);
        self
    }

    /// Every configured nameserver, in the order to try them: `host` (or each of
    /// `RPC_NS_HOST`), then the fallbacks. Empty when none is configured.
    pub(crate) fn configured(&self) -> Vec<(String, u16)> {
        let port = self.port();
        let first: Vec<HostPort> = match &self.host {
            Some(host) => vec![HostPort {
                host: host.clone(),
                port: None,
            }],
            None => std::env::var("RPC_NS_HOST")
                .ok()
                .map(|hosts| hosts.split(',').filter_map(env_host).collect())
                .unwrap_or_default(),
        };
        if first.is_empty() {
            return Vec::new();
        }
        first
            .into_iter()
            .chain(self.fallbacks.iter().cloned())
            .map(|HostPort { host, port: own }| (host, own.unwrap_or(port)))
            .collect()
    }

    fn port(&self) -> u16 {
        self.port
            .or_else(|| env_port("RPC_NS_PORT"))
            .unwrap_or(DEFAULT_NS_PORT)
    }

    fn broadcast_port(&self) -> u16 {
        self.broadcast_port
            .or_else(|| env_port("RPC_NS_BCPORT"))
            .unwrap_or(DEFAULT_BROADCAST_PORT)
    }

    fn broadcast_addresses(&self) -> Vec<IpAddr> {
        if let Some(addresses) = &self.broadcast_addresses {
            return addresses.clone();
        }
        let from_env = std::env::var("RPC_NS_BCADDR").ok().map(|text| {
            text.split(',')
                .filter_map(|address| address.trim().parse().ok())
                .collect::<Vec<IpAddr>>()
        });
        from_env
            .filter(|addresses| !addresses.is_empty())
            .unwrap_or_else(|| vec![IpAddr::V4(Ipv4Addr::BROADCAST)])
    }
}

/// One entry of `RPC_NS_HOST`: `host[:port]`, or a bare IPv6 address.
fn env_host(entry: &str) -> Option<HostPort> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    entry.parse().ok().or_else(|| {
        Some(HostPort {
            host: entry.to_owned(),
            port: None,
        })
    })
}

fn env_port(variable: &str) -> Option<u16> {
    std::env::var(variable).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_nameservers_come_in_order_with_their_own_ports_or_the_default() {
        let settings = NameServerConfig::at("first", 9100).with_fallbacks([
            HostPort {
                host: "second".into(),
                port: Some(9200),
            },
            HostPort {
                host: "third".into(),
                port: None,
            },
        ]);
        assert_eq!(
            settings.configured(),
            vec![
                ("first".to_owned(), 9100),
                ("second".to_owned(), 9200),
                ("third".to_owned(), 9100)
            ]
        );
    }

    #[test]
    fn entries_of_the_host_variable_take_ports_and_bare_ipv6() {
        let port = |host: &str, port| HostPort {
            host: host.into(),
            port,
        };
        assert_eq!(env_host(" ns-a:9100 "), Some(port("ns-a", Some(9100))));
        assert_eq!(env_host("ns-b"), Some(port("ns-b", None)));
        assert_eq!(env_host("[::1]:9300"), Some(port("::1", Some(9300))));
        assert_eq!(env_host("fe80::1"), Some(port("fe80::1", None)));
        assert_eq!(env_host("  "), None);
    }
}
