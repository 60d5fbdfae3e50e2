//! The benchmark suite: our framework and a raw tokio baseline, measured side by side in one run.
//!
//! `cargo bench -p rpc-tests --bench rpc` runs the full suite; `-- --quick` runs a reduced one
//! in well under a minute (CI runs it as a smoke test and never checks timings). It prints one
//! table: our figure, the baseline's, and the ratio ours/baseline. The baseline is a plain
//! length-prefixed ping-pong over TCP on loopback, carrying frames of the same sizes as ours.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{Config, Daemon, InstanceMode, NameServerConfig, Proxy, service};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The service measured.
#[service]
pub trait Bench {
    /// A small call.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Returns the payload it was sent.
    async fn echo(&self, payload: ByteBuf) -> ByteBuf;
    /// The same, as users write it.
    async fn echo_vec(&self, payload: Vec<u8>) -> Vec<u8>;
}

struct Impl;

impl Bench for Impl {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }

    async fn echo(&self, payload: ByteBuf) -> ByteBuf {
        payload
    }

    async fn echo_vec(&self, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

/// How much work each measurement does.
struct Scale {
    rounds: usize,
    sequential_calls: usize,
    pipelined_calls: usize,
    per_connection_calls: usize,
    echo_bytes: usize,
    idle_connections: usize,
    lookups: usize,
    /// Names in the registry of the nameserver workload.
    registry_names: usize,
}

const QUICK: Scale = Scale {
    rounds: 3,
    sequential_calls: 2_000,
    pipelined_calls: 20_000,
    per_connection_calls: 500,
    echo_bytes: 8 << 20,
    idle_connections: 2_000,
    lookups: 50,
    registry_names: 5_000,
};

const FULL: Scale = Scale {
    rounds: 7,
    sequential_calls: 20_000,
    pipelined_calls: 200_000,
    per_connection_calls: 3_000,
    echo_bytes: 64 << 20,
    idle_connections: 10_000,
    lookups: 300,
    registry_names: 100_000,
};

/// Sizes of our frames for `add(u64, u64)`, so the baseline carries the same bytes.
const ADD_REQUEST_LEN: usize = 20 + 4 + 1 + 3 + 2;
const ADD_REPLY_LEN: usize = 20 + 1;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--idle-clients") {
        hold_idle_connections(&args[position + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { &QUICK } else { &FULL };
    let select = Select {
        workload: value_of(&args, "--only"),
        side: value_of(&args, "--side"),
    };
    // The clients' runtime: one thread, as a client process of its own would have.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(run(scale, &select));
    print_table(quick, &select, &rows);
}

/// What to run, for profiling: `--only WORD` runs the workloads whose name contains WORD;
/// `--side ours` or `--side baseline` runs only that side of each interleaved workload (its
/// results stand in for the other side's, so ratios are meaningless), as in
/// `valgrind --tool=callgrind target/release/deps/rpc-* --quick --only sequential --side ours`.
struct Select {
    workload: Option<String>,
    side: Option<String>,
}

impl Select {
    fn wants(&self, workload: &str) -> bool {
        self.workload
            .as_deref()
            .is_none_or(|word| workload.contains(word))
    }

    fn runs(&self, side: &str) -> bool {
        self.side.as_deref().is_none_or(|chosen| chosen == side)
    }
}

/// The value that follows `flag` on the command line.
fn value_of(args: &[String], flag: &str) -> Option<String> {
    let position = args.iter().position(|a| a == flag)?;
    args.get(position + 1).cloned()
}

/// One line of the table.
struct Row {
    workload: String,
    ours: f64,
    baseline: f64,
    unit: &'static str,
    note: &'static str,
}

/// What the server thread serves.
struct Served {
    single: rpc_core::Uri,
    percall: rpc_core::Uri,
    /// The raw baseline's server.
    raw: SocketAddr,
    daemon_address: SocketAddr,
    /// `single` on a daemon with a shared secret.
    secured: rpc_core::Uri,
    /// `single` on a daemon with TLS, by the name its certificate carries.
    over_tls: rpc_core::Uri,
    /// The raw baseline's server over TLS.
    raw_tls: SocketAddr,
    /// The daemons besides the thread's own, kept running.
    others: Vec<Daemon>,
}

async fn run(scale: &Scale, select: &Select) -> Vec<Row> {
    let mut config = Config::default();
    // Room for the idle-connection workload; the default cap is 1,024.
    config.max_connections = 20_000;
    config.max_connections_per_address = 20_000;
    // The daemon and the raw server on a one-thread runtime of their own, the clients on
    // this one: what a server and a client in two processes get.
    let secret = bench_secret();
    let secured_config = config.clone().secret(Some(secret.clone()));
    let tls = Arc::new(BenchTls::new());
    let tls_config = config.clone().tls_server(Some(tls.server.clone()));
    let raw_acceptor = tls.acceptor.clone();
    let (server, served) = ServerThread::start(move || async move {
        let secured_daemon = Daemon::bind_with("127.0.0.1:0", secured_config)
            .await
            .unwrap();
        let secured = secured_daemon
            .register_as("single", BenchSkeleton::new(Impl))
            .unwrap();
        let tls_daemon = Daemon::bind_with("127.0.0.1:0", tls_config).await.unwrap();
        let tls_port = tls_daemon.local_addr().unwrap().port();
        tls_daemon
            .register_as("single", BenchSkeleton::new(Impl))
            .unwrap();
        let daemon = Daemon::bind_with("127.0.0.1:0", config).await.unwrap();
        let single = daemon
            .register_as("single", BenchSkeleton::new(Impl))
            .unwrap();
        let percall = daemon
            .register_factory("percall", InstanceMode::PerCall, || {
                BenchSkeleton::new(Impl)
            })
            .unwrap();
        let served = Served {
            single,
            percall,
            raw: spawn_raw_server(None).await,
            daemon_address: daemon.local_addr().unwrap(),
            secured,
            over_tls: format!("PYRO:single@localhost:{tls_port}").parse().unwrap(),
            raw_tls: spawn_raw_server(Some(raw_acceptor)).await,
            others: vec![secured_daemon, tls_daemon],
        };
        (served, daemon)
    });
    let Served {
        single,
        percall,
        raw,
        daemon_address,
        secured,
        over_tls,
        raw_tls,
        others: _others,
    } = served;
    let mut rows = Vec::new();

    let proxy = BenchProxy::new(single.clone());
    proxy.add(1, 1).await.unwrap();

    // 1. Sequential small calls from one proxy.
    if select.wants("sequential") {
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || sequential(scale.sequential_calls, |a| proxy.add(a, 1)),
            || async {
                raw_sequential(RawClient::connect(raw).await, scale.sequential_calls).await
            },
        )
        .await;
        let (ours, base) = (median_run(ours), median_run(base));
        rows.push(Row::rate("sequential add: calls/s", ours.rate, base.rate));
        rows.push(Row::latency(
            "sequential add: p50 latency",
            ours.p50,
            base.p50,
        ));
        rows.push(Row::latency(
            "sequential add: p99 latency",
            ours.p99,
            base.p99,
        ));
    }

    // 2. One connection, 64 calls in flight.
    if select.wants("pipelined") {
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || in_flight(&proxy, 64, scale.pipelined_calls),
            || raw_pipelined(raw, 64, scale.pipelined_calls, ADD_REQUEST_LEN),
        )
        .await;
        let (ours, base) = (median(ours), median(base));
        rows.push(Row::rate("1 connection, 64 in flight: calls/s", ours, base));
        for (as_vec, label) in [(true, "Vec<u8>"), (false, "ByteBuf")] {
            let (ours, base) = interleaved(
                select,
                scale.rounds,
                || echo_in_flight(&proxy, 64, scale.pipelined_calls, 1024, as_vec),
                || raw_pipelined(raw, 64, scale.pipelined_calls, 1024),
            )
            .await;
            let (ours, base) = (median(ours), median(base));
            rows.push(Row::rate(
                &format!("1 connection, 64 echo 1 KiB in flight, {label}: calls/s"),
                ours,
                base,
            ));
        }
    }

    // 3. Many proxies, each on its own connection.
    if select.wants("connections") {
        for connections in [8, 64] {
            let (ours, base) = interleaved(
                select,
                scale.rounds,
                || many_proxies(&single, connections, scale.per_connection_calls),
                || raw_many(raw, connections, scale.per_connection_calls),
            )
            .await;
            let (ours, base) = (median(ours), median(base));
            rows.push(Row::rate(
                &format!("{connections} connections: calls/s"),
                ours,
                base,
            ));
        }
    }

    // 4. Echo of byte payloads.
    if select.wants("echo") {
        let mut config = Config::default();
        config.max_message_size = 4 << 20;
        let big = BenchProxy::from_proxy(Proxy::with_config(single.clone(), config));
        for size in [1 << 10, 64 << 10, 1 << 20] {
            let calls = (scale.echo_bytes / size).clamp(20, 20_000);
            let label = match size {
                1024 => "1 KiB",
                65536 => "64 KiB",
                _ => "1 MiB",
            };
            let (ours, base) = interleaved(
                select,
                scale.rounds,
                || echo_vec(&big, size, calls),
                || raw_echo(raw, size, calls),
            )
            .await;
            let (ours, base) = (median(ours), median(base));
            rows.push(Row::rate(
                &format!("echo {label} as Vec<u8>: calls/s"),
                ours,
                base,
            ));
            let (ours, base) = interleaved(
                select,
                scale.rounds,
                || echo(&big, size, calls),
                || raw_echo(raw, size, calls),
            )
            .await;
            let (ours, base) = (median(ours), median(base));
            rows.push(Row::rate(&format!("echo {label}: calls/s"), ours, base));
            let mb = size as f64 / 1e6;
            rows.push(Row {
                unit: "MB/s",
                ..Row::rate(&format!("echo {label}: MB/s"), ours * mb, base * mb)
            });
        }
    }

    // 5. Lookup plus first call through a new PYRONAME: proxy, against a direct call.
    if select.wants("lookup") {
        let ns = nameserver::start(nameserver::Options::loopback(0))
            .await
            .unwrap();
        let mut ns_config = Config::default();
        ns_config.nameserver =
            NameServerConfig::at("127.0.0.1", ns.daemon().local_addr().unwrap().port());
        let names = rpc_core::locate_ns(&ns_config).await.unwrap();
        names
            .register("bench".into(), single.clone(), false, Default::default())
            .await
            .unwrap();
        // Not interleaved: each new proxy's connection closing would land in the next direct call.
        let mut by_name = Vec::with_capacity(scale.lookups);
        for _ in 0..scale.lookups {
            by_name.push(
                timed(async {
                    let fresh = BenchProxy::from_proxy(Proxy::with_config(
                        "PYRONAME:bench".parse().unwrap(),
                        ns_config.clone(),
                    ));
                    fresh.add(1, 2).await.unwrap();
                })
                .await,
            );
        }
        let mut direct = Vec::with_capacity(scale.lookups);
        for _ in 0..scale.lookups {
            direct.push(timed(async { proxy.add(1, 2).await.map(drop).unwrap() }).await);
        }
        let (by_name, direct) = (median(by_name), median(direct));
        rows.push(Row::latency(
            "lookup + first call by name (vs direct call)",
            by_name,
            direct,
        ));
        // What a new connection costs by itself: the floor under the row above.
        let (ours, base) = interleaved(
            select,
            scale.lookups,
            || first_call(&single, Config::default()),
            || {
                timed(async {
                    let mut fresh = RawClient::connect(raw).await;
                    fresh.call(ADD_REQUEST_LEN).await;
                })
            },
        )
        .await;
        rows.push(Row::latency(
            "new proxy: connect + first call (vs raw connect + exchange)",
            median(ours),
            median(base),
        ));
        ns.shutdown().await;
    }

    // 5a. The shared secret: per call, and at connect.
    if select.wants("secret") {
        let with_secret = Config::default().secret(Some(secret.clone()));
        let secure = BenchProxy::with_config(secured.clone(), with_secret.clone());
        secure.add(1, 1).await.unwrap();
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || sequential(scale.sequential_calls, |a| secure.add(a, 1)),
            || sequential(scale.sequential_calls, |a| proxy.add(a, 1)),
        )
        .await;
        rows.push(Row::rate(
            "sequential add with a shared secret: calls/s (vs without)",
            median_run(ours).rate,
            median_run(base).rate,
        ));
        let (ours, base) = interleaved(
            select,
            scale.lookups,
            || first_call(&secured, with_secret.clone()),
            || first_call(&single, Config::default()),
        )
        .await;
        rows.push(Row::latency(
            "new proxy with a shared secret: connect + first call (vs without)",
            median(ours),
            median(base),
        ));
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || in_flight(&secure, 64, scale.pipelined_calls),
            || in_flight(&proxy, 64, scale.pipelined_calls),
        )
        .await;
        rows.push(Row::rate(
            "1 connection with a shared secret, 64 in flight: calls/s (vs without)",
            median(ours),
            median(base),
        ));
    }

    // 5c. TLS: per call and at connect, against the raw baseline over tokio-rustls.
    if select.wants("tls") {
        let with_tls = Config::default().tls_client(Some(tls.client.clone()));
        let secure = BenchProxy::with_config(over_tls.clone(), with_tls.clone());
        secure.add(1, 1).await.unwrap();
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || sequential(scale.sequential_calls, |a| secure.add(a, 1)),
            || async {
                raw_sequential(tls.raw_client(raw_tls).await, scale.sequential_calls).await
            },
        )
        .await;
        let (ours, base) = (median_run(ours), median_run(base));
        rows.push(Row::rate(
            "sequential add over TLS: calls/s (vs raw TLS)",
            ours.rate,
            base.rate,
        ));
        rows.push(Row::latency(
            "sequential add over TLS: p50 latency",
            ours.p50,
            base.p50,
        ));
        let (ours, base) = interleaved(
            select,
            scale.lookups,
            || first_call(&over_tls, with_tls.clone()),
            || {
                timed(async {
                    let mut fresh = tls.raw_client(raw_tls).await;
                    fresh.call(ADD_REQUEST_LEN).await;
                })
            },
        )
        .await;
        rows.push(Row::latency(
            "new proxy over TLS: connect + first call (vs raw TLS connect + exchange)",
            median(ours),
            median(base),
        ));
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || in_flight(&secure, 64, scale.pipelined_calls),
            || async {
                let (read, write) = tokio::io::split(tls.raw_client(raw_tls).await.stream);
                raw_pipelined_over(read, write, 64, scale.pipelined_calls, ADD_REQUEST_LEN).await
            },
        )
        .await;
        rows.push(Row::rate(
            "1 connection over TLS, 64 in flight: calls/s (vs raw TLS)",
            median(ours),
            median(base),
        ));
    }

    // 5b. A large registry: lookups in memory and from a store, durable registrations.
    if select.wants("registry") {
        registry_rows(scale, &mut rows).await;
    }

    // 6. Memory per idle connection.
    if select.wants("idle") {
        let ours = idle_memory(daemon_address, Some("single"), scale.idle_connections);
        let base = idle_memory(raw, None, scale.idle_connections);
        rows.push(Row {
            workload: format!(
                "daemon memory per idle connection ({})",
                scale.idle_connections
            ),
            ours,
            baseline: base,
            unit: "KiB",
            note: "lower is better",
        });
    }

    // 7. percall against single instance mode.
    if select.wants("percall") {
        let per_call = BenchProxy::new(percall);
        per_call.add(1, 1).await.unwrap();
        let (ours, base) = interleaved(
            select,
            scale.rounds,
            || sequential(scale.sequential_calls, |a| per_call.add(a, 1)),
            || sequential(scale.sequential_calls, |a| proxy.add(a, 1)),
        )
        .await;
        let (ours, base) = (median_run(ours), median_run(base));
        rows.push(Row {
            note: "baseline = single mode",
            ..Row::rate("percall vs single: calls/s", ours.rate, base.rate)
        });
    }

    server.stop();
    rows
}

impl Row {
    fn rate(workload: &str, ours: f64, baseline: f64) -> Row {
        Row {
            workload: workload.to_owned(),
            ours,
            baseline,
            unit: "/s",
            note: "",
        }
    }

    fn latency(workload: &str, ours: Duration, baseline: Duration) -> Row {
        Row {
            workload: workload.to_owned(),
            ours: ours.as_secs_f64() * 1e6,
            baseline: baseline.as_secs_f64() * 1e6,
            unit: "µs",
            note: "lower is better",
        }
    }
}

/// Throughput and latency percentiles of one sequential run.
#[derive(Clone, Copy)]
struct Sequential {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn sequential<F, Fut, T, E>(calls: usize, call: F) -> Sequential
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let mut latencies = Vec::with_capacity(calls);
    let started = Instant::now();
    for i in 0..calls {
        let one = Instant::now();
        call(i as u64).await.unwrap();
        latencies.push(one.elapsed());
    }
    summarize(calls, started.elapsed(), latencies)
}

fn summarize(calls: usize, total: Duration, mut latencies: Vec<Duration>) -> Sequential {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Sequential {
        rate: calls as f64 / total.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Runs `rounds` rounds of each, alternating, so both sides see the same moments of a noisy
/// machine; returns each side's results.
async fn interleaved<T: Clone, A, B, FutA, FutB>(
    select: &Select,
    rounds: usize,
    mut ours: A,
    mut baseline: B,
) -> (Vec<T>, Vec<T>)
where
    A: FnMut() -> FutA,
    B: FnMut() -> FutB,
    FutA: std::future::Future<Output = T>,
    FutB: std::future::Future<Output = T>,
{
    let (mut first, mut second) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        if select.runs("ours") {
            first.push(ours().await);
        }
        if select.runs("baseline") {
            second.push(baseline().await);
        }
    }
    // A profiling run of one side: its results stand in for the other's.
    if first.is_empty() {
        first = second.clone();
    } else if second.is_empty() {
        second = first.clone();
    }
    (first, second)
}

/// How long `future` takes.
async fn timed(future: impl std::future::Future<Output = ()>) -> Duration {
    let started = Instant::now();
    future.await;
    started.elapsed()
}

/// The median of some results.
fn median<T: PartialOrd + Copy>(mut results: Vec<T>) -> T {
    results.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    results[results.len() / 2]
}

/// The run with the median throughput.
fn median_run(mut runs: Vec<Sequential>) -> Sequential {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[runs.len() / 2]
}

async fn in_flight(proxy: &BenchProxy, depth: usize, calls: usize) -> f64 {
    let per_task = calls / depth;
    concurrently(depth, per_task, |_| {
        let proxy = proxy.clone();
        async move {
            for i in 0..per_task {
                proxy.add(i as u64, 1).await.unwrap();
            }
        }
    })
    .await
}

/// How long a new proxy for `uri` takes to connect and make its first call.
async fn first_call(uri: &rpc_core::Uri, config: Config) -> Duration {
    timed(async {
        let fresh = BenchProxy::with_config(uri.clone(), config);
        fresh.add(1, 2).await.unwrap();
    })
    .await
}

/// `calls` echoes of `size` bytes with `depth` in flight on one proxy, each task sending its
/// own payload back and forth: as `Vec<u8>` in the trait, or as `ByteBuf`.
async fn echo_in_flight(
    proxy: &BenchProxy,
    depth: usize,
    calls: usize,
    size: usize,
    as_vec: bool,
) -> f64 {
    let per_task = calls / depth;
    concurrently(depth, per_task, |_| {
        let proxy = proxy.clone();
        async move {
            let mut payload = vec![7u8; size];
            for _ in 0..per_task {
                payload = if as_vec {
                    proxy.echo_vec(payload).await.unwrap()
                } else {
                    proxy.echo(ByteBuf::from(payload)).await.unwrap().into_vec()
                };
            }
            assert_eq!(payload.len(), size);
        }
    })
    .await
}

/// Runs `tasks` tasks that `each` makes, `calls_each` calls apiece, all at once; calls per
/// second over all of them.
async fn concurrently<F, Fut>(tasks: usize, calls_each: usize, mut each: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let running: Vec<_> = (0..tasks).map(|n| tokio::spawn(each(n))).collect();
    for task in running {
        task.await.unwrap();
    }
    (tasks * calls_each) as f64 / started.elapsed().as_secs_f64()
}

async fn many_proxies(uri: &rpc_core::Uri, connections: usize, calls: usize) -> f64 {
    let proxies: Vec<BenchProxy> = (0..connections)
        .map(|_| BenchProxy::new(uri.clone()))
        .collect();
    for proxy in &proxies {
        proxy.proxy().connect().await.unwrap();
    }
    let mut proxies = proxies.into_iter();
    concurrently(connections, calls, |_| {
        let proxy = proxies.next().expect("one proxy per task");
        async move {
            for i in 0..calls {
                proxy.add(i as u64, 1).await.unwrap();
            }
        }
    })
    .await
}

/// Echoes a payload of `size` bytes `calls` times, each reply sent again: no copy per call
/// beyond what the proxy makes.
async fn echo(proxy: &BenchProxy, size: usize, calls: usize) -> f64 {
    let mut payload = ByteBuf::from(vec![7u8; size]);
    let started = Instant::now();
    for _ in 0..calls {
        payload = proxy.echo(payload).await.unwrap();
    }
    assert_eq!(payload.len(), size);
    calls as f64 / started.elapsed().as_secs_f64()
}

/// As [`echo`], with `Vec<u8>` in the trait, as users write it.
async fn echo_vec(proxy: &BenchProxy, size: usize, calls: usize) -> f64 {
    let mut payload = vec![7u8; size];
    let started = Instant::now();
    for _ in 0..calls {
        payload = proxy.echo_vec(payload).await.unwrap();
    }
    assert_eq!(payload.len(), size);
    calls as f64 / started.elapsed().as_secs_f64()
}

/// The secret of the benchmark's secured daemon, made afresh for each run.
fn bench_secret() -> rpc_core::Secret {
    let random = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
    rpc_core::Secret::new(format!("bench secret {random:016x}")).unwrap()
}

// ---- The raw tokio baseline: 4-byte big-endian length, then the body. ----

/// A server that answers each frame with a frame: an `ADD_REPLY_LEN`-byte reply to a small
/// request, and the request's own body (an echo) to anything larger. It reads what the socket
/// has, answers every whole frame in it, and writes all those replies in one write.
async fn spawn_raw_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            match &tls {
                None => drop(tokio::spawn(serve_raw(stream))),
                Some(acceptor) => {
                    let accepting = acceptor.accept(stream);
                    tokio::spawn(async move {
                        if let Ok(stream) = accepting.await {
                            serve_raw(stream).await;
                        }
                    });
                }
            }
        }
    });
    address
}

/// One certificate for `localhost`, from a CA made for this run, as our settings and as the
/// raw baseline's rustls configurations.
struct BenchTls {
    server: rpc_core::TlsServer,
    client: rpc_core::TlsClient,
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl BenchTls {
    fn new() -> BenchTls {
        use rustls_pki_types::pem::PemObject;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let (chain, key_pem, root) = (certificate.pem(), key.serialize_pem(), ca.pem());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        BenchTls {
            server: rpc_core::TlsServer::from_pem(chain.as_bytes(), key_pem.as_bytes(), None)
                .unwrap(),
            client: rpc_core::TlsClient::from_pem(root.as_bytes(), None).unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        }
    }

    /// A raw client over TLS to the raw server at `address`.
    async fn raw_client(
        &self,
        address: SocketAddr,
    ) -> RawClient<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = self
            .connector
            .connect(name, raw_tcp(address).await)
            .await
            .unwrap();
        RawClient::over(stream)
    }
}

async fn serve_raw<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let reply = [0u8; ADD_REPLY_LEN];
    let mut input = Vec::with_capacity(64 * 1024);
    let mut output = Vec::with_capacity(64 * 1024);
    loop {
        input.reserve(64 * 1024);
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut at = 0;
        while let Some(frame) = whole_frame(&input[at..]) {
            let body = &frame[4..];
            let out: &[u8] = if body.len() == ADD_REQUEST_LEN {
                &reply
            } else {
                body
            };
            output.extend_from_slice(&(out.len() as u32).to_be_bytes());
            output.extend_from_slice(out);
            at += frame.len();
        }
        input.drain(..at);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

/// The first whole frame (length prefix included) at the start of `buffer`, if it holds one.
fn whole_frame(buffer: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(buffer.get(..4)?.try_into().ok()?) as usize;
    buffer.get(..4 + len)
}

struct RawClient<S = TcpStream> {
    stream: S,
    request: Vec<u8>,
    reply: Vec<u8>,
}

async fn raw_tcp(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

impl RawClient {
    async fn connect(address: SocketAddr) -> RawClient {
        RawClient::over(raw_tcp(address).await)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    fn over(stream: S) -> RawClient<S> {
        RawClient {
            stream,
            request: Vec::new(),
            reply: Vec::new(),
        }
    }

    async fn call(&mut self, body_len: usize) {
        self.request.clear();
        self.request
            .extend_from_slice(&(body_len as u32).to_be_bytes());
        self.request.resize(4 + body_len, 7);
        self.stream.write_all(&self.request).await.unwrap();
        let len = self.stream.read_u32().await.unwrap() as usize;
        self.reply.resize(len, 0);
        self.stream.read_exact(&mut self.reply).await.unwrap();
    }
}

async fn raw_sequential<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: RawClient<S>,
    calls: usize,
) -> Sequential {
    let mut latencies = Vec::with_capacity(calls);
    let started = Instant::now();
    for _ in 0..calls {
        let one = Instant::now();
        client.call(ADD_REQUEST_LEN).await;
        latencies.push(one.elapsed());
    }
    summarize(calls, started.elapsed(), latencies)
}

async fn raw_echo(address: SocketAddr, size: usize, calls: usize) -> f64 {
    let mut client = RawClient::connect(address).await;
    let started = Instant::now();
    for _ in 0..calls {
        client.call(size).await;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// `calls` calls with bodies of `body_len` bytes and up to `depth` in flight, its writer and
/// reader apart: the writer sends every frame the window allows in one write, the reader
/// takes every reply the socket has in one read.
async fn raw_pipelined(address: SocketAddr, depth: usize, calls: usize, body_len: usize) -> f64 {
    let (read, write) = raw_tcp(address).await.into_split();
    raw_pipelined_over(read, write, depth, calls, body_len).await
}

/// As [`raw_pipelined`], over the halves of any stream.
async fn raw_pipelined_over<R, W>(
    mut read: R,
    mut write: W,
    depth: usize,
    calls: usize,
    body_len: usize,
) -> f64
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let window = Arc::new(Semaphore::new(depth));
    let started = Instant::now();
    let reader = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut input = Vec::with_capacity(64 * 1024);
            let mut replies = 0;
            while replies < calls {
                input.reserve(64 * 1024);
                assert!(read.read_buf(&mut input).await.unwrap() > 0);
                let (mut at, mut now) = (0, 0);
                while let Some(frame) = whole_frame(&input[at..]) {
                    at += frame.len();
                    now += 1;
                }
                input.drain(..at);
                replies += now;
                window.add_permits(now);
            }
        })
    };
    let mut frame = Vec::new();
    frame.extend_from_slice(&(body_len as u32).to_be_bytes());
    frame.resize(4 + body_len, 7);
    let mut batch = Vec::with_capacity(depth * frame.len());
    let mut sent = 0;
    while sent < calls {
        window.acquire().await.unwrap().forget();
        let mut ready = 1;
        while sent + ready < calls
            && window.try_acquire().is_ok_and(|permit| {
                permit.forget();
                true
            })
        {
            ready += 1;
        }
        batch.clear();
        for _ in 0..ready {
            batch.extend_from_slice(&frame);
        }
        write.write_all(&batch).await.unwrap();
        sent += ready;
    }
    reader.await.unwrap();
    calls as f64 / started.elapsed().as_secs_f64()
}

async fn raw_many(address: SocketAddr, connections: usize, calls: usize) -> f64 {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(RawClient::connect(address).await);
    }
    let mut clients = clients.into_iter();
    concurrently(connections, calls, |_| {
        let mut client = clients.next().expect("one client per task");
        async move {
            for _ in 0..calls {
                client.call(ADD_REQUEST_LEN).await;
            }
        }
    })
    .await
}

// ---- Idle connections, held by a child process so this one counts only the server side. ----

/// Lookup latency with `scale.registry_names` names (against one name), in memory and with a
/// store (against memory), what a durable registration costs (against one in memory), and
/// the memory a registration takes.
async fn registry_rows(scale: &Scale, rows: &mut Vec<Row>) {
    use nameserver::{RedbStore, Store, StoredEntry, StoredInstance};
    let n = scale.registry_names;
    let uri = |i: usize| format!("PYRO:obj{i}@127.0.0.1:4000");
    let dir = std::env::temp_dir().join(format!("rpc-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("registry.redb");
    let _ = std::fs::remove_file(&path);
    // The stored registry is written in one transaction; registering it name by name would
    // cost one fsync each.
    let store = RedbStore::open(&path).unwrap();
    let records: Vec<(String, Option<StoredEntry>)> = (0..n)
        .map(|i| {
            let record = StoredEntry {
                instances: vec![StoredInstance {
                    uri: uri(i),
                    metadata: Default::default(),
                    expires_unix_ms: None,
                }],
                owner: None,
            };
            (format!("name.{i:06}"), Some(record))
        })
        .collect();
    store.save(&records).unwrap();
    drop(records);

    let start = |store: Option<Arc<dyn Store>>| async move {
        let mut options = nameserver::Options::loopback(0);
        options.store = store;
        // Room for the fresh registrations beside the registry.
        options.limits.max_registrations = 2 * n;
        options.limits.max_registrations_per_address = 2 * n;
        let (ns, uri) = ServerThread::start(move || async move {
            let ns = nameserver::start(options).await.unwrap();
            (ns.uri().clone(), ns)
        });
        let names = rpc_core::NameServerProxy::new(uri.clone());
        names.ping().await.unwrap();
        (ns, uri, names)
    };
    let lookups = |names: rpc_core::NameServerProxy, count: usize| async move {
        let mut latencies = Vec::with_capacity(scale.lookups * 10);
        for i in 0..scale.lookups * 10 {
            let name = format!("name.{:06}", (i * 7919) % count);
            latencies.push(timed(async { names.lookup(name).await.map(drop).unwrap() }).await);
        }
        median(latencies)
    };
    // Lookups per second, 16 in flight on one connection.
    let lookup_rate = |names: rpc_core::NameServerProxy, count: usize| async move {
        let per_caller = scale.lookups * 10 / 16;
        let started = std::time::Instant::now();
        let callers = (0..16).map(|caller| {
            let names = names.clone();
            async move {
                for i in 0..per_caller {
                    let name = format!("name.{:06}", ((caller * per_caller + i) * 7919) % count);
                    names.lookup(name).await.unwrap();
                }
            }
        });
        futures_util::future::join_all(callers).await;
        (16 * per_caller) as f64 / started.elapsed().as_secs_f64()
    };
    let registrations = |names: rpc_core::NameServerProxy| async move {
        let mut latencies = Vec::with_capacity(scale.lookups);
        for i in 0..scale.lookups {
            let name = format!("fresh.{i:06}");
            let uri = uri(i).parse().unwrap();
            latencies.push(
                timed(async {
                    names
                        .register(name, uri, false, Default::default())
                        .await
                        .unwrap();
                })
                .await,
            );
        }
        median(latencies)
    };

    // In memory: one name, then all of them registered over the wire.
    let before = resident_kib();
    let (memory_ns, memory_uri, memory) = start(None).await;
    memory
        .register(
            "name.000000".into(),
            uri(0).parse().unwrap(),
            false,
            Default::default(),
        )
        .await
        .unwrap();
    let one = lookups(memory.clone(), 1).await;
    let one_rate = lookup_rate(memory.clone(), 1).await;
    let in_memory_registration = registrations(memory.clone()).await;
    for i in 1..n {
        memory
            .register(
                format!("name.{i:06}"),
                uri(i).parse().unwrap(),
                false,
                Default::default(),
            )
            .await
            .unwrap();
    }
    let per_registration_kib = (resident_kib() - before) / n as f64;
    let many = lookups(memory.clone(), n).await;
    let many_rate = lookup_rate(memory.clone(), n).await;
    // Beside a client that keeps running a hostile pattern, each until the query budget stops
    // it, from its own connection, over names that make the pattern slow.
    let long = "a".repeat(200);
    let slow_names = (0..n / 5).map(|i| {
        memory.register(
            format!("{long}.{i}"),
            uri(i).parse().unwrap(),
            false,
            Default::default(),
        )
    });
    for registered in futures_util::future::join_all(slow_names).await {
        registered.unwrap();
    }
    let attacker = rpc_core::NameServerProxy::new(memory_uri);
    let hostile = tokio::spawn(async move {
        loop {
            let listed = attacker
                .list(rpc_core::NameFilter::Regex("(?:a|aa){1,100}b".into()))
                .await;
            assert!(
                matches!(
                    listed,
                    Err(rpc_core::CallError::Method(
                        rpc_core::NamingError::QueryTooSlow { .. }
                    ))
                ),
                "the hostile pattern is stopped by the query budget: {listed:?}"
            );
        }
    });
    let beside_hostile = lookups(memory.clone(), n).await;
    hostile.abort();
    // The scan keeps a core busy, and on this machine a lookup is faster when no core sleeps
    // (waking an idle one costs tens of µs): compare with a thread that only spins.
    let spinning = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spinner = std::thread::spawn({
        let spinning = spinning.clone();
        move || {
            while spinning.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    });
    let beside_spinner = lookups(memory.clone(), n).await;
    spinning.store(false, std::sync::atomic::Ordering::Relaxed);
    spinner.join().unwrap();
    memory_ns.stop();

    let (stored_ns, _, stored) = start(Some(Arc::new(store))).await;
    let from_store = lookups(stored.clone(), n).await;
    let from_store_rate = lookup_rate(stored.clone(), n).await;
    let durable_registration = registrations(stored).await;
    stored_ns.stop();
    let _ = std::fs::remove_dir_all(&dir);

    rows.push(Row::latency(
        &format!("lookup among {n} names (vs among 1)"),
        many,
        one,
    ));
    rows.push(Row::rate(
        &format!("lookups/s among {n} names, 16 in flight (vs among 1)"),
        many_rate,
        one_rate,
    ));
    rows.push(Row::rate(
        &format!("lookups/s among {n} names, 16 in flight, --store (vs in memory)"),
        from_store_rate,
        many_rate,
    ));
    rows.push(Row::latency(
        &format!("lookup among {n} names beside a hostile regex (vs beside a spinning thread)"),
        beside_hostile,
        beside_spinner,
    ));
    rows.push(Row::latency(
        &format!("lookup among {n} names, --store (vs in memory)"),
        from_store,
        many,
    ));
    rows.push(Row {
        note: "lower is better; fsynced",
        ..Row::latency(
            "registration, --store (vs in memory)",
            durable_registration,
            in_memory_registration,
        )
    });
    rows.push(Row {
        workload: format!("memory per registration, {n} names (KiB)"),
        ours: per_registration_kib,
        baseline: per_registration_kib,
        unit: "KiB",
        note: "no baseline; RSS growth of this process",
    });
}

/// Servers on a one-thread runtime of their own, as a separate process would have them, so
/// that the client's runtime and theirs do not share threads.
struct ServerThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ServerThread {
    /// Runs `setup` on a new thread's runtime; what it keeps (its second half) serves there
    /// until [`stop`](Self::stop), and what it tells (its first half) is returned.
    fn start<F, Fut, T, K>(setup: F) -> (ServerThread, T)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (T, K)>,
        T: Send + 'static,
        K: 'static,
    {
        let (told, tell) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (value, kept) = setup().await;
                told.send(value).unwrap();
                let _ = stopped.await;
                drop(kept);
            });
        });
        (ServerThread { stop, thread }, tell.recv().unwrap())
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap();
    }
}

/// Resident memory of this process, in KiB.
fn resident_kib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4.0
}

/// Opens `count` connections from a child process (with the handshake for `object`, if given),
/// and returns how much this process's resident memory grew per connection, in KiB.
fn idle_memory(address: SocketAddr, object: Option<&str>, count: usize) -> f64 {
    let before = resident_kib();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--idle-clients",
            &address.to_string(),
            &count.to_string(),
            object.unwrap_or("-"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    // Every connection has been answered once, so the server has accepted it and is parked
    // in its read.
    assert_eq!(ready.trim(), "ready", "the client process failed");
    let after = resident_kib();
    drop(child.stdin.take());
    child.wait().unwrap();
    (after - before).max(0.0) / count as f64
}

/// The child side of `idle_memory`: open the connections, say `ready`, hold them until stdin closes.
fn hold_idle_connections(args: &[String]) {
    let address: SocketAddr = args[0].parse().unwrap();
    let count: usize = args[1].parse().unwrap();
    let object = (args[2] != "-").then(|| args[2].clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _connections = runtime.block_on(async {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            let mut stream = TcpStream::connect(address).await.unwrap();
            if let Some(object) = &object {
                let hello = rpc_core::protocol::Message::encode(
                    rpc_core::protocol::Kind::Handshake,
                    rpc_core::protocol::Flags::NONE,
                    0,
                    object.as_bytes(),
                    1024,
                )
                .unwrap();
                stream.write_all(&hello).await.unwrap();
                let mut reply = [0u8; rpc_core::protocol::HEADER_LEN];
                stream.read_exact(&mut reply).await.unwrap();
            } else {
                // One exchange proves the baseline server has accepted and is reading too.
                let mut request = (ADD_REQUEST_LEN as u32).to_be_bytes().to_vec();
                request.resize(4 + ADD_REQUEST_LEN, 7);
                stream.write_all(&request).await.unwrap();
                let mut reply = [0u8; 4 + ADD_REPLY_LEN];
                stream.read_exact(&mut reply).await.unwrap();
            }
            connections.push(stream);
        }
        connections
    });
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}

// ---- Output ----

fn print_table(quick: bool, select: &Select, rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!(
        "machine: {cores} cores, {cpu}; mode: {}",
        if quick { "quick" } else { "full" }
    );
    if let Some(side) = &select.side {
        println!("profiling run: only the {side} side ran; the ratios are meaningless");
    }
    println!();
    println!("| workload | ours | baseline | ours/baseline | |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        println!(
            "| {} | {} {} | {} {} | {:.2} | {} |",
            row.workload,
            format_value(row.ours),
            row.unit,
            format_value(row.baseline),
            row.unit,
            row.ours / row.baseline,
            row.note
        );
    }
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
