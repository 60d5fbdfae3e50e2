//! Remote objects for Rust, in the spirit of Pyro: put [`#[service]`](service) on a trait, host
//! an implementation in a [`Daemon`], and call it through a generated proxy from anywhere.
//!
//! Start at [`service`] for what the attribute generates, then [`Daemon`] for the server side
//! and [`Proxy`] for what every generated proxy is built on. Every daemon also serves Python
//! Pyro5 clients on its port, and proxies can call Python Pyro5 objects: see [`pyro5`].
//!
//! # Example
//!
//! ```
//! use rpc_core::{CallError, Daemon, service};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, thiserror::Error)]
//! #[error("no rate for {0}")]
//! pub struct UnknownPair(String);
//!
//! #[service]
//! pub trait Rates {
//!     /// The exchange rate for a pair such as `EUR/USD`.
//!     async fn get_rate(&self, pair: String) -> Result<f64, UnknownPair>;
//! }
//!
//! struct Table;
//!
//! impl Rates for Table {
//!     async fn get_rate(&self, pair: String) -> Result<f64, UnknownPair> {
//!         match pair.as_str() {
//!             "EUR/USD" => Ok(1.08),
//!             _ => Err(UnknownPair(pair)),
//!         }
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = Daemon::bind("127.0.0.1:0").await?;
//! let uri = daemon.register_as("rates", RatesSkeleton::new(Table))?;
//!
//! let rates = RatesProxy::new(uri);
//! assert_eq!(rates.get_rate("EUR/USD".into()).await?, 1.08);
//! match rates.get_rate("XXX/YYY".into()).await {
//!     Err(CallError::Method(UnknownPair(pair))) => assert_eq!(pair, "XXX/YYY"),
//!     other => panic!("expected the method's own error, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`protocol`]: the wire format, byte by byte, with no I/O.
//! - [`Daemon`], [`InstanceMode`], [`Dispatch`]: the server side.
//! - [`Proxy`], [`PendingCall`]: the client side, async and blocking.
//! - [`NameServer`], [`locate_ns`]: the naming contract; `PYRONAME:` and `PYROMETA:` URIs
//!   resolve through it.
//! - [`Uri`], [`Config`], [`Error`]: addresses, settings, failures.

mod blocking;
mod call_scope;
mod codec;
mod config;
mod connection;
mod daemon;
mod dispatch;
mod error;
mod naming;
pub mod protocol;
mod proxy;
pub mod pyro5;
mod secret;
mod tls;
mod uri;

#[doc(hidden)]
pub mod __private;

// Lets `#[service]` output, which names `::rpc_core`, compile inside this crate too.
extern crate self as rpc_core;

pub use blocking::PendingCall;
pub use call_scope::{caller_address, caller_authenticated, remaining as remaining_deadline};
pub use codec::{CodecCause, CodecError, Format};
pub use config::{Config, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_NESTING_DEPTH};
pub use daemon::{Daemon, InstanceMode};
pub use dispatch::{Call, Dispatch, DispatchFuture, Encoded, MethodInfo};
pub use error::{CallError, Disconnect, Error, NameServerAttempt};
pub use naming::discovery;
pub use naming::{
    DEFAULT_BROADCAST_PORT, DEFAULT_NS_PORT, DISCOVERY_REQUEST, Lease, ListPage, MetadataQuery,
    NAMESERVER_OBJECT_ID, NameFilter, NameResolver, NameServer, NameServerBlockingProxy,
    NameServerConfig, NameServerProxy, NameServerSkeleton, NamingError, Registration, locate_ns,
    new_owner_token,
};
pub use protocol::RemoteError;
pub use proxy::{Proxy, Resolve, ResolveFuture};
pub use secret::{MIN_SECRET_LEN, SECRET_ENV, SECRET_FILE_ENV, Secret, SecretError};
pub use tls::{TlsClient, TlsError, TlsServer};
pub use uri::{HostPort, IdError, Location, Uri, UriError, validate_id};

/// Turns a trait into a remote service: a client proxy, a blocking proxy and a server skeleton.
///
/// ```
/// # use rpc_core::service;
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)] pub struct RateError;
/// #[service]
/// pub trait Worker {
///     /// Documentation is carried over to the generated methods.
///     async fn get_rate(&self, pair: String) -> Result<f64, RateError>;
///     async fn add(&self, a: u64, b: u64) -> u64;
///     #[oneway]
///     async fn log(&self, line: String);
/// }
/// ```
///
/// # What the trait may contain
///
/// Methods only, each an `async fn` taking `&self` and owned arguments that implement serde's
/// `Serialize` and `DeserializeOwned` (no references, no generics), returning a serde type,
/// `()`, or `Result<T, E>` with both serde types. `#[oneway]` marks a method whose caller does
/// not wait for it to run; it must return `()`. Every mistake is reported at once, each at the
/// offending token.
///
/// Byte payloads: a `Vec<u8>` argument or return value (also `Option<Vec<u8>>`, and the value
/// of a `Result<Vec<u8>, E>`) travels as one byte string, not element by element as serde
/// would have it; nothing to write. A `Vec<u8>` inside a struct of your own is serde's to
/// encode, so mark the field, or it is encoded one byte at a time (over ten times slower at
/// 64 KiB):
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// pub struct Image {
///     pub name: String,
///     #[serde(with = "serde_bytes")]
///     pub pixels: Vec<u8>,
/// }
/// ```
///
/// Values travel in bincode, which is compact and fast because it is not self-describing:
/// the receiver knows the type, so field names and tags are not sent. A few serde features
/// need them, and fail with a [`CodecError`] that names the feature:
///
/// | serde feature | instead |
/// |---|---|
/// | `#[serde(skip_serializing_if = ..)]` | always serialize the field (an `Option` costs one byte when `None`) |
/// | `#[serde(tag = "..")]` (internally tagged enums) | serde's default, externally tagged enums |
/// | `#[serde(tag = "..", content = "..")]` (adjacently tagged) | the same |
/// | `#[serde(untagged)]` | the same |
/// | `#[serde(flatten)]` | a nested struct field |
/// | `serde_json::Value` and other `deserialize_any` types | send the JSON as a `String` |
///
/// Values may nest [`Config::max_nesting_depth`] levels (2048 by default).
///
/// Python Pyro5 clients call the same skeleton in serpent or JSON, by position or by the
/// argument names written here; [`pyro5`] says how values and errors cross.
///
/// # What it generates, for a trait `Worker`
///
/// - **The trait itself**, with `Send + Sync + 'static` as supertraits and each method turned
///   into `fn ... -> impl Future<Output = ...> + Send`. Implement it with plain `async fn`s.
/// - **`WorkerSkeleton<T>`**: `WorkerSkeleton::new(implementation)`, which implements
///   [`Dispatch`]; register it with a [`Daemon`].
/// - **`WorkerProxy`**: the async client. `WorkerProxy::new(uri)`,
///   `WorkerProxy::with_config(uri, config)`, `WorkerProxy::from_proxy(proxy)`, `.proxy()`, `.with_timeout(duration)`, and one
///   `async` method per remote method, returning:
///   - `Result<T, rpc_core::Error>` for a method returning `T`;
///   - `Result<T, rpc_core::CallError<E>>` for a method returning `Result<T, E>`, where
///     `CallError::Method(e)` is the method's own error, still typed;
///   - `Result<(), rpc_core::Error>` for a `#[oneway]` method, once the call is sent.
///
///   It is `Clone + Send + Sync`, and serializes as its URI.
/// - **`WorkerBlockingProxy`**: the same calls for code without an async runtime, plus a
///   `start_{method}` for each method that starts the call and returns a [`PendingCall`] to
///   collect later, so blocking code can run many calls at once. Constructors as above.
///
/// Method names that would collide with these items (`new`, `with_config`, `from_proxy`, `proxy`,
/// `with_timeout`, or `start_{other method}`) are refused.
///
/// Set the environment variable `RPC_MACROS_DEBUG` while compiling to print the expansion.
pub use rpc_macros::service;

/// The README's code blocks, compiled and run as doc tests so the quick start stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
