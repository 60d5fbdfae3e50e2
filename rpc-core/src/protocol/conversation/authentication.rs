//! The shared-secret exchange both sides run before the handshake: each proves it holds the
//! [`Secret`] by an HMAC-SHA256 over both sides' fresh nonces, so neither reveals it and a
//! recorded exchange proves nothing on a new connection.
//!
//! ```text
//!   client                                   daemon
//!   Auth(nc)                        ──>
//!                                   <──      AuthChallenge(nd, HMAC(K, "ROBJ/1 daemon" nc nd))
//!   (checks the daemon's proof)
//!   AuthProof(HMAC(K, "ROBJ/1 client" nc nd)), Handshake, first call  ──>
//!                                            (checks the client's proof)
//! ```
//!
//! The labels differ, so a proof cannot be reflected back to the side that made it; they
//! carry the protocol's magic and version, the connection's identifying data before any
//! object is named.

use crate::secret::{Secret, TAG_LEN};

/// The length of a nonce, in bytes.
pub const NONCE_LEN: usize = 32;

/// A fresh nonce.
pub type Nonce = [u8; NONCE_LEN];

const DAEMON_LABEL: &[u8] = b"ROBJ/1 daemon proof";
const CLIENT_LABEL: &[u8] = b"ROBJ/1 client proof";

/// What a daemon with a secret needs for one connection.
#[derive(Debug, Clone)]
pub struct DaemonAuth {
    /// The deployment's secret.
    pub secret: Secret,
    /// A nonce fresh for this connection.
    pub nonce: Nonce,
    /// Whether a client without the secret is refused (else it is served unauthenticated, and
    /// the methods it calls can tell: `rpc_core::caller_authenticated()`).
    pub required: bool,
}

/// What a client with a secret needs for one connection.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// The deployment's secret.
    pub secret: Secret,
    /// A nonce fresh for this connection.
    pub nonce: Nonce,
}

pub(super) fn daemon_proof(secret: &Secret, client: &Nonce, daemon: &Nonce) -> [u8; TAG_LEN] {
    secret.sign(&[DAEMON_LABEL, client, daemon])
}

pub(super) fn client_proof(secret: &Secret, client: &Nonce, daemon: &Nonce) -> [u8; TAG_LEN] {
    secret.sign(&[CLIENT_LABEL, client, daemon])
}

pub(super) fn is_daemon_proof(
    secret: &Secret,
    client: &Nonce,
    daemon: &Nonce,
    proof: &[u8],
) -> bool {
    secret.verifies(&[DAEMON_LABEL, client, daemon], proof)
}

pub(super) fn is_client_proof(
    secret: &Secret,
    client: &Nonce,
    daemon: &Nonce,
    proof: &[u8],
) -> bool {
    secret.verifies(&[CLIENT_LABEL, client, daemon], proof)
}
