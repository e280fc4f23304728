//! Wires one node together: listeners, the node loop thread, peer writers, the RESP and
//! admin accept loops. Used by `raftkv serve` and, in-process, by the tests.
//!
//! Needs a multi-threaded tokio runtime: the node loop thread waits on its channel
//! through the runtime's timer, which a current-thread runtime only drives while its
//! own thread is inside `block_on`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster_id::ClusterIdentity;
use crate::config::Config;
use crate::handle::{Event, NodeHandle};
use crate::metrics::LoopMetrics;
use crate::node_loop::NodeLoop;
use crate::open::open_node;
use crate::resp::acl::users::{close_connections_of_deleted_users, Users};
use crate::resp::commands::RespCtx;
use crate::tls::Tls;
use crate::transport::inbound::{self, Inbound};
use crate::transport::peer::{PeerRouter, WriterCtx};

/// Bound on the node loop's event channel.
const EVENT_QUEUE: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot open node: {0}")]
    Node(String),
    /// Protected mode: see `protected.rs`.
    #[error("{0}")]
    Protected(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The three listening sockets, bound before anything starts (tests bind port 0 first
/// and hand the real addresses to every node's config).
pub struct Listeners {
    pub peer: std::net::TcpListener,
    pub client: std::net::TcpListener,
    pub admin: std::net::TcpListener,
}

impl Listeners {
    pub fn bind(cfg: &Config) -> Result<Listeners, ServerError> {
        let bind = |what: &'static str, addr: &str| {
            std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind {
                what,
                addr: addr.to_string(),
                source,
            })
        };
        Ok(Listeners {
            peer: bind("peer_addr", &cfg.peer_addr)?,
            client: bind("client_addr", &cfg.client_addr)?,
            admin: bind("admin_addr", &cfg.admin_addr)?,
        })
    }
}

pub struct Running {
    pub id: u64,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub node: NodeHandle,
    /// This node's cluster identity (its cluster ID once bound).
    pub identity: Arc<ClusterIdentity>,
    router: PeerRouter,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    node_done: tokio::sync::oneshot::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a node on `listeners`. Call from within a multi-threaded tokio runtime.
pub async fn start(cfg: Config, listeners: Listeners) -> Result<Running, ServerError> {
    let peer_addr = listeners.peer.local_addr()?;
    let client_addr = listeners.client.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    crate::protected::check(&cfg, peer_addr, client_addr, admin_addr)
        .map_err(ServerError::Protected)?;
    let tls = match &cfg.tls {
        Some(files) => Some(Arc::new(
            Tls::load(files, cfg.id).map_err(ServerError::Tls)?,
        )),
        None => None,
    };
    let to_tokio = |l: std::net::TcpListener| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    };
    let peer_l = to_tokio(listeners.peer)?;
    let client_l = to_tokio(listeners.client)?;
    let admin_l = to_tokio(listeners.admin)?;

    let max_frame = cfg.max_peer_frame_bytes();
    let queue_bytes = (64 << 20).max(4 * max_frame);
    let router = PeerRouter::new(cfg.id, cfg.limits.peer_queue_messages, queue_bytes);
    // Where to find peers, before the log says: `[peers]` (only a hint once the cluster
    // exists) and what a node that joined learned then.
    for (&id, addr) in &cfg.peers {
        router.add(id, addr);
    }
    let hints = crate::members::file::read(&cfg.data_dir)
        .map_err(ServerError::Node)?
        .map(|f| f.hints)
        .unwrap_or_default();
    for (id, addr) in &hints {
        router.add(*id, addr);
    }
    let metrics = Arc::new(LoopMetrics::default());
    // Before the log is opened: a data directory of another member refuses the start.
    let identity = Arc::new(ClusterIdentity::open(&cfg).map_err(ServerError::Node)?);
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let node =
        open_node(&cfg, router.clone(), metrics.clone(), tx.clone()).map_err(ServerError::Node)?;
    // Every member the log and snapshot name, at the address their metadata holds (the
    // newest configuration last, so its addresses win) — except those `[peers]` lists:
    // the operator's word on where a member listens now wins over what it registered.
    for (_, m) in node.raft().membership_history() {
        for (id, addr) in crate::members::addresses(m) {
            if !cfg.peers.contains_key(&id) {
                router.add(id, &addr);
            }
        }
    }
    let handle = NodeHandle::new(
        tx.clone(),
        cfg.limits.request_timeout + std::time::Duration::from_secs(2),
        metrics.clone(),
    );

    let bootstrap = cfg.bootstrap_rules();
    let (users_tx, users_rx) =
        tokio::sync::watch::channel(Arc::new(Users::of(node.kv().acl(), &bootstrap)));
    let hub = Arc::new(crate::events::Hub::new(
        cfg.events.ring_bytes,
        cfg.events.notify,
        cfg.events.output,
        metrics.clone(),
    ));
    let node_loop = NodeLoop::new(
        &cfg,
        node,
        router.clone(),
        rx,
        tokio::runtime::Handle::current(),
        metrics.clone(),
        crate::node_loop::Outlets {
            users: users_tx,
            hub: hub.clone(),
        },
    );
    // Dropped when the loop returns or panics: `Running::node_stopped` wakes either way.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("node-{}", cfg.id))
        .spawn(move || {
            let _done = done_tx;
            node_loop.run();
        })?;

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let writers = Arc::new(WriterCtx {
        me: cfg.id,
        max_frame,
        tls: tls.clone(),
        identity: identity.clone(),
        metrics: metrics.clone(),
    });
    router.start_writers(writers, tokio::runtime::Handle::current());
    let mut tasks = Vec::new();
    let inbound = Arc::new(Inbound {
        me: cfg.id,
        events: tx,
        router: router.clone(),
        max_frame,
        metrics,
        stop: stop.clone(),
        tls: tls.clone(),
        slots: Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_peer_connections)),
        handshake_timeout: cfg.limits.peer_handshake_timeout,
        identity: identity.clone(),
    });
    tasks.push(tokio::spawn(inbound::accept_loop(peer_l, inbound)));
    let resp_ctx = Arc::new(RespCtx {
        node: handle.clone(),
        me: cfg.id,
        max_value_bytes: cfg.max_value_bytes,
        max_key_bytes: cfg.max_key_bytes,
        max_request_bytes: cfg.limits.max_request_bytes,
        max_pipeline: cfg.limits.max_pipeline,
        max_clients: cfg.limits.max_clients,
        client_port: client_addr.port(),
        started: Instant::now(),
        cursors: Default::default(),
        clients: Default::default(),
        memory: crate::resp::memory::ClientMemory::new(cfg.limits.max_client_memory_bytes),
        users: users_rx.clone(),
        bootstrap,
        hub,
    });
    tasks.push(tokio::spawn(close_connections_of_deleted_users(
        users_rx,
        resp_ctx.clients.clone(),
    )));
    tasks.push(tokio::spawn(crate::resp::accept_loop(
        client_l,
        resp_ctx,
        cfg.limits.max_clients,
        stop,
        tls.clone(),
    )));
    let admin = Arc::new(crate::admin::AdminState {
        node: handle.clone(),
        identity: identity.clone(),
        auth: cfg.admin_token.as_ref().map(|t| {
            Arc::new(crate::admin::auth::AdminToken::new(t))
                as Arc<dyn crate::admin::auth::AdminAuthority>
        }),
    });
    tasks.push(tokio::spawn(crate::admin::accept_loop(admin_l, admin, tls)));

    Ok(Running {
        id: cfg.id,
        peer_addr,
        client_addr,
        admin_addr,
        node: handle,
        identity,
        router,
        tasks,
        thread: Some(thread),
        stop: stop_tx,
        node_done: done_rx,
    })
}

impl Running {
    /// Resolves if the node loop ends on its own (it panicked): the process should exit
    /// rather than keep accepting clients it cannot serve.
    pub async fn node_stopped(&mut self) {
        let _ = (&mut self.node_done).await;
    }

    /// Like [`Running::shutdown`], but a leader first hands leadership to its most
    /// caught-up voter and waits (at most `within`) to see it go, so that stopping a node
    /// — a rolling restart — costs the cluster no election timeout. What SIGTERM does.
    pub async fn shutdown_gracefully(self, within: Duration) {
        if let Ok(status) = self.node.status().await {
            if status.role == "leader" {
                if let Err(e) = self.node.hand_over(None, within).await {
                    tracing::warn!("stopping without handing leadership over: {e}");
                }
            }
        }
        self.shutdown().await;
    }

    /// Stops accepting, stops the node loop and waits for its thread. Connections
    /// already accepted end when their peer or client does (or at process exit).
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.router.stop_writers();
        let _ = self.stop.send(true);
        let _ = self.node.sender().send(Event::Shutdown).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
