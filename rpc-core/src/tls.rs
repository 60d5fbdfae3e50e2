//! TLS for daemons and proxies over TCP, with rustls and its `ring` provider.
//!
//! A daemon with [`Config::tls_server`](crate::Config::tls_server) accepts only TLS on its
//! TCP port; a proxy with [`Config::tls_client`](crate::Config::tls_client) speaks TLS to
//! every TCP daemon it calls, checking the daemon's certificate against the roots it trusts
//! and against the host in the URI. URIs stay Pyro's: whether to use TLS is configuration, as
//! in Pyro5. Mutual TLS is one setting away: a server that requires client certificates, and
//! a client that has one. Unix sockets never use TLS (the file system guards them).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS setting could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input held no certificate, or no key, or did not parse.
    #[error("cannot read {what}: {detail}")]
    Pem {
        /// What was read: a certificate chain, a key, roots.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the certificates or the key.
    #[error("TLS refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A daemon's TLS: its certificate chain and key, and, for mutual TLS, the roots its clients'
/// certificates must chain to.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
}

/// A proxy's TLS: the roots it trusts, and, for mutual TLS, its own certificate and key.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            what,
            detail: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            what,
            detail: "no certificate in it".into(),
        });
    }
    Ok(certificates)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| TlsError::Pem {
        what: "a private key",
        detail: error.to_string(),
    })
}

fn roots(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for root in certificates(pem, "trusted roots")? {
        roots.add(root)?;
    }
    Ok(roots)
}

/// The contents of the file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.display().to_string(),
        source,
    })
}

impl TlsServer {
    /// A server presenting the certificate chain `chain_pem` (its own certificate first) with
    /// the private key `key_pem`; with `client_roots_pem`, it requires every client to present
    /// a certificate that chains to one of those roots (mutual TLS).
    ///
    /// # Errors
    ///
    /// [`TlsError`] if a PEM input does not parse or rustls refuses it.
    pub fn from_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        client_roots_pem: Option<&[u8]>,
    ) -> Result<TlsServer, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_roots_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(pem)?), provider())
                        .build()
                        .map_err(|error| TlsError::Pem {
                            what: "client roots",
                            detail: error.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(
            certificates(chain_pem, "a certificate chain")?,
            key(key_pem)?,
        )?;
        Ok(TlsServer {
            config: Arc::new(config),
        })
    }

    /// As [`from_pem`](TlsServer::from_pem), reading PEM files.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](TlsServer::from_pem), and [`TlsError::File`].
    pub fn from_pem_files(
        chain: &Path,
        key: &Path,
        client_roots: Option<&Path>,
    ) -> Result<TlsServer, TlsError> {
        let roots = client_roots.map(read).transpose()?;
        TlsServer::from_pem(&read(chain)?, &read(key)?, roots.as_deref())
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

impl TlsClient {
    /// A client trusting the roots in `roots_pem`; with `identity` (a certificate chain and
    /// its key, in PEM), it presents that certificate to daemons that ask (mutual TLS).
    ///
    /// # Errors
    ///
    /// [`TlsError`] if a PEM input does not parse or rustls refuses it.
    pub fn from_pem(
        roots_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<TlsClient, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(roots_pem)?);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key_pem)) => builder.with_client_auth_cert(
                certificates(chain, "a client certificate chain")?,
                key(key_pem)?,
            )?,
        };
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    /// As [`from_pem`](TlsClient::from_pem), reading PEM files.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](TlsClient::from_pem), and [`TlsError::File`].
    pub fn from_pem_files(
        roots: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<TlsClient, TlsError> {
        let identity = match identity {
            Some((chain, key)) => Some((read(chain)?, read(key)?)),
            None => None,
        };
        let identity = identity
            .as_ref()
            .map(|(chain, key)| (chain.as_slice(), key.as_slice()));
        TlsClient::from_pem(&read(roots)?, identity)
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsServer(..)")
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClient(..)")
    }
}

/// The same settings: configs that hold the same TLS value are equal.
impl PartialEq for TlsServer {
    fn eq(&self, other: &TlsServer) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsServer {}

/// The same settings: configs that hold the same TLS value are equal.
impl PartialEq for TlsClient {
    fn eq(&self, other: &TlsClient) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsClient {}
