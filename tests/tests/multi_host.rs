//! A real multi-host test: a nameserver, a worker and a client, each in its own Linux network
//! namespace on a bridge that the test creates and removes. The client finds the nameserver by
//! broadcast alone, looks the worker up by name and calls it; then the worker is killed and the
//! client's next call fails with a typed error, not a hang.
//!
//! The namespaces use the private range 10.203.0.0/24, which exists only inside them. Each role
//! is this test binary, run again inside its namespace with `RPC_MULTI_HOST_ROLE` set. The test
//! skips where namespaces cannot be created (not root, no `ip`), except under CI, where it fails.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rpc_core::{Config, Daemon, Error, Proxy};
use rpc_tests::{CalcImpl, CalcProxy, CalcSkeleton};

const ROLE: &str = "RPC_MULTI_HOST_ROLE";
const SUBNET_BROADCAST: &str = "10.203.0.255";
const WORKER_NAME: &str = "netns.worker";

/// How long any step may take before the test fails; bounds a hang.
const STEP: Duration = Duration::from_secs(20);

#[test]
fn nameserver_worker_and_client_on_three_hosts() {
    let network = match Network::create() {
        Ok(network) => network,
        Err(reason) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the multi-host test must run in CI, but network namespaces are unavailable: {reason}"
            );
            eprintln!("SKIPPED nameserver_worker_and_client_on_three_hosts: {reason}");
            return;
        }
    };
    let mut nameserver = network.spawn("nameserver", 1);
    nameserver.expect("READY");
    let mut worker = network.spawn("worker", 2);
    let registered = worker.expect("REGISTERED");
    assert!(
        registered.contains("PYRO:calc@10.203.0.2:"),
        "the worker advertises its own address: {registered}"
    );
    let mut client = network.spawn("client", 3);
    let found = client.expect("FOUND");
    assert!(
        found.contains("PYRO:Pyro.NameServer@10.203.0.1:9090"),
        "found by broadcast: {found}"
    );
    let called = client.expect("CALLED");
    assert!(called.ends_with("5"), "{called}");

    worker.kill();
    client.send("again");
    let after = client.expect("AFTER-KILL");
    assert!(
        after.contains("communication error"),
        "a typed error, not a hang: {after}"
    );
    client.expect("DONE");
}

/// What each role does inside its namespace. Run only by the test above, never on its own.
#[test]
#[ignore = "a role that nameserver_worker_and_client_on_three_hosts runs inside a network namespace"]
fn multi_host_role() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match std::env::var(ROLE).as_deref() {
        Ok("nameserver") => runtime.block_on(run_nameserver()),
        Ok("worker") => runtime.block_on(run_worker()),
        Ok("client") => runtime.block_on(run_client()),
        other => panic!("{ROLE} must name a role, found {other:?}"),
    }
}

fn discovery_only() -> Config {
    let mut config = Config::default();
    config.nameserver.broadcast_addresses = Some(vec![SUBNET_BROADCAST.parse().unwrap()]);
    config
}

async fn run_nameserver() {
    let mut options = nameserver::Options::default();
    options.host = "0.0.0.0".into();
    let ns = nameserver::start(options).await.unwrap();
    say(&format!("READY {}", ns.uri()));
    wait_for_stdin_to_close().await;
}

async fn run_worker() {
    let daemon = Daemon::bind("0.0.0.0:0").await.unwrap();
    let uri = daemon
        .register_as("calc", CalcSkeleton::new(CalcImpl::default()))
        .unwrap();
    let names = rpc_core::locate_ns(&discovery_only()).await.unwrap();
    names
        .register(WORKER_NAME.into(), uri.clone(), false, Default::default())
        .await
        .unwrap();
    say(&format!("REGISTERED {uri}"));
    wait_for_stdin_to_close().await;
}

async fn run_client() {
    let config = discovery_only();
    let names = rpc_core::locate_ns(&config).await.unwrap();
    say(&format!("FOUND {}", names.proxy().uri()));
    let uri = format!("PYRONAME:{WORKER_NAME}").parse().unwrap();
    let calc = CalcProxy::from_proxy(Proxy::with_config(uri, config).with_timeout(STEP));
    say(&format!("CALLED {}", calc.add(2, 3).await.unwrap()));
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    assert_eq!(line.await.unwrap().unwrap().trim(), "again");
    let started = std::time::Instant::now();
    let outcome: Result<u64, Error> = calc.add(2, 3).await;
    let kind = match &outcome {
        Err(error) if error.is_communication() => "communication error",
        Err(_) => "other error",
        Ok(_) => "success",
    };
    say(&format!(
        "AFTER-KILL {kind} after {:?}: {outcome:?}",
        started.elapsed()
    ));
    say("DONE");
}

fn say(line: &str) {
    println!("ROLE: {line}");
}

async fn wait_for_stdin_to_close() {
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
}

/// Three hosts and a bridge, each a network namespace; removed on drop.
struct Network {
    prefix: String,
}

impl Network {
    fn create() -> Result<Network, String> {
        let prefix = format!("rpct{}", std::process::id());
        let network = Network { prefix };
        let bridge = network.namespace("br");
        network.ip(&["netns", "add", &bridge])?;
        network.ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        network.ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        for host in 1..=3 {
            let namespace = network.namespace(&format!("h{host}"));
            let port = format!("p{host}");
            network.ip(&["netns", "add", &namespace])?;
            network.ip(&[
                "-n", &namespace, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &bridge,
            ])?;
            network.ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("10.203.0.{host}/24"),
                "dev",
                "eth0",
            ])?;
            network.ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
            network.ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            network.ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
            network.ip(&["-n", &bridge, "link", "set", &port, "up"])?;
        }
        Ok(network)
    }

    fn namespace(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let output = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `ip`: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Runs `role` on host `host`: this test binary, again, inside that host's namespace.
    fn spawn(&self, role: &str, host: u32) -> RoleProcess {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(&format!("h{host}"))])
            .arg(exe)
            .args([
                "multi_host_role",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env_remove("RPC_NS_HOST")
            .env_remove("RPC_NS_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                // The test harness may have printed `test multi_host_role ... ` on the same line.
                if let Some((_, said)) = line.split_once("ROLE: ")
                    && lines_tx.send(said.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        RoleProcess {
            role: role.to_owned(),
            child,
            stdin,
            lines,
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for name in ["h1", "h2", "h3", "br"] {
            let _ = self.ip(&["netns", "del", &self.namespace(name)]);
        }
    }
}

/// One role's process; killed on drop.
struct RoleProcess {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl RoleProcess {
    /// The next line the role says, which must start with `word`.
    fn expect(&mut self, word: &str) -> String {
        let line = self.lines.recv_timeout(STEP).unwrap_or_else(|e| {
            panic!(
                "the {} said nothing within {STEP:?} ({e}); expected {word}",
                self.role
            )
        });
        eprintln!("{}: {line}", self.role);
        assert!(
            line.starts_with(word),
            "the {} said `{line}`, expected {word}",
            self.role
        );
        line
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        // Closing stdin ends the servers' wait; killing covers a role that hangs.
        drop(self.stdin.take());
        self.kill();
    }
}
