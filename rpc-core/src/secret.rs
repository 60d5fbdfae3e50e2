//! `Secret`: the key shared by the clients and daemons of one deployment, for connections
//! and discovery answers that prove they come from someone who holds it.
//!
//! The secret authenticates; it does not encrypt. Without TLS, anyone on the path still reads
//! the calls and the replies, and sees who talks to whom. What it stops is a client without
//! the secret calling a daemon that requires it, a daemon without it posing as one that has
//! it, a recorded handshake replayed on a new connection, and a discovery answer from a
//! responder that does not hold it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The environment variable that holds the secret itself, for [`Secret::from_env`].
pub const SECRET_ENV: &str = "RPC_SECRET";

/// The environment variable that names a file holding the secret, for [`Secret::from_env`];
/// it wins over [`SECRET_ENV`].
pub const SECRET_FILE_ENV: &str = "RPC_SECRET_FILE";

/// The shortest secret accepted, in bytes: shorter ones are guessed too easily.
pub const MIN_SECRET_LEN: usize = 16;

/// A shared secret. Its `Debug` output never shows it.
///
/// ```
/// let secret = rpc_core::Secret::new("correct horse battery staple").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(..)");
/// let config = rpc_core::Config::default().secret(Some(secret));
/// assert!(config.secret.is_some());
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
}

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("a secret needs at least {MIN_SECRET_LEN} bytes, this one has {0}")]
    TooShort(usize),
    /// The file that should hold it could not be read.
    #[error("could not read the secret from {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Secret {
    /// The secret `bytes`.
    ///
    /// # Errors
    ///
    /// [`SecretError::TooShort`] for fewer than [`MIN_SECRET_LEN`] bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Secret, SecretError> {
        let bytes = bytes.as_ref();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Secret {
            bytes: Arc::from(bytes),
        })
    }

    /// The secret in the file at `path`, without a trailing line break.
    ///
    /// # Errors
    ///
    /// [`SecretError::Unreadable`], or [`SecretError::TooShort`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Secret, SecretError> {
        let path = path.as_ref();
        let mut bytes = std::fs::read(path).map_err(|source| SecretError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        while bytes
            .last()
            .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
        {
            bytes.pop();
        }
        Secret::new(bytes)
    }

    /// The secret the environment gives: the file named by `RPC_SECRET_FILE`, else the value
    /// of `RPC_SECRET`; `None` if neither is set. Never take a secret from a command-line
    /// argument: `ps` shows those to every user of the machine.
    ///
    /// # Errors
    ///
    /// As [`from_file`](Secret::from_file) and [`new`](Secret::new).
    pub fn from_env() -> Result<Option<Secret>, SecretError> {
        if let Some(path) = std::env::var_os(SECRET_FILE_ENV) {
            return Secret::from_file(path).map(Some);
        }
        match std::env::var_os(SECRET_ENV) {
            Some(value) => Secret::new(value.as_encoded_bytes()).map(Some),
            None => Ok(None),
        }
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.bytes)
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut context = hmac::Context::with_key(&self.key());
        for part in parts {
            context.update(part);
        }
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// Whether `tag` is the HMAC of `parts`, compared in constant time.
    pub(crate) fn verifies(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        // `verify` compares the tags in constant time.
        hmac::verify(&self.key(), &parts.concat(), tag).is_ok()
    }
}

/// The length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// `N` bytes from the operating system's random source, fresh for every use.
///
/// # Errors
///
/// If the operating system has no random source to give.
pub(crate) fn fresh_nonce<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut nonce = [0; N];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| std::io::Error::other("the operating system's random source failed"))?;
    Ok(nonce)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Equal secrets make equal [`Config`](crate::Config)s, which key the caches of located
/// nameservers; no secret received from a peer is ever compared this way.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_and_files_lose_their_line_break() {
        assert!(matches!(
            Secret::new("short"),
            Err(SecretError::TooShort(5))
        ));
        let dir = std::env::temp_dir().join(format!("rpc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        assert_eq!(
            Secret::from_file(&file).unwrap(),
            Secret::new("0123456789abcdef").unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Secret::from_file(dir.join("missing")),
            Err(SecretError::Unreadable { .. })
        ));
    }

    #[test]
    fn tags_verify_only_with_the_same_secret_and_parts() {
        let one = Secret::new("0123456789abcdef").unwrap();
        let other = Secret::new("0123456789abcdeF").unwrap();
        let tag = one.sign(&[b"a", b"bc"]);
        assert!(one.verifies(&[b"ab", b"c"], &tag), "parts are concatenated");
        assert!(!one.verifies(&[b"abd"], &tag));
        assert!(!other.verifies(&[b"abc"], &tag));
        assert!(!one.verifies(&[b"abc"], &tag[..31]));
        assert_ne!(fresh_nonce::<32>().unwrap(), fresh_nonce::<32>().unwrap());
    }
}
