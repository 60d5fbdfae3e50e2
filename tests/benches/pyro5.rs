//! Pyro5 interoperability, measured against Python Pyro5 itself: a stock Python client calling
//! a Rust object against the same client calling a Python object, and a Rust proxy calling a
//! Python object against a Python proxy doing the same; serpent and JSON, one caller and 8
//! (threads in Python, tasks each with its own proxy in Rust). A Rust Pyro5 proxy calling a
//! Rust daemon bounds our share of each call: both halves of that call are ours.
//!
//! `cargo bench -p rpc-tests --bench pyro5 [-- --quick]`. Needs Python Pyro5 5.17 (see
//! `tests/src/python.rs`); without it the bench says SKIPPED.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rpc_core::{Config, Format, Uri};
use rpc_tests::python::pyro5_python;
use rpc_tests::{CalcProxy, RemoteCalc};

const PYTHON_CLIENT: &str = r#"
import json, statistics, sys, threading, time
import Pyro5.api
uri, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
latencies, lock = [], threading.Lock()
def run():
    proxy = Pyro5.api.Proxy(uri)
    proxy._pyroBind()
    mine, end = [], time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        proxy.add(1, 2)
        done = time.perf_counter()
        mine.append(done - started)
        if done > end:
            break
    with lock:
        latencies.extend(mine)
workers = [threading.Thread(target=run) for _ in range(threads)]
started = time.perf_counter()
for worker in workers: worker.start()
for worker in workers: worker.join()
wall = time.perf_counter() - started
print(json.dumps({"per_sec": len(latencies) / wall, "p50_us": statistics.median(latencies) * 1e6}))
"#;

const PYTHON_DAEMON: &str = r#"
import Pyro5.api
@Pyro5.api.expose
class Calc:
    def add(self, a, b):
        return a + b
daemon = Pyro5.api.Daemon(host="127.0.0.1")
print(daemon.register(Calc, "calc"), flush=True)
daemon.requestLoop()
"#;

/// Calls per second and the median latency of one measurement.
#[derive(Debug, Clone, Copy)]
struct Row {
    per_sec: f64,
    p50_us: f64,
}

fn python_client(python: &Path, uri: &Uri, format: Format, threads: usize, seconds: f64) -> Row {
    let serializer = if format == Format::Json {
        "json"
    } else {
        "serpent"
    };
    let output = Command::new(python)
        .args([
            "-c",
            PYTHON_CLIENT,
            &uri.to_string(),
            &threads.to_string(),
            &seconds.to_string(),
        ])
        .env("PYRO_SERIALIZER", serializer)
        .stdin(Stdio::null())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the client prints its measurement");
    Row {
        per_sec: printed["per_sec"].as_f64().unwrap_or_default(),
        p50_us: printed["p50_us"].as_f64().unwrap_or_default(),
    }
}

/// `callers` tasks, each with its own Pyro5 proxy, calling `add` for `seconds`.
async fn rust_client(uri: &Uri, format: Format, callers: usize, seconds: f64) -> Row {
    let config = Config::default().pyro5_format(Some(format));
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let calc = CalcProxy::with_config(uri.clone(), config.clone());
            tokio::spawn(async move {
                calc.proxy().connect().await.expect("connects");
                let mut latencies = Vec::new();
                loop {
                    let call = Instant::now();
                    calc.add(1, 2).await.expect("add");
                    let done = Instant::now();
                    latencies.push(done - call);
                    if done > end {
                        break latencies;
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("the caller finishes"));
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort();
    Row {
        per_sec: latencies.len() as f64 / wall,
        p50_us: latencies[latencies.len() / 2].as_secs_f64() * 1e6,
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let python = match pyro5_python() {
        Ok(python) => python,
        Err(reason) => {
            println!("SKIPPED the Pyro5 benchmark: {reason}");
            return;
        }
    };
    let seconds = if quick { 0.3 } else { 3.0 };
    // Our daemon on a one-thread runtime of its own, as a process of its own would have it.
    let ours = RemoteCalc::start(Config::default());
    let mut theirs = Command::new(&python)
        .args(["-c", PYTHON_DAEMON])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the Python daemon starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(theirs.stdout.take().expect("its stdout")),
        &mut line,
    )
    .expect("the Python daemon prints its URI");
    let python_uri: Uri = line.trim().parse().expect("a URI");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    println!("| caller → object | format | callers | calls/s | p50 µs |");
    println!("|---|---|---:|---:|---:|");
    let print = |what: &str, format: Format, callers: usize, row: Row| {
        println!(
            "| {what} | {format:?} | {callers} | {:.0} | {:.0} |",
            row.per_sec, row.p50_us
        );
    };
    for format in [Format::Serpent, Format::Json] {
        for callers in [1, 8] {
            let to_rust = python_client(&python, &ours.uri, format, callers, seconds);
            let to_python = python_client(&python, &python_uri, format, callers, seconds);
            let rust_to_python =
                runtime.block_on(rust_client(&python_uri, format, callers, seconds));
            let rust_to_rust = runtime.block_on(rust_client(&ours.uri, format, callers, seconds));
            print("Python → Rust", format, callers, to_rust);
            print("Python → Python", format, callers, to_python);
            print("Rust → Python", format, callers, rust_to_python);
            print(
                "Rust → Rust (Pyro5; both halves ours)",
                format,
                callers,
                rust_to_rust,
            );
            println!(
                "| ratios | {format:?} | {callers} | Python client: Rust object {:.2}x the calls/s of a Python object; Rust proxy: {:.2}x a Python proxy | our share of a call, at most: {:.0}% (Python client), {:.0}% (Rust proxy) |",
                to_rust.per_sec / to_python.per_sec,
                rust_to_python.per_sec / to_python.per_sec,
                100.0 * rust_to_rust.p50_us / to_rust.p50_us,
                100.0 * rust_to_rust.p50_us / rust_to_python.p50_us,
            );
        }
    }
    let _ = theirs.kill();
    let _ = theirs.wait();
}
