//! The `nameserver` binary: serve, the client commands against it, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{BINARY, command as client};

/// Bounds every wait, so a broken binary fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn serve_answer_the_client_commands_and_stop_on_sigterm() {
    // The log goes to a file, as when an operator redirects it.
    let log_path = std::env::temp_dir().join(format!("nameserver-cli-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(BINARY)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("starting the nameserver");
    let stdout = BufReader::new(server.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = lines
        .recv_timeout(PATIENCE)
        .expect("the nameserver says where it runs");
    let port: u16 = first
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{first}`"));

    let (ok, text) = client(port, &["ping"]);
    assert!(ok && text.contains("answered"), "{text}");
    let (ok, text) = client(
        port,
        &[
            "register",
            "demo.one",
            "PYRO:one@127.0.0.1:4000",
            "--meta",
            "blue",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = client(
        port,
        &["register", "demo.one", "PYRO:x@127.0.0.1:1", "--safe"],
    );
    assert!(!ok && text.contains("already registered"), "{text}");
    let (ok, text) = client(port, &["lookup", "demo.one"]);
    assert!(
        ok && text.contains("PYRO:one@127.0.0.1:4000") && text.contains("blue"),
        "{text}"
    );
    let (ok, text) = client(
        port,
        &[
            "register",
            "demo.leased",
            "PYRO:l@127.0.0.1:4001",
            "--ttl",
            "60",
        ],
    );
    assert!(
        ok && text.contains("for 60 s") && text.contains("owner token"),
        "{text}"
    );
    let (ok, text) = client(port, &["lookup", "demo.leased"]);
    assert!(ok && text.contains("PYRO:l@127.0.0.1:4001"), "{text}");
    // Operators see the lease's time left and that the name is owned.
    assert!(
        text.contains("s left)") && text.contains("(owned)"),
        "{text}"
    );
    let (ok, text) = client(port, &["list", "demo."]);
    assert!(
        ok && text.contains("demo.leased --> PYRO:l@127.0.0.1:4001 (lease: ")
            && !text.contains("demo.one --> PYRO:one@127.0.0.1:4000 (lease"),
        "{text}"
    );
    let (ok, text) = client(port, &["list", "demo."]);
    assert!(
        ok && text.contains("demo.one --> PYRO:one@127.0.0.1:4000"),
        "{text}"
    );
    // Several workers under one name: one line each, and one removed alone.
    for worker in ["PYRO:a@127.0.0.1:4100", "PYRO:b@127.0.0.1:4101"] {
        let (ok, text) = client(port, &["register", "demo.pool", worker, "--add"]);
        assert!(ok && text.contains("added"), "{text}");
    }
    let (ok, text) = client(port, &["lookup", "demo.pool"]);
    assert!(ok && text.lines().count() == 2, "{text}");
    assert!(
        text.contains("PYRO:a@") && text.contains("PYRO:b@"),
        "{text}"
    );
    let (ok, text) = client(
        port,
        &["remove", "demo.pool", "--uri", "PYRO:a@127.0.0.1:4100"],
    );
    assert!(ok && text.contains("removed 1 instance"), "{text}");
    let (ok, text) = client(port, &["lookup", "demo.pool"]);
    assert!(ok && text.trim() == "PYRO:b@127.0.0.1:4101", "{text}");
    let (ok, text) = client(port, &["remove", "demo.pool"]);
    assert!(ok && text.contains("removed 1 name"), "{text}");
    let (ok, text) = client(port, &["remove", "Pyro.NameServer"]);
    assert!(!ok && text.contains("cannot be removed"), "{text}");
    let (ok, text) = client(port, &["remove", "demo", "--prefix"]);
    assert!(
        ok && text.contains("removed 1"),
        "the owned demo.leased stays: {text}"
    );
    let (ok, text) = client(port, &["lookup", "demo.one"]);
    assert!(
        !ok && text.starts_with("error: ") && text.contains("not registered"),
        "{text}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let last = lines
        .recv_timeout(PATIENCE)
        .expect("the nameserver reports its stop");
    assert_eq!(last, "nameserver stopped");
    assert!(server.wait().unwrap().success());

    let logged = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logged.contains("register"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "colour codes in a redirected log: {logged:?}"
    );
}

#[test]
fn the_readme_synopsis_of_list_is_what_the_cli_accepts() {
    let readme = include_str!("../../README.md");
    let synopsis = readme
        .lines()
        .find(|line| line.contains("nameserver -- list"))
        .expect("the README shows `list`");
    // PREFIX and --regex are alternatives: the CLI refuses both together.
    assert!(synopsis.contains("[PREFIX | --regex RE]"), "{synopsis}");
    let output = Command::new(BINARY)
        .args(["list", "app.", "--regex", "a.*"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot be used with"),
        "{output:?}"
    );
}

#[test]
fn help_explains_every_flag_and_its_default() {
    let output = Command::new(BINARY)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--host",
        "--port",
        "--bcport",
        "--no-broadcast",
        "--advertise",
        "--store",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for default in ["[default: localhost]", "[default: 9090]", "[default: 9091]"] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
}
