//! `Proxy`: the client side of a remote object: connect, call, time out, reconnect.

mod link;
mod pending;
mod pyro5_link;
mod resolver;
mod socket;
mod tls_pump;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use link::{Link, decode_remote_error};
use pyro5_link::Pyro5Link;
pub use resolver::{Resolve, ResolveFuture};

use crate::call_scope;
use crate::codec::Format;
use crate::config::Config;
use crate::error::Error;
use crate::protocol::{Flags, FrameBuilder, Invoke, Kind, Message};
use crate::uri::Uri;

/// A handle to a remote object, untyped: method names and argument tuples.
///
/// Generated proxies (`{Trait}Proxy`) wrap one of these; use it directly only for dynamic
/// calls. A proxy connects lazily at its first call. It is cheap to clone, and clones share
/// one connection (and so one `session` instance at the daemon); any number of tasks may
/// call through it at once, and their calls are multiplexed over that connection.
///
/// When the connection dies, every call in flight fails at once with a typed error, and the
/// next call connects again. A call is never retried behind the caller's back.
///
/// A proxy serializes as its URI, so it can be passed to and returned from remote methods.
///
/// A proxy turns its URI into addresses with the [`Resolve`] it is given. [`Proxy::new`] and
/// [`Proxy::with_config`] give it a fresh [`NameResolver`](crate::NameResolver), and are
/// defined with it, in the naming layer: this module knows nothing of nameservers.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    timeout: Duration,
}

struct Shared {
    uri: Uri,
    config: Config,
    resolver: Arc<dyn Resolve>,
    /// The open connection, if any. Held only to clone or replace the `Arc`.
    link: Mutex<Option<Arc<Link>>>,
    /// Serialises connecting, so concurrent first calls open one connection, not many.
    connecting: tokio::sync::Mutex<()>,
    /// With `Config::pyro5_format`: the connection to a Python Pyro5 daemon, one call at a
    /// time.
    pyro5: tokio::sync::Mutex<Option<Pyro5Link>>,
    next_request: AtomicU64,
}

impl Proxy {
    /// A proxy for `uri` with the given [`Config`], whose names `resolver` resolves at every
    /// (re)connect. Does not connect yet.
    pub fn with_resolver(uri: Uri, config: Config, resolver: Arc<dyn Resolve>) -> Proxy {
        let timeout = config.call_timeout;
        Proxy {
            shared: Arc::new(Shared {
                uri,
                config,
                resolver,
                link: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                pyro5: tokio::sync::Mutex::new(None),
                next_request: AtomicU64::new(1),
            }),
            timeout,
        }
    }

    /// This handle with another call timeout; other clones keep theirs. The connection
    /// stays shared.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Proxy {
        self.timeout = timeout;
        self
    }

    /// The call timeout of this handle.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URI this proxy calls.
    pub fn uri(&self) -> &Uri {
        &self.shared.uri
    }

    /// Whether the proxy holds a connection that can carry calls now. It connects lazily and
    /// again after a failure, so `false` is no error; it turns `false` when the daemon closes
    /// the connection or a keepalive ping goes unanswered.
    pub fn is_connected(&self) -> bool {
        self.current_link().is_some()
    }

    /// Connects now, if not connected yet, rather than at the first call.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], or the daemon's refusal such as [`Error::UnknownObject`].
    pub async fn connect(&self) -> Result<(), Error> {
        // A ping's answer follows the handshake's, so it proves the daemon accepted it.
        self.ping().await.map(drop)
    }

    /// Calls `method` with the argument tuple `args` and decodes its return value as `R`.
    ///
    /// # Errors
    ///
    /// Any [`Error`]: connect, timeout, connection lost, protocol, or the daemon's report.
    pub async fn call<A, R>(&self, method: &str, args: &A) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        if let Some(format) = self.shared.config.pyro5_format {
            let timeout = call_scope::limit(self.timeout);
            return self
                .with_pyro5(format, async |link| link.call(method, args, timeout).await)
                .await;
        }
        // The clock is read only when someone listens for the trace event.
        let started =
            tracing::enabled!(target: "rpc_core::proxy", tracing::Level::DEBUG).then(Instant::now);
        let request_id = self.shared.next_request.fetch_add(1, Ordering::Relaxed);
        // Inside a method the daemon is running, the call gets no more than its caller has left.
        let timeout = call_scope::limit(self.timeout);
        let result = match self.invoke(request_id, method, args, timeout).await {
            Ok((link, reply)) => decode_reply(
                &link,
                &reply,
                method,
                timeout,
                self.shared.config.max_nesting_depth,
            ),
            Err(error) => Err(error),
        };
        if let Some(started) = started {
            trace_call(&self.shared.uri, method, request_id, started, &result);
        }
        result
    }

    /// Sends a call to `method` that gets no reply, and returns once it is queued for sending.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] and the like if the call cannot be sent; nothing tells whether it ran.
    pub async fn call_oneway<A: Serialize + ?Sized>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<(), Error> {
        if let Some(format) = self.shared.config.pyro5_format {
            return self
                .with_pyro5(format, async |link| link.call_oneway(method, args).await)
                .await;
        }
        let link = self.link().await?;
        let request_id = self.shared.next_request.fetch_add(1, Ordering::Relaxed);
        let frame = self.invoke_frame(&link, Flags::ONEWAY, request_id, method, args, None)?;
        link.writer.send(frame)
    }

    /// Checks that the daemon answers; returns the round-trip time.
    ///
    /// # Errors
    ///
    /// As [`call`](Proxy::call), without the daemon's reports.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        if let Some(format) = self.shared.config.pyro5_format {
            let timeout = self.timeout;
            self.with_pyro5(format, async |link| link.ping(timeout).await)
                .await?;
            return Ok(started.elapsed());
        }
        let link = self.link().await?;
        let request_id = self.shared.next_request.fetch_add(1, Ordering::Relaxed);
        let frame = Message::encode(Kind::Ping, Flags::NONE, request_id, &[], 0)?;
        link.round_trip(request_id, frame, false, self.timeout)
            .await?;
        Ok(started.elapsed())
    }

    async fn invoke<A: Serialize + ?Sized>(
        &self,
        request_id: u64,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<(Arc<Link>, Message), Error> {
        if timeout.is_zero() {
            return Err(Error::Timeout(timeout));
        }
        let link = self.link().await?;
        let frame =
            self.invoke_frame(&link, Flags::NONE, request_id, method, args, Some(timeout))?;
        let reply = link.round_trip(request_id, frame, true, timeout).await?;
        Ok((link, reply))
    }

    fn invoke_frame<A: Serialize + ?Sized>(
        &self,
        link: &Link,
        flags: Flags,
        request_id: u64,
        method: &str,
        args: &A,
        deadline: Option<Duration>,
    ) -> Result<bytes::BytesMut, Error> {
        let mut frame =
            FrameBuilder::in_buffer(link.writer.take_spare(), Kind::Invoke, flags, request_id);
        Invoke::write_prefix(frame.body_mut(), deadline, method)?;
        link.format
            .encode_into(args, frame.body_mut())
            .map_err(|source| Error::Codec {
                what: format!("the arguments of `{method}`"),
                source,
            })?;
        Ok(frame.finish(self.shared.config.max_body_len())?)
    }

    /// Runs `exchange` on the connection to a Python Pyro5 daemon, connecting first if there
    /// is none, and dropping it if it fails (the next call connects again).
    async fn with_pyro5<T>(
        &self,
        format: Format,
        exchange: impl AsyncFnOnce(&mut Pyro5Link) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut held = self.shared.pyro5.lock().await;
        let link = match &mut *held {
            Some(link) => link,
            None => {
                let candidates = self
                    .shared
                    .resolver
                    .resolve(&self.shared.uri, &self.shared.config)
                    .await?;
                let Some(Uri::Direct { object, location }) = candidates.first() else {
                    return Err(Error::UnusableUri {
                        uri: self.shared.uri.to_string(),
                        reason: "the name resolved to no direct URI".into(),
                    });
                };
                held.insert(
                    Pyro5Link::connect(location, object, format, &self.shared.config).await?,
                )
            }
        };
        let result = exchange(link).await;
        if result.as_ref().is_err_and(Error::is_communication) {
            *held = None;
        }
        result
    }

    /// The open connection, connecting (again) if there is none.
    async fn link(&self) -> Result<Arc<Link>, Error> {
        if let Some(link) = self.current_link() {
            return Ok(link);
        }
        let _connecting = self.shared.connecting.lock().await;
        // Another caller may have connected while this one waited for the lock.
        if let Some(link) = self.current_link() {
            return Ok(link);
        }
        // Names resolve at every (re)connect, so a worker restarted elsewhere is found.
        let candidates = self
            .shared
            .resolver
            .resolve(&self.shared.uri, &self.shared.config)
            .await?;
        let link = connect_to_one(&candidates, &self.shared.config).await?;
        *self
            .shared
            .link
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(link.clone());
        Ok(link)
    }

    fn current_link(&self) -> Option<Arc<Link>> {
        let link = self
            .shared
            .link
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let link = link.as_ref()?;
        link.read_arrived();
        link.is_open().then(|| link.clone())
    }
}

/// A connection to the first of `candidates` (the instances of a name) that accepts one.
/// Nothing was sent to those that failed, so trying another is safe: a dead worker costs a
/// connection attempt, not a failed call. After the first refusal the rest are tried from a
/// random one, so the clients a dead instance turns away spread over the others instead of
/// all going to its neighbour in the nameserver's rotation. The last failure if none accepts.
async fn connect_to_one(candidates: &[Uri], config: &Config) -> Result<Arc<Link>, Error> {
    let mut order: Vec<&Uri> = candidates.iter().collect();
    let others = order.len().saturating_sub(1);
    if others > 1 {
        let start = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), others);
        order[1..].rotate_left(start as usize % others);
    }
    let mut failure = None;
    for candidate in order {
        let Uri::Direct { object, location } = candidate else {
            failure = Some(Error::UnusableUri {
                uri: candidate.to_string(),
                reason: "the nameserver returned a URI that does not name an object directly"
                    .into(),
            });
            continue;
        };
        match Link::connect(location, object, config).await {
            Ok(link) => return Ok(link),
            Err(error) => {
                tracing::debug!(target: "rpc_core::proxy", uri = %candidate, %error, "instance refused; trying the next");
                failure = Some(error);
            }
        }
    }
    Err(failure.unwrap_or_else(|| Error::UnusableUri {
        uri: String::new(),
        reason: "the name resolved to no URI".into(),
    }))
}

/// The value in a reply, or the error the daemon reported in its place.
fn decode_reply<R: DeserializeOwned>(
    link: &Link,
    reply: &Message,
    method: &str,
    timeout: Duration,
    max_nesting_depth: usize,
) -> Result<R, Error> {
    if reply.header.flags.contains(Flags::FAILURE) {
        let remote = decode_remote_error(link.format, &reply.body)?;
        return Err(Error::from_remote(remote, timeout));
    }
    link.format
        .decode_nested(&reply.body, max_nesting_depth)
        .map_err(|source| Error::Codec {
            what: format!("the reply of `{method}`"),
            source,
        })
}

fn trace_call<T>(
    uri: &Uri,
    method: &str,
    request_id: u64,
    started: Instant,
    result: &Result<T, Error>,
) {
    tracing::debug!(
        target: "rpc_core::proxy",
        %uri,
        method,
        request_id,
        elapsed_us = started.elapsed().as_micros() as u64,
        outcome = match result {
            Ok(_) => "ok",
            Err(error) if error.is_communication() => "communication error",
            Err(_) => "error",
        },
        "call"
    );
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.shared.uri)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Serialize for Proxy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shared.uri.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Proxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Proxy, D::Error> {
        Uri::deserialize(deserializer).map(Proxy::new)
    }
}
