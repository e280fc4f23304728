//! `raftkv`: the cluster-mode server, its CLI and the local-cluster launcher.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use server::cli::{self, DEFAULT_CLUSTER};
use server::config::{Config, Overrides};

/// jemalloc, not glibc's malloc. A cache's churn — keys written, then removed by expiry
/// a TTL later, each removal freeing what one write allocated — fragments glibc's free
/// lists (`_int_malloc`, `unlink_chunk`, `malloc_consolidate` tripled in the profile), and
/// the other traffic's p99 was 1.3–2.3× that of a run without TTLs for the same CPU per
/// write; with jemalloc 0.87–1.18× (mimalloc: 1.1–2.9×). `kvbench ttl`, crates/bench/README.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A Raft-replicated key-value database"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node.
    Serve(ServeArgs),
    /// Start a local cluster (three processes, data under ./data) until Ctrl-C.
    Up {
        /// Where the nodes keep their data and logs.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Node i serves RESP on base+i-1, peers on base+100+i-1, HTTP on base+200+i-1.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// linearizable (default), lease or stale.
        #[arg(long)]
        read_mode: Option<String>,
        /// TLS on every surface, with certificates made by `raftkv certs` in
        /// <data>/certs (made there first if missing).
        #[arg(long)]
        tls: bool,
    },
    /// Make a CA and node certificates for a test or local cluster (node N's names
    /// raftkv-member-N, localhost, 127.0.0.1, ::1 and every --host).
    Certs {
        /// Directory to write ca.pem, ca.key, node-N.pem, node-N.key into.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Another name or IP address clients reach the nodes by (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Read a key.
    Get {
        key: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Write a key.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Delete keys.
    Del {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Role, term, leader and indexes of every node.
    Status {
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Move leadership to node ID (default: the most caught-up voter), without an
    /// election timeout; fails with the reason if it cannot within 5 s.
    ///
    /// Sends the admin credential from RAFTKV_ADMIN_TOKEN when it is set (required by
    /// nodes that have one configured; without one they serve loopback clients only).
    TransferLeader {
        /// The voter that is to lead.
        id: Option<u64>,
        /// Admin (HTTP) addresses of the nodes, tried in turn (the leader acts).
        #[arg(long, default_value = cli::DEFAULT_ADMIN)]
        admin: String,
        /// HTTPS, trusting the CA in this PEM file (nodes with TLS serve admin over HTTPS).
        #[arg(long)]
        cacert: Option<PathBuf>,
    },
    /// The cluster's members: list them, add, promote or remove one.
    ///
    /// Through the admin routes of the listed nodes (any node takes a change; it goes
    /// to the leader), with the admin credential from RAFTKV_ADMIN_TOKEN when it is set.
    Member {
        #[command(subcommand)]
        cmd: MemberCmd,
        /// Admin (HTTP) addresses of the nodes, tried in turn.
        #[arg(long, alias = "cluster", global = true, default_value = cli::DEFAULT_ADMIN)]
        admin: String,
        /// HTTPS, trusting the CA in this PEM file.
        #[arg(long, global = true)]
        cacert: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MemberCmd {
    /// ID, peer address, voter or learner, match index and lag (from the leader), leader.
    List,
    /// Add node ID (listening for peers at PEER_ADDR) as a learner; wait until it has
    /// caught up and promote it to voter, unless --learner. Start the node with
    /// `raftkv serve --join ADMIN_ADDR` (before or after).
    Add {
        id: u64,
        peer_addr: String,
        /// Leave it a learner (it gets the log, but votes for nothing).
        #[arg(long)]
        learner: bool,
        /// How long to wait for it to catch up before promoting, in seconds.
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Make learner ID a voter.
    Promote { id: u64 },
    /// Remove node ID (if it leads, it hands leadership over first).
    Remove { id: u64 },
}

#[derive(Args)]
struct ClusterArg {
    /// RESP addresses of the nodes to try, in order.
    #[arg(long, default_value = DEFAULT_CLUSTER)]
    cluster: String,
    /// Speak TLS, trusting the CA in this PEM file (e.g. <dir>/ca.pem of `raftkv certs`).
    #[arg(long)]
    cacert: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; the flags below override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    id: Option<u64>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Every member's peer address: ID=host:port,ID=host:port (may include this node).
    /// Bootstraps only an empty data directory; after that a hint for finding peers.
    /// `--initial-cluster` is the same flag, etcd's spelling.
    #[arg(
        long,
        visible_alias = "initial-cluster",
        value_name = "ID=HOST:PORT,..."
    )]
    peers: Option<String>,
    /// Where this node listens for peers (default: its own entry in --peers).
    #[arg(long)]
    peer_addr: Option<String>,
    /// Where this node listens for Redis-protocol clients.
    #[arg(long)]
    client_addr: Option<String>,
    /// Where this node serves /status, /metrics and /health.
    #[arg(long)]
    admin_addr: Option<String>,
    #[arg(long)]
    max_value_bytes: Option<u64>,
    /// linearizable (default), lease or stale.
    #[arg(long)]
    read_mode: Option<String>,
    #[arg(long)]
    election_timeout_ms: Option<u64>,
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// TLS on every surface with the files `raftkv certs` wrote in this directory
    /// (ca.pem, node-<id>.pem, node-<id>.key); or set [tls] in the config.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Serve RESP and admin beyond loopback without TLS and client authentication
    /// (protected mode refuses to otherwise).
    #[arg(long)]
    insecure: bool,
    /// Listen for peers beyond loopback without mutual TLS.
    #[arg(long)]
    insecure_peers: bool,
    /// Join a running cluster through the member at this admin (HTTP) address: on an
    /// empty data directory the node is added as a learner, catches up and is promoted
    /// to voter (ignored when the data directory already belongs to a cluster). Needs
    /// the admin credential in RAFTKV_ADMIN_TOKEN when the cluster has one.
    #[arg(long, value_name = "ADMIN_ADDR")]
    join: Option<String>,
    /// With --join: stay a learner (no promotion).
    #[arg(long, requires = "join")]
    learner: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Up {
            data,
            base_port,
            nodes,
            read_mode,
            tls,
        } => server::up::run(server::up::UpOptions {
            data,
            base_port,
            nodes,
            read_mode,
            tls,
        }),
        Cmd::Certs { dir, nodes, hosts } => {
            match server::tls::certs::generate(&dir, nodes, &hosts) {
                Ok(()) => {
                    println!(
                        "raftkv certs: CA and {nodes} node certificates in {}",
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("raftkv certs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Get { key, cluster } => one_shot(&cluster, &[b"GET", key.as_bytes()]),
        Cmd::Set {
            key,
            value,
            cluster,
        } => one_shot(&cluster, &[b"SET", key.as_bytes(), value.as_bytes()]),
        Cmd::Del { keys, cluster } => {
            let mut args: Vec<&[u8]> = vec![b"DEL"];
            args.extend(keys.iter().map(|k| k.as_bytes()));
            one_shot(&cluster, &args)
        }
        Cmd::TransferLeader { id, admin, cacert } => {
            let client = match admin_client(cacert) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match cli::transfer_leader_with(&cli::split_cluster(&admin), id, &client) {
                Ok(body) => {
                    println!("{body}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("raftkv transfer-leader: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Member { cmd, admin, cacert } => member(cmd, &admin, cacert),
        Cmd::Status { cluster } => {
            let tls = match client_tls(&cluster) {
                Ok(t) => t,
                Err(code) => return code,
            };
            match cli::status(&cli::split_cluster(&cluster.cluster), tls.as_ref()) {
                Ok(table) => {
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("raftkv: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The admin API's client for `transfer-leader` and `member`: HTTPS trusting `--cacert`
/// when given, the admin credential from `RAFTKV_ADMIN_TOKEN`. A CA file that cannot be
/// read is a usage error (exit code 2).
fn admin_client(cacert: Option<PathBuf>) -> Result<server::admin_client::AdminClient, ExitCode> {
    match cacert
        .map(|ca| cli::ClientTls::from_ca_file(&ca))
        .transpose()
    {
        Ok(tls) => Ok(server::admin_client::AdminClient::from_env(tls)),
        Err(e) => {
            eprintln!("raftkv: --cacert: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn member(cmd: MemberCmd, admin: &str, cacert: Option<PathBuf>) -> ExitCode {
    use server::member_cli;
    let client = match admin_client(cacert) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let admin = cli::split_cluster(admin);
    let result = match cmd {
        MemberCmd::List => member_cli::members(&admin, &client),
        MemberCmd::Add {
            id,
            peer_addr,
            learner,
            wait_secs,
        } => member_cli::add(
            &admin,
            &client,
            id,
            &peer_addr,
            learner,
            std::time::Duration::from_secs(wait_secs),
        )
        // The leader's view, with match and lag.
        .and_then(|_| member_cli::members(&admin, &client)),
        MemberCmd::Promote { id } => member_cli::promote(&admin, &client, id)
            .and_then(|_| member_cli::members(&admin, &client)),
        MemberCmd::Remove { id } => member_cli::remove(&admin, &client, id)
            .and_then(|_| member_cli::members(&admin, &client)),
    };
    match result {
        Ok(v) => {
            println!("{}", member_cli::render(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftkv member: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client_tls(cluster: &ClusterArg) -> Result<Option<cli::ClientTls>, ExitCode> {
    match &cluster.cacert {
        None => Ok(None),
        Some(ca) => cli::ClientTls::from_ca_file(ca).map(Some).map_err(|e| {
            eprintln!("raftkv: --cacert: {e}");
            ExitCode::from(2)
        }),
    }
}

fn one_shot(cluster: &ClusterArg, args: &[&[u8]]) -> ExitCode {
    let tls = match client_tls(cluster) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match cli::call_any(&cli::split_cluster(&cluster.cluster), args, tls.as_ref()) {
        Ok((_, v)) => {
            println!("{}", cli::show(&v));
            if matches!(v, server::resp::codec::Value::Error(_)) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("raftkv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let flags = Overrides {
        id: a.id,
        data_dir: a.data_dir,
        peers: a.peers,
        peer_addr: a.peer_addr,
        client_addr: a.client_addr,
        admin_addr: a.admin_addr,
        max_value_bytes: a.max_value_bytes,
        read_mode: a.read_mode,
        election_timeout_ms: a.election_timeout_ms,
        heartbeat_ms: a.heartbeat_ms,
        tls_dir: a.tls_dir,
        insecure: a.insecure,
        insecure_peers: a.insecure_peers,
        admin_token: std::env::var(server::config::ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(server::config::Secret::new),
        requirepass: std::env::var("RAFTKV_REQUIREPASS").ok(),
    };
    let cfg = match Config::load(a.config.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftkv serve: {e}");
            return ExitCode::from(2);
        }
    };
    let mut promote = false;
    if let Some(addr) = &a.join {
        let tls = match cfg
            .tls
            .as_ref()
            .map(|f| cli::ClientTls::from_ca_file(&f.ca))
            .transpose()
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("raftkv serve: the CA for --join: {e}");
                return ExitCode::from(2);
            }
        };
        let client = server::admin_client::AdminClient::from_env(tls);
        match server::join::prepare(&cfg, addr, &client) {
            Ok(joined) => promote = joined && !a.learner,
            Err(e) => {
                eprintln!("raftkv serve: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftkv serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listeners = match server::server::Listeners::bind(&cfg) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("raftkv serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        let id = cfg.id;
        let (mode, peers, tls) = (cfg.read_mode, cfg.peers.clone(), cfg.tls.is_some());
        let running = match server::server::start(cfg, listeners).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("raftkv serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        let scheme = if tls { "https" } else { "http" };
        tracing::info!(
            "node {id}: RESP on {}{}, admin on {scheme}://{}/status, peers on {}; read mode {mode}; \
             peers {peers:?}",
            running.client_addr,
            if tls { " (TLS)" } else { "" },
            running.admin_addr,
            running.peer_addr
        );
        if promote {
            tokio::spawn(server::join::promote_when_caught_up(running.node.clone(), id));
        }
        let mut running = running;
        let identity = running.identity.clone();
        let code = tokio::select! {
            _ = wait_for_signal() => ExitCode::SUCCESS,
            _ = running.node_stopped() => {
                tracing::error!("node {id}: the node loop stopped unexpectedly");
                ExitCode::FAILURE
            }
            // An unbound node a member saw bound: its data directory was wiped. It has
            // exchanged no Raft message (it never bound): refuse to run.
            why = identity.forgot_state() => {
                tracing::error!("node {id}: refusing to start: {why}");
                eprintln!("raftkv serve: refusing to start: {why}");
                ExitCode::FAILURE
            }
        };
        tracing::info!("node {id}: shutting down");
        // A leader hands over first (bounded), so a rolling restart costs no election.
        running
            .shutdown_gracefully(std::time::Duration::from_secs(2))
            .await;
        code
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
