//! Pyro5 interoperability against the real thing: stock Python Pyro5 5.17 clients call our
//! objects and use our nameserver (serpent and JSON), `pyro5-nsc` manages it, and our proxies
//! call a Python Pyro5 daemon. Without Python Pyro5 these say SKIPPED (and fail under
//! `CI=true`). The malformed-input tests at the end need no Python.

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nameserver::Options;
use rpc_core::pyro5::{PyException, PyValue};
use rpc_core::{
    CallError, Config, Daemon, Error, Format, InstanceMode, Lease, NameServerConfig, Proxy, Secret,
    Uri, locate_ns, service,
};
use rpc_tests::python::python_or_skip;
use rpc_tests::within;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum ShopError {
    #[error("no price for {0}")]
    UnknownItem(String),
}

#[service]
trait Shop {
    async fn price(&self, item: String, quantity: u32) -> Result<f64, ShopError>;
    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    async fn describe(&self, order: Order) -> String;
    async fn boom(&self) -> u32;
    #[oneway]
    async fn note(&self, line: String);
    async fn notes(&self) -> Vec<String>;
    async fn slow(&self, millis: u64) -> u64;
}

/// A `session` mode object: each connection counts on its own.
#[service]
trait Counter {
    async fn next(&self) -> u64;
}

#[derive(Default)]
struct Count(AtomicU64);

impl Counter for Count {
    async fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[derive(Default)]
struct Stall {
    notes: Mutex<Vec<String>>,
}

impl Shop for Stall {
    async fn note(&self, line: String) {
        self.notes.lock().unwrap().push(line);
    }
    async fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }
    async fn slow(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
    async fn price(&self, item: String, quantity: u32) -> Result<f64, ShopError> {
        match item.as_str() {
            "apple" => Ok(0.5 * f64::from(quantity)),
            "pear" => Ok(0.75 * f64::from(quantity)),
            _ => Err(ShopError::UnknownItem(item)),
        }
    }
    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn describe(&self, order: Order) -> String {
        format!("{} x {}", order.quantity, order.item)
    }
    async fn boom(&self) -> u32 {
        panic!("the stall fell over")
    }
}

/// A nameserver on loopback and a daemon serving the stall, registered as `shop.name`.
async fn shop() -> (nameserver::RunningNameServer, Daemon, u16) {
    let ns = nameserver::start(Options::loopback(0)).await.unwrap();
    let ns_port = ns.daemon().local_addr().unwrap().port();
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    let uri = daemon
        .register_as("shop", ShopSkeleton::new(Stall::default()))
        .unwrap();
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", ns_port);
    let names = within("locating the nameserver", locate_ns(&config))
        .await
        .unwrap();
    names
        .register("shop.name".into(), uri, false, ["stall".to_owned()].into())
        .await
        .unwrap();
    (ns, daemon, ns_port)
}

/// Runs `script` with the interpreter, in `env`; what it printed.
async fn run_python(python: &Path, script: &str, env: &[(&str, String)]) -> String {
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-c", script])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = within("the Python client", command.output()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "Python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

const CLIENT: &str = r#"
import json, os
import Pyro5.api, Pyro5.errors
port = int(os.environ["NS_PORT"])
ns = Pyro5.api.locate_ns(host="127.0.0.1", port=port)
out = {"ns_count": ns.count()}
shop = Pyro5.api.Proxy("PYRONAME:shop.name@127.0.0.1:%d" % port)
out["price"] = shop.price("apple", 3)
out["keywords"] = shop.price(quantity=2, item="pear")
def raised(call):
    try:
        call()
    except Exception as error:
        return [type(error).__module__ + "." + type(error).__name__, str(error), getattr(error, "error", None)]
    return None
out["own_error"] = raised(lambda: shop.price("fig", 1))
out["unknown_name"] = raised(lambda: ns.lookup("nobody"))
out["missing"] = raised(lambda: shop.price("apple"))
out["too_many"] = raised(lambda: shop.price("apple", 1, 2))
out["wrong_type"] = raised(lambda: shop.price("apple", "many"))
out["unknown_keyword"] = raised(lambda: shop.price("apple", 1, colour="red"))
out["panic"] = raised(lambda: shop.boom())
out["order"] = shop.describe({"item": "fig", "quantity": 4})
if os.environ.get("PYRO_SERIALIZER") != "json":
    import serpent
    # Serpent carries bytes as a base64 dict, whoever sends them; serpent.tobytes reads it.
    out["bytes"] = list(serpent.tobytes(shop.echo_bytes(b"\x00\xffabc")))
by_meta = Pyro5.api.Proxy("PYROMETA:stall@127.0.0.1:%d" % port)
out["by_meta"] = by_meta.price("pear", 4)
out["daemon"] = Pyro5.api.Proxy("PYRO:Pyro.Daemon@" + ns.lookup("shop.name").location).registered()
print(json.dumps(out))
"#;

async fn python_client_calls_rust_objects(serializer: &str) {
    let test = format!("python_client_calls_rust_objects ({serializer})");
    let Some(python) = python_or_skip(&test) else {
        return;
    };
    let (_ns, _daemon, ns_port) = shop().await;
    let printed = run_python(
        &python,
        CLIENT,
        &[
            ("NS_PORT", ns_port.to_string()),
            ("PYRO_SERIALIZER", serializer.to_owned()),
        ],
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(out["ns_count"], 2, "{out}");
    assert_eq!(out["price"], 1.5, "{out}");
    assert_eq!(out["keywords"], 1.5, "{out}");
    assert_eq!(out["own_error"][0], "builtins.RuntimeError", "{out}");
    // The error's `Display` is the message; its value rides along.
    assert_eq!(out["own_error"][1], "no price for fig", "{out}");
    assert_eq!(
        out["own_error"][2],
        serde_json::json!({"UnknownItem": "fig"}),
        "{out}"
    );
    for (key, words) in [
        ("missing", "missing 1 required argument: 'quantity'"),
        ("too_many", "takes 2 positional arguments but 3 were given"),
        ("wrong_type", "price()"),
        ("unknown_keyword", "unexpected keyword argument 'colour'"),
    ] {
        assert_eq!(out[key][0], "builtins.TypeError", "{key}: {out}");
        assert!(
            out[key][1].as_str().unwrap().contains(words),
            "{key}: {out}"
        );
    }
    assert_eq!(out["unknown_name"][0], "Pyro5.errors.NamingError", "{out}");
    assert_eq!(out["unknown_name"][1], "unknown name: nobody", "{out}");
    assert_eq!(out["panic"][0], "Pyro5.errors.PyroError", "{out}");
    assert!(
        out["panic"][1]
            .as_str()
            .unwrap()
            .contains("the stall fell over"),
        "{out}"
    );
    assert_eq!(out["order"], "4 x fig", "{out}");
    if serializer == "serpent" {
        assert_eq!(
            out["bytes"],
            serde_json::json!([0, 255, 97, 98, 99]),
            "{out}"
        );
    }
    assert_eq!(out["by_meta"], 3.0, "{out}");
    assert_eq!(
        out["daemon"],
        serde_json::json!(["Pyro.Daemon", "shop"]),
        "{out}"
    );
}

#[tokio::test]
async fn a_python_client_calls_rust_objects_in_serpent() {
    python_client_calls_rust_objects("serpent").await;
}

#[tokio::test]
async fn a_python_client_calls_rust_objects_in_json() {
    python_client_calls_rust_objects("json").await;
}

#[tokio::test]
async fn pyro5_nsc_manages_our_nameserver_and_names_cross_both_ways() {
    let Some(python) = python_or_skip("pyro5_nsc_manages_our_nameserver") else {
        return;
    };
    let nsc = python.with_file_name("pyro5-nsc");
    let (_ns, _daemon, ns_port) = shop().await;
    let port = ns_port.to_string();
    let run = async |args: &[&str]| {
        let output = tokio::process::Command::new(&nsc)
            .args(["-n", "127.0.0.1", "-p", &port])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(run(&["ping"]).await.contains("ping ok"));
    // Registered from Rust, listed by Python.
    let listed = run(&["list"]).await;
    assert!(
        listed.contains("shop.name --> PYRO:shop@127.0.0.1:"),
        "{listed}"
    );
    // Registered by Python, found by Rust.
    run(&["register", "py.worker", "PYRO:worker@127.0.0.1:4242"]).await;
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", ns_port);
    let names = locate_ns(&config).await.unwrap();
    assert_eq!(
        names.lookup("py.worker".into()).await.unwrap(),
        "PYRO:worker@127.0.0.1:4242".parse::<Uri>().unwrap()
    );
    assert!(
        run(&["lookup", "py.worker"])
            .await
            .contains("PYRO:worker@127.0.0.1:4242")
    );
    run(&["setmeta", "py.worker", "fast", "blue"]).await;
    let found = run(&["yplookup_all", "fast"]).await;
    assert!(found.contains("py.worker"), "{found}");
    run(&["remove", "py.worker"]).await;
    assert!(names.lookup("py.worker".into()).await.is_err());
    assert!(!run(&["list"]).await.contains("py.worker"));
}

const BY_BROADCAST: &str = r#"
import json, os
import Pyro5.api, Pyro5.errors
def raised(call):
    try:
        call()
    except Exception as error:
        return [type(error).__module__ + "." + type(error).__name__, str(error)]
    return None
out = {}
# The environment leaves broadcast discovery as the only way to the nameserver.
ns = Pyro5.api.locate_ns()
out["ns_uri"] = str(ns._pyroUri)
shop = Pyro5.api.Proxy(os.environ["SHOP_URI"])
shop.note("one")
shop.note("two")
out["notes"] = shop.notes()
first, second = Pyro5.api.Proxy(os.environ["COUNTER_URI"]), Pyro5.api.Proxy(os.environ["COUNTER_URI"])
out["sessions"] = [first.next(), first.next(), second.next(), first.next()]
out["deadline"] = raised(lambda: shop.slow(5000))
out["overwrite_owned"] = raised(lambda: ns.register("owned.name", "PYRO:hijack@127.0.0.1:1"))
out["remove_owned"] = raised(lambda: ns.remove("owned.name"))
out["owned_still"] = str(ns.lookup("owned.name"))
print(json.dumps(out))
"#;

#[tokio::test]
async fn broadcast_discovery_oneway_sessions_deadlines_and_owners_work_for_python() {
    let Some(python) = python_or_skip("broadcast_discovery_oneway_sessions_deadlines_and_owners")
    else {
        return;
    };
    // A nameserver on every interface, so it answers broadcasts (on loopback here).
    let ns = rpc_tests::discoverable_nameserver().await;
    let discovery = ns.discovery_addr().expect("discovery runs on 0.0.0.0");
    let ns_port = ns.daemon().local_addr().unwrap().port();
    let config = Config::default().max_call_duration(Some(Duration::from_millis(200)));
    let daemon = Daemon::bind_with("127.0.0.1:0", config).await.unwrap();
    let shop = daemon
        .register_as("shop", ShopSkeleton::new(Stall::default()))
        .unwrap();
    let counter = daemon
        .register_factory("counter", InstanceMode::Session, || {
            CounterSkeleton::new(Count::default())
        })
        .unwrap();
    let mut client = Config::default();
    client.nameserver = NameServerConfig::at("127.0.0.1", ns_port);
    let lease = Lease::start(&client, "owned.name", shop.clone(), Duration::from_secs(30))
        .await
        .unwrap();

    let printed = run_python(
        &python,
        BY_BROADCAST,
        &[
            ("PYRO_BROADCAST_ADDRS", "127.255.255.255".to_owned()),
            ("PYRO_NS_BCPORT", discovery.port().to_string()),
            // Nothing listens there: only the broadcast finds the nameserver.
            ("PYRO_NS_PORT", "1".to_owned()),
            ("SHOP_URI", shop.to_string()),
            ("COUNTER_URI", counter.to_string()),
        ],
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        out["ns_uri"],
        format!("PYRO:Pyro.NameServer@127.0.0.1:{ns_port}"),
        "{out}"
    );
    assert_eq!(out["notes"], serde_json::json!(["one", "two"]), "{out}");
    assert_eq!(out["sessions"], serde_json::json!([1, 2, 1, 3]), "{out}");
    assert_eq!(out["deadline"][0], "Pyro5.errors.TimeoutError", "{out}");
    assert_eq!(
        out["overwrite_owned"][0], "Pyro5.errors.NamingError",
        "{out}"
    );
    assert!(
        out["overwrite_owned"][1]
            .as_str()
            .unwrap()
            .contains("owned"),
        "{out}"
    );
    assert_eq!(out["remove_owned"][0], "Pyro5.errors.NamingError", "{out}");
    assert_eq!(out["owned_still"], shop.to_string(), "{out}");
    drop(lease);
}

const PYTHON_DAEMON: &str = r#"
import Pyro5.api
@Pyro5.api.expose
class Shop:
    def price(self, item, quantity):
        if item != "apple":
            raise ValueError("no price for " + item)
        return 0.5 * quantity
    def echo(self, value):
        return value
daemon = Pyro5.api.Daemon(host="127.0.0.1")
print(daemon.register(Shop, "shop"), flush=True)
daemon.requestLoop()
"#;

async fn rust_proxy_calls_python(format: Format) {
    let test = format!("rust_proxy_calls_python ({format:?})");
    let Some(python) = python_or_skip(&test) else {
        return;
    };
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", PYTHON_DAEMON])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let uri: Uri = within("the Python daemon's URI", lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let config = Config::default().pyro5_format(Some(format));
    let shop = ShopProxy::with_config(uri.clone(), config.clone());
    assert_eq!(shop.price("apple".into(), 3).await.unwrap(), 1.5);
    let Err(CallError::Rpc(Error::PythonException(raised))) = shop.price("fig".into(), 1).await
    else {
        panic!("expected the Python exception");
    };
    assert_eq!(raised.class, "builtins.ValueError");
    assert_eq!(raised.message(), "no price for fig");
    assert!(
        raised.traceback().contains("Traceback"),
        "{}",
        raised.traceback()
    );
    // Dynamic calls, with a struct that travels as a dict and back.
    let dynamic = Proxy::with_config(uri, config);
    let order = Order {
        item: "fig".into(),
        quantity: 2,
    };
    let echoed: Order = dynamic.call("echo", &(order.clone(),)).await.unwrap();
    assert_eq!(echoed, order);
    assert!(dynamic.ping().await.is_ok());
    let unknown = dynamic.call::<_, u32>("nothing", &()).await.unwrap_err();
    assert!(
        matches!(&unknown, Error::PythonException(PyException { class, .. }) if class == "builtins.AttributeError"),
        "{unknown}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_rust_proxy_calls_a_python_object_in_serpent() {
    rust_proxy_calls_python(Format::Serpent).await;
}

#[tokio::test]
async fn a_rust_proxy_calls_a_python_object_in_json() {
    rust_proxy_calls_python(Format::Json).await;
}

// Hostile bytes on the Pyro5 path; no Python needed.

fn frame(msg_type: u8, serializer: u8, flags: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut frame = b"PYRO\x01\xf6".to_vec();
    frame.extend_from_slice(&[msg_type, serializer]);
    frame.extend_from_slice(&flags.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&[0; 16]);
    frame.extend_from_slice(&[0, 0, 0x4d, 0xc5]);
    frame.extend_from_slice(data);
    frame
}

/// Sends `bytes` and reads until the daemon closes: everything it sent.
async fn exchange(daemon: &Daemon, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    within("the daemon closing", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    answer
}

const SERPENT_CONNECT: &[u8] = b"# serpent utf-8 python3.2\n{'handshake':'hello','object':'shop'}";

/// A daemon serving the stall as `shop`, configured by `config`.
async fn shop_daemon(config: Config) -> Daemon {
    let daemon = Daemon::bind_with("127.0.0.1:0", config).await.unwrap();
    daemon
        .register_as("shop", ShopSkeleton::new(Stall::default()))
        .unwrap();
    daemon
}

/// A raw connection to `daemon` that has sent a serpent CONNECT for `shop`.
async fn opened(daemon: &Daemon) -> TcpStream {
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(&frame(1, 1, 0, 0, SERPENT_CONNECT))
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn hostile_pyro5_openings_are_refused_and_closed() {
    let daemon = shop_daemon(Config::default()).await;
    // An invoke before the handshake: a CONNECTFAIL (type 3) that says why.
    let answer = exchange(&daemon, &frame(4, 1, 0, 0, b"x")).await;
    assert_eq!(answer[6], 3, "{answer:?}");
    assert!(String::from_utf8_lossy(&answer[40..]).contains("CONNECT"));
    // An unknown object.
    let connect = b"# serpent utf-8 python3.2\n{'handshake':'hello','object':'nobody'}";
    let answer = exchange(&daemon, &frame(1, 1, 0, 7, connect)).await;
    assert_eq!(
        (answer[6], u16::from_be_bytes([answer[10], answer[11]])),
        (3, 7)
    );
    assert!(String::from_utf8_lossy(&answer[40..]).contains("unknown object"));
    // msgpack, which we do not speak.
    let answer = exchange(&daemon, &frame(1, 4, 0, 0, SERPENT_CONNECT)).await;
    assert!(String::from_utf8_lossy(&answer[40..]).contains("PYRO_SERIALIZER"));
    // A header announcing 1 GiB, and a wrong magic: closed without an answer.
    let mut huge = frame(1, 1, 0, 0, b"");
    huge[12..16].copy_from_slice(&(1u32 << 30).to_be_bytes());
    assert!(exchange(&daemon, &huge).await.is_empty());
    let mut bad_magic = frame(1, 1, 0, 0, SERPENT_CONNECT);
    bad_magic[39] = 0;
    assert!(exchange(&daemon, &bad_magic).await.is_empty());
    // A handshake that is not serpent.
    let answer = exchange(&daemon, &frame(1, 1, 0, 0, b"{'object': __import__('os')}")).await;
    assert!(String::from_utf8_lossy(&answer[40..]).contains("invalid handshake"));
}

#[tokio::test]
async fn hostile_pyro5_calls_get_exceptions_and_the_connection_goes_on() {
    let daemon = shop_daemon(Config::default()).await;
    let mut stream = opened(&daemon).await;
    let read_one = async |stream: &mut TcpStream| {
        let mut header = [0u8; 40];
        stream.read_exact(&mut header).await.unwrap();
        let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]) as usize;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
        (header, String::from_utf8_lossy(&body).into_owned())
    };
    let (header, _) = within("CONNECTOK", read_one(&mut stream)).await;
    assert_eq!(header[6], 2);
    let calls: [&[u8]; 4] = [
        b"# serpent utf-8 python3.2\n('shop','price',('apple',",
        b"# serpent utf-8 python3.2\n('shop','price',(",
        b"# serpent utf-8 python3.2\n('shop','_private',(),{})",
        b"# serpent utf-8 python3.2\n('nobody','price',(),{})",
    ];
    let deep = format!(
        "# serpent utf-8 python3.2\n('shop','price',({}{}),{{}})",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    for (seq, body) in calls.iter().copied().chain([deep.as_bytes()]).enumerate() {
        let seq = seq as u16 + 1;
        stream.write_all(&frame(4, 1, 0, seq, body)).await.unwrap();
        let (header, body) = within("the exception", read_one(&mut stream)).await;
        assert_eq!(header[6], 5, "{body}");
        assert_eq!(u16::from_be_bytes([header[10], header[11]]), seq);
        assert_eq!(u16::from_be_bytes([header[8], header[9]]) & 1, 1, "{body}");
        assert!(body.contains("'__exception__':True"), "{body}");
    }
    // The connection still serves a good call.
    let good = b"# serpent utf-8 python3.2\n('shop','price',('apple',2),{})";
    stream.write_all(&frame(4, 1, 0, 99, good)).await.unwrap();
    let (header, body) = within("the result", read_one(&mut stream)).await;
    assert_eq!(
        (header[6], u16::from_be_bytes([header[8], header[9]])),
        (5, 0)
    );
    assert!(body.ends_with("\n1.0"), "{body}");
}

#[tokio::test]
async fn a_daemon_that_requires_a_secret_refuses_pyro5_clients_and_one_without_pyro5_takes_them_for_ours()
 {
    let secret = Secret::new("a secret of sixteen bytes or more").unwrap();
    let strict = shop_daemon(Config::default().secret(Some(secret))).await;
    let answer = exchange(&strict, &frame(1, 1, 0, 0, SERPENT_CONNECT)).await;
    assert_eq!(answer[6], 3);
    assert!(String::from_utf8_lossy(&answer[40..]).contains("shared secret"));

    let without = shop_daemon(Config::default().serve_pyro5(false)).await;
    // Taken for our own protocol: a bad magic, answered with our own Close frame.
    let answer = exchange(&without, &frame(1, 1, 0, 0, SERPENT_CONNECT)).await;
    assert!(answer.starts_with(b"ROBJ"), "{answer:?}");
}

#[tokio::test]
async fn an_idle_pyro5_connection_is_closed_and_a_silent_one_never_opens() {
    let config = Config::default()
        .idle_timeout(Some(Duration::from_millis(200)))
        .handshake_timeout(Duration::from_millis(200));
    let daemon = shop_daemon(config).await;
    // Opened, then quiet: closed after the idle timeout.
    let mut stream = opened(&daemon).await;
    let mut answer = Vec::new();
    within("the idle close", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer[6], 2, "CONNECTOK first");
    // Only the tag, then nothing: closed at the handshake deadline.
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(b"PYRO").await.unwrap();
    let mut answer = Vec::new();
    within("the handshake deadline", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(answer.is_empty());
}

/// A client that speaks Pyro5 correctly but means harm, against a nameserver with a secret:
/// it cannot take over a worker's name, empty the registry, or freeze the nameserver with a
/// pattern, and honest lookups go on. Played by our own Pyro5 proxy, so no Python is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_pyro5_client_cannot_hijack_empty_or_freeze_the_nameserver() {
    let secret = Secret::new("the operators' secret, sixteen bytes at least").unwrap();
    let mut options = Options::loopback(0);
    options.config.secret = Some(secret.clone());
    options.query_budget = Duration::from_millis(300);
    options.limits.max_registrations_per_address = 100_000;
    let ns = nameserver::start(options).await.unwrap();
    let ns_port = ns.daemon().local_addr().unwrap().port();
    let daemon = Daemon::bind("127.0.0.1:0").await.unwrap();
    let worker = daemon
        .register_as("shop", ShopSkeleton::new(Stall::default()))
        .unwrap();
    let mut operator = Config::default().secret(Some(secret));
    operator.nameserver = NameServerConfig::at("127.0.0.1", ns_port);
    let names = locate_ns(&operator).await.unwrap();
    let long = "a".repeat(200);
    let count = rpc_tests::scaled(20_000, 5_000);
    let registering = (0..count).map(|i| {
        names.register(
            format!("{long}.{i}"),
            worker.clone(),
            false,
            Default::default(),
        )
    });
    for registered in futures_util::future::join_all(registering).await {
        registered.unwrap();
    }
    names
        .register("MyWorker".into(), worker.clone(), false, Default::default())
        .await
        .unwrap();

    let attacker = Proxy::with_config(
        ns.uri().clone(),
        Config::default().pyro5_format(Some(Format::Serpent)),
    );
    let naming_error = |outcome: Result<PyValue, Error>| match outcome {
        Err(Error::PythonException(raised)) if raised.class == "Pyro5.errors.NamingError" => {
            raised.message()
        }
        other => panic!("expected a NamingError, got {other:?}"),
    };
    let hijack = attacker
        .call::<_, PyValue>("register", &("MyWorker", "PYRO:evil@127.0.0.1:1"))
        .await;
    assert!(naming_error(hijack).contains("secret"));
    let wipe = attacker.call::<_, PyValue>("remove", &((), "")).await;
    assert!(naming_error(wipe).contains("secret"));
    // A pattern that takes seconds over these names is stopped at the budget, while a lookup
    // beside it is answered.
    let hostile = attacker.call::<_, PyValue>("list", &((), "(?:a|aa){1,100}b"));
    let honest = Proxy::with_config(
        ns.uri().clone(),
        Config::default().pyro5_format(Some(Format::Json)),
    );
    let lookup = honest.call::<_, PyValue>("lookup", &("MyWorker",));
    let (hostile, found) = within("the hostile query and a lookup", async {
        tokio::join!(hostile, lookup)
    })
    .await;
    assert!(naming_error(hostile).contains("budget"));
    let found = found.unwrap();
    assert_eq!(
        found
            .get("state")
            .and_then(PyValue::items)
            .map(|state| state[1].clone()),
        Some(PyValue::str("shop"))
    );
    assert_eq!(names.lookup("MyWorker".into()).await.unwrap(), worker);
}
