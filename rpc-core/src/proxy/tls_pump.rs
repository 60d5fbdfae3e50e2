//! A proxy's TLS connection, handed to the link as one end of a local socket pair.
//!
//! The link writes without waiting (`try_write`) and learns of arrived bytes from the
//! socket's readiness; a TLS stream offers neither. So a task moves the bytes between the TLS
//! stream and a Unix socket pair, and the link runs over the pair's other end as over any
//! Unix socket. The price is one more copy and hop each way; the link's code stays one.

use std::io;
use std::sync::{Arc, OnceLock};

use rustls_pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};

use crate::tls::TlsClient;

/// Why the TLS session behind a local end failed, once it has: the link reports it when the
/// local end closes, rather than a bare end of stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFailure(Arc<OnceLock<Arc<io::Error>>>);

impl TlsFailure {
    pub(crate) fn get(&self) -> Option<Arc<io::Error>> {
        self.0.get().cloned()
    }
}

/// Runs TLS with the daemon at `host` over `stream`, checking its certificate for `host`;
/// the local end that carries the plain bytes, and where a later failure of the session is
/// told (a daemon refusing the client's certificate after a TLS 1.3 handshake, say).
///
/// # Errors
///
/// If the host is no valid server name, the TLS handshake fails (an untrusted certificate,
/// one for another name, a client certificate refused), or no socket pair can be made.
pub(crate) async fn over_tls(
    stream: TcpStream,
    host: &str,
    tls: &TlsClient,
) -> io::Result<(UnixStream, TlsFailure)> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let mut secured = tls.connector().connect(name, stream).await?;
    let (local, mut pumped) = UnixStream::pair()?;
    let failure = TlsFailure::default();
    let told = failure.clone();
    tokio::spawn(async move {
        // Ends when both sides have closed: the link's drop shuts the local end down. The
        // failure is told before the local end closes, so the link finds it there.
        if let Err(error) = tokio::io::copy_bidirectional(&mut secured, &mut pumped).await {
            let _ = told.0.set(Arc::new(error));
        }
        drop(pumped);
    });
    Ok((local, failure))
}
