//! A proxy's TLS connection, handed to the link as one end of a local socket pair.
//!
//! The link writes without waiting (`try_write`) and learns of arrived bytes from the
//! socket's readiness; a TLS stream offers neither. So a task moves the bytes between the TLS
//! stream and a Unix socket pair, and the link runs over the pair's other end as over any
//! Unix socket. The price is one more copy and hop each way; the link's code stays one.

use std::io;

use rustls_pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};

use crate::tls::TlsClient;

/// Runs TLS with the daemon at `host` over `stream`, checking its certificate for `host`;
/// the local end that carries the plain bytes.
///
/// # Errors
///
/// If the host is no valid server name, the TLS handshake fails (an untrusted certificate,
/// one for another name, a client certificate refused), or no socket pair can be made.
pub(crate) async fn over_tls(
    stream: TcpStream,
    host: &str,
    tls: &TlsClient,
) -> io::Result<UnixStream> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let mut secured = tls.connector().connect(name, stream).await?;
    let (local, mut pumped) = UnixStream::pair()?;
    tokio::spawn(async move {
        // Ends when both sides have closed: the link's drop shuts the local end down.
        let _ = tokio::io::copy_bidirectional(&mut secured, &mut pumped).await;
    });
    Ok(local)
}
