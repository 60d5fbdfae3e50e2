//! Turns `PYRONAME:` and `PYROMETA:` URIs into the `PYRO:` URI of an object, through a nameserver.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};

use super::locate::locate_ns;
use super::{DEFAULT_NS_PORT, MetadataQuery, NameServerConfig, NameServerProxy, NamingError};
use crate::{CallError, Config, Error, HostPort, Uri};

/// The direct URI that `uri` stands for now. A `PYROMETA:` URI picks one of the matching objects
/// at random, which spreads clients over several workers.
pub(crate) async fn resolve(uri: &Uri, config: &Config) -> Result<Uri, Error> {
    match uri {
        Uri::Direct { .. } => Ok(uri.clone()),
        Uri::Name { name, nameserver } => {
            let ns = nameserver_for(nameserver.as_ref(), config).await?;
            ns.lookup(name.clone()).await.map_err(naming)
        }
        Uri::Meta { tags, nameserver } => {
            let ns = nameserver_for(nameserver.as_ref(), config).await?;
            let wanted: BTreeSet<String> = tags.iter().cloned().collect();
            let found = ns.yplookup(MetadataQuery::All(wanted.clone())).await?;
            let pick = RandomState::new().hash_one(found.len()) as usize % found.len().max(1);
            found
                .into_values()
                .nth(pick)
                .map(|registration| registration.uri)
                .ok_or(Error::Naming(NamingError::NoMatch(wanted)))
        }
    }
}

/// The nameserver a URI names (`@host:port`), or else the one `locate_ns` finds.
async fn nameserver_for(
    named: Option<&HostPort>,
    config: &Config,
) -> Result<NameServerProxy, Error> {
    match named {
        None => locate_ns(config).await,
        Some(HostPort { host, port }) => {
            let mut config = config.clone();
            config.nameserver = NameServerConfig::at(host.clone(), port.unwrap_or(DEFAULT_NS_PORT));
            locate_ns(&config).await
        }
    }
}

fn naming(error: CallError<NamingError>) -> Error {
    match error {
        CallError::Method(error) => Error::Naming(error),
        CallError::Rpc(error) => error,
    }
}
