//! Turns `PYRONAME:` and `PYROMETA:` URIs into the `PYRO:` URI of an object, through a nameserver.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};

use std::sync::Arc;

use super::locate::{Located, connect, discover_all};
use super::{DEFAULT_NS_PORT, MetadataQuery, NameServerConfig, NameServerProxy, NamingError};
use crate::config::Config;
use crate::error::{CallError, Error};
use crate::proxy::{Proxy, Resolve, ResolveFuture};
use crate::uri::{HostPort, Uri};

/// Resolves `PYRONAME:` and `PYROMETA:` URIs through a nameserver, which it locates once and
/// keeps (per configuration) until it fails. `PYRO:` URIs stand for themselves.
///
/// Clones share what they located: give one resolver to many proxies with
/// [`Proxy::with_resolver`](crate::Proxy::with_resolver), and only the first locates the
/// nameserver.
#[derive(Debug, Clone, Default)]
pub struct NameResolver {
    located: Arc<Located>,
}

impl NameResolver {
    /// A resolver that has located nothing yet.
    pub fn new() -> NameResolver {
        NameResolver::default()
    }

    /// The direct URIs that `uri` stands for now, in the order to try them: every instance of
    /// a `PYRONAME:` name, starting where the nameserver's round robin is, or one object of
    /// each name a `PYROMETA:` query matches, starting at a random one. Never empty.
    async fn resolve_uri(&self, uri: &Uri, config: &Config) -> Result<Vec<Uri>, Error> {
        let resolved = self.resolve_once(uri, config).await;
        match resolved {
            // The nameserver located earlier is gone: locate one afresh, once. Lookups are
            // idempotent, so asking again is safe.
            Err(error) if error.is_communication() => {
                self.located.forget(&nameserver_config(uri, config));
                self.resolve_once(uri, config).await
            }
            other => other,
        }
    }

    async fn resolve_once(&self, uri: &Uri, config: &Config) -> Result<Vec<Uri>, Error> {
        if let Uri::Direct { .. } = uri {
            return Ok(vec![uri.clone()]);
        }
        let ns = self.located.locate(&nameserver_config(uri, config)).await?;
        ask_all(ns, uri, config).await
    }
}

/// The constructors of [`Proxy`] that resolve names through a nameserver: they live here, in
/// the naming layer, which supplies the resolver; the proxy itself only knows [`Resolve`].
impl Proxy {
    /// A proxy for `uri` with the default [`Config`]. Does not connect yet.
    pub fn new(uri: Uri) -> Proxy {
        Proxy::with_config(uri, Config::default())
    }

    /// A proxy for `uri` with the given [`Config`], resolving names with a fresh
    /// [`NameResolver`]. Does not connect yet.
    pub fn with_config(uri: Uri, config: Config) -> Proxy {
        Proxy::with_resolver(uri, config, Arc::new(NameResolver::new()))
    }
}

impl Resolve for NameResolver {
    fn resolve<'a>(&'a self, uri: &'a Uri, config: &'a Config) -> ResolveFuture<'a> {
        Box::pin(self.resolve_uri(uri, config))
    }
}

/// What the located nameserver `ns` has for `uri`, asking the other nameservers that answer
/// discovery when it has nothing and it was found by broadcast.
async fn ask_all(ns: NameServerProxy, uri: &Uri, config: &Config) -> Result<Vec<Uri>, Error> {
    let answer = ask(&ns, uri).await;
    let settings = nameserver_config(uri, config).nameserver;
    let found_by_broadcast = settings.configured().is_empty() && settings.broadcast;
    match answer {
        // Several nameservers may answer discovery, and the first need not be the one that
        // has the name: ask the others before giving up.
        Err(Error::Naming(NamingError::UnknownName(_) | NamingError::NoMatch(_)))
            if found_by_broadcast =>
        {
            for other in discover_all(&settings, config.secret.as_ref()).await {
                if other == *ns.proxy().uri() {
                    continue;
                }
                if let Ok(other_ns) = connect(&other, config).await
                    && let Ok(found) = ask(&other_ns, uri).await
                {
                    return Ok(found);
                }
            }
            answer
        }
        other => other,
    }
}

/// What the nameserver `ns` has for the `PYRONAME:` or `PYROMETA:` URI `uri`, in the order
/// to try it.
async fn ask(ns: &NameServerProxy, uri: &Uri) -> Result<Vec<Uri>, Error> {
    let candidates: Vec<Uri> = match uri {
        Uri::Direct { .. } => vec![uri.clone()],
        Uri::Name { name, .. } => {
            let instances = ns.lookup_all(name.clone()).await.map_err(naming)?;
            instances.into_iter().map(|found| found.uri).collect()
        }
        Uri::Meta { tags, .. } => {
            let wanted: BTreeSet<String> = tags.iter().cloned().collect();
            let found = ns
                .yplookup(MetadataQuery::All(wanted.clone()))
                .await
                .map_err(naming)?;
            let mut uris: Vec<Uri> = found.into_values().map(|found| found.uri).collect();
            if uris.is_empty() {
                return Err(Error::Naming(NamingError::NoMatch(wanted)));
            }
            let start = RandomState::new().hash_one(uris.len()) as usize % uris.len();
            uris.rotate_left(start);
            uris
        }
    };
    if candidates.is_empty() {
        return Err(Error::UnusableUri {
            uri: uri.to_string(),
            reason: "the nameserver answered with no instance".into(),
        });
    }
    Ok(candidates)
}

/// `config`, pointed at the nameserver that `uri` names, if it names one.
fn nameserver_config(uri: &Uri, config: &Config) -> Config {
    let named = match uri {
        Uri::Name { nameserver, .. } | Uri::Meta { nameserver, .. } => nameserver.as_ref(),
        Uri::Direct { .. } => None,
    };
    let mut config = config.clone();
    if let Some(HostPort { host, port }) = named {
        config.nameserver = NameServerConfig::at(host.clone(), port.unwrap_or(DEFAULT_NS_PORT));
    }
    config
}

/// A nameserver call's error as the crate's [`Error`].
pub(super) fn naming(error: CallError<NamingError>) -> Error {
    match error {
        CallError::Method(error) => Error::Naming(error),
        CallError::Rpc(error) => error,
    }
}
