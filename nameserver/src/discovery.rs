//! The UDP responder of broadcast discovery: answers `GET_NSURI` with the nameserver's URI.

use std::io;
use std::net::{IpAddr, SocketAddr};

use rpc_core::{DISCOVERY_REQUEST, Location, Uri};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Answers discovery requests until dropped.
///
/// Each request gets the nameserver's URI; when the nameserver listens on every interface, the
/// URI names the address of the interface that faces the requester, so a client on any network
/// the machine is on gets an address it can reach. Any datagram other than the 9 bytes
/// `GET_NSURI` is ignored; nothing is allocated per datagram beyond the receive buffer.
#[derive(Debug)]
pub struct DiscoveryResponder {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DiscoveryResponder {
    /// Listens on `address` (such as `0.0.0.0:9091`) and answers with `nameserver`, whose host
    /// is replaced by the requester-facing address when `rewrite_host` is set.
    ///
    /// # Errors
    ///
    /// If the UDP socket cannot be bound.
    pub async fn bind(
        address: SocketAddr,
        nameserver: Uri,
        rewrite_host: bool,
    ) -> io::Result<DiscoveryResponder> {
        let socket = UdpSocket::bind(address).await?;
        let local_addr = socket.local_addr()?;
        let task = tokio::spawn(answer(socket, nameserver, rewrite_host));
        Ok(DiscoveryResponder { local_addr, task })
    }

    /// The address the responder listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for DiscoveryResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(socket: UdpSocket, nameserver: Uri, rewrite_host: bool) {
    // One byte more than a request, so a longer datagram is told apart from one.
    let mut buf = [0u8; DISCOVERY_REQUEST.len() + 1];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(target: "nameserver::discovery", %error, "receive failed");
                continue;
            }
        };
        if &buf[..len] != DISCOVERY_REQUEST {
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
        if let Err(error) = socket.send_to(uri.to_string().as_bytes(), from).await {
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
