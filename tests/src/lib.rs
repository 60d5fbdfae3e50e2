//! Services and helpers shared by the loopback tests in `tests/`.

pub mod etcd;
pub mod netns;
pub mod python;
pub mod role;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_core::{Daemon, service};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{Mutex, Notify, watch};

/// How long any test waits for something that should happen at once. Generous, because CI
/// machines are slow and noisy; it bounds a hang, it does not synchronise.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A daemon on `127.0.0.1:0` with the default configuration.
pub async fn spawn_daemon() -> Daemon {
    Daemon::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0")
}

/// Waits for `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

/// The error of [`Calc::divide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DivError {
    /// The divisor was zero.
    #[error("division by zero")]
    ByZero,
}

/// A service that exercises every kind of method.
#[service]
pub trait Calc {
    /// Adds two numbers.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Returns its argument, so replies can be matched to requests.
    async fn tag(&self, task: u32, seq: u32, text: String) -> (u32, u32, String);
    /// Returns the payload it was sent.
    async fn echo(&self, payload: ByteBuf) -> ByteBuf;
    /// Returns a payload of `len` bytes.
    async fn fill(&self, len: u32) -> ByteBuf;
    /// Fails with its own typed error on a zero divisor.
    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivError>;
    /// Never finishes; the probe sees when it starts and when the daemon drops it.
    async fn hang(&self);
    /// Waits until the probe's gate opens, then returns `value`.
    async fn gated(&self, value: u64) -> u64;
    /// Works for `millis` milliseconds, counted in the probe's gauge of running handlers.
    async fn slow(&self, value: u64, millis: u64) -> u64;
    /// Panics.
    async fn boom(&self) -> u32;
    /// Records a value without a reply.
    #[oneway]
    async fn record(&self, value: u64);
    /// The values recorded so far.
    async fn recorded(&self) -> Vec<u64>;
    /// Takes no arguments and returns nothing.
    async fn nothing(&self);
}

/// What the test can observe of a [`CalcImpl`] from outside.
#[derive(Debug, Default)]
pub struct Probe {
    /// `hang` calls started.
    pub hangs_started: Counter,
    /// `hang` calls whose future the daemon dropped.
    pub hangs_dropped: Counter,
    /// Opens the gate of `gated`.
    pub gate: Notify,
    /// `gated` calls waiting at the gate.
    pub gated_waiting: Counter,
    recorded: Mutex<Vec<u64>>,
    /// `record` calls seen.
    pub records: Counter,
    /// Handlers of `slow` and `hang` running now, and the most ever seen at once.
    pub running: Gauge,
}

/// How many of something exist now, and the most that ever did at once.
#[derive(Debug, Default)]
pub struct Gauge {
    now: std::sync::atomic::AtomicI64,
    most: std::sync::atomic::AtomicI64,
}

impl Gauge {
    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn down(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many exist now.
    pub fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    /// The most that ever existed at once.
    pub fn most(&self) -> i64 {
        self.most.load(Ordering::SeqCst)
    }
}

/// Counts a handler in a gauge for as long as it lives.
struct Running<'a>(&'a Gauge);

impl<'a> Running<'a> {
    fn new(gauge: &'a Gauge) -> Running<'a> {
        gauge.up();
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.down();
    }
}

/// A counter whose value a test can wait for.
#[derive(Debug)]
pub struct Counter(watch::Sender<u64>);

impl Default for Counter {
    fn default() -> Counter {
        Counter(watch::channel(0).0)
    }
}

impl Counter {
    /// Adds one.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        *self.0.borrow()
    }

    /// Waits until the value is at least `n`, however long that takes.
    pub async fn wait_for_forever(&self, n: u64) {
        let mut rx = self.0.subscribe();
        rx.wait_for(|v| *v >= n)
            .await
            .expect("the counter's sender lives in the probe");
    }

    /// Waits until the value is at least `n`, failing the test after [`PATIENCE`].
    pub async fn wait_for(&self, n: u64) {
        let mut rx = self.0.subscribe();
        within(&format!("counter reaching {n}"), rx.wait_for(|v| *v >= n))
            .await
            .expect("the counter's sender lives in the probe");
    }
}

/// Bumps a counter when dropped.
struct BumpOnDrop<'a>(&'a Counter);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.bump();
    }
}

/// The implementation of [`Calc`].
#[derive(Debug, Default, Clone)]
pub struct CalcImpl {
    /// Shared with the test.
    pub probe: Arc<Probe>,
}

impl Calc for CalcImpl {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn tag(&self, task: u32, seq: u32, text: String) -> (u32, u32, String) {
        // Yield so that replies come back in a different order than the requests.
        if seq.is_multiple_of(3) {
            tokio::task::yield_now().await;
        }
        (task, seq, text)
    }

    async fn echo(&self, payload: ByteBuf) -> ByteBuf {
        payload
    }

    async fn fill(&self, len: u32) -> ByteBuf {
        ByteBuf::from(vec![0xa5; len as usize])
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivError> {
        a.checked_div(b).ok_or(DivError::ByZero)
    }

    async fn slow(&self, value: u64, millis: u64) -> u64 {
        let _running = Running::new(&self.probe.running);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        value
    }

    async fn hang(&self) {
        let _running = Running::new(&self.probe.running);
        let _dropped = BumpOnDrop(&self.probe.hangs_dropped);
        self.probe.hangs_started.bump();
        std::future::pending::<()>().await;
    }

    async fn gated(&self, value: u64) -> u64 {
        let opened = self.probe.gate.notified();
        self.probe.gated_waiting.bump();
        opened.await;
        value
    }

    async fn boom(&self) -> u32 {
        panic!("boom on purpose")
    }

    async fn record(&self, value: u64) {
        self.probe.recorded.lock().await.push(value);
        self.probe.records.bump();
    }

    async fn recorded(&self) -> Vec<u64> {
        self.probe.recorded.lock().await.clone()
    }

    async fn nothing(&self) {}
}

/// A service whose instances count their own construction and destruction.
#[service]
pub trait Instance {
    /// The serial number of the instance that serves the call.
    async fn serial(&self) -> u64;
}

/// Counts instances of [`Counted`].
#[derive(Debug, Default)]
pub struct Lifecycle {
    built: AtomicU64,
    /// Instances dropped.
    pub dropped: Counter,
}

impl Lifecycle {
    /// Instances built so far.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::SeqCst)
    }

    /// A new instance, counted.
    pub fn build(self: &Arc<Self>) -> InstanceSkeleton<Counted> {
        let serial = self.built.fetch_add(1, Ordering::SeqCst);
        InstanceSkeleton::new(Counted {
            serial,
            lifecycle: self.clone(),
        })
    }
}

/// An instance that reports its serial number and counts its drop.
#[derive(Debug)]
pub struct Counted {
    serial: u64,
    lifecycle: Arc<Lifecycle>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.lifecycle.dropped.bump();
    }
}

impl Instance for Counted {
    async fn serial(&self) -> u64 {
        self.serial
    }
}

/// A client that speaks the wire protocol by hand, to send what a proxy never would.
#[derive(Debug)]
pub struct RawClient {
    stream: tokio::net::TcpStream,
    buf: bytes::BytesMut,
}

impl RawClient {
    /// Connects to the daemon's TCP address.
    pub async fn connect(daemon: &Daemon) -> RawClient {
        let address = daemon.local_addr().expect("a TCP daemon");
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connecting");
        RawClient {
            stream,
            buf: bytes::BytesMut::new(),
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("sending");
    }

    /// Sends a handshake for `object` and returns the daemon's answer.
    pub async fn handshake(&mut self, object: &str) -> rpc_core::protocol::Message {
        use rpc_core::protocol::{Flags, Kind, Message};
        let frame =
            Message::encode(Kind::Handshake, Flags::NONE, 0, object.as_bytes(), 1 << 20).unwrap();
        self.send(&frame).await;
        self.receive().await.expect("a handshake reply")
    }

    /// The next frame from the daemon, or `None` once it closed the connection.
    pub async fn receive(&mut self) -> Option<rpc_core::protocol::Message> {
        use tokio::io::AsyncReadExt;
        within("a frame from the daemon", async {
            loop {
                if let Some(message) =
                    rpc_core::protocol::Message::decode(&mut self.buf, usize::MAX)
                        .expect("a valid frame")
                {
                    return Some(message);
                }
                if self.stream.read_buf(&mut self.buf).await.expect("reading") == 0 {
                    return None;
                }
            }
        })
        .await
    }

    /// Decodes the `RemoteError` in a failure frame.
    pub fn remote_error(message: &rpc_core::protocol::Message) -> rpc_core::RemoteError {
        assert!(
            message
                .header
                .flags
                .contains(rpc_core::protocol::Flags::FAILURE),
            "not a failure: {message:?}"
        );
        rpc_core::Format::Bincode
            .decode(&message.body)
            .expect("an encoded RemoteError")
    }
}

/// A daemon serving a fresh [`CalcImpl`] under the object id `calc`, a proxy for it, and the
/// implementation (whose probe the test watches).
pub async fn serve_calc() -> (Daemon, CalcProxy, CalcImpl) {
    serve_calc_with(rpc_core::Config::default()).await
}

/// As [`serve_calc`], with the daemon configured by `config`.
pub async fn serve_calc_with(config: rpc_core::Config) -> (Daemon, CalcProxy, CalcImpl) {
    let daemon = Daemon::bind_with("127.0.0.1:0", config)
        .await
        .expect("binding 127.0.0.1:0");
    let implementation = CalcImpl::default();
    let uri = daemon
        .register_as("calc", CalcSkeleton::new(implementation.clone()))
        .expect("a fresh daemon has no `calc` yet");
    (daemon, CalcProxy::new(uri), implementation)
}

/// What `start` made (a server, say), on a thread and one-thread runtime of its own, as
/// another process would have it; it stops when this is dropped.
#[derive(Debug)]
pub struct Hosted<T> {
    /// What `start` handed out (the server's address, say).
    pub value: T,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Hosted<T> {
    /// Runs `start` on a runtime of its own; what it returns is handed out (`T`) and kept
    /// there (`K`, dropped when this is) until this is dropped.
    ///
    /// # Panics
    ///
    /// If `start` does not finish within [`PATIENCE`].
    pub fn start<K, F, Fut>(start: F) -> Hosted<T>
    where
        K: 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (T, K)>,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (started, value) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let (value, kept) = start().await;
                let _ = started.send(value);
                let _ = stopped.await;
                drop(kept);
            });
        });
        let value = value.recv_timeout(PATIENCE).expect("the server starts");
        Hosted {
            value,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl<T> Drop for Hosted<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A calc daemon on a one-thread runtime of its own, as another process would have it; it
/// stops when this is dropped.
#[derive(Debug)]
pub struct RemoteCalc {
    /// The URI of its `calc` object.
    pub uri: rpc_core::Uri,
    _hosted: Hosted<rpc_core::Uri>,
}

impl RemoteCalc {
    /// Starts one configured by `config`.
    pub fn start(config: rpc_core::Config) -> RemoteCalc {
        let hosted = Hosted::start(move || async move {
            let (daemon, calc, _) = serve_calc_with(config).await;
            (calc.proxy().uri().clone(), daemon)
        });
        RemoteCalc {
            uri: hosted.value.clone(),
            _hosted: hosted,
        }
    }
}

/// Starts a call to [`Calc::hang`] in a task of its own.
pub fn spawn_hang(calc: &CalcProxy) -> tokio::task::JoinHandle<Result<(), rpc_core::Error>> {
    let calc = calc.clone();
    tokio::spawn(async move { calc.hang().await })
}

/// Whether to run the robustness tests at full scale (`RPC_FULL_SCALE=1`); CI runs them reduced.
pub fn full_scale() -> bool {
    std::env::var("RPC_FULL_SCALE").is_ok_and(|value| value == "1")
}

/// `full` at full scale, `reduced` otherwise.
pub fn scaled(full: usize, reduced: usize) -> usize {
    if full_scale() { full } else { reduced }
}

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm");
    pages * 4096
}

/// A nameserver on every interface with broadcast discovery on a free UDP port, so that a
/// broadcast to `127.255.255.255` on that port finds it; the port is
/// `discovery_addr().port()`.
pub async fn discoverable_nameserver() -> nameserver::RunningNameServer {
    let mut options = nameserver::Options::default();
    options.host = "0.0.0.0".into();
    options.port = 0;
    options.broadcast_port = 0;
    nameserver::start(options)
        .await
        .expect("a nameserver on 0.0.0.0 with free ports")
}

/// Polls `lookup(name)` until it fails as unknown; how long that took.
///
/// # Panics
///
/// If a lookup fails otherwise, or the name stays past [`PATIENCE`].
pub async fn until_unknown(names: &rpc_core::NameServerProxy, name: &str) -> std::time::Duration {
    let started = std::time::Instant::now();
    within("the registration to go", async {
        loop {
            match names.lookup(name.into()).await {
                Err(rpc_core::CallError::Method(rpc_core::NamingError::UnknownName(_))) => break,
                Ok(_) => tokio::task::yield_now().await,
                Err(other) => panic!("lookup failed: {other:?}"),
            }
        }
    })
    .await;
    started.elapsed()
}

/// What `available` holds, or `None` after saying SKIPPED; under `CI=true` a missing tool
/// fails the test instead, since CI installs every one (`.ci/tools`).
///
/// # Panics
///
/// When `CI=true` and `available` is an error.
pub fn or_skip<T>(test: &str, what: &str, available: Result<T, String>) -> Option<T> {
    match available {
        Ok(found) => Some(found),
        Err(reason) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test} must run in CI, but {what} is unavailable: {reason}"
            );
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

/// A maker of `PYRONAME:{name}` proxies of [`Calc`] that share one resolver, so each new
/// proxy resolves through the nameserver `config` located last (and the next one when that one
/// dies).
///
/// # Panics
///
/// If `name` makes no URI.
pub fn calc_by_name(name: &str, config: rpc_core::Config) -> impl Fn() -> CalcProxy {
    let resolver = std::sync::Arc::new(rpc_core::NameResolver::new());
    let uri: rpc_core::Uri = format!("PYRONAME:{name}").parse().unwrap();
    move || {
        CalcProxy::from_proxy(rpc_core::Proxy::with_resolver(
            uri.clone(),
            config.clone(),
            resolver.clone(),
        ))
    }
}
