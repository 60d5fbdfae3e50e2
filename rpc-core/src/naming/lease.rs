//! `Lease`: keeps a registration with a time to live alive, from the worker's side.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::NameFilter;
use super::locate::Located;
use super::resolve::naming;
use crate::config::Config;
use crate::error::Error;
use crate::uri::Uri;

/// A registration that a background task renews until the lease is removed or dropped.
///
/// It registers `name` at once, then again every third of the time to live, so two renewals
/// may fail before the registration runs out. A renewal that fails (the nameserver restarted,
/// or is unreachable) is tried again at once against a freshly located nameserver, then on the
/// next tick: a restarted nameserver learns the name again within a third of the TTL.
///
/// The registration is owned by a token only this lease knows, so no other client can
/// overwrite, renew or remove it (the nameserver's admin token aside).
///
/// Dropping the lease stops renewing and leaves the registration to expire (what a crashed
/// worker would do); [`remove`](Lease::remove) takes it away at once, for a graceful stop.
///
/// [`start`](Lease::start) makes the worker the name's only instance, as Pyro's `register`
/// does. Several workers share one name with [`start_instance`](Lease::start_instance):
/// each keeps its own instance alive, and `PYRONAME:` proxies spread over them.
///
/// A worker registers its object, serves, and removes it when it stops (this needs a running
/// nameserver, which `tests/tests/naming.rs` starts):
///
/// ```no_run
/// # use std::time::Duration;
/// # use rpc_core::{Config, Lease};
/// # #[tokio::main] async fn main() -> Result<(), rpc_core::Error> {
/// let config = Config::default(); // finds the nameserver as `locate_ns` does
/// let uri = "PYRO:worker@127.0.0.1:4000".parse()?;
/// let lease = Lease::start(&config, "my.worker", uri, Duration::from_secs(10)).await?;
/// // ... serve ...
/// lease.remove().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Lease {
    name: String,
    /// The owner token of the registration, known to this lease only (and to the other
    /// instances of a shared name).
    owner: String,
    uri: Uri,
    /// Whether the name holds other instances than this one.
    shared: bool,
    config: Config,
    /// The nameserver it renews with, located at the start.
    located: Arc<Located>,
    renewing: JoinHandle<()>,
}

impl Lease {
    /// Registers `name` for `uri` with the nameserver `config` finds, for `ttl`, and keeps it
    /// registered.
    ///
    /// # Errors
    ///
    /// The first registration's failure: no nameserver, or its refusal (an invalid name, a
    /// limit, a TTL beyond its maximum).
    pub async fn start(
        config: &Config,
        name: &str,
        uri: Uri,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        Lease::start_with_metadata(config, name, uri, BTreeSet::new(), ttl).await
    }

    /// As [`start`](Lease::start), with metadata tags.
    ///
    /// # Errors
    ///
    /// As [`start`](Lease::start).
    pub async fn start_with_metadata(
        config: &Config,
        name: &str,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        let renewal = Renewal {
            config: config.clone(),
            located: Arc::default(),
            name: name.to_owned(),
            uri,
            metadata,
            ttl,
            owner: new_owner_token(),
            shared: false,
        };
        Lease::begin(renewal).await
    }

    /// Registers `uri` as one instance of `name` among others, for `ttl`, and keeps it
    /// registered, leaving the name's other instances alone: how several workers serve one
    /// name. The name is owned by `owner` (at least 16 characters), which every worker of the
    /// name gives, say from a file they share; anyone else is refused. [`remove`](Lease::remove)
    /// removes this instance only.
    ///
    /// # Errors
    ///
    /// As [`start`](Lease::start); [`NamingError::Owned`](super::NamingError::Owned) if the
    /// name is owned by another token.
    pub async fn start_instance(
        config: &Config,
        name: &str,
        uri: Uri,
        metadata: BTreeSet<String>,
        ttl: Duration,
        owner: String,
    ) -> Result<Lease, Error> {
        let renewal = Renewal {
            config: config.clone(),
            located: Arc::default(),
            name: name.to_owned(),
            uri,
            metadata,
            ttl,
            owner,
            shared: true,
        };
        Lease::begin(renewal).await
    }

    /// Registers once, then renews in the background.
    async fn begin(renewal: Renewal) -> Result<Lease, Error> {
        renewal.renew().await?;
        Ok(Lease {
            name: renewal.name.clone(),
            owner: renewal.owner.clone(),
            uri: renewal.uri.clone(),
            shared: renewal.shared,
            config: renewal.config.clone(),
            located: renewal.located.clone(),
            renewing: tokio::spawn(renewal.keep_renewing()),
        })
    }

    /// Whether the renewals still run.
    pub fn is_renewing(&self) -> bool {
        !self.renewing.is_finished()
    }

    /// Stops renewing and removes the registration now.
    ///
    /// # Errors
    ///
    /// If the nameserver cannot be reached; the registration then expires by itself.
    pub async fn remove(self) -> Result<(), Error> {
        self.renewing.abort();
        let ns = self.located.locate(&self.config).await?;
        if self.shared {
            ns.remove_instance(
                self.name.clone(),
                self.uri.clone(),
                Some(self.owner.clone()),
            )
            .await
            .map_err(naming)?;
        } else {
            ns.remove_owned(NameFilter::Name(self.name.clone()), self.owner.clone())
                .await
                .map_err(naming)?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

/// A fresh owner token for [`NameServer::register_lease`](super::NameServer::register_lease):
/// 128 bits from the process's randomly keyed hasher, which no other client can predict.
pub fn new_owner_token() -> String {
    let keyed = RandomState::new();
    let now = std::time::SystemTime::now();
    format!(
        "{:016x}{:016x}",
        keyed.hash_one((now, 0u8)),
        keyed.hash_one((now, 1u8))
    )
}

/// What the renewing task needs.
struct Renewal {
    config: Config,
    /// The nameserver the lease renews with, shared with its `Lease`.
    located: Arc<Located>,
    name: String,
    uri: Uri,
    metadata: BTreeSet<String>,
    ttl: Duration,
    owner: String,
    /// Register as one instance among others, not as the name's only one.
    shared: bool,
}

impl Renewal {
    async fn renew(&self) -> Result<(), Error> {
        let ns = self.located.locate(&self.config).await?;
        let (name, uri, metadata) = (self.name.clone(), self.uri.clone(), self.metadata.clone());
        let renewed = if self.shared {
            ns.register_instance(
                name,
                uri,
                metadata,
                Some(self.ttl),
                Some(self.owner.clone()),
            )
            .await
        } else {
            ns.register_lease(name, uri, metadata, self.ttl, self.owner.clone())
                .await
        };
        renewed.map_err(naming)
    }

    async fn keep_renewing(self) {
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.renew().await {
                // A nameserver that restarted or moved: locate one afresh and try once more.
                self.located.forget(&self.config);
                if let Err(again) = self.renew().await {
                    tracing::warn!(target: "rpc_core::naming", name = %self.name, %error, %again, "lease renewal failed; retrying at the next tick");
                }
            }
        }
    }
}
