//! The node loop: one OS thread owns the [`Node`] and everything it touches.
//!
//! It is fed by one bounded channel of [`Event`]s (peer messages, client requests with a
//! reply channel, forwarded requests and their answers, status queries) and sleeps until
//! the next event or the earliest deadline (the core's timers, a forwarded request's
//! timeout): no periodic ticking, no CPU when idle. A thread rather than a task because
//! persisting a `Ready` blocks on `fdatasync` and must not stall the async runtime.
//!
//! Each wake-up: advance the clock, take up to `MAX_BATCH` events (so a burst of
//! requests is proposed as one batch and persisted with one sync), run `process()`, then
//! route the answers.
//!
//! Routing (a follower forwards to its leader, parks while none is known, follows the
//! leader when it moves, retries with the request's session) is the driver's
//! ([`node::RoutedNode`], so the simulator runs it too); this loop only carries its
//! messages as `ForwardReq`/`ForwardResp` frames and answers local clients.
//! Invariant: every request that enters the loop gets exactly one reply, unless its
//! client went away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::{Node, NodeOptions, ReqId, Request, RoutedNode, RoutingOptions, SnapshotPolicy};
use raft::{Membership, Message, NodeId, Role};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, ReadMode};
use crate::metrics::{Counter, Histogram};
use crate::reply::Reply;
use crate::store::TimedStore;
use crate::transport::codec::Frame;
use crate::transport::peer::PeerRouter;
use storage::SnapshotStore;

use crate::snapshots::BackgroundSnapshots;

/// Events taken per wake-up before the node runs.
const MAX_BATCH: usize = 512;

/// Sequence numbers of one session: the next to hand out, and those still in flight.
#[derive(Debug)]
pub struct SessionSeqs {
    next: u64,
    in_flight: std::collections::BTreeSet<u64>,
}

impl Default for SessionSeqs {
    fn default() -> Self {
        SessionSeqs {
            next: 1,
            in_flight: Default::default(),
        }
    }
}

impl SessionSeqs {
    fn start(&mut self, client: u64) -> kv::SessionTag {
        let seq = self.next;
        self.next += 1;
        self.in_flight.insert(seq);
        let first_outstanding = *self.in_flight.first().expect("just inserted");
        kv::SessionTag {
            client,
            seq,
            first_outstanding,
        }
    }

    fn finish(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
    }
}

/// A session ID no other handle, on any node, in any run, will pick: hashed from the
/// process, the time and a per-process counter with the standard library's random keys.
fn fresh_session_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish()
}

pub enum Event {
    Peer(Message),
    Client {
        req: Request,
        reply: oneshot::Sender<Reply>,
        /// A write's exactly-once session (client, seq): retries reuse it.
        session: Option<kv::SessionTag>,
        /// A read to answer from this node's state machine as it is, without a leader
        /// round (a `READONLY` connection), whatever the node's read mode.
        local_read: bool,
    },
    /// A request a peer forwarded to us (we are, it thinks, the leader).
    Forwarded {
        from: NodeId,
        id: u64,
        req: Request,
        session: Option<kv::SessionTag>,
    },
    /// The answer to a request we forwarded, from the node that sent it.
    ForwardReply {
        from: NodeId,
        id: u64,
        reply: Reply,
    },
    Status(oneshot::Sender<Status>),
    /// A background snapshot save finished: process, so the node compacts its log.
    SnapshotSaved,
    Shutdown,
}

/// Counters and histograms the loop and the network tasks update.
#[derive(Default)]
pub struct LoopMetrics {
    pub client_requests: Counter,
    pub forwarded_out: Counter,
    pub forwarded_in: Counter,
    pub forward_timeouts: Counter,
    /// Forwards sent again (the leader moved, or no answer within the retry time).
    pub forward_resends: Counter,
    /// Forward answers from a node the request was not sent to (or to an unknown id).
    pub stray_forward_answers: Counter,
    pub elections: Counter,
    pub leader_changes: Counter,
    pub dropped_inbound: Counter,
    pub stale_reads: Counter,
    /// Submit to answer, for writes answered here (forwarding included).
    pub commit_latency: Histogram,
    pub read_latency: Histogram,
    /// Time in `fdatasync`; stays empty until the node persists to a file store.
    pub fsync_latency: Histogram,
}

impl LoopMetrics {
    pub fn inc_dropped_inbound(&self) {
        self.dropped_inbound.inc();
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub connected: bool,
    /// Known on the leader only.
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
    pub queued: usize,
    pub sent_frames: u64,
    pub dropped_frames: u64,
}

/// A consistent view of the node, taken inside the loop.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub id: NodeId,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub log_entries: u64,
    pub log_bytes: u64,
    /// Index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    pub snapshots_taken: u64,
    /// Snapshots received from a leader (InstallSnapshot) and installed.
    pub snapshots_installed: u64,
    /// While leading: followers found to have lost entries they had acknowledged (a
    /// wiped or replaced disk; such a node should rejoin as a new member).
    pub followers_lost_log: u64,
    pub read_mode: &'static str,
    pub keys: u64,
    pub kv_bytes: u64,
    pub proposals: u64,
    pub applied_entries: u64,
    pub reads_served: u64,
    pub pending_requests: usize,
    pub uptime_ms: u64,
    /// Set once the log store failed: the node no longer takes part or serves.
    pub storage_failure: Option<String>,
    pub peers: Vec<PeerStatus>,
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("node is shutting down")]
    Stopped,
    #[error("timed out: the outcome is unknown")]
    Timeout,
}

/// The async side's way into the loop. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Event>,
    /// This handle's exactly-once session: every write it sends gets the next sequence
    /// number; the set holds those still awaiting an answer (its minimum tells the state
    /// machine which outcomes it may forget).
    session_client: u64,
    session_seqs: Arc<std::sync::Mutex<SessionSeqs>>,
    /// A safety net above the loop's own timeouts: a reply always comes before this.
    timeout: Duration,
    pub metrics: Arc<LoopMetrics>,
}

impl NodeHandle {
    pub fn new(tx: mpsc::Sender<Event>, timeout: Duration, metrics: Arc<LoopMetrics>) -> Self {
        NodeHandle {
            tx,
            session_client: fresh_session_id(),
            session_seqs: Arc::default(),
            timeout,
            metrics,
        }
    }

    /// Runs one request; waits for room in the channel (back-pressure on clients).
    pub async fn call(&self, req: Request) -> Result<Reply, CallError> {
        let (reply, rx) = oneshot::channel();
        // Writes carry a session, so the loop may retry one whose outcome it does not know
        // without ever applying it twice.
        let session = (!req.is_read()).then(|| {
            self.session_seqs
                .lock()
                .expect("session")
                .start(self.session_client)
        });
        let result = self.send_and_wait(req, reply, rx, session, false).await;
        if let Some(tag) = session {
            self.session_seqs.lock().expect("session").finish(tag.seq);
        }
        result
    }

    /// Runs a read (GET, SCAN) on this node's state machine as it is now: no leader
    /// round, so it may be stale, and it is served while there is no leader. A write is
    /// refused with `Fail`.
    pub async fn read_local(&self, req: Request) -> Result<Reply, CallError> {
        if !req.is_read() {
            return Ok(Reply::Fail("only reads can be served locally".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.send_and_wait(req, reply, rx, None, true).await
    }

    async fn send_and_wait(
        &self,
        req: Request,
        reply: oneshot::Sender<Reply>,
        rx: oneshot::Receiver<Reply>,
        session: Option<kv::SessionTag>,
        local_read: bool,
    ) -> Result<Reply, CallError> {
        self.tx
            .send(Event::Client {
                req,
                reply,
                session,
                local_read,
            })
            .await
            .map_err(|_| CallError::Stopped)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(CallError::Stopped),
            Err(_) => Err(CallError::Timeout),
        }
    }

    pub async fn status(&self) -> Result<Status, CallError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Status(tx))
            .await
            .map_err(|_| CallError::Stopped)?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => Err(CallError::Stopped),
            Err(_) => Err(CallError::Timeout),
        }
    }

    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }
}

/// A cluster node: peers over TCP, log in files, requests routed to the leader.
pub type ClusterNode = RoutedNode<PeerRouter, TimedStore>;

/// The single place a node is built from the config: opens the log under
/// `data_dir/log` (recovering it: a torn tail is cut with a warning, corruption refuses
/// to start with an error naming file and offset) and restores the node from it.
pub fn open_node(
    cfg: &Config,
    router: PeerRouter,
    metrics: Arc<LoopMetrics>,
    events: mpsc::Sender<Event>,
) -> Result<ClusterNode, String> {
    let ms = |d: Duration| (d.as_millis() as u64).max(1);
    let election = ms(cfg.raft.election_timeout);
    let mut rc = raft::Config::new(cfg.id);
    rc.seed = election_seed(cfg.id);
    rc.election_timeout_ticks = election;
    rc.heartbeat_interval_ticks = ms(cfg.raft.heartbeat);
    rc.retransmit_ticks = ms(cfg.raft.retransmit);
    // Lease reads only in lease mode: linearizable mode takes a ReadIndex round for
    // every read, so it does not depend on bounded clock drift. 10% of the election
    // timeout is the drift margin.
    rc.lease_ticks = match cfg.read_mode {
        ReadMode::Lease => election * 9 / 10,
        ReadMode::Linearizable | ReadMode::Stale => 0,
    };
    rc.max_msg_bytes = cfg.raft_max_msg_bytes();
    rc.max_uncommitted_bytes = (64 << 20).max(4 * rc.max_msg_bytes);
    rc.fanout = raft::Fanout::All;
    rc.snapshot_chunk_bytes = cfg.snapshot.chunk_bytes;
    rc.max_snapshot_bytes = cfg.snapshot.max_bytes;
    rc.validate().map_err(|e| format!("raft settings: {e}"))?;
    let dir = cfg.data_dir.join("log");
    let (store, report) = TimedStore::open(&dir, metrics)
        .map_err(|e| format!("cannot open the log in {}: {e}", dir.display()))?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            file = %torn.file.display(),
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            "recovery cut a torn final record: {}",
            torn.reason
        );
    }
    tracing::info!(
        dir = %dir.display(),
        created = report.created,
        first_index = report.first_index,
        last_index = report.last_index,
        term = report.hard_state.term,
        commit = report.hard_state.commit,
        segments = report.segments,
        bytes = report.bytes,
        "log recovered in {:?}",
        report.elapsed
    );
    let hold = (2 * election).min(cfg.limits.request_timeout.as_millis() as u64 / 2);
    let opts = NodeOptions {
        hold_ticks: hold.max(1),
        fresh_leader_ticks: (3 * ms(cfg.raft.heartbeat)).max(election / 2),
        snapshot: SnapshotPolicy {
            every_entries: cfg.snapshot.every_entries,
            keep_entries: cfg.snapshot.keep_entries,
        },
        ..NodeOptions::default()
    };
    let snap_dir = cfg.data_dir.join("snap");
    let snapshots = SnapshotStore::open(&snap_dir)
        .map_err(|e| format!("cannot open snapshots in {}: {e}", snap_dir.display()))?;
    let started = Instant::now();
    let node = Node::open_with_snapshots(
        rc,
        Membership::new(cfg.voters()),
        router,
        store,
        Box::new(BackgroundSnapshots::new(snapshots, events)),
        opts,
    )
    .map_err(|e| {
        format!(
            "cannot restore the node from {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    tracing::info!(
        snapshot_index = node.raft().snapshot().map_or(0, |s| s.meta.index),
        keys = node.kv().len(),
        "state machine restored in {:?}",
        started.elapsed()
    );
    let routing = RoutingOptions {
        // A lost frame (a reset connection, a full queue) costs this much; a leader
        // change moves every forward at once.
        retry_ticks: 2 * election,
        timeout_ticks: cfg.limits.request_timeout.as_millis() as u64,
        ..RoutingOptions::default()
    };
    Ok(RoutedNode::new(
        node,
        routing,
        election_seed(cfg.id).rotate_left(17),
    ))
}

/// Election timeouts must differ between nodes and between restarts.
fn election_seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A local client waiting for its answer.
struct Waiting {
    reply: oneshot::Sender<Reply>,
    started: Instant,
}

pub struct NodeLoop {
    me: NodeId,
    node: ClusterNode,
    router: PeerRouter,
    peer_addrs: Vec<(NodeId, String)>,
    rx: mpsc::Receiver<Event>,
    rt: tokio::runtime::Handle,
    clock: crate::clock::BootClock,
    read_mode: ReadMode,
    /// Largest peer frame: a forwarded answer must fit in one.
    max_frame: usize,
    metrics: Arc<LoopMetrics>,
    next_id: u64,
    /// Local clients waiting, by the request ID the router knows them by.
    waiting: HashMap<ReqId, Waiting>,
    last_role: Role,
    last_leader: Option<NodeId>,
    /// Routing counters already added to the metrics.
    routing_seen: node::RoutingStats,
}

impl NodeLoop {
    pub fn new(
        cfg: &Config,
        node: ClusterNode,
        router: PeerRouter,
        rx: mpsc::Receiver<Event>,
        rt: tokio::runtime::Handle,
        metrics: Arc<LoopMetrics>,
    ) -> NodeLoop {
        NodeLoop {
            me: cfg.id,
            last_role: node.raft().role(),
            last_leader: node.leader(),
            node,
            router,
            peer_addrs: cfg.peers.iter().map(|(&i, a)| (i, a.clone())).collect(),
            rx,
            rt,
            clock: crate::clock::BootClock::start(),
            read_mode: cfg.read_mode,
            max_frame: cfg.max_peer_frame_bytes(),
            metrics,
            next_id: 1,
            waiting: HashMap::new(),
            routing_seen: node::RoutingStats::default(),
        }
    }

    /// Milliseconds since start: the node's tick. Counts time the host spent suspended
    /// (CLOCK_BOOTTIME), so a leader that wakes up knows its lease ran out meanwhile.
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs until `Shutdown` or until every sender is gone.
    pub fn run(mut self) {
        let mut first: Option<Event> = None;
        loop {
            // Time first: the core stamps what it does with the clock (leases,
            // retransmission), so it must never act on a stale one.
            let now = self.now();
            // Wall clock for the typed model: stamps our proposals as leader and our
            // reads (kv::expiry); the core never sees it.
            self.node.set_wall_clock(unix_ms());
            self.node.tick(now);
            let mut taken = 0;
            while taken < MAX_BATCH {
                let ev = match first.take() {
                    Some(ev) => ev,
                    None => match self.rx.try_recv() {
                        Ok(ev) => ev,
                        Err(_) => break,
                    },
                };
                taken += 1;
                if !self.handle(ev) {
                    return;
                }
            }
            self.process();
            if taken == MAX_BATCH {
                continue; // more may be waiting: no sleep
            }
            let wait = self.wait_time();
            let rx = &mut self.rx;
            let got = self.rt.block_on(async {
                match wait {
                    Some(w) => tokio::time::timeout(w, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            });
            match got {
                Some(Some(ev)) => first = Some(ev),
                Some(None) => return, // every sender gone
                None => {}            // timed out: a deadline is due
            }
        }
    }

    /// Until the earliest deadline; `None` waits for an event alone.
    fn wait_time(&self) -> Option<Duration> {
        // A node whose store failed no longer ticks: its deadlines stay in the past and
        // must not make this loop spin.
        if self.node.storage_failure().is_some() {
            return None;
        }
        let deadline = self.node.next_deadline();
        if deadline == u64::MAX {
            return None;
        }
        Some(Duration::from_millis(deadline.saturating_sub(self.now())))
    }

    /// Returns false to stop.
    fn handle(&mut self, ev: Event) -> bool {
        let now = self.now();
        match ev {
            Event::Peer(msg) => self.node.step(now, msg),
            Event::Client {
                req,
                reply,
                session,
                local_read,
            } => {
                self.metrics.client_requests.inc();
                let stale_get = self.read_mode == ReadMode::Stale
                    && matches!(req, Request::Get { .. } | Request::Read(_));
                if (local_read && req.is_read()) || stale_get {
                    self.metrics.stale_reads.inc();
                    let _ = reply.send(Reply::from(self.node.read_local(&req)));
                    return true;
                }
                let id = self.next_id;
                self.next_id += 1;
                let started = Instant::now();
                self.waiting.insert(id, Waiting { reply, started });
                self.node.submit(now, id, req, session);
            }
            Event::Forwarded {
                from,
                id,
                req,
                session,
            } => {
                let msg = node::Forward::Req { id, req, session };
                self.node.on_forward(now, from, msg);
            }
            Event::ForwardReply { from, id, reply } => {
                let msg = node::Forward::Resp {
                    id,
                    resp: reply.into_response(),
                };
                self.node.on_forward(now, from, msg);
            }
            Event::Status(tx) => {
                let _ = tx.send(self.status());
            }
            // Nothing to do here: `process` (after this batch) picks up the outcome.
            Event::SnapshotSaved => {}
            Event::Shutdown => return false,
        }
        true
    }

    /// Runs the node (and its router), then sends what the router has for other nodes
    /// and answers local clients.
    fn process(&mut self) {
        self.node.process();
        self.observe_role();
        self.observe_routing();
        for (to, msg) in self.node.take_forwards() {
            let frame = match msg {
                node::Forward::Req { id, req, session } => Frame::ForwardReq { id, req, session },
                node::Forward::Resp { id, resp } => Frame::ForwardResp {
                    id,
                    reply: Reply::from(resp).fit_frame(self.max_frame),
                },
            };
            self.router.send_frame(to, frame);
        }
        for (id, resp) in self.node.take_responses() {
            if let Some(w) = self.waiting.remove(&id) {
                self.deliver(w, Reply::from(resp));
            }
        }
    }

    fn observe_routing(&mut self) {
        let now = self.node.routing_stats().clone();
        let seen = &self.routing_seen;
        self.metrics
            .forwarded_out
            .add(now.forwarded_out - seen.forwarded_out);
        self.metrics
            .forwarded_in
            .add(now.forwarded_in - seen.forwarded_in);
        self.metrics
            .forward_timeouts
            .add(now.timeouts - seen.timeouts);
        self.metrics.forward_resends.add(now.resent - seen.resent);
        self.metrics
            .stray_forward_answers
            .add(now.stray_answers - seen.stray_answers);
        self.routing_seen = now;
    }

    fn observe_role(&mut self) {
        let role = self.node.raft().role();
        if role == Role::Candidate && self.last_role != Role::Candidate {
            self.metrics.elections.inc();
        }
        if role != self.last_role {
            tracing::debug!(
                term = self.node.raft().term(),
                "role {:?} -> {:?}",
                self.last_role,
                role
            );
        }
        self.last_role = role;
        let leader = self.node.leader();
        if leader != self.last_leader && leader.is_some() {
            self.metrics.leader_changes.inc();
            tracing::info!(
                term = self.node.raft().term(),
                "leader is now node {}",
                leader.unwrap_or(0)
            );
        }
        self.last_leader = leader;
    }

    fn deliver(&mut self, w: Waiting, reply: Reply) {
        match &reply {
            Reply::Done | Reply::Deleted(_) | Reply::Cas { .. } => {
                self.metrics.commit_latency.observe(w.started.elapsed())
            }
            Reply::Value(_) => self.metrics.read_latency.observe(w.started.elapsed()),
            _ => {}
        }
        let _ = w.reply.send(reply); // the client may have gone: fine
    }

    fn status(&self) -> Status {
        let raft = self.node.raft();
        let log = raft.log();
        let last = log.last_index();
        let matches: HashMap<NodeId, u64> = if raft.is_leader() {
            raft.follower_matches().into_iter().collect()
        } else {
            HashMap::new()
        };
        let peers = self
            .peer_addrs
            .iter()
            .map(|(id, addr)| {
                let q = self.router.queue(*id);
                let m = matches.get(id).copied();
                PeerStatus {
                    id: *id,
                    addr: addr.clone(),
                    connected: q.is_some_and(|q| q.connected()),
                    match_index: m,
                    lag: m.map(|m| last.saturating_sub(m)),
                    queued: q.map_or(0, |q| q.len()),
                    sent_frames: q.map_or(0, |q| q.sent()),
                    dropped_frames: q.map_or(0, |q| q.dropped()),
                }
            })
            .collect();
        let stats = self.node.stats();
        Status {
            id: self.me,
            role: role_name(raft.role()),
            term: raft.term(),
            leader: raft.leader(),
            commit_index: raft.commit_index(),
            applied_index: log.applied,
            first_index: log.first_index(),
            last_index: last,
            log_entries: last + 1 - log.first_index(),
            log_bytes: log.bytes_after(log.first_index() - 1) as u64,
            snapshot_index: raft.snapshot().map_or(0, |s| s.meta.index),
            snapshots_taken: stats.snapshots_taken,
            snapshots_installed: stats.snapshots_installed,
            followers_lost_log: raft.followers_lost_log(),
            read_mode: self.read_mode.as_str(),
            keys: self.node.kv().len() as u64,
            kv_bytes: self.node.kv().size_bytes() as u64,
            proposals: stats.proposals,
            applied_entries: stats.applied,
            reads_served: stats.reads_served,
            pending_requests: self.node.pending_requests(),
            uptime_ms: self.now(),
            storage_failure: self.node.storage_failure().map(String::from),
            peers,
        }
    }
}

/// The system clock in Unix milliseconds (0 before 1970: a broken clock never panics).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
