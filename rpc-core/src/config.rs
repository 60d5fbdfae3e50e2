//! `Config`: the knobs of daemons and proxies, with documented defaults (Pyro's `configure.py`).

use std::time::Duration;

use crate::codec::Format;
use crate::naming::NameServerConfig;
use crate::protocol::HEADER_LEN;
use crate::secret::Secret;
use crate::tls::{TlsClient, TlsServer};

/// The default limit on one message, header included: 8 MiB, as tarpc (gRPC uses 4 MiB).
/// Large enough for ordinary payloads, small enough that a hostile peer cannot make a daemon
/// buffer much per connection.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024 * 1024;

/// The default of [`Config::max_nesting_depth`]: see there.
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 2048;

/// Settings shared by [`Daemon`](crate::Daemon) and [`Proxy`](crate::Proxy).
///
/// Start from [`Config::default()`] and change what you need, with one method per setting
/// (each named after its field):
///
/// ```
/// use std::time::Duration;
///
/// let config = rpc_core::Config::default()
///     .call_timeout(Duration::from_secs(5))
///     .max_message_size(64 * 1024 * 1024);
/// assert_eq!(config.call_timeout, Duration::from_secs(5));
/// ```
///
/// The fields are public to read and to assign; the struct is `#[non_exhaustive]`, so new
/// settings can arrive without breaking your code, which is why a struct literal
/// (`Config { call_timeout, ..Default::default() }`) does not compile outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, header included, that this side sends or accepts.
    /// Default [`DEFAULT_MAX_MESSAGE_SIZE`] (8 MiB). Set it on both sides to move larger values.
    pub max_message_size: usize,
    /// Proxy: how long a call may take before it fails with [`Error::Timeout`](crate::Error::Timeout).
    /// The daemon receives it as the call's deadline and drops the work when it passes.
    /// Default 30 s.
    pub call_timeout: Duration,
    /// Proxy: how long connecting (the TCP or Unix connect) may take; the handshake travels
    /// with the first call and counts against its timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// Daemon: how long a new connection has to send its handshake. Default 5 s.
    pub handshake_timeout: Duration,
    /// Both: how long a frame that has started to arrive may take to complete; a slower
    /// sender is cut off. Default 10 s.
    pub frame_timeout: Duration,
    /// Daemon: connections served at once; further ones are closed at once. Default 1024.
    pub max_connections: usize,
    /// Daemon: connections served at once from one IP address, so one host cannot take every
    /// slot. Default 256.
    pub max_connections_per_address: usize,
    /// Daemon: calls running at once for one connection; the daemon stops reading from a
    /// connection at the cap until one finishes. A cancelled call counts until its handler
    /// has really stopped. Default 128.
    pub max_calls_per_connection: usize,
    /// Daemon: reply bytes queued for one connection; above this the daemon stops reading
    /// from a peer that does not read its replies. Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Daemon: bytes that large frames (over 64 KiB) being received may occupy at once, over
    /// all connections. A frame draws on it as its bytes arrive (holding at most twice what
    /// has arrived, and 16 KiB for a header alone), so headers that announce large bodies
    /// cannot take it; a frame that needs more than is left waits, within its frame deadline,
    /// and is not read meanwhile. Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// Daemon: the largest handshake frame accepted, header included; the full
    /// `max_message_size` applies only after a successful handshake. Default 4 KiB.
    pub max_handshake_size: usize,
    /// Proxy: how often an open connection is pinged to detect a dead daemon or a broken
    /// network; `None` disables it. Default 15 s.
    pub keepalive_interval: Option<Duration>,
    /// Proxy: how long a keepalive ping may go unanswered before the connection is declared
    /// dead and every call on it fails with [`Error::ConnectionLost`](crate::Error::ConnectionLost).
    /// Default 10 s.
    pub keepalive_timeout: Duration,
    /// Daemon: the longest a call may run, whatever deadline its caller sent (a call sent
    /// with none gets this one); `None` lets calls without a deadline run for ever. Default
    /// 10 minutes: far above the proxies' default timeout of 30 s, so only calls whose
    /// caller asked for more, or for no limit, are cut.
    pub max_call_duration: Option<Duration>,
    /// Daemon: how long a connection may stay silent, with no call running, before the
    /// daemon closes it (it does so after one to two such periods), so idle connections
    /// cannot hold slots for ever; `None` keeps them. Default 60 s: four times the proxies'
    /// keepalive interval, so a proxy with keepalive on is never cut, and one with it off
    /// connects again at its next call (losing its `session` instances).
    pub idle_timeout: Option<Duration>,
    /// Daemon: how long a graceful shutdown waits for calls in flight. Default 5 s.
    pub shutdown_grace: Duration,
    /// Daemon: the host to put in the URIs it hands out. Default `None`: the bound address,
    /// or for a daemon bound to `0.0.0.0` or `[::]` the address of a non-loopback interface.
    pub advertise_host: Option<String>,
    /// Both: how deeply a decoded value may nest (each struct, enum, `Option`, sequence or
    /// map is one level), so that a small hostile input cannot overflow the stack through a
    /// recursive type. The default, 2048, is a list of 1024 `Option<Box<Node>>` nodes. Measured
    /// on x86-64, decoding at that depth takes about 0.25 MiB of stack in a release build and
    /// 1.5 MiB in a debug build (about 120 and 700 bytes a level), so it fits the 2 MiB stack
    /// of a tokio worker either way. Raise it only for release builds, or on threads with
    /// larger stacks (`tokio::runtime::Builder::thread_stack_size`).
    pub max_nesting_depth: usize,
    /// Proxy: how to find a nameserver for `PYRONAME:` and `PYROMETA:` URIs.
    pub nameserver: NameServerConfig,
    /// Both: the deployment's shared [`Secret`]. A proxy with one proves it to every daemon it
    /// connects to (one round trip more at connect, nothing per call), and refuses a daemon
    /// that cannot prove it back; a daemon with one refuses clients without it, unless
    /// [`allow_unauthenticated`](Config::allow_unauthenticated). It authenticates; it does not
    /// encrypt. [`Secret::from_env`] reads it from `RPC_SECRET_FILE` or `RPC_SECRET`. Default
    /// none.
    pub secret: Option<Secret>,
    /// Daemon with a secret: whether clients without it are served anyway, unauthenticated;
    /// the methods tell them apart with [`caller_authenticated`](crate::caller_authenticated).
    /// The nameserver uses this to keep lookups open while only its operators change names.
    /// Default `false`.
    pub allow_unauthenticated: bool,
    /// Daemon: TLS on its TCP port, which then accepts only TLS. See [`TlsServer`]. Default
    /// none.
    pub tls_server: Option<TlsServer>,
    /// Daemon with [`tls_server`](Config::tls_server): whether its port serves plain clients
    /// too, told apart by their first byte (a TLS handshake starts with 0x16, this protocol
    /// with `R`). Off by default: a plain connection is neither encrypted nor checked, so
    /// turn this on only while clients move to TLS.
    pub accept_plain_with_tls: bool,
    /// Proxy: TLS to every TCP daemon, checking its certificate against these roots and the
    /// host in the URI. See [`TlsClient`]. Default none.
    pub tls_client: Option<TlsClient>,
    /// Daemon: whether its TCP port also serves Python Pyro5 clients, told apart by their
    /// first byte (`P`; ours send `R`). Pyro5 has no shared secret, so a daemon that requires
    /// one refuses them. See [`crate::pyro5`]. Default `true`.
    pub serve_pyro5: bool,
    /// Proxy: speak Pyro5's protocol in this format ([`Format::Serpent`] or [`Format::Json`])
    /// instead of ours, to call objects of a Python Pyro5 daemon. See [`crate::pyro5`].
    /// Default none.
    pub pyro5_format: Option<Format>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 256,
            max_queued_bytes: 4 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            max_handshake_size: 4 * 1024,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_timeout: Duration::from_secs(10),
            max_calls_per_connection: 128,
            max_call_duration: Some(Duration::from_secs(600)),
            idle_timeout: Some(Duration::from_secs(60)),
            shutdown_grace: Duration::from_secs(5),
            advertise_host: None,
            max_nesting_depth: DEFAULT_MAX_NESTING_DEPTH,
            nameserver: NameServerConfig::default(),
            secret: None,
            allow_unauthenticated: false,
            tls_server: None,
            accept_plain_with_tls: false,
            tls_client: None,
            serve_pyro5: true,
            pyro5_format: None,
        }
    }
}

/// Writes one builder-style setter per field: `config.field(value)` returns the config with
/// that field set.
macro_rules! setters {
    ($($field:ident: $type:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`", stringify!($field), "`](Config::", stringify!($field), ").")]
            #[must_use]
            pub fn $field(mut self, $field: $type) -> Config {
                self.$field = $field;
                self
            }
        )*
    };
}

impl Config {
    setters! {
        max_message_size: usize,
        call_timeout: Duration,
        connect_timeout: Duration,
        handshake_timeout: Duration,
        frame_timeout: Duration,
        max_connections: usize,
        max_connections_per_address: usize,
        max_calls_per_connection: usize,
        max_queued_bytes: usize,
        max_buffered_bytes: usize,
        max_handshake_size: usize,
        keepalive_interval: Option<Duration>,
        keepalive_timeout: Duration,
        max_call_duration: Option<Duration>,
        idle_timeout: Option<Duration>,
        shutdown_grace: Duration,
        advertise_host: Option<String>,
        max_nesting_depth: usize,
        nameserver: NameServerConfig,
        secret: Option<Secret>,
        allow_unauthenticated: bool,
        tls_server: Option<TlsServer>,
        accept_plain_with_tls: bool,
        tls_client: Option<TlsClient>,
        serve_pyro5: bool,
        pyro5_format: Option<Format>,
    }

    /// The longest frame body the limit allows.
    pub(crate) fn max_body_len(&self) -> usize {
        self.max_message_size.saturating_sub(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_change_their_field_only() {
        let config = Config::default()
            .call_timeout(Duration::from_secs(3))
            .max_nesting_depth(10)
            .keepalive_interval(None);
        assert_eq!(config.call_timeout, Duration::from_secs(3));
        assert_eq!(config.max_nesting_depth, 10);
        assert_eq!(config.keepalive_interval, None);
        let expected = Config {
            call_timeout: Duration::from_secs(3),
            max_nesting_depth: 10,
            keepalive_interval: None,
            ..Config::default()
        };
        assert_eq!(config, expected);
    }
}
