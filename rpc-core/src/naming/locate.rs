//! `locate_ns()`: finds a nameserver by configuration, broadcast, then localhost.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::net::UdpSocket;

use super::{DISCOVERY_REQUEST, NAMESERVER_OBJECT_ID, NameServerConfig, NameServerProxy};
use crate::{Config, Error, Location, Proxy, Uri};

/// Finds a nameserver and returns a connected proxy to it.
///
/// Tries, in order, as Pyro's `locate_ns` does:
///
/// 1. the host and port of [`Config::nameserver`] or of the environment (`RPC_NS_HOST`,
///    `RPC_NS_PORT`): when a host is configured, it is the only one tried;
/// 2. UDP broadcast discovery (unless disabled): `GET_NSURI` to each broadcast address, a few
///    short rounds;
/// 3. `127.0.0.1` on the nameserver port.
///
/// # Errors
///
/// [`Error::NameServerNotFound`], listing everything that was tried and why it failed.
pub async fn locate_ns(config: &Config) -> Result<NameServerProxy, Error> {
    let settings = &config.nameserver;
    let port = settings.port();
    if let Some(host) = settings.host() {
        let uri = nameserver_uri(host, port);
        return connect(&uri, config)
            .await
            .map_err(|error| Error::NameServerNotFound {
                tried: vec![format!("{uri} (configured): {error}")],
            });
    }
    let mut tried = Vec::new();
    if settings.broadcast {
        match discover(settings).await {
            Ok(uri) => match connect(&uri, config).await {
                Ok(proxy) => return Ok(proxy),
                Err(error) => tried.push(format!("{uri} (answered the broadcast): {error}")),
            },
            Err(reason) => tried.push(reason),
        }
    }
    let local = nameserver_uri(Ipv4Addr::LOCALHOST.to_string(), port);
    match connect(&local, config).await {
        Ok(proxy) => Ok(proxy),
        Err(error) => {
            tried.push(format!("{local}: {error}"));
            Err(Error::NameServerNotFound { tried })
        }
    }
}

/// Nameservers located earlier, by the configuration that found them. Resolving a name then
/// costs one lookup on an open connection instead of a new connection each time.
static LOCATED: Mutex<Vec<(Config, NameServerProxy)>> = Mutex::new(Vec::new());

/// How many configurations the cache remembers; the oldest is forgotten first.
const LOCATED_CAPACITY: usize = 16;

fn located() -> MutexGuard<'static, Vec<(Config, NameServerProxy)>> {
    LOCATED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The nameserver for `config`: the one located before, or a newly located one.
pub(crate) async fn cached_locate_ns(config: &Config) -> Result<NameServerProxy, Error> {
    let key = cache_key(config);
    if let Some((_, proxy)) = located().iter().find(|(known, _)| *known == key) {
        return Ok(proxy.clone());
    }
    let proxy = locate_ns(config).await?;
    let mut cache = located();
    cache.retain(|(known, _)| *known != key);
    if cache.len() >= LOCATED_CAPACITY {
        cache.remove(0);
    }
    cache.push((key, proxy.clone()));
    Ok(proxy)
}

/// Forgets the nameserver located for `config`, after it failed, so the next resolution
/// locates one afresh.
pub(crate) fn forget_ns(config: &Config) {
    let key = cache_key(config);
    located().retain(|(known, _)| *known != key);
}

/// What decides which nameserver `locate_ns` finds: the configuration, with the environment
/// variables it falls back to read now.
fn cache_key(config: &Config) -> Config {
    let mut key = config.clone();
    key.nameserver.host = key.nameserver.host();
    key.nameserver.port = Some(key.nameserver.port());
    key.nameserver.broadcast_port = Some(key.nameserver.broadcast_port());
    key.nameserver.broadcast_addresses = Some(key.nameserver.broadcast_addresses());
    key
}

/// The URI of the nameserver object at `host:port`.
pub(crate) fn nameserver_uri(host: String, port: u16) -> Uri {
    Uri::direct(NAMESERVER_OBJECT_ID, Location::Tcp { host, port })
}

async fn connect(uri: &Uri, config: &Config) -> Result<NameServerProxy, Error> {
    let proxy = Proxy::with_config(uri.clone(), config.clone());
    proxy.connect().await?;
    Ok(NameServerProxy::from_proxy(proxy))
}

/// Broadcasts `GET_NSURI` and returns the first URI that comes back; on failure, a sentence
/// saying what was tried.
async fn discover(settings: &NameServerConfig) -> Result<Uri, String> {
    let port = settings.broadcast_port();
    let targets: Vec<SocketAddr> = settings
        .broadcast_addresses()
        .into_iter()
        .filter(IpAddr::is_ipv4)
        .map(|address| SocketAddr::new(address, port))
        .collect();
    let what = format!(
        "broadcast to {} ({} rounds of {:?})",
        targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        settings.broadcast_rounds,
        settings.broadcast_timeout,
    );
    let failed = |reason: String| format!("{what}: {reason}");
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| failed(e.to_string()))?;
    socket
        .set_broadcast(true)
        .map_err(|e| failed(e.to_string()))?;
    let mut last_error = "no answer".to_owned();
    for _ in 0..settings.broadcast_rounds.max(1) {
        for target in &targets {
            if let Err(error) = socket.send_to(DISCOVERY_REQUEST, target).await {
                last_error = format!("sending to {target} failed: {error}");
            }
        }
        let deadline = tokio::time::Instant::now() + settings.broadcast_timeout;
        let mut buf = [0u8; 512];
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let Ok((len, from)) = received else {
                break;
            };
            match std::str::from_utf8(&buf[..len]).map(str::parse::<Uri>) {
                Ok(Ok(uri)) => {
                    tracing::debug!(target: "rpc_core::naming", %from, %uri, "nameserver answered the broadcast");
                    return Ok(uri);
                }
                _ => last_error = format!("{from} answered with something other than a URI"),
            }
        }
    }
    Err(failed(last_error))
}
