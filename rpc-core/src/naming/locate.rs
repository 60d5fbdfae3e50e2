//! `locate_ns()`: finds a nameserver by configuration, broadcast, then localhost.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::UdpSocket;

use super::discovery::{self, Request};
use super::{NAMESERVER_OBJECT_ID, NameServerConfig, NameServerProxy};
use crate::config::Config;
use crate::error::Error;
use crate::error::NameServerAttempt;
use crate::proxy::Proxy;
use crate::secret::{Secret, fresh_nonce};
use crate::uri::{Location, Uri};

/// Finds a nameserver and returns a connected proxy to it.
///
/// Tries, in order, as Pyro's `locate_ns` does:
///
/// 1. the host and port of [`Config::nameserver`] or of the environment (`RPC_NS_HOST`,
///    `RPC_NS_PORT`), then its [`fallbacks`](NameServerConfig::fallbacks), in order: when a
///    host is configured, only these are tried;
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
    let mut tried = Vec::new();
    let configured = settings.configured();
    if !configured.is_empty() {
        for (host, port) in configured {
            let uri = nameserver_uri(host, port);
            match connect(&uri, config).await {
                Ok(proxy) => return Ok(proxy),
                Err(error) => tried.push(unreachable(uri, "configured", error)),
            }
        }
        return Err(Error::NameServerNotFound { tried });
    }
    if settings.broadcast
        && let Some(proxy) = discover(settings, config, &mut tried).await
    {
        return Ok(proxy);
    }
    let local = nameserver_uri(Ipv4Addr::LOCALHOST.to_string(), port);
    match connect(&local, config).await {
        Ok(proxy) => Ok(proxy),
        Err(error) => {
            tried.push(unreachable(local, "localhost", error));
            Err(Error::NameServerNotFound { tried })
        }
    }
}

fn unreachable(uri: Uri, how: &'static str, error: Error) -> NameServerAttempt {
    NameServerAttempt::Unreachable {
        uri,
        how,
        error: Arc::new(error),
    }
}

/// Nameservers located earlier, by the configuration that found them: resolving a name then
/// costs one lookup on an open connection instead of a new connection each time. Each owner
/// (a resolver, a lease) keeps its own; nothing is cached for the whole process.
#[derive(Debug, Default)]
pub(crate) struct Located {
    known: Mutex<Vec<(Config, NameServerProxy)>>,
}

/// How many configurations a cache remembers; the oldest is forgotten first.
const LOCATED_CAPACITY: usize = 16;

impl Located {
    fn known(&self) -> MutexGuard<'_, Vec<(Config, NameServerProxy)>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The nameserver for `config`: the one located before, or a newly located one.
    pub(crate) async fn locate(&self, config: &Config) -> Result<NameServerProxy, Error> {
        let key = cache_key(config);
        if let Some((_, proxy)) = self.known().iter().find(|(known, _)| *known == key) {
            return Ok(proxy.clone());
        }
        let proxy = locate_ns(config).await?;
        let mut known = self.known();
        known.retain(|(seen, _)| *seen != key);
        if known.len() >= LOCATED_CAPACITY {
            known.remove(0);
        }
        known.push((key, proxy.clone()));
        Ok(proxy)
    }

    /// Forgets the nameserver located for `config`, after it failed, so the next call to
    /// [`locate`](Self::locate) locates one afresh.
    pub(crate) fn forget(&self, config: &Config) {
        let key = cache_key(config);
        self.known().retain(|(known, _)| *known != key);
    }
}

/// What decides which nameserver `locate_ns` finds: the configuration, with the environment
/// variables it falls back to read now.
fn cache_key(config: &Config) -> Config {
    let mut key = config.clone();
    if key.nameserver.host.is_none() {
        key.nameserver.host = std::env::var("RPC_NS_HOST").ok();
    }
    key.nameserver.port = Some(key.nameserver.port());
    key.nameserver.broadcast_port = Some(key.nameserver.broadcast_port());
    key.nameserver.broadcast_addresses = Some(key.nameserver.broadcast_addresses());
    key
}

/// The URI of the nameserver object at `host:port`.
pub(crate) fn nameserver_uri(host: String, port: u16) -> Uri {
    Uri::direct(NAMESERVER_OBJECT_ID, Location::Tcp { host, port })
}

pub(crate) async fn connect(uri: &Uri, config: &Config) -> Result<NameServerProxy, Error> {
    let proxy = Proxy::with_config(uri.clone(), config.clone());
    proxy.connect().await?;
    Ok(NameServerProxy::from_proxy(proxy))
}

/// Broadcasts `GET_NSURI` and connects to the first nameserver that answers acceptably and
/// accepts the connection, trying every answer in the order they come; notes in `tried` what
/// failed.
async fn discover(
    settings: &NameServerConfig,
    config: &Config,
    tried: &mut Vec<NameServerAttempt>,
) -> Option<NameServerProxy> {
    let mut discovery = match Discovery::start(settings, config.secret.as_ref()).await {
        Ok(discovery) => discovery,
        Err(reason) => {
            tried.push(reason);
            return None;
        }
    };
    while let Some(uri) = discovery.next_answer().await {
        match connect(&uri, config).await {
            Ok(proxy) => return Some(proxy),
            Err(error) => tried.push(unreachable(uri, "answered the broadcast", error)),
        }
    }
    if discovery.answered.is_empty() {
        tried.push(discovery.failure());
    }
    None
}

/// Every nameserver that answers discovery within its rounds, in the order they answered.
pub(crate) async fn discover_all(settings: &NameServerConfig, secret: Option<&Secret>) -> Vec<Uri> {
    let Ok(mut discovery) = Discovery::start(settings, secret).await else {
        return Vec::new();
    };
    while discovery.next_answer().await.is_some() {}
    discovery.answered
}

/// One discovery: rounds of `GET_NSURI` to the broadcast addresses, and the answers that come
/// back, each acceptable answer once.
struct Discovery<'a> {
    settings: &'a NameServerConfig,
    socket: UdpSocket,
    targets: Vec<SocketAddr>,
    rounds_left: u32,
    deadline: Option<tokio::time::Instant>,
    answered: Vec<Uri>,
    last_error: String,
    /// What is sent: signed with a fresh nonce when there is a secret.
    request: Request,
    /// The secret that answers must verify, if any.
    secret: Option<&'a Secret>,
}

impl<'a> Discovery<'a> {
    async fn start(
        settings: &'a NameServerConfig,
        secret: Option<&'a Secret>,
    ) -> Result<Discovery<'a>, NameServerAttempt> {
        let request = match secret {
            Some(_) => Request::Signed(
                fresh_nonce().map_err(|error| NameServerAttempt::Broadcast(Arc::new(error)))?,
            ),
            None => Request::Plain,
        };
        let port = settings.broadcast_port();
        let targets: Vec<SocketAddr> = settings
            .broadcast_addresses()
            .into_iter()
            .filter(IpAddr::is_ipv4)
            .map(|address| SocketAddr::new(address, port))
            .collect();
        let discovery = Discovery {
            settings,
            socket: UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .await
                .map_err(|error| NameServerAttempt::Broadcast(Arc::new(error)))?,
            targets,
            rounds_left: settings.broadcast_rounds.max(1),
            deadline: None,
            answered: Vec::new(),
            last_error: "no answer".to_owned(),
            request,
            secret,
        };
        discovery
            .socket
            .set_broadcast(true)
            .map_err(|error| NameServerAttempt::Broadcast(Arc::new(error)))?;
        Ok(discovery)
    }

    /// The next acceptable answer not seen before; `None` once the rounds are over.
    async fn next_answer(&mut self) -> Option<Uri> {
        let mut buf = [0u8; 512];
        loop {
            let deadline = match self.deadline {
                Some(deadline) => deadline,
                None if self.rounds_left == 0 => return None,
                None => self.send_round().await,
            };
            let Ok(Ok((len, from))) =
                tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
            else {
                self.deadline = None;
                continue;
            };
            let answer = match (&self.request, self.secret) {
                (Request::Signed(nonce), Some(secret)) => {
                    discovery::verified_answer(&buf[..len], nonce, secret)
                }
                _ => Ok(&buf[..len]),
            };
            match answer.and_then(|uri| acceptable_answer(uri, from, self.settings)) {
                // Each nameserver answers every round; one seen before is not tried again.
                Ok(uri) if self.answered.contains(&uri) => {}
                Ok(uri) => {
                    tracing::debug!(target: "rpc_core::naming", %from, %uri, "nameserver answered the broadcast");
                    self.answered.push(uri.clone());
                    return Some(uri);
                }
                Err(reason) => {
                    tracing::debug!(target: "rpc_core::naming", %from, reason, "discovery answer ignored");
                    self.last_error = format!("{from} answered, and was ignored: {reason}");
                }
            }
        }
    }

    /// Sends one round of requests; when its answers stop counting.
    async fn send_round(&mut self) -> tokio::time::Instant {
        self.rounds_left -= 1;
        for target in &self.targets {
            if let Err(error) = self.socket.send_to(&self.request.to_bytes(), target).await {
                self.last_error = format!("sending to {target} failed: {error}");
            }
        }
        let deadline = tokio::time::Instant::now() + self.settings.broadcast_timeout;
        self.deadline = Some(deadline);
        deadline
    }

    /// What was tried and why it found nothing.
    fn failure(&self) -> NameServerAttempt {
        NameServerAttempt::NoAnswer {
            targets: format!(
                "{} ({} rounds of {:?})",
                self.targets
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.settings.broadcast_rounds,
                self.settings.broadcast_timeout,
            ),
            reason: self.last_error.clone(),
        }
    }
}

/// The URI in a discovery answer from `from`, if it may be believed: a `PYRO:` URI for the
/// nameserver object over TCP at the host that answered (or one the configuration trusts).
/// Anything else could send the client to a name to resolve (and so to discovery again),
/// to a local socket of the sender's choosing, or to another host.
fn acceptable_answer(
    answer: &[u8],
    from: SocketAddr,
    settings: &NameServerConfig,
) -> Result<Uri, &'static str> {
    let text = std::str::from_utf8(answer).map_err(|_| "not text")?;
    let uri: Uri = text.parse().map_err(|_| "not a URI")?;
    let Uri::Direct { object, location } = &uri else {
        return Err("not a `PYRO:` URI");
    };
    if object != NAMESERVER_OBJECT_ID {
        return Err("not the nameserver object");
    }
    let Location::Tcp { host, .. } = location else {
        return Err("not a TCP address");
    };
    let same_host = host.parse::<IpAddr>().is_ok_and(|ip| ip == from.ip());
    if !same_host && !settings.trusted_hosts.iter().any(|trusted| trusted == host) {
        return Err("names a host other than the one that answered");
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nameserver_at_the_answering_host_is_believed() {
        let from: SocketAddr = "10.1.2.3:9091".parse().unwrap();
        let mut settings = NameServerConfig::default();
        let check = |answer: &str, settings: &NameServerConfig| {
            acceptable_answer(answer.as_bytes(), from, settings).map(|uri| uri.to_string())
        };
        assert_eq!(
            check("PYRO:Pyro.NameServer@10.1.2.3:9090", &settings),
            Ok("PYRO:Pyro.NameServer@10.1.2.3:9090".into())
        );
        for (answer, reason) in [
            ("PYRONAME:x", "not a `PYRO:` URI"),
            ("PYROMETA:x", "not a `PYRO:` URI"),
            ("PYRO:Pyro.NameServer@./u:/tmp/socket", "not a TCP address"),
            ("PYRO:other@10.1.2.3:9090", "not the nameserver object"),
            (
                "PYRO:Pyro.NameServer@10.9.9.9:9090",
                "names a host other than the one that answered",
            ),
            (
                "PYRO:Pyro.NameServer@ns.example:9090",
                "names a host other than the one that answered",
            ),
            ("garbage", "not a URI"),
        ] {
            assert_eq!(check(answer, &settings), Err(reason), "{answer}");
        }
        assert!(check("\u{ff}", &settings).is_err());
        settings.trusted_hosts = vec!["ns.example".into()];
        assert!(check("PYRO:Pyro.NameServer@ns.example:9090", &settings).is_ok());
    }
}
