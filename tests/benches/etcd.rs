//! The registry on etcd against the embedded one: lookups (one at a time, and 8 callers at
//! once) and registrations through a nameserver whose registry lives in a three-member etcd
//! cluster on loopback, the same through an embedded nameserver, and a bare linearizable etcd
//! read as the floor an etcd-backed lookup cannot go below. Then what a nameserver on etcd
//! holds: its connections to etcd and its memory, empty and mirroring 10,000 registrations
//! (each measured in a process of its own).
//!
//! `cargo bench -p rpc-tests --features etcd --bench etcd [-- --quick]`. Needs etcd (Debian's
//! etcd-server); without it the bench says SKIPPED. Nameservers run on a runtime of their own,
//! as a process of their own would.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nameserver::etcd::EtcdOptions;
use nameserver::{Options, RunningNameServer};
use rpc_core::{NameServerProxy, Uri};
use rpc_tests::Hosted;
use rpc_tests::etcd::{EtcdCluster, etcd_program};

const ROLE: &str = "RPC_ETCD_BENCH_ROLE";

/// Registrations the memory rows mirror.
const MIRRORED: usize = 10_000;

/// A nameserver on a thread and runtime of its own; the port it listens on.
fn hosted(options: Options) -> Hosted<u16> {
    Hosted::start(move || async move {
        let ns: RunningNameServer = nameserver::start(options).await.expect("starts");
        (ns.daemon().local_addr().unwrap().port(), ns)
    })
}

fn names(port: u16) -> NameServerProxy {
    NameServerProxy::new(
        format!("PYRO:Pyro.NameServer@127.0.0.1:{port}")
            .parse()
            .unwrap(),
    )
}

/// Operations per second from `callers` tasks running `operation` over and over for
/// `seconds`, each on what `each` makes for it.
async fn per_second_at_once<C, F, Fut>(
    callers: usize,
    seconds: f64,
    each: impl Fn() -> C,
    operation: F,
) -> f64
where
    C: Send + 'static,
    F: Fn(&mut C) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let mut caller = each();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    operation(&mut caller).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn on_etcd(cluster: &EtcdCluster, prefix: &str) -> Options {
    let mut options = Options::loopback(0);
    let mut etcd = EtcdOptions::new(cluster.endpoints());
    etcd.prefix = prefix.to_owned();
    options.etcd = Some(etcd);
    options
}

fn worker(n: usize) -> Uri {
    format!("PYRO:worker{n}@127.0.0.1:4000").parse().unwrap()
}

/// The median of `samples`, in microseconds.
fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// Sequential lookups of one name: median latency (µs) and lookups per second.
async fn lookups_one_at_a_time(names: &NameServerProxy, count: usize) -> (f64, f64) {
    names.lookup("bench.name".into()).await.unwrap();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let one = Instant::now();
        names.lookup("bench.name".into()).await.unwrap();
        samples.push(one.elapsed());
    }
    (
        median_us(samples),
        count as f64 / started.elapsed().as_secs_f64(),
    )
}

/// Lookups per second from `callers` tasks, each with its own connection, for `seconds`.
async fn lookups_at_once(port: u16, callers: usize, seconds: f64) -> f64 {
    per_second_at_once(
        callers,
        seconds,
        || names(port),
        |names| {
            let names = names.clone();
            async move {
                names.lookup("bench.name".into()).await.unwrap();
            }
        },
    )
    .await
}

/// Sequential registrations of fresh names, permanent or with a lease: median latency (µs).
async fn registrations(names: &NameServerProxy, count: usize, leased: bool, tag: &str) -> f64 {
    let mut samples = Vec::with_capacity(count);
    for n in 0..count {
        let name = format!("bench.{tag}.{n}");
        let started = Instant::now();
        if leased {
            names
                .register_lease(
                    name,
                    worker(n),
                    BTreeSet::new(),
                    Duration::from_secs(60),
                    "a-bench-owner-token-0123".into(),
                )
                .await
                .unwrap();
        } else {
            names
                .register(name, worker(n), false, BTreeSet::new())
                .await
                .unwrap();
        }
        samples.push(started.elapsed());
    }
    median_us(samples)
}

/// A bare linearizable etcd read: median latency (µs).
async fn etcd_reads(cluster: &EtcdCluster, count: usize) -> f64 {
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    client.get("bench-probe", None).await.unwrap();
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client.get("bench-probe", None).await.unwrap();
        samples.push(started.elapsed());
    }
    median_us(samples)
}

/// Bare linearizable etcd reads per second from `callers` tasks sharing one client, as a
/// nameserver shares its connection, for `seconds`.
async fn etcd_reads_at_once(cluster: &EtcdCluster, callers: usize, seconds: f64) -> f64 {
    let client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    per_second_at_once(
        callers,
        seconds,
        || client.clone(),
        |client| {
            let mut client = client.clone();
            async move {
                client.get("bench-probe", None).await.unwrap();
            }
        },
    )
    .await
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        return measure_holdings(&role);
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    let program = match etcd_program() {
        Ok(program) => program,
        Err(reason) => {
            println!("SKIPPED the etcd benchmark: {reason}");
            return;
        }
    };
    let cluster = EtcdCluster::start(program);
    let (count, seconds) = if quick { (200, 0.3) } else { (3_000, 3.0) };
    let embedded = hosted(Options::loopback(0));
    let shared = hosted(on_etcd(&cluster, "bench/"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    println!(
        "| registry | lookup p50 µs | lookups/s, 1 caller | lookups/s, 8 callers | register p50 µs | register with a lease p50 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (what, hosted) in [
        ("embedded (memory)", &embedded),
        ("etcd, 3 members", &shared),
    ] {
        let names = names(hosted.value);
        let (p50, per_sec, at_once, register, leased) = runtime.block_on(async {
            names
                .register("bench.name".into(), worker(0), false, BTreeSet::new())
                .await
                .unwrap();
            let (p50, per_sec) = lookups_one_at_a_time(&names, count).await;
            let at_once = lookups_at_once(hosted.value, 8, seconds).await;
            let register = registrations(&names, count / 10, false, "plain").await;
            let leased = registrations(&names, count / 10, true, "leased").await;
            (p50, per_sec, at_once, register, leased)
        });
        println!(
            "| {what} | {p50:.0} | {per_sec:.0} | {at_once:.0} | {register:.0} | {leased:.0} |"
        );
    }
    let floor = runtime.block_on(etcd_reads(&cluster, count));
    let floor_at_once = runtime.block_on(etcd_reads_at_once(&cluster, 8, seconds));
    println!(
        "| bare linearizable etcd reads (one per lookup would be the floor) | {floor:.0} | {:.0} | {floor_at_once:.0} | | |",
        1e6 / floor
    );

    // What a nameserver on etcd holds, each in a process of its own.
    runtime.block_on(async {
        let full = hosted(on_etcd(&cluster, "bench-full/"));
        let names = names(full.value);
        for n in 0..MIRRORED {
            names
                .register(format!("mirrored.{n}"), worker(n), false, BTreeSet::new())
                .await
                .unwrap();
        }
    });
    println!();
    println!("| a nameserver process on etcd | resident MiB | TCP connections to etcd |");
    println!("|---|---:|---:|");
    for (what, prefix) in [
        ("empty registry", "bench-empty/"),
        ("mirroring 10,000 registrations", "bench-full/"),
    ] {
        let endpoints = cluster.endpoints().join(",");
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .env(ROLE, format!("{prefix} {endpoints}"))
            .output()
            .expect("the measuring process runs");
        let said = String::from_utf8_lossy(&output.stdout);
        let mut parts = said.split_whitespace();
        let (rss, connections) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
        println!("| {what} | {rss} | {connections} |");
    }
}

/// In a process of its own: starts a nameserver on etcd with the prefix and endpoints that
/// `role` gives, looks a name up through it, and prints its resident MiB and how many TCP
/// connections it holds to etcd's client ports.
fn measure_holdings(role: &str) {
    let (prefix, endpoints) = role.split_once(' ').expect("prefix and endpoints");
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_owned).collect();
    let ports: Vec<u16> = endpoints
        .iter()
        .filter_map(|url| url.rsplit(':').next()?.parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut options = Options::loopback(0);
        let mut etcd = EtcdOptions::new(endpoints);
        etcd.prefix = prefix.to_owned();
        options.etcd = Some(etcd);
        let ns = nameserver::start(options).await.expect("starts");
        let names = NameServerProxy::new(ns.uri().clone());
        names.count().await.unwrap();
        let rss = rpc_tests::resident_bytes() as f64 / (1 << 20) as f64;
        println!("{rss:.1} {}", connections_to(&ports));
    });
}

/// How many established TCP connections of this process go to one of `ports` on loopback.
fn connections_to(ports: &[u16]) -> usize {
    let ours: BTreeSet<String> = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|remote| remote.split(':').nth(1))
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            let established = fields.get(3) == Some(&"01");
            let inode = fields.get(9).copied().unwrap_or_default();
            established
                && remote_port.is_some_and(|port| ports.contains(&port))
                && ours.contains(inode)
        })
        .count()
}
