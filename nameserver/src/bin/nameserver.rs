//! The `nameserver` command: runs a nameserver, or talks to one (as `pyro5-ns` and
//! `pyro5-nsc` do for Pyro).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nameserver::Options;
use rpc_core::{
    Config, DEFAULT_BROADCAST_PORT, DEFAULT_NS_PORT, HostPort, NameFilter, NameServerProxy, Secret,
    TlsClient, TlsServer, Uri, locate_ns,
};

/// Run an rpc-core nameserver, or query and change the one on your network.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a nameserver until Ctrl-C or SIGTERM.
    Serve {
        /// Host or address to listen on; `0.0.0.0` serves every interface (and answers
        /// discovery on all of them), a loopback address serves this machine only.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// TCP port of the nameserver.
        #[arg(long, default_value_t = DEFAULT_NS_PORT)]
        port: u16,
        /// UDP port that answers broadcast discovery.
        #[arg(long, default_value_t = DEFAULT_BROADCAST_PORT)]
        bcport: u16,
        /// Do not answer broadcast discovery (it never runs on loopback anyway).
        #[arg(long)]
        no_broadcast: bool,
        /// Host to put in the nameserver's URI instead of the one chosen automatically.
        #[arg(long)]
        advertise: Option<String>,
        /// A file holding the admin token, which may change or remove any name (read from
        /// the environment variable RPC_NS_ADMIN_TOKEN otherwise; never from the command
        /// line, which `ps` shows).
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
        /// Keep the registry in this file (a redb database, created if missing), so that it
        /// survives a restart or a crash; every change is on disk before it is acknowledged.
        /// `etcd` keeps it in the etcd cluster of --etcd-endpoints instead, shared with every
        /// nameserver on it (write `./etcd` for a file of that name). Without it the registry
        /// lives in memory only.
        #[arg(long, value_name = "PATH|etcd")]
        store: Option<PathBuf>,
        /// With `--store etcd`: the client URLs of the cluster's members, comma-separated.
        #[arg(
            long,
            value_name = "URL,...",
            value_delimiter = ',',
            env = "RPC_ETCD_ENDPOINTS"
        )]
        etcd_endpoints: Vec<String>,
        /// With `--store etcd`: the prefix of the registry's keys; nameservers with the same
        /// prefix share one registry.
        #[arg(long, value_name = "PREFIX", default_value = "rpc-nameserver/")]
        etcd_prefix: String,
        /// With `--store etcd`: how long a request to etcd may take, failing over from member
        /// to member, before a change is refused as the cluster having lost its quorum
        /// (default 5).
        #[arg(long, value_name = "SECONDS")]
        etcd_timeout: Option<f64>,
        /// How long one query (`list`, `list --regex`, `yplookup`, `remove` by pattern) may
        /// scan the registry before it fails as too slow.
        #[arg(long, value_name = "SECONDS", default_value_t = nameserver::DEFAULT_QUERY_BUDGET.as_secs_f64())]
        query_budget: f64,
        /// A file holding the deployment's shared secret (else $RPC_SECRET_FILE, else
        /// $RPC_SECRET; never the command line, which `ps` shows). With it, only clients that
        /// prove the secret may register, remove or change metadata, and discovery answers
        /// carry a tag such clients check.
        #[arg(long, value_name = "PATH")]
        secret_file: Option<PathBuf>,
        /// With a secret: lookups need it too (by default anyone may look names up).
        #[arg(long)]
        lookups_need_auth: bool,
        /// Serve TLS only, with this certificate chain (PEM, the nameserver's own first).
        #[arg(long, value_name = "PATH", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "PATH", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// With TLS: require client certificates signed by these roots (PEM): mutual TLS.
        #[arg(long, value_name = "PATH", requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
    },
    /// List registered names, optionally those starting with PREFIX.
    List {
        /// Only names starting with this.
        prefix: Option<String>,
        /// Only names matching this regular expression at their start.
        #[arg(long, conflicts_with = "prefix")]
        regex: Option<String>,
        #[command(flatten)]
        ns: NsAddress,
    },
    /// Print every instance registered under NAME, one per line, with its metadata.
    Lookup {
        /// The name to look up.
        name: String,
        #[command(flatten)]
        ns: NsAddress,
    },
    /// Register NAME for URI.
    Register {
        /// The name to register.
        name: String,
        /// The object's `PYRO:` URI.
        uri: Uri,
        /// Refuse to overwrite an existing registration.
        #[arg(long, conflicts_with_all = ["ttl", "add"])]
        safe: bool,
        /// Add URI as one more instance of NAME, keeping the instances it has (several
        /// workers under one name), instead of replacing them.
        #[arg(long)]
        add: bool,
        /// A metadata tag; repeat for several.
        #[arg(long = "meta")]
        metadata: Vec<String>,
        /// Let the registration expire after this many seconds unless registered again
        /// (a lease), owned by the token in --token-file or RPC_NS_TOKEN (a new one is made
        /// and printed if neither is given); without it the registration is permanent and
        /// unowned, as in Pyro.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
        /// A file holding the owner token (RPC_NS_TOKEN otherwise).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        ns: NsAddress,
    },
    /// Remove NAME (or, with --prefix or --regex, every name that matches; with --uri, one
    /// instance of NAME).
    Remove {
        /// The name, prefix or regular expression.
        pattern: String,
        /// Treat the pattern as a prefix.
        #[arg(long, conflicts_with_all = ["regex", "uri"])]
        prefix: bool,
        /// Treat the pattern as a regular expression anchored at the start.
        #[arg(long, conflicts_with = "uri")]
        regex: bool,
        /// Remove only this instance of NAME, leaving its others.
        #[arg(long)]
        uri: Option<Uri>,
        /// A file holding an owner or admin token (RPC_NS_TOKEN otherwise), to remove owned
        /// names too.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        ns: NsAddress,
    },
    /// Check that the nameserver answers.
    Ping {
        #[command(flatten)]
        ns: NsAddress,
    },
}

/// Where the nameserver is; without these, it is found by broadcast, then on localhost.
#[derive(Debug, Args)]
struct NsAddress {
    /// The nameserver's host (default: $RPC_NS_HOST, else broadcast discovery, else localhost).
    #[arg(long = "ns-host")]
    host: Option<String>,
    /// The nameserver's port (default: $RPC_NS_PORT, else 9090).
    #[arg(long = "ns-port")]
    port: Option<u16>,
    /// Another nameserver of the same registry (`host[:port]`), tried in order when those
    /// before it cannot be reached; may be given several times.
    #[arg(long = "ns-fallback", value_name = "HOST[:PORT]", requires = "host")]
    fallbacks: Vec<HostPort>,
    /// A file holding the deployment's shared secret (else $RPC_SECRET_FILE, else
    /// $RPC_SECRET): needed to change names on a nameserver that has one.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Talk TLS to the nameserver, trusting these roots (PEM).
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<PathBuf>,
    /// With --tls-ca: present this certificate chain (PEM), for mutual TLS.
    #[arg(long, value_name = "PATH", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl NsAddress {
    async fn locate(&self) -> anyhow::Result<NameServerProxy> {
        let mut config = Config::default();
        config.nameserver.host = self.host.clone();
        config.nameserver.port = self.port;
        config.nameserver.fallbacks = self.fallbacks.clone();
        config.secret = shared_secret(self.secret_file.as_deref())?;
        if let Some(roots) = &self.tls_ca {
            let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
            config.tls_client = Some(TlsClient::from_pem_files(roots, identity)?);
        }
        Ok(locate_ns(&config).await?)
    }
}

/// The shared secret in `file`, or else the one the environment gives, if any.
fn shared_secret(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    Ok(match file {
        Some(path) => Some(Secret::from_file(path)?),
        None => Secret::from_env()?,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A registration as the CLI prints it: URI, tags, the lease's time left, whether owned.
fn described(registration: &rpc_core::Registration) -> String {
    let mut text = format!("{}{}", registration.uri, tags(&registration.metadata));
    if let Some(left) = registration.lease {
        text.push_str(&format!(" (lease: {:.1} s left)", left.as_secs_f64()));
    }
    if registration.owned {
        text.push_str(" (owned)");
    }
    text
}

/// A token from `file` (its first line), or else from the environment variable `variable`.
fn token(file: Option<PathBuf>, variable: &str) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_owned();
        anyhow::ensure!(!token.is_empty(), "{} holds no token", path.display());
        return Ok(Some(token));
    }
    Ok(std::env::var(variable)
        .ok()
        .filter(|token| !token.is_empty()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour for a person at a terminal, plain text for a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Serve {
            host,
            port,
            bcport,
            no_broadcast,
            advertise,
            admin_token_file,
            store,
            etcd_endpoints,
            etcd_prefix,
            etcd_timeout,
            query_budget,
            secret_file,
            lookups_need_auth,
            tls_cert,
            tls_key,
            tls_client_ca,
        } => {
            let mut options = Options::default();
            if let (Some(chain), Some(key)) = (&tls_cert, &tls_key) {
                let server = TlsServer::from_pem_files(chain, key, tls_client_ca.as_deref())?;
                options.config.tls_server = Some(server);
            }
            options.config.secret = shared_secret(secret_file.as_deref())?;
            options.lookups_need_auth = lookups_need_auth;
            options.query_budget = std::time::Duration::try_from_secs_f64(query_budget)
                .map_err(|_| anyhow::anyhow!("--query-budget takes a number of seconds"))?;
            if store.as_deref() == Some(std::path::Path::new("etcd")) {
                options = in_etcd(options, etcd_endpoints, etcd_prefix, etcd_timeout)?;
            } else if let Some(path) = store {
                let opened = nameserver::RedbStore::open(&path).map_err(|error| {
                    anyhow::Error::new(error).context(format!("cannot open {}", path.display()))
                })?;
                options.store = Some(std::sync::Arc::new(opened));
            }
            options.admin_token = token(admin_token_file, "RPC_NS_ADMIN_TOKEN")?;
            options.host = host;
            options.port = port;
            options.broadcast = !no_broadcast;
            options.broadcast_port = bcport;
            options.config.advertise_host = advertise;
            let ns = nameserver::start(options).await?;
            println!("nameserver running at {}", ns.uri());
            if let Some(discovery) = ns.discovery_addr() {
                println!("answering broadcast discovery on udp {discovery}");
            }
            ns.run_until(stop_signal()).await;
            println!("nameserver stopped");
        }
        Command::List { prefix, regex, ns } => {
            let filter = match regex {
                Some(pattern) => NameFilter::Regex(pattern),
                None => NameFilter::Prefix(prefix.unwrap_or_default()),
            };
            // Page by page, so a registry of any size can be listed.
            let names = ns.locate().await?;
            let mut after = None;
            loop {
                let page = names.list_page(filter.clone(), after, 1000).await?;
                for (name, instances) in &page.entries {
                    for registration in instances {
                        println!("{name} --> {}", described(registration));
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Command::Lookup { name, ns } => {
            for registration in ns.locate().await?.lookup_all(name).await? {
                println!("{}", described(&registration));
            }
        }
        Command::Register {
            name,
            uri,
            safe,
            add,
            metadata,
            ttl,
            token_file,
            ns,
        } => {
            let names = ns.locate().await?;
            let metadata = metadata.into_iter().collect();
            let ttl = ttl
                .map(|seconds| {
                    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| {
                        anyhow::anyhow!("--ttl takes a number of seconds, not {seconds}")
                    })
                })
                .transpose()?;
            match ttl {
                _ if add => {
                    let owner = token(token_file, "RPC_NS_TOKEN")?;
                    names
                        .register_instance(name.clone(), uri.clone(), metadata, ttl, owner)
                        .await?;
                    println!("added {uri} to {name}");
                }
                Some(ttl) => {
                    let owner = match token(token_file, "RPC_NS_TOKEN")? {
                        Some(owner) => owner,
                        None => {
                            let owner = rpc_core::new_owner_token();
                            println!("owner token (keep it to renew or remove {name}): {owner}");
                            owner
                        }
                    };
                    names
                        .register_lease(name.clone(), uri.clone(), metadata, ttl, owner)
                        .await?;
                    let seconds = ttl.as_secs_f64();
                    println!("registered {name} --> {uri} for {seconds} s");
                }
                None => {
                    names
                        .register(name.clone(), uri.clone(), safe, metadata)
                        .await?;
                    println!("registered {name} --> {uri}");
                }
            }
        }
        Command::Remove {
            pattern,
            prefix,
            regex,
            uri,
            token_file,
            ns,
        } => {
            let names = ns.locate().await?;
            let token = token(token_file, "RPC_NS_TOKEN")?;
            if let Some(uri) = uri {
                let removed = names.remove_instance(pattern, uri, token).await?;
                println!("removed {removed} instance(s)");
                return Ok(());
            }
            let filter = if regex {
                NameFilter::Regex(pattern)
            } else if prefix {
                NameFilter::Prefix(pattern)
            } else {
                NameFilter::Name(pattern)
            };
            let removed = match token {
                Some(token) => names.remove_owned(filter, token).await?,
                None => names.remove(filter).await?,
            };
            println!("removed {removed} name(s)");
        }
        Command::Ping { ns } => {
            let names = ns.locate().await?;
            let elapsed = names.proxy().ping().await?;
            names.ping().await?;
            println!(
                "nameserver at {} answered in {elapsed:?}",
                names.proxy().uri()
            );
        }
    }
    Ok(())
}

fn tags(metadata: &BTreeSet<String>) -> String {
    if metadata.is_empty() {
        String::new()
    } else {
        format!(
            "  metadata: {}",
            metadata.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// `options` with the registry in the etcd cluster at `endpoints`.
#[cfg(feature = "etcd")]
fn in_etcd(
    mut options: Options,
    endpoints: Vec<String>,
    prefix: String,
    timeout: Option<f64>,
) -> anyhow::Result<Options> {
    if endpoints.is_empty() {
        anyhow::bail!("--store etcd needs --etcd-endpoints (or RPC_ETCD_ENDPOINTS)");
    }
    let mut etcd = nameserver::etcd::EtcdOptions::new(endpoints);
    etcd.prefix = prefix;
    if let Some(timeout) = timeout {
        etcd.request_timeout = std::time::Duration::try_from_secs_f64(timeout)
            .map_err(|_| anyhow::anyhow!("--etcd-timeout takes a number of seconds"))?;
    }
    options.etcd = Some(etcd);
    Ok(options)
}

/// Without the `etcd` feature there is no etcd backend to start.
#[cfg(not(feature = "etcd"))]
fn in_etcd(_: Options, _: Vec<String>, _: String, _: Option<f64>) -> anyhow::Result<Options> {
    anyhow::bail!(
        "this nameserver was built without etcd support; build it with \
         `cargo build -p nameserver --features etcd` (which needs protoc)"
    )
}
