//! Test hosts in Linux network namespaces that a test creates and removes, and processes
//! running roles on them.
//!
//! A role is the test binary itself, run again inside a namespace with an environment variable
//! naming the role; it reports progress as lines starting with `ROLE: ` on stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a role may stay silent before the test fails; bounds a hang.
pub const STEP: Duration = Duration::from_secs(20);

/// Network namespaces named with a per-process prefix; all removed on drop.
#[derive(Debug)]
pub struct Namespaces {
    prefix: String,
    created: Vec<String>,
}

impl Namespaces {
    /// No namespaces yet; `tag` tells this test's apart from others running at once.
    pub fn new(tag: &str) -> Namespaces {
        Namespaces {
            prefix: format!("rpc{tag}{}", std::process::id()),
            created: Vec::new(),
        }
    }

    /// The full name of the namespace called `name` here.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates the namespace `name`, with its loopback up.
    ///
    /// # Errors
    ///
    /// Why it cannot be created (not root, no `ip`, no namespace support).
    pub fn add(&mut self, name: &str) -> Result<String, String> {
        let full = self.name(name);
        ip(&["netns", "add", &full])?;
        self.created.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"])?;
        Ok(full)
    }

    /// Runs `ip` with `args`, as a setup step.
    ///
    /// # Errors
    ///
    /// What `ip` said.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        ip(args)
    }

    /// Runs the ignored test `role_test` of this test binary inside namespace `name`, with
    /// `role_env` set to `role`.
    pub fn spawn(&self, name: &str, role_test: &str, role_env: &str, role: &str) -> RoleProcess {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name(name)])
            .arg(exe)
            .args([
                role_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(role_env, role)
            .env_remove("RPC_NS_HOST")
            .env_remove("RPC_NS_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running `ip netns exec`");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                // The test harness may have printed `test name ... ` on the same line.
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

impl Namespaces {
    /// `count` hosts (`h1`, `h2`, ...) at `{subnet}.1`, `{subnet}.2`, ... (a /24) on a bridge
    /// in a namespace of its own, `br`, whose ports are `p1`, `p2`, ...; `tag` as for
    /// [`new`](Namespaces::new).
    ///
    /// # Errors
    ///
    /// Why they cannot be created (not root, no `ip`, no namespace support).
    pub fn hosts_on_a_bridge(tag: &str, subnet: &str, count: u8) -> Result<Namespaces, String> {
        let mut network = Namespaces::new(tag);
        let bridge = network.add("br")?;
        network.ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        network.ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        for host in 1..=count {
            let namespace = network.add(&format!("h{host}"))?;
            let port = format!("p{host}");
            network.ip(&[
                "-n", &namespace, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &bridge,
            ])?;
            let address = format!("{subnet}.{host}/24");
            network.ip(&["-n", &namespace, "addr", "add", &address, "dev", "eth0"])?;
            network.ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
            network.ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
            network.ip(&["-n", &bridge, "link", "set", &port, "up"])?;
        }
        Ok(network)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
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

/// Skips a test that needs namespaces, except under CI, where it must run.
///
/// # Panics
///
/// When `CI=true`.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} must run in CI, but network namespaces are unavailable: {reason}"
    );
    eprintln!("SKIPPED {test}: {reason}");
}

/// Says a line to the test that runs this role.
pub fn say(line: &str) {
    println!("ROLE: {line}");
    let _ = std::io::stdout().flush();
}

/// Reads the next line the test sends this role.
pub fn hear() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    line.trim().to_owned()
}

/// One role's process; killed on drop.
#[derive(Debug)]
pub struct RoleProcess {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl RoleProcess {
    /// The next line the role says, which must start with `word`.
    ///
    /// # Panics
    ///
    /// If the role says something else, or nothing within [`STEP`].
    pub fn expect(&mut self, word: &str) -> String {
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

    /// Sends the role a line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("writing to the role");
        stdin.flush().expect("writing to the role");
    }

    /// Kills the role's process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        // Closing stdin ends a role waiting on it; killing covers a role that hangs.
        drop(self.stdin.take());
        self.kill();
    }
}
