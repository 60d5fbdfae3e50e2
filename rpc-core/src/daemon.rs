//! `Daemon`: listens on one socket, hosts objects under object ids, serves their calls.

mod admission;
mod advertise;
mod call;
mod pyro5_daemon_object;
mod pyro5_session;
mod registry;
mod session;
mod shutdown;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, ToSocketAddrs, UnixListener};
use tokio::task::{JoinHandle, JoinSet};

use admission::{Admission, Refusal};
pub use registry::InstanceMode;
use registry::{Object, Registry};
use shutdown::Shutdown;

use crate::codec::Format;
use crate::config::Config;
use crate::connection::Budget;
use crate::dispatch::{Dispatch, MethodInfo};
use crate::error::Error;
use crate::protocol::conversation::DaemonConversation;
use crate::uri::validate_id;
use crate::uri::{Location, Uri};

/// How long the accept loop pauses after an accept error (such as running out of file
/// descriptors), so a persistent error does not spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A server that hosts objects on one socket (Pyro's `Daemon`).
///
/// [`bind`](Daemon::bind) starts listening at once, in background tasks on the current tokio
/// runtime. Register objects to get their [`Uri`]s, hand those to clients, and either keep the
/// daemon alive for as long as it should serve, or call [`run_until`](Daemon::run_until).
/// Dropping the daemon stops everything at once; [`shutdown`](Daemon::shutdown) stops
/// gracefully.
///
/// # Examples
///
/// ```
/// use rpc_core::{Daemon, InstanceMode, service};
///
/// #[service]
/// pub trait Counter {
///     async fn next(&self) -> u64;
/// }
///
/// #[derive(Default)]
/// struct MyCounter(std::sync::atomic::AtomicU64);
///
/// impl Counter for MyCounter {
///     async fn next(&self) -> u64 {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), rpc_core::Error> {
/// let daemon = Daemon::bind("127.0.0.1:0").await?;
/// // One instance per client connection, built at its first call.
/// let uri = daemon.register_factory("counter", InstanceMode::Session, || {
///     CounterSkeleton::new(MyCounter::default())
/// })?;
///
/// let counter = CounterProxy::new(uri);
/// assert_eq!(counter.next().await?, 0);
/// assert_eq!(counter.next().await?, 1);
/// daemon.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Daemon {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    accept: Option<JoinHandle<()>>,
    socket_file: Option<PathBuf>,
}

/// What the accept loop, the sessions and the `Daemon` handle share.
#[derive(Debug)]
struct Shared {
    registry: Registry,
    /// What Pyro5 clients reach under an id in place of the object registered under it (see
    /// `Daemon::register_for_pyro5`).
    pyro5_faces: Registry,
    config: Config,
    location: Location,
    shutdown: Shutdown,
    next_object: AtomicU64,
    id_hasher: RandomState,
    /// Shared by every connection's reader: see `Config::max_buffered_bytes`.
    buffer_budget: Budget,
}

impl Shared {
    /// The object a Pyro5 client reaches under `id`: its Pyro5 face, else the object.
    fn pyro5_object(&self, id: &str) -> Option<Arc<registry::Object>> {
        self.pyro5_faces
            .get(id)
            .or_else(|| self.registry.get(id))
            .filter(|object| object.is_registered())
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Daemon {
    /// Listens on a TCP address (IPv4 or IPv6) with the default [`Config`].
    ///
    /// Port 0 picks a free port; [`location`](Daemon::location) tells which. A daemon bound to
    /// an unspecified address (`0.0.0.0`, `[::]`) never hands out URIs naming it: it advertises
    /// [`Config::advertise_host`], or else the address of a non-loopback interface.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be listened on.
    pub async fn bind<A: ToSocketAddrs + fmt::Display>(address: A) -> Result<Daemon, Error> {
        Daemon::bind_with(address, Config::default()).await
    }

    /// Listens on a TCP address with the given [`Config`].
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be listened on.
    pub async fn bind_with<A: ToSocketAddrs + fmt::Display>(
        address: A,
        config: Config,
    ) -> Result<Daemon, Error> {
        let bind_error = |source| Error::Bind {
            address: address.to_string(),
            source,
        };
        if let Some(host) = &config.advertise_host {
            check_uri_text(host, "`Config::advertise_host`").map_err(bind_error)?;
        }
        let listener = TcpListener::bind(&address).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let location = Location::Tcp {
            host: advertise::advertised_host(local, config.advertise_host.as_deref()),
            port: local.port(),
        };
        Ok(Daemon::start(
            Listener::Tcp(listener),
            location,
            config,
            Some(local),
            None,
        ))
    }

    /// Listens on a Unix domain socket at `path`, which must not exist yet; the daemon removes
    /// the socket file when it stops.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the socket cannot be created, or if its path is not UTF-8 or has
    /// whitespace or control characters (its URIs could not carry it).
    pub async fn bind_unix(path: impl AsRef<Path>, config: Config) -> Result<Daemon, Error> {
        let path = path.as_ref();
        let bind_error = |source| Error::Bind {
            address: path.display().to_string(),
            source,
        };
        let text = path.to_str().ok_or_else(|| {
            bind_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a URI can carry only a UTF-8 socket path",
            ))
        })?;
        check_uri_text(text, "the socket path").map_err(bind_error)?;
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        let location = Location::Unix(path.to_owned());
        Ok(Daemon::start(
            Listener::Unix(listener),
            location,
            config,
            None,
            Some(path.to_owned()),
        ))
    }

    fn start(
        listener: Listener,
        location: Location,
        config: Config,
        local_addr: Option<SocketAddr>,
        socket_file: Option<PathBuf>,
    ) -> Daemon {
        let buffer_budget = Budget::new(config.max_buffered_bytes);
        let shared = Arc::new(Shared {
            registry: Registry::default(),
            pyro5_faces: Registry::default(),
            config,
            location,
            shutdown: Shutdown::default(),
            next_object: AtomicU64::new(0),
            id_hasher: RandomState::new(),
            buffer_budget,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Daemon {
            shared,
            local_addr,
            accept: Some(accept),
            socket_file,
        }
    }

    /// Where the daemon listens, as it appears in the URIs it hands out.
    pub fn location(&self) -> &Location {
        &self.shared.location
    }

    /// The TCP address the daemon listens on, if it listens on TCP (`0.0.0.0:port` for a
    /// daemon bound to every interface; [`location`](Daemon::location) has what it advertises).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The daemon's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The URI of the object registered (or to be registered) under `object_id`.
    pub fn uri_for(&self, object_id: &str) -> Uri {
        Uri::direct(object_id, self.shared.location.clone())
    }

    /// Registers one instance, in `single` mode, under a generated object id.
    ///
    /// # Errors
    ///
    /// Never in practice: generated ids are unique. The `Result` matches the other
    /// `register` methods.
    pub fn register<D: Dispatch>(&self, instance: D) -> Result<Uri, Error> {
        let id = self.generate_id();
        self.register_as(&id, instance)
    }

    /// Registers one instance, in `single` mode, under `object_id`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidObjectId`] if a URI cannot carry the id (see [`validate_id`]), and
    /// [`Error::DuplicateObject`] if the id is taken.
    pub fn register_as<D: Dispatch>(&self, object_id: &str, instance: D) -> Result<Uri, Error> {
        self.insert(Object::instance(object_id, instance))
    }

    /// Registers a factory under `object_id`; the daemon calls it lazily to build instances
    /// as `mode` says. An object that no client calls is never built.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidObjectId`] if a URI cannot carry the id (see [`validate_id`]), and
    /// [`Error::DuplicateObject`] if the id is taken.
    pub fn register_factory<D, F>(
        &self,
        object_id: &str,
        mode: InstanceMode,
        factory: F,
    ) -> Result<Uri, Error>
    where
        D: Dispatch,
        F: Fn() -> D + Send + Sync + 'static,
    {
        self.insert(Object::factory(object_id, mode, factory))
    }

    /// The methods of the object registered under `object_id`, as its service trait declares
    /// them: names, argument names, and which are oneway. `None` if no such object is
    /// registered; empty for a hand-written [`Dispatch`] that lists none.
    pub fn methods(&self, object_id: &str) -> Option<&'static [MethodInfo]> {
        self.shared
            .registry
            .get(object_id)
            .map(|object| object.methods())
    }

    fn insert(&self, object: Object) -> Result<Uri, Error> {
        let id = object.id().to_string();
        validate_id(&id)?;
        if self.shared.registry.insert(object) {
            Ok(self.uri_for(&id))
        } else {
            Err(Error::DuplicateObject(id))
        }
    }

    /// Registers `instance` as what Pyro5 clients reach under `object_id`, in place of the
    /// object our own clients reach there (if any): for a service whose Pyro5 API differs
    /// from ours, as the nameserver's does. Methods' names and argument names come from
    /// `D`'s method table.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidObjectId`] if a URI cannot carry the id, and
    /// [`Error::DuplicateObject`] if the id already has a Pyro5 face.
    pub fn register_for_pyro5<D: Dispatch>(
        &self,
        object_id: &str,
        instance: D,
    ) -> Result<Uri, Error> {
        validate_id(object_id)?;
        if self
            .shared
            .pyro5_faces
            .insert(Object::instance(object_id, instance))
        {
            Ok(self.uri_for(object_id))
        } else {
            Err(Error::DuplicateObject(object_id.to_owned()))
        }
    }

    /// Removes an object; its calls already running finish, new ones fail with
    /// [`Error::UnknownObject`]. Returns whether the object was registered.
    pub fn unregister(&self, object_id: &str) -> bool {
        self.shared.registry.remove(object_id)
    }

    /// The ids of the registered objects, in no particular order.
    pub fn object_ids(&self) -> Vec<String> {
        self.shared.registry.ids()
    }

    /// A fresh id such as `obj_5f0c9e...`: 128 bits that no other daemon is likely to produce.
    fn generate_id(&self) -> String {
        let n = self.shared.next_object.fetch_add(1, Ordering::Relaxed);
        let high = self.shared.id_hasher.hash_one((n, 0u8));
        let low = self.shared.id_hasher.hash_one((n, 1u8));
        format!("obj_{high:016x}{low:016x}")
    }

    /// Serves until `signal` completes, then shuts down gracefully (see
    /// [`shutdown`](Daemon::shutdown)). Pass `tokio::signal::ctrl_c()` in a server binary, or
    /// a oneshot receiver in a test.
    pub async fn run_until(self, signal: impl Future) {
        signal.await;
        self.shutdown().await;
    }

    /// Stops accepting connections and reading new calls, lets the calls in flight finish
    /// and send their replies within [`Config::shutdown_grace`], then stops the rest.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.trigger();
        if let Some(accept) = self.accept.take() {
            let abort = accept.abort_handle();
            if tokio::time::timeout(self.shared.config.shutdown_grace, accept)
                .await
                .is_err()
            {
                tracing::debug!(target: "rpc_core::daemon", "shutdown grace passed; stopping the calls still running");
                abort.abort();
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shared.shutdown.trigger();
        if let Some(accept) = &self.accept {
            // Aborting the accept task drops its set of sessions, which aborts them and their calls.
            accept.abort();
        }
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("location", &self.shared.location)
            .field("objects", &self.shared.registry.ids())
            .finish_non_exhaustive()
    }
}

/// Refuses text for the location part of the daemon's URIs that would not parse back.
fn check_uri_text(text: &str, what: &str) -> std::io::Result<()> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{what} is empty or has whitespace or control characters, which URIs cannot carry"
            ),
        ));
    }
    Ok(())
}

/// Accepts connections until shutdown, then waits for the sessions to end.
///
/// A connection over a cap waits a moment ([`ADMISSION_WAIT`]) for a slot, since a client
/// that just closed connections may open new ones before the daemon has seen the old ones end;
/// one that still finds no slot is told why (a `Close` frame with
/// [`RemoteError::TooManyConnections`](crate::RemoteError::TooManyConnections)) and closed.
async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let config = &shared.config;
    let mut admission = Admission::new(config.max_connections, config.max_connections_per_address);
    // Each session returns the address it was admitted from, to release its slot.
    let mut sessions: JoinSet<Option<IpAddr>> = JoinSet::new();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut refusing: JoinSet<()> = JoinSet::new();
    let mut shutdown = shared.shutdown.watch();
    loop {
        let next_refusal = waiting.front().map(|first| first.until);
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                // A session that panicked held a slot of an unknown address; it was counted
                // in all, so release that at least.
                admission.release(done.unwrap_or(None));
                admit_waiting(&mut waiting, &mut admission, &mut sessions, &shared);
                continue;
            }
            () = sleep_until_some(next_refusal), if next_refusal.is_some() => {
                if let Some(expired) = waiting.pop_front() {
                    let refusal = admission.admit(expired.address).err();
                    match refusal {
                        Some(refusal) => refuse(expired.connection, refusal, &mut admission, &mut refusing, config),
                        None => spawn_session(&mut sessions, expired.connection, expired.address, &shared),
                    }
                }
                continue;
            }
            Some(_) = refusing.join_next(), if !refusing.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let connection = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                admission.warn(&format_args!("accept failed: {error}"));
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let address = connection.peer_ip();
        // Sessions that ended since the last pass give their slots back first.
        while let Some(done) = sessions.try_join_next() {
            admission.release(done.unwrap_or(None));
        }
        if waiting.is_empty() || waiting.len() >= ADMISSION_QUEUE {
            match admission.admit(address) {
                Ok(()) => spawn_session(&mut sessions, connection, address, &shared),
                Err(_) if waiting.len() < ADMISSION_QUEUE => {
                    waiting.push_back(Waiting::new(connection, address));
                }
                Err(refusal) => refuse(connection, refusal, &mut admission, &mut refusing, config),
            }
        } else {
            // Connections waiting came first: this one queues behind them.
            waiting.push_back(Waiting::new(connection, address));
            admit_waiting(&mut waiting, &mut admission, &mut sessions, &shared);
        }
    }
    // Stop listening before waiting, so new clients are refused rather than left hanging.
    drop(listener);
    drop(waiting);
    while sessions.join_next().await.is_some() {}
}

/// How long a connection over a cap waits for a slot before it is refused.
const ADMISSION_WAIT: Duration = Duration::from_millis(100);

/// How many connections may wait for a slot at once; more are refused at once.
const ADMISSION_QUEUE: usize = 256;

/// How many refused connections are told why at once; more are closed without a word, so a
/// flood cannot make the daemon hold sockets for it.
const REFUSALS_AT_ONCE: usize = 64;

/// How long a refused peer has to take the daemon's reason before its socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// A connection over a cap, waiting for a slot.
struct Waiting {
    connection: Accepted,
    address: Option<IpAddr>,
    until: tokio::time::Instant,
}

impl Waiting {
    fn new(connection: Accepted, address: Option<IpAddr>) -> Waiting {
        Waiting {
            connection,
            address,
            until: tokio::time::Instant::now() + ADMISSION_WAIT,
        }
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Starts the sessions of the waiting connections that fit now, in the order they came.
fn admit_waiting(
    waiting: &mut VecDeque<Waiting>,
    admission: &mut Admission,
    sessions: &mut JoinSet<Option<IpAddr>>,
    shared: &Arc<Shared>,
) {
    let mut still = VecDeque::with_capacity(waiting.len());
    for entry in waiting.drain(..) {
        if admission.admit(entry.address).is_ok() {
            spawn_session(sessions, entry.connection, entry.address, shared);
        } else {
            still.push_back(entry);
        }
    }
    *waiting = still;
}

fn spawn_session(
    sessions: &mut JoinSet<Option<IpAddr>>,
    connection: Accepted,
    address: Option<IpAddr>,
    shared: &Arc<Shared>,
) {
    let shared = shared.clone();
    sessions.spawn(async move {
        match connection {
            Accepted::Tcp(stream, peer) => {
                // Small calls must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                let peer = session::Peer {
                    label: Arc::from(peer.to_string()),
                    ip: Some(peer.ip()),
                };
                let tls = match shared.config.tls_server.clone() {
                    Some(tls) if shared.config.accept_plain_with_tls => {
                        starts_tls(&stream, shared.config.handshake_timeout)
                            .await
                            .then_some(tls)
                    }
                    tls => tls,
                };
                match tls {
                    None if shared.config.serve_pyro5 && speaks_pyro5(&stream, shared.config.handshake_timeout).await => {
                        let (read, write) = stream.into_split();
                        pyro5_session::serve(read, write, peer, shared).await;
                    }
                    None => {
                        let (read, write) = stream.into_split();
                        session::serve(read, write, peer, shared).await;
                    }
                    Some(tls) => {
                        // The TLS handshake counts against the handshake timeout as well.
                        let timeout = shared.config.handshake_timeout;
                        let accepted =
                            tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await;
                        match accepted {
                            Ok(Ok(stream)) => {
                                let (read, write) = tokio::io::split(stream);
                                session::serve(read, write, peer, shared).await;
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(target: "rpc_core::daemon", %peer, %error, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(target: "rpc_core::daemon", %peer, "no TLS handshake within {timeout:?}");
                            }
                        }
                    }
                }
            }
            Accepted::Unix(stream) => {
                let (read, write) = stream.into_split();
                let peer = session::Peer {
                    label: Arc::from("unix"),
                    ip: None,
                };
                session::serve(read, write, peer, shared).await;
            }
        }
        address
    });
}

/// Whether the client on `stream` opens with a TLS handshake record (0x16), by a look at its
/// first byte; a client silent for `timeout`, or gone, counts as plain (its session then
/// times out or ends as any plain one does).
async fn starts_tls(stream: &tokio::net::TcpStream, timeout: Duration) -> bool {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD
    )
}

/// Whether the client on `stream` opens with a Pyro5 frame (`PYRO`; ours open with `ROBJ`),
/// by a look at its first byte, as [`starts_tls`] does.
async fn speaks_pyro5(stream: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == crate::protocol::pyro5::TAG[0]
    )
}

/// Tells a connection over a cap why it is refused, and closes it.
fn refuse(
    connection: Accepted,
    refusal: Refusal,
    admission: &mut Admission,
    refusing: &mut JoinSet<()>,
    config: &Config,
) {
    let error = refusal.to_remote_error(config);
    admission.warn(&format_args!("connection refused: {error}"));
    // A TLS client could not read a plain frame, and a TLS handshake per refusal would make
    // refusing cost what serving does: such a connection is just closed.
    if refusing.len() >= REFUSALS_AT_ONCE || config.tls_server.is_some() {
        // Dropping the connection closes it at once.
        return;
    }
    // A connection refused before its handshake: the conversation ends before it starts.
    let frame = DaemonConversation::<()>::new(Format::Bincode).close(&error);
    refusing.spawn(async move {
        let _ = match connection {
            Accepted::Tcp(stream, _) => {
                tokio::time::timeout(REFUSAL_LINGER, tell_and_close(stream, &frame)).await
            }
            Accepted::Unix(stream) => {
                tokio::time::timeout(REFUSAL_LINGER, tell_and_close(stream, &frame)).await
            }
        };
    });
}

/// Writes `frame`, ends the sending side, and reads what the peer sent until it closes too:
/// closing a socket with unread bytes would reset it, and the peer could lose the frame.
async fn tell_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, frame: &[u8]) {
    if stream.write_all(frame).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    // A handshake and a first call are small; a peer that keeps sending is not listening.
    for _ in 0..64 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Accepted {
    /// The peer's IP address; `None` for a Unix socket.
    fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Accepted::Tcp(_, peer) => Some(peer.ip()),
            Accepted::Unix(_) => None,
        }
    }
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(Accepted::Tcp(stream, peer))
            }
            Listener::Unix(listener) => Ok(Accepted::Unix(listener.accept().await?.0)),
        }
    }
}
