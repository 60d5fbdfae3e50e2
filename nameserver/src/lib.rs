//! The nameserver: maps names to URIs so clients find objects by name (`PYRONAME:`), and answers
//! UDP broadcast discovery so clients find the nameserver itself without an address.
//!
//! Start at [`start`], which binds a [`Daemon`], hosts a [`NameServerImpl`]
//! under `Pyro.NameServer` and starts a [`DiscoveryResponder`]. Clients use
//! [`rpc_core::locate_ns`] and `PYRONAME:` URIs; the `nameserver` binary wraps both sides.
//!
//! # Layout
//!
//! - [`Registry`]: the data and its rules, no I/O; [`Limits`]: what it accepts.
//! - [`Store`]: where the registry is kept across restarts; [`RedbStore`] keeps it in a
//!   file.
//! - [`etcd`] (feature `etcd`): the registry in an etcd cluster, shared by several
//!   nameservers.
//! - [`NameServerImpl`]: the `NameServer` service over a registry.
//! - [`DiscoveryResponder`]: the UDP responder.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeSet;
//!
//! use nameserver::Options;
//! use rpc_core::{Config, NameServerConfig, locate_ns};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ns = nameserver::start(Options::loopback(0)).await?;
//! let port = ns.daemon().local_addr().unwrap().port();
//!
//! let mut config = Config::default();
//! config.nameserver = NameServerConfig::at("127.0.0.1", port);
//! let names = locate_ns(&config).await?;
//! names.register("example.thing".into(), "PYRO:thing@127.0.0.1:4000".parse()?, true, BTreeSet::new()).await?;
//! assert_eq!(names.lookup("example.thing".into()).await?.to_string(), "PYRO:thing@127.0.0.1:4000");
//! assert_eq!(names.count().await?, 2, "the nameserver's own entry and ours");
//! ns.shutdown().await;
//! # Ok(()) }
//! ```

mod deadline;
mod discovery;
mod entry;
#[cfg(feature = "etcd")]
pub mod etcd;
mod filter;
mod limits;
mod pyro5_face;
mod redb_store;
mod registry;
mod release;
mod server;
mod source;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{
    Config, DEFAULT_BROADCAST_PORT, DEFAULT_NS_PORT, Daemon, Error, HostPort, NAMESERVER_OBJECT_ID,
    NameServerSkeleton, Uri,
};

pub use deadline::Deadline;
pub use discovery::DiscoveryResponder;
pub use entry::{Entry, Instance};
pub use filter::MAX_PATTERN_LEN;
pub use limits::{Limits, MAX_NAME_LEN, validate_name};
pub use redb_store::RedbStore;
pub use registry::{MAX_PAGE_LEN, MIN_TOKEN_LEN, Registry};
pub use server::{DEFAULT_QUERY_BUDGET, NameServerImpl};
pub use source::Source;
pub use store::{Store, StoreError, StoredEntry, StoredInstance};

/// How to run a nameserver. Defaults follow Pyro: `localhost`, port 9090, discovery on 9091.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The host or address to listen on. Listening on loopback disables discovery; listening
    /// on `0.0.0.0` serves every interface, each client being told the address that faces it.
    pub host: String,
    /// The TCP port; 0 picks a free one.
    pub port: u16,
    /// Whether to answer broadcast discovery (never on loopback).
    pub broadcast: bool,
    /// The UDP port of discovery; 0 picks a free one.
    pub broadcast_port: u16,
    /// The daemon's settings, including `advertise_host`.
    pub config: Config,
    /// How long one `list`, `yplookup` or `remove` by pattern may run before it fails with
    /// `NamingError::QueryTooSlow`. Default [`DEFAULT_QUERY_BUDGET`] (1 s).
    pub query_budget: Duration,
    /// Caps on what the registry holds.
    pub limits: Limits,
    /// A token that may change or remove any name, owned or not: the operator's, for
    /// cleaning up. Default none.
    pub admin_token: Option<String>,
    /// Where the registry is kept across restarts (a [`RedbStore`], say); every change is
    /// stored before it is acknowledged. Default none: the registry lives in memory only.
    pub store: Option<Arc<dyn Store>>,
    /// The etcd cluster the registry lives in, shared with every nameserver on it (see
    /// [`etcd`]); instead of `store`, not with it. Default none.
    #[cfg(feature = "etcd")]
    pub etcd: Option<etcd::EtcdOptions>,
    /// With a secret in `config`: whether lookups too need it. By default they do not: anyone
    /// may look names up, only clients that prove the secret may register, remove or change
    /// metadata, and discovery answers carry a tag that clients with the secret check.
    pub lookups_need_auth: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            host: "localhost".into(),
            port: DEFAULT_NS_PORT,
            broadcast: true,
            broadcast_port: DEFAULT_BROADCAST_PORT,
            config: Config::default(),
            query_budget: DEFAULT_QUERY_BUDGET,
            limits: Limits::default(),
            admin_token: None,
            store: None,
            #[cfg(feature = "etcd")]
            etcd: None,
            lookups_need_auth: false,
        }
    }
}

impl Options {
    /// A nameserver on `127.0.0.1:port`, without discovery: for tests and single-machine use.
    pub fn loopback(port: u16) -> Options {
        Options {
            host: "127.0.0.1".into(),
            port,
            ..Options::default()
        }
    }
}

/// Why a nameserver did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its daemon or discovery could not start (a port taken, say).
    #[error(transparent)]
    Rpc(#[from] Error),
    /// Its store could not be read.
    #[error("could not restore the registry from its store")]
    Store(#[from] StoreError),
    /// [`Options`] gave both a store and an etcd cluster; a registry lives in one place.
    #[error("a nameserver keeps its registry in a store or in etcd, not both")]
    TwoStores,
}

/// A running nameserver. Dropping it stops it at once; [`shutdown`](Self::shutdown) stops it
/// gracefully.
#[derive(Debug)]
pub struct RunningNameServer {
    daemon: Daemon,
    uri: Uri,
    discovery: Option<DiscoveryResponder>,
    /// Set at shutdown: the queries still scanning give up.
    query_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Starts a nameserver as `options` say.
///
/// # Errors
///
/// [`StartError::Rpc`] holding [`Error::Bind`] if the TCP or UDP port cannot be bound;
/// [`StartError::Store`] if the store cannot be read.
pub async fn start(options: Options) -> Result<RunningNameServer, StartError> {
    let address = HostPort {
        host: options.host,
        port: Some(options.port),
    }
    .to_string();
    let secret = options.config.secret.clone();
    let mut config = options.config;
    config.allow_unauthenticated = secret.is_some() && !options.lookups_need_auth;
    let daemon = Daemon::bind_with(address.as_str(), config).await?;
    let uri = daemon.uri_for(NAMESERVER_OBJECT_ID);
    let mut registry = Registry::with_limits(uri.clone(), options.limits);
    registry.set_admin_token(options.admin_token);
    #[cfg(feature = "etcd")]
    let in_etcd = match &options.etcd {
        Some(_) if options.store.is_some() => return Err(StartError::TwoStores),
        Some(etcd) => {
            Some(NameServerImpl::with_etcd(registry.clone(), options.query_budget, etcd).await?)
        }
        None => None,
    };
    #[cfg(not(feature = "etcd"))]
    let in_etcd = None;
    let server = match (in_etcd, options.store) {
        (Some(server), _) => server,
        (None, Some(store)) => {
            NameServerImpl::with_store(registry, options.query_budget, store).await?
        }
        (None, None) => NameServerImpl::with_registry(registry, options.query_budget),
    };
    let server = if secret.is_some() {
        server.changes_need_auth()
    } else {
        server
    };
    let query_stop = server.query_stop();
    let server = std::sync::Arc::new(server);
    daemon.register_as(
        NAMESERVER_OBJECT_ID,
        NameServerSkeleton::new(server.clone()),
    )?;
    daemon.register_for_pyro5(
        NAMESERVER_OBJECT_ID,
        pyro5_face::Pyro5NameServerSkeleton::new(pyro5_face::Pyro5Face(server)),
    )?;
    let bound = daemon
        .local_addr()
        .expect("a daemon bound to TCP has a local address");
    let discovery = if options.broadcast && !bound.ip().is_loopback() {
        let address = SocketAddr::new(bound.ip(), options.broadcast_port);
        let rewrite_host = bound.ip().is_unspecified();
        let responder =
            DiscoveryResponder::bind(address, uri.clone(), rewrite_host, secret.clone())
                .await
                .map_err(|source| Error::Bind {
                    address: address.to_string(),
                    source,
                })?;
        Some(responder)
    } else {
        None
    };
    tracing::info!(
        target: "nameserver",
        %uri,
        discovery = ?discovery.as_ref().map(DiscoveryResponder::local_addr),
        "nameserver running"
    );
    Ok(RunningNameServer {
        daemon,
        uri,
        discovery,
        query_stop,
    })
}

impl RunningNameServer {
    /// The nameserver's URI, as it advertises it.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The daemon that hosts the nameserver; other objects may be registered with it too.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// Where discovery listens, if it runs.
    pub fn discovery_addr(&self) -> Option<SocketAddr> {
        self.discovery.as_ref().map(DiscoveryResponder::local_addr)
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future) {
        signal.await;
        self.shutdown().await;
    }

    /// Stops discovery, then the daemon, gracefully: calls in flight may finish, but queries
    /// still scanning the registry give up at once.
    pub async fn shutdown(self) {
        drop(self.discovery);
        self.query_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.daemon.shutdown().await;
    }
}
