//! Pyro's currency tutorial, in Rust: a worker that serves exchange rates under the name
//! `MyWorker`, and a client that finds it by name and fetches rates one by one, then all at once.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rpc_core::{CallError, Config, Daemon, InstanceMode, Lease, Proxy, Secret, Uri, service};
use serde::{Deserialize, Serialize};

/// The name the worker registers in the nameserver.
pub const WORKER_NAME: &str = "MyWorker";

/// How long each rate takes to "fetch", standing in for the web service Pyro's tutorial calls.
pub const SIMULATED_LATENCY: Duration = Duration::from_millis(200);

/// The pairs the client asks for when given none.
pub const DEFAULT_PAIRS: [&str; 6] = [
    "EUR/USD", "GBP/USD", "USD/JPY", "USD/CHF", "AUD/USD", "EUR/GBP",
];

/// The rates the worker knows, per unit of the first currency.
const RATES: [(&str, f64); 8] = [
    ("EUR/USD", 1.0842),
    ("GBP/USD", 1.2671),
    ("USD/JPY", 151.37),
    ("USD/CHF", 0.9013),
    ("AUD/USD", 0.6524),
    ("EUR/GBP", 0.8556),
    ("USD/CAD", 1.3598),
    ("NZD/USD", 0.5977),
];

/// The worker's own error: it has no rate for the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("no rate known for `{0}`")]
pub struct UnknownPair(pub String);

/// Where the nameserver is, for the worker and client programs; unset means locate it.
#[derive(Debug, Clone, clap::Args)]
pub struct NameServerArgs {
    /// The nameserver's host (default: $RPC_NS_HOST, else broadcast discovery, else localhost).
    #[arg(long)]
    pub ns_host: Option<String>,
    /// The nameserver's port (default: $RPC_NS_PORT, else 9090).
    #[arg(long)]
    pub ns_port: Option<u16>,
}

impl NameServerArgs {
    /// A configuration that finds the nameserver as these arguments say, with the shared
    /// secret of `RPC_SECRET_FILE` or `RPC_SECRET` if one is set.
    ///
    /// # Errors
    ///
    /// If the secret's file cannot be read, or the secret is too short.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::default();
        config.nameserver.host = self.ns_host.clone();
        config.nameserver.port = self.ns_port;
        config.secret = Secret::from_env()?;
        Ok(config)
    }
}

/// The currency worker service.
#[service]
pub trait Worker {
    /// The exchange rate of a pair such as `EUR/USD`.
    async fn get_rate(&self, pair: String) -> Result<f64, UnknownPair>;
}

/// A worker that answers from a built-in table, after a simulated network delay.
#[derive(Debug, Default)]
pub struct RateTable;

impl Worker for RateTable {
    async fn get_rate(&self, pair: String) -> Result<f64, UnknownPair> {
        tokio::time::sleep(SIMULATED_LATENCY).await;
        let wanted = pair.to_ascii_uppercase();
        RATES
            .iter()
            .find(|(known, _)| *known == wanted)
            .map(|(_, rate)| *rate)
            .ok_or(UnknownPair(pair))
    }
}

/// How long the worker's registration lives unless renewed: a worker that dies leaves the
/// nameserver within this time.
pub const WORKER_TTL: Duration = Duration::from_secs(10);

/// Registers a `percall` rate table with `daemon` and its URI under [`WORKER_NAME`] in the
/// nameserver that `config` leads to, with a lease that is renewed while the returned
/// [`Lease`] lives (and again after a nameserver restart).
///
/// # Errors
///
/// If the nameserver cannot be found or refuses the registration.
pub async fn serve_worker(daemon: &Daemon, config: &Config) -> anyhow::Result<Lease> {
    let uri = daemon.register_factory("currency.worker", InstanceMode::PerCall, || {
        WorkerSkeleton::new(RateTable)
    })?;
    let lease = Lease::start(config, WORKER_NAME, uri.clone(), WORKER_TTL).await?;
    println!(
        "worker: registered {WORKER_NAME} --> {uri} for {WORKER_TTL:?}, renewed while it runs"
    );
    Ok(lease)
}

/// Fetches every pair through `PYRONAME:MyWorker`, first one after another, then all at once,
/// and prints the rates and both timings.
///
/// # Errors
///
/// If the worker cannot be reached.
pub async fn run_client(pairs: &[String], config: &Config) -> anyhow::Result<()> {
    let uri: Uri = format!("PYRONAME:{WORKER_NAME}").parse()?;
    let worker = WorkerProxy::from_proxy(Proxy::with_config(uri, config.clone()));
    // Connect first, so the timings below measure the calls, not the lookup.
    worker.proxy().connect().await?;

    println!(
        "client: fetching {} rates one after another...",
        pairs.len()
    );
    let started = Instant::now();
    for pair in pairs {
        report(pair, worker.get_rate(pair.clone()).await)?;
    }
    let sequential = started.elapsed();

    println!("client: fetching the same rates all at once over one connection...");
    let started = Instant::now();
    let results = join_all(pairs.iter().map(|pair| worker.get_rate(pair.clone()))).await;
    let concurrent = started.elapsed();
    for (pair, result) in pairs.iter().zip(results) {
        report(pair, result)?;
    }

    println!("client: one after another took {sequential:.2?}, all at once took {concurrent:.2?}");
    println!(
        "client: all at once was {:.1}x faster",
        sequential.as_secs_f64() / concurrent.as_secs_f64().max(f64::EPSILON)
    );
    Ok(())
}

/// Prints one rate; the worker's own error is printed, any other error stops the client.
fn report(pair: &str, result: Result<f64, CallError<UnknownPair>>) -> anyhow::Result<()> {
    match result {
        Ok(rate) => println!("  {pair} = {rate}"),
        Err(CallError::Method(unknown)) => println!("  {pair}: {unknown}"),
        Err(CallError::Rpc(error)) => return Err(error.into()),
    }
    Ok(())
}
