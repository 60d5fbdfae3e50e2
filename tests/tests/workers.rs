//! Several workers under one name, each a process of its own that keeps its instance alive
//! with a lease: `PYRONAME:` proxies spread over them, a killed worker costs no call and
//! leaves the name within its lease, and a frozen one leaves and comes back by itself.
//!
//! A worker is this test binary, run again with `RPC_WORKER_ROLE` set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rpc_core::{Config, NameServerConfig, NameServerProxy, NamingError, Uri, locate_ns, service};
use rpc_tests::within;

const ROLE: &str = "RPC_WORKER_ROLE";
const NAME: &str = "pool.worker";
const TTL: Duration = Duration::from_secs(2);
/// The token every worker of the pool shares, as they would from a file.
const POOL_TOKEN: &str = "pool-token-0123456789abcdef";

/// What a worker serves: which worker it is.
#[service]
pub trait Identify {
    /// The worker's number.
    async fn who(&self) -> u32;
}

struct Worker(u32);

impl Identify for Worker {
    async fn who(&self) -> u32 {
        self.0
    }
}

/// A worker process, and the URI of its object.
struct WorkerProcess {
    child: Child,
    uri: Uri,
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts worker `number` against the nameserver on `ns_port`; returns once it registered.
fn spawn_worker(number: u32, ns_port: u16) -> WorkerProcess {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_role",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, format!("{number} {ns_port}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let uri = loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "worker {number} ended before it registered"
        );
        if let Some((_, uri)) = line.split_once("ROLE: REGISTERED ") {
            break uri.trim().parse().unwrap();
        }
    };
    WorkerProcess { child, uri }
}

fn config(ns_port: u16) -> Config {
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", ns_port);
    config
}

async fn instances(names: &NameServerProxy) -> Vec<Uri> {
    match names.lookup_all(NAME.into()).await {
        Ok(found) => found.into_iter().map(|found| found.uri).collect(),
        Err(rpc_core::CallError::Method(NamingError::UnknownName(_))) => Vec::new(),
        Err(error) => panic!("lookup_all: {error}"),
    }
}

/// Waits until `wanted` holds of the instances of the name, and says how long that took.
async fn until(names: &NameServerProxy, what: &str, wanted: impl Fn(&[Uri]) -> bool) -> Duration {
    let started = Instant::now();
    within(what, async {
        while !wanted(&instances(names).await) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    started.elapsed()
}

/// Makes `calls` calls, each through a new `PYRONAME:` proxy; counts them per worker.
async fn calls_from_new_proxies(config: &Config, calls: usize) -> [usize; 3] {
    let mut served = [0; 3];
    for _ in 0..calls {
        let proxy =
            IdentifyProxy::with_config(format!("PYRONAME:{NAME}").parse().unwrap(), config.clone());
        let who = proxy.who().await.expect("every call succeeds");
        served[who as usize] += 1;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_one_name_and_a_killed_one_costs_no_call() {
    let ns = nameserver::start(nameserver::Options::loopback(0))
        .await
        .unwrap();
    let ns_port = ns.daemon().local_addr().unwrap().port();
    let config = config(ns_port);
    let names = locate_ns(&config).await.unwrap();
    let mut workers: Vec<WorkerProcess> = (0..3).map(|n| spawn_worker(n, ns_port)).collect();
    assert_eq!(instances(&names).await.len(), 3);

    let served = calls_from_new_proxies(&config, 300).await;
    println!("300 calls from new proxies, per worker: {served:?}");
    for count in served {
        assert!((60..=138).contains(&count), "{served:?}");
    }

    // Worker 1 dies without a word; its instance is still registered.
    let dead = workers.remove(1);
    let dead_uri = dead.uri.clone();
    drop(dead);
    let killed = Instant::now();
    let served = calls_from_new_proxies(&config, 100).await;
    println!("100 calls after a worker was killed, per worker: {served:?}");
    assert_eq!(served[1], 0);
    assert_eq!(served[0] + served[2], 100);

    // It leaves the name within its lease (and a renewal interval).
    until(&names, "the dead instance leaving", |uris| {
        !uris.contains(&dead_uri)
    })
    .await;
    let gone = killed.elapsed();
    println!("the killed worker left the name {gone:?} after its death (ttl {TTL:?})");
    assert!(gone <= TTL + TTL / 3 + Duration::from_secs(1), "{gone:?}");
    assert_eq!(instances(&names).await.len(), 2);
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_leaves_the_name_and_comes_back_when_it_resumes() {
    let ns = nameserver::start(nameserver::Options::loopback(0))
        .await
        .unwrap();
    let ns_port = ns.daemon().local_addr().unwrap().port();
    let names = locate_ns(&config(ns_port)).await.unwrap();
    let worker = spawn_worker(0, ns_port);
    let pid = worker.child.id().to_string();
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([format!("-{name}"), pid.clone()])
            .status()
            .unwrap();
        assert!(sent.success());
    };

    signal("STOP");
    let frozen = until(&names, "the frozen worker leaving", <[Uri]>::is_empty).await;
    println!("a worker frozen with SIGSTOP left the name after {frozen:?} (ttl {TTL:?})");
    assert!(
        frozen <= TTL + TTL / 3 + Duration::from_secs(1),
        "{frozen:?}"
    );
    signal("CONT");
    until(&names, "the resumed worker registering again", |uris| {
        uris == [worker.uri.clone()]
    })
    .await;
    drop(worker);
    ns.shutdown().await;
}

#[test]
#[ignore = "a worker process of the tests above"]
fn worker_role() {
    let role = std::env::var(ROLE).expect("run by a workers test");
    let (number, ns_port) = role.split_once(' ').unwrap();
    let (number, ns_port): (u32, u16) = (number.parse().unwrap(), ns_port.parse().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let daemon = rpc_core::Daemon::bind("127.0.0.1:0").await.unwrap();
        let uri = daemon
            .register_as("worker", IdentifySkeleton::new(Worker(number)))
            .unwrap();
        let _lease = rpc_core::Lease::start_instance(
            &config(ns_port),
            NAME,
            uri.clone(),
            Default::default(),
            TTL,
            POOL_TOKEN.into(),
        )
        .await
        .unwrap();
        println!("ROLE: REGISTERED {uri}");
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}
