//! A real etcd cluster on loopback for the tests of the registry on etcd: Debian's
//! `etcd-server` (3.4), each member with its own data directory under a temporary folder,
//! stopped and removed when the cluster is dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a member may take to say it serves clients.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The `etcd` program, if this machine has one that runs.
pub fn etcd_program() -> Result<PathBuf, String> {
    let program = PathBuf::from(std::env::var_os("RPC_ETCD").unwrap_or_else(|| "etcd".into()));
    let output = Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            format!(
                "`{}` cannot run ({error}); install Debian's etcd-server",
                program.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!("`{} --version` failed", program.display()));
    }
    Ok(program)
}

/// The `etcd` program, or `None` after saying SKIPPED; under `CI=true` a missing etcd fails
/// the test instead.
///
/// # Panics
///
/// When `CI=true` and there is no etcd.
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    crate::or_skip(test, "etcd", etcd_program())
}

/// One member of a cluster.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Child>,
}

/// A three-member etcd cluster on loopback ports.
#[derive(Debug)]
pub struct EtcdCluster {
    program: PathBuf,
    dir: PathBuf,
    members: Vec<Member>,
    initial_cluster: String,
}

/// A loopback TCP port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

impl EtcdCluster {
    /// Starts three members with `program` and waits until each serves clients.
    ///
    /// # Panics
    ///
    /// If a member does not start.
    pub fn start(program: PathBuf) -> EtcdCluster {
        let dir =
            std::env::temp_dir().join(format!("rpc-etcd-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let members: Vec<Member> = (1..=3)
            .map(|n| Member {
                name: format!("n{n}"),
                client_port: free_port(),
                peer_port: free_port(),
                process: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|member| format!("{}=http://127.0.0.1:{}", member.name, member.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            program,
            dir,
            members,
            initial_cluster,
        };
        // No member says it is ready before a majority has elected a leader: start all, then
        // wait for each.
        let readiness: Vec<_> = (0..3).map(|n| cluster.spawn(n)).collect();
        for ready in readiness {
            ready
                .recv_timeout(READY_WITHIN)
                .expect("an etcd member started");
        }
        cluster
    }

    /// Starts member `n` (again); the receiver hears when it serves clients.
    fn spawn(&mut self, n: usize) -> mpsc::Receiver<()> {
        let member = &self.members[n];
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let mut process = Command::new(&self.program)
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(self.dir.join(&member.name))
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "rpc-tests"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcd starts");
        let stderr = process.stderr.take().unwrap();
        let (ready, readiness) = mpsc::channel();
        // Reads the log to its end, so the member never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready to serve client requests") {
                    let _ = ready.send(());
                }
            }
        });
        self.members[n].process = Some(process);
        readiness
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|member| format!("http://127.0.0.1:{}", member.client_port))
            .collect()
    }

    /// Kills member `n` with SIGKILL and waits until it is gone.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut process) = self.members[n].process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    /// Starts killed member `n` again, from its data directory, and waits until it serves
    /// clients: once it does, the cluster it rejoined has a leader.
    ///
    /// # Panics
    ///
    /// If it does not start.
    pub fn restart(&mut self, n: usize) {
        self.spawn(n)
            .recv_timeout(READY_WITHIN)
            .expect("an etcd member restarted");
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for n in 0..self.members.len() {
            self.kill(n);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
