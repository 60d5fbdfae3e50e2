//! Helpers shared by the tests that run the `nameserver` binary.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Stdio};

use rpc_core::{Config, NameServerConfig, NameServerProxy, locate_ns};

/// The nameserver binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_nameserver");

/// A nameserver process, killed when dropped, so that a failing test leaves none behind.
#[derive(Debug)]
pub(crate) struct Served(Child);

impl Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // It may have exited already; then there is nothing to do.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nameserver process on a free loopback port, started with `serve` and `args`, and that
/// port (the one its first line of output names).
pub(crate) fn serve(args: &[&std::ffi::OsStr]) -> (Served, u16) {
    let mut child = Command::new(BINARY)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the nameserver");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"));
    (Served(child), port)
}

/// A proxy for the nameserver on `port`.
pub(crate) async fn client(port: u16) -> NameServerProxy {
    let mut config = Config::default();
    config.nameserver = NameServerConfig::at("127.0.0.1", port);
    locate_ns(&config).await.unwrap()
}

/// Runs the client command `args` against the nameserver on `port`, with no secret from the
/// environment; whether it succeeded, and what it printed.
pub(crate) fn command(port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(args)
        .args(["--ns-host", "127.0.0.1", "--ns-port", &port.to_string()])
        .env_remove("RPC_SECRET")
        .env_remove("RPC_SECRET_FILE")
        .output()
        .expect("running the client command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
