//! The UDP responder of broadcast discovery: answers `GET_NSURI` with the nameserver's URI,
//! signed for clients that send a nonce when the nameserver has a secret.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rpc_core::discovery::{MAX_REQUEST_LEN, Request};
use rpc_core::{Location, Secret, Uri};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Answers discovery requests until dropped.
///
/// Each request gets the nameserver's URI; when the nameserver listens on every interface, the
/// URI names the address of the interface that faces the requester, so a client on any network
/// the machine is on gets an address it can reach. A request with a nonce gets the URI and a
/// tag made with the nameserver's secret, which a client with the secret checks (see
/// [`rpc_core::discovery`]). Any datagram that is not a request is ignored; nothing is allocated per datagram beyond the receive buffer.
/// Answers are rate-limited per source address (8 a second) and in all (256 a second), so
/// the responder cannot be used to flood a host whose address a request claims.
#[derive(Debug)]
pub struct DiscoveryResponder {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DiscoveryResponder {
    /// Listens on `address` (such as `0.0.0.0:9091`) and answers with `nameserver`, whose host
    /// is replaced by the requester-facing address when `rewrite_host` is set, signing answers
    /// to signed requests with `secret`.
    ///
    /// # Errors
    ///
    /// If the UDP socket cannot be bound.
    pub async fn bind(
        address: SocketAddr,
        nameserver: Uri,
        rewrite_host: bool,
        secret: Option<Secret>,
    ) -> io::Result<DiscoveryResponder> {
        let socket = shared_udp_socket(address)?;
        let local_addr = socket.local_addr()?;
        let task = tokio::spawn(answer(socket, nameserver, rewrite_host, secret));
        Ok(DiscoveryResponder { local_addr, task })
    }

    /// The address the responder listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// A UDP socket bound to `address` with `SO_REUSEADDR`, so that several nameservers on one
/// machine (on one registry in etcd, say) can each answer discovery on the same port: Linux
/// hands every socket bound so a copy of each broadcast datagram, and a client takes the first
/// answer. A process that could bind the port could answer broadcasts anyway, from any host
/// of the network; clients with the secret check the answer's tag.
fn shared_udp_socket(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

impl Drop for DiscoveryResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers per source address within one [`ANSWER_WINDOW`]: a client asks a few times per
/// lookup, so more is a flood, or a reflection aimed at the claimed source.
const ANSWERS_PER_SOURCE: u32 = 8;

/// Answers in all within one [`ANSWER_WINDOW`], so spoofed sources cannot make the responder
/// an amplifier either.
const ANSWERS_IN_ALL: u32 = 256;

/// The window the answer limits count in.
const ANSWER_WINDOW: Duration = Duration::from_secs(1);

/// Source addresses remembered within one window; beyond, new sources count in all only.
const SOURCES_REMEMBERED: usize = 4096;

/// Counts answers per source and in all, in fixed windows.
#[derive(Debug)]
struct AnswerLimit {
    window_start: Instant,
    in_all: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl AnswerLimit {
    fn new(now: Instant) -> AnswerLimit {
        AnswerLimit {
            window_start: now,
            in_all: 0,
            per_source: HashMap::new(),
        }
    }

    /// Whether `source` may get an answer at `now`, counting it if so.
    fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= ANSWER_WINDOW {
            *self = AnswerLimit::new(now);
        }
        if self.in_all >= ANSWERS_IN_ALL {
            return false;
        }
        let remembered = self.per_source.len() < SOURCES_REMEMBERED;
        match self.per_source.get_mut(&source) {
            Some(count) if *count >= ANSWERS_PER_SOURCE => return false,
            Some(count) => *count += 1,
            None if remembered => {
                self.per_source.insert(source, 1);
            }
            None => {}
        }
        self.in_all += 1;
        true
    }
}

async fn answer(socket: UdpSocket, nameserver: Uri, rewrite_host: bool, secret: Option<Secret>) {
    // One byte more than the longest request, so a longer datagram is told apart from one.
    let mut buf = [0u8; MAX_REQUEST_LEN + 1];
    let mut limit = AnswerLimit::new(Instant::now());
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(target: "nameserver::discovery", %error, "receive failed");
                continue;
            }
        };
        let Some(request) = Request::parse(&buf[..len]) else {
            continue;
        };
        if !limit.allow(from.ip(), Instant::now()) {
            tracing::debug!(target: "nameserver::discovery", %from, "answer limit reached; request ignored");
            continue;
        }
        let uri = if rewrite_host {
            match facing_address(from).await {
                Ok(ip) => with_host(&nameserver, ip),
                Err(error) => {
                    tracing::debug!(target: "nameserver::discovery", %from, %error, "no route back to the requester");
                    continue;
                }
            }
        } else {
            nameserver.clone()
        };
        tracing::debug!(target: "nameserver::discovery", %from, %uri, "answering discovery");
        let answer = request.answer(&uri.to_string(), secret.as_ref());
        if let Err(error) = socket.send_to(answer.as_bytes(), from).await {
            tracing::debug!(target: "nameserver::discovery", %from, %error, "reply failed");
        }
    }
}

/// The local address the kernel would use to reach `peer`: connecting a UDP socket picks the
/// route without sending anything.
async fn facing_address(peer: SocketAddr) -> io::Result<IpAddr> {
    let unspecified: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("a valid literal address");
    let probe = UdpSocket::bind(unspecified).await?;
    probe.connect(peer).await?;
    Ok(probe.local_addr()?.ip())
}

fn with_host(uri: &Uri, ip: IpAddr) -> Uri {
    match uri {
        Uri::Direct {
            object,
            location: Location::Tcp { port, .. },
        } => Uri::direct(
            object.clone(),
            Location::Tcp {
                host: ip.to_string(),
                port: *port,
            },
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_limited_per_source_and_in_all_per_window() {
        let start = Instant::now();
        let mut limit = AnswerLimit::new(start);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..20).filter(|_| limit.allow(one, start)).count();
        assert_eq!(allowed, ANSWERS_PER_SOURCE as usize);
        let others = (0..1000u32)
            .filter(|n| limit.allow(IpAddr::from(n.to_be_bytes()), start))
            .count();
        assert_eq!(others, (ANSWERS_IN_ALL - ANSWERS_PER_SOURCE) as usize);
        // A new window starts afresh.
        assert!(limit.allow(one, start + ANSWER_WINDOW));
    }
}
