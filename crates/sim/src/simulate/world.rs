//! The simulated world: N real `driver::Node`s (real core, real driver, in-memory store
//! with the durability model), the fake network and clocks, the event queue and the
//! invariant checker. One thread, one RNG, virtual time.
//!
//! Clients live in `client.rs`, random faults in `faults.rs`; both extend `World`.

use std::sync::Arc;

use driver::{
    Forward, Node, NodeOptions, PlantedDriverBugs, PlantedRoutingBugs, ReqId, Request, Response,
    RoutedNode, RoutingOptions, SnapshotPolicy, Transport,
};
use kv::SessionTag;
use raft::{Config, Fanout, Membership, Message, MessageBody, NodeId, PlantedBugs, Raft, Role};
use storage::{FaultInjector, MemLogStore, MemSnapshotStore};

use super::client::Clients;
use super::clock::Clock;
use super::events::{Ev, EventQueue};
use super::invariants::Invariants;
use super::network::{Fate, Network};
use super::params::Params;
use super::rng::SimRng;
use super::trace::{msg_words, Trace};

/// The driver's transport: messages wait here until the simulator routes them.
#[derive(Default)]
pub struct Outbox(pub Vec<Message>);

impl Transport for Outbox {
    fn send(&mut self, msg: Message) {
        self.0.push(msg);
    }
}

/// Every simulated node routes: clients may talk to any of them.
pub type SimNode = RoutedNode<Outbox, MemLogStore>;

/// One machine: its node when up, its disk when down.
pub struct Machine {
    pub id: NodeId,
    pub node: Option<SimNode>,
    /// The disk while the node is down.
    pub disk: Option<MemLogStore>,
    /// Its saved snapshots (shared with the running node; saves are atomic, so they
    /// survive any crash).
    pub snapshots: MemSnapshotStore,
    pub paused: bool,
    /// Inputs that arrived while paused, delivered on resume.
    pub inbox: Vec<Ev>,
    pub clock: Clock,
    /// Global time of the node's next timer.
    pub wake: u64,
    pub faults: Arc<FaultInjector>,
    /// Bumped on every crash and pause, so stale restart/resume events are ignored.
    pub incarnation: u32,
    pub crashes: u32,
    /// Snapshots (taken, installed) by the node's earlier incarnations.
    pub past_snapshots: (u64, u64),
    /// Inputs taken since the node last ran its Ready (input batching).
    pub unprocessed: u32,
    /// Size of the batch being gathered: the Ready runs once `unprocessed` reaches it.
    pub batch_target: u32,
    /// An `Ev::Flush` is queued for this incarnation.
    pub flush_queued: bool,
    /// The configuration the node starts from when its disk holds none: the cluster's
    /// first for the machines it starts with; unknown for spares and wiped disks (they
    /// learn it from the leader).
    pub bootstrap: Membership,
    /// Ever started (a spare is not until a membership change adds it).
    pub started: bool,
}

impl Machine {
    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }
    /// Snapshots (taken, installed) over all incarnations.
    pub fn snapshots(&self) -> (u64, u64) {
        let now = self.node.as_ref().map_or((0, 0), |n| {
            (n.stats().snapshots_taken, n.stats().snapshots_installed)
        });
        (self.past_snapshots.0 + now.0, self.past_snapshots.1 + now.1)
    }
    pub fn raft(&self) -> Option<&Raft> {
        self.node.as_ref().map(|n| n.raft())
    }
}

/// Events pending at once beyond which a run is a runaway (normal runs: hundreds).
pub const MAX_PENDING: usize = 50_000;
/// Events executed in one run beyond which it is a runaway (normal runs: 10⁴–10⁵).
pub const MAX_STEPS: u64 = 20_000_000;

/// Responses to requests the world submitted itself (scripted tests), by request id.
pub const DIRECT_CLIENT: u64 = 0xFFFF;
/// Request ids of the membership changes the faults ask for (`membership.rs`).
pub const MEMBER_CLIENT: u64 = 0xFFFD;
/// Request ids of the unchecked writes with short TTLs (`client.rs`): their answers are
/// dropped; what they did is checked by comparing the replicas' whole state.
pub const TTL_CLIENT: u64 = 0xFFFE;
/// The simulated wall clock's Unix ms at a node's tick 0 (any fixed date will do).
pub const WALL_EPOCH_MS: u64 = 1_700_000_000_000;

pub struct World {
    pub p: Params,
    /// Global time, µs.
    pub now: u64,
    pub rng: SimRng,
    pub machines: Vec<Machine>,
    pub net: Network,
    pub queue: EventQueue,
    pub inv: Invariants,
    pub trace: Trace,
    pub clients: Clients,
    pub(super) base_cfg: Vec<Config>,
    opts: NodeOptions,
    /// The first failure; the run stops at it.
    pub failure: Option<String>,
    /// Answers to `submit_direct` requests.
    pub direct_responses: Vec<(ReqId, Response)>,
    next_direct: u64,
    pub steps: u64,
    /// Faults are injected while this is true (the safety phase).
    pub faults_on: bool,
    pub fault_log: Vec<String>,
    /// Leader churn is on until then (see `faults.rs`).
    pub churn_until: u64,
    /// The newest term whose leader churn already scheduled to fall.
    pub churn_term: u64,
    /// Draws batch sizes (its own stream, so batching leaves the other draws alone).
    batch_rng: SimRng,
    routing: RoutingOptions,
    /// Every choice of the membership faults (its own stream, see `params.rs`).
    pub(super) member_rng: SimRng,
    /// Membership changes asked for, by request id suffix.
    pub(super) member_requests: u64,
    /// Their answers (checked at the end: `check_member_answers`).
    pub member_answers: Vec<Response>,
}

impl World {
    /// Builds the cluster of `p` (nodes 1..=N, all starting empty), drawing each node's
    /// clock and core seed from `rng`.
    pub fn new(p: Params, mut rng: SimRng, trace: Trace) -> World {
        let n = p.nodes;
        let membership = Membership::new(1..=n as NodeId);
        let mut member_rng = SimRng::new(p.seed ^ super::params::MEMBERSHIP_STREAM);
        let mut base_cfg = Vec::new();
        let mut machines = Vec::new();
        for i in 0..n + p.spares {
            let id = i as NodeId + 1;
            let spare = i >= n;
            let mut cfg = Config::new(id);
            // Spares draw from the membership stream: the main one is as it was.
            cfg.seed = if spare {
                member_rng.next_u64()
            } else {
                rng.next_u64()
            };
            cfg.election_timeout_ticks = p.election_timeout_ticks;
            cfg.lease_ticks = p.lease_ticks;
            cfg.pre_vote = p.pre_vote;
            cfg.fanout = if p.fanout_quorum {
                Fanout::Quorum { extra: 0 }
            } else {
                Fanout::All
            };
            cfg.relay = p.relay;
            cfg.max_msg_entries = p.max_msg_entries;
            cfg.max_inflight_msgs = p.max_inflight_msgs;
            cfg.snapshot_chunk_bytes = p.snapshot_chunk_bytes;
            cfg.planted_bugs = PlantedBugs {
                commit_old_term_by_count: p.bugs.commit_old_term_by_count,
                vote_without_log_check: p.bugs.vote_without_log_check,
                read_round_after_step_down: p.bugs.read_round_after_step_down,
                conf_change_without_joint: p.bugs.conf_change_without_joint,
            };
            let clock_rng = if spare { &mut member_rng } else { &mut rng };
            let clock = if p.max_skew_ppm > 0 {
                Clock {
                    offset_us: clock_rng.range(0, 1_000_000),
                    skew_ppm: clock_rng.range(0, 2 * p.max_skew_ppm as u64 + 1) as i64
                        - p.max_skew_ppm,
                }
            } else {
                Clock::exact()
            };
            base_cfg.push(cfg);
            machines.push(Machine {
                id,
                node: None,
                disk: Some(MemLogStore::with_durability_model()),
                snapshots: MemSnapshotStore::new().with_deferred_saves(p.snapshot_deferred),
                paused: false,
                inbox: Vec::new(),
                clock,
                wake: u64::MAX,
                faults: FaultInjector::new(),
                incarnation: 0,
                crashes: 0,
                past_snapshots: (0, 0),
                unprocessed: 0,
                batch_target: 1,
                flush_queued: false,
                bootstrap: if spare {
                    Membership::default()
                } else {
                    membership.clone()
                },
                started: false,
            });
        }
        let opts = NodeOptions {
            unsafe_local_reads: p.bugs.unsafe_local_reads,
            snapshot: SnapshotPolicy {
                every_entries: p.snapshot_every,
                keep_entries: p.snapshot_keep,
            },
            planted_bugs: PlantedDriverBugs {
                ack_before_persist: p.bugs.ack_before_persist,
                apply_twice: p.bugs.apply_twice,
            },
            ..NodeOptions::default()
        };
        let clients = Clients::new(&p);
        let batch_seed = p.seed ^ 0xBA7C_4000_0000_0003;
        let routing = RoutingOptions {
            retry_ticks: 2 * p.election_timeout_ticks,
            timeout_ticks: 10 * p.election_timeout_ticks,
            planted_bugs: PlantedRoutingBugs {
                forward_reply_by_id_only: p.bugs.forward_reply_by_id_only,
                retry_without_session: p.bugs.retry_without_session,
                redirect_for_executed_write: p.bugs.redirect_for_executed_write,
            },
            ..RoutingOptions::default()
        };
        let mut w = World {
            net: Network::new(&p),
            inv: Invariants::new(n + p.spares),
            p,
            now: 0,
            rng,
            machines,
            queue: EventQueue::default(),
            trace,
            clients,
            base_cfg,
            opts,
            failure: None,
            direct_responses: Vec::new(),
            next_direct: 0,
            steps: 0,
            faults_on: false,
            fault_log: Vec::new(),
            churn_until: 0,
            churn_term: 0,
            batch_rng: SimRng::new(batch_seed),
            routing,
            member_rng,
            member_requests: 0,
            member_answers: Vec::new(),
        };
        for i in 0..n {
            w.start_node(i);
        }
        w
    }

    pub fn n(&self) -> usize {
        self.machines.len()
    }

    /// The node's clock, in ticks, now.
    pub fn local_now(&self, i: usize) -> u64 {
        self.machines[i].clock.ticks(self.now)
    }

    pub fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            let now = self.now;
            self.trace.note(now, &format!("FAILURE: {why}"));
            self.failure = Some(why);
        }
    }

    // ----- the main loop -----

    /// Runs events until global time `until` (or a failure). Returns at `until` exactly.
    pub fn run_until(&mut self, until: u64) {
        while self.failure.is_none() && self.step_before(until) {}
        if self.now < until {
            self.now = until;
        }
    }

    /// Runs until `pred` holds (checked after each step) or `until`; returns whether it held.
    pub fn run_until_pred(&mut self, until: u64, mut pred: impl FnMut(&World) -> bool) -> bool {
        loop {
            if pred(self) {
                return true;
            }
            if self.failure.is_some() || !self.step_before(until) {
                self.now = self.now.max(until);
                return pred(self);
            }
        }
    }

    /// Executes the earliest pending thing due at or before `until`; false if none.
    fn step_before(&mut self, until: u64) -> bool {
        let tq = self.queue.peek_time();
        let (tn, i) = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.wake, i))
            .min()
            .unwrap_or((u64::MAX, 0));
        if tq.min(tn) > until {
            return false;
        }
        self.steps += 1;
        if self.queue.len() > MAX_PENDING || self.steps > MAX_STEPS {
            // A message storm (or a livelock) would only eat memory and time: it fails
            // the seed.
            let why = format!(
                "runaway: {} events pending, {} executed by {} µs (message storm or livelock)",
                self.queue.len(),
                self.steps,
                self.now
            );
            self.fail(why);
            return false;
        }
        if tq <= tn {
            let (at, ev) = self.queue.pop().expect("peeked");
            self.now = self.now.max(at);
            self.handle(ev);
        } else {
            self.now = self.now.max(tn);
            self.tick_node(i);
        }
        true
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver(msg) => self.deliver(msg),
            Ev::ToNode {
                node,
                req_id,
                req,
                session,
            } => self.request_arrives(node, req_id, req, session),
            Ev::DeliverForward { from, to, msg } => self.deliver_forward(from, to, msg),
            Ev::ToClient { node, req_id, resp } => self.response_arrives(node, req_id, resp),
            Ev::ClientWake { client, token } => self.client_wake(client, token),
            Ev::ClientTimeout { client, op } => self.client_timeout(client, op),
            Ev::Fault(f) => self.fault_event(f),
            Ev::Flush { node, incarnation } => {
                let m = &mut self.machines[node];
                if m.incarnation == incarnation {
                    m.flush_queued = false;
                    if m.unprocessed > 0 && !m.paused {
                        self.run_ready(node);
                    }
                }
            }
        }
    }

    // ----- node lifecycle -----

    /// Opens the node of slot `i` from its disk (a first start or a restart).
    pub fn start_node(&mut self, i: usize) {
        let m = &mut self.machines[i];
        let Some(disk) = m.disk.take() else { return };
        let mut cfg = self.base_cfg[i].clone();
        if m.crashes > 0 {
            cfg.seed = self.rng.next_u64();
        }
        m.started = true;
        let disk = disk.with_faults(Arc::clone(&m.faults));
        match Node::open_with_snapshots(
            cfg,
            m.bootstrap.clone(),
            Outbox::default(),
            disk,
            Box::new(m.snapshots.clone()),
            self.opts.clone(),
        ) {
            Ok(node) => {
                // A fresh instance number per start: forward ids never repeat across
                // incarnations (an answer meant for the last one cannot match).
                let instance = self.batch_rng.next_u64();
                m.node = Some(RoutedNode::new(node, self.routing.clone(), instance));
            }
            Err(e) => {
                let why = format!("node {}: reopening its store failed: {e}", m.id);
                self.fail(why);
                return;
            }
        }
        let (now, id) = (self.now, m.id);
        let crashes = m.crashes;
        self.trace
            .event(now, "start", &[id, u64::from(crashes)], || {
                format!("node {id} starts (after {crashes} crashes)")
            });
        let t = self.local_now(i);
        if let Some(node) = self.machines[i].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.tick(t);
        }
        self.after_node(i);
    }

    /// Crashes node `i`: it loses everything but its disk, and its disk loses every write
    /// not yet synced except the first `keep` of them (a torn tail).
    pub fn crash_node(&mut self, i: usize, keep: usize, why: &str) {
        let m = &mut self.machines[i];
        let Some(node) = m.node.take() else { return };
        m.past_snapshots.0 += node.stats().snapshots_taken;
        m.past_snapshots.1 += node.stats().snapshots_installed;
        let mut disk = node.into_store();
        let unsynced = disk.unsynced_entries();
        disk.crash_keeping(keep);
        m.faults.clear();
        m.disk = Some(disk);
        m.paused = false;
        m.inbox.clear();
        m.wake = u64::MAX;
        m.incarnation += 1;
        m.crashes += 1;
        m.unprocessed = 0;
        m.flush_queued = false;
        let id = m.id;
        self.inv.on_crash(i);
        let now = self.now;
        self.trace
            .event(now, "crash", &[id, unsynced as u64, keep as u64], || {
                format!("node {id} crashes ({why}; {unsynced} unsynced entries, {keep} kept)")
            });
    }

    // ----- inputs to nodes -----

    fn tick_node(&mut self, i: usize) {
        let t = self.local_now(i);
        let (now, id) = (self.now, self.machines[i].id);
        self.trace
            .event(now, "tick", &[id, t], || format!("node {id} @{t}"));
        if let Some(node) = self.machines[i].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.tick(t);
        }
        self.after_node(i);
    }

    fn deliver(&mut self, msg: Message) {
        let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
        let now = self.now;
        let words = msg_words(&msg);
        let m = &mut self.machines[to];
        let why = if !m.is_up() {
            Some("down")
        } else if self.net.blocked(from, to) {
            Some("partition")
        } else {
            None
        };
        if let Some(why) = why {
            self.trace
                .event(now, "drop", &words, || format!("{msg} ({why})"));
            return;
        }
        if m.paused {
            m.inbox.push(Ev::Deliver(msg));
            return;
        }
        self.trace.event(now, "deliver", &words, || msg.to_string());
        self.net.stats.delivered += 1;
        if matches!(msg.body, MessageBody::AppendResp { success: false, .. }) {
            self.net.stats.append_rejections += 1;
        }
        let t = self.local_now(to);
        if let Some(node) = self.machines[to].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.step(t, msg);
        }
        self.after_node(to);
    }

    /// A router's message reaches slot `to` (over a connection: lost to partitions and
    /// crashes, never duplicated).
    fn deliver_forward(&mut self, from: usize, to: usize, msg: Forward) {
        let now = self.now;
        let m = &mut self.machines[to];
        if !m.is_up() || self.net.blocked(from, to) {
            self.trace
                .event(now, "drop", &[from as u64, to as u64], || {
                    format!("{}->{} {msg:?} (down or partition)", from + 1, to + 1)
                });
            return;
        }
        if m.paused {
            m.inbox.push(Ev::DeliverForward { from, to, msg });
            return;
        }
        self.trace
            .event(now, "forward", &[from as u64, to as u64], || {
                format!("{}->{} {msg:?}", from + 1, to + 1)
            });
        let t = self.local_now(to);
        if let Some(node) = self.machines[to].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.on_forward(t, from as NodeId + 1, msg);
        }
        self.after_node(to);
    }

    /// A client request reaches node `i` (dropped if the node is down).
    fn request_arrives(
        &mut self,
        i: usize,
        req_id: ReqId,
        req: Request,
        session: Option<SessionTag>,
    ) {
        let m = &mut self.machines[i];
        if !m.is_up() {
            return;
        }
        if m.paused {
            m.inbox.push(Ev::ToNode {
                node: i,
                req_id,
                req,
                session,
            });
            return;
        }
        let (now, id) = (self.now, m.id);
        self.trace.event(now, "request", &[id, req_id], || {
            format!("node {id} gets request {req_id:#x}: {req:?}")
        });
        let t = self.local_now(i);
        if let Some(node) = self.machines[i].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.submit(t, req_id, req, session);
        }
        self.after_node(i);
    }

    /// Submits a request to node `i` right now, bypassing clients and network (scripted
    /// tests). Its answer lands in `direct_responses`.
    pub fn submit_direct(&mut self, i: usize, req: Request) -> ReqId {
        self.next_direct += 1;
        let req_id = (DIRECT_CLIENT << 48) | self.next_direct;
        let m = &mut self.machines[i];
        if !m.is_up() || m.paused {
            return req_id;
        }
        let t = self.local_now(i);
        if let Some(node) = self.machines[i].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.submit_unrouted(t, req_id, req);
        }
        self.after_node(i);
        req_id
    }

    /// After any input to node `i`: run its Ready now, or (input batching) once the batch
    /// is full or its flush falls due, as the server's loop takes every waiting event
    /// before it processes.
    pub(super) fn after_node(&mut self, i: usize) {
        let (batch_max, delay) = (self.p.batch_max, self.p.batch_delay_us);
        let now = self.now;
        let m = &mut self.machines[i];
        if m.node.is_none() {
            return;
        }
        m.unprocessed += 1;
        if batch_max > 1 && m.unprocessed < m.batch_target {
            if !m.flush_queued {
                m.flush_queued = true;
                let at = now + self.batch_rng.range(0, delay + 1);
                let incarnation = m.incarnation;
                self.queue.push(
                    at,
                    Ev::Flush {
                        node: i,
                        incarnation,
                    },
                );
            }
            self.update_wake(i);
            return;
        }
        self.run_ready(i);
    }

    /// Runs node `i`'s Ready over every input taken so far, routes what it sent, checks
    /// invariants, and works out when it next needs a tick.
    fn run_ready(&mut self, i: usize) {
        let batch_max = self.p.batch_max;
        let m = &mut self.machines[i];
        m.unprocessed = 0;
        if batch_max > 1 {
            m.batch_target = self.batch_rng.range(1, u64::from(batch_max) + 1) as u32;
        }
        let Some(node) = m.node.as_mut() else {
            return;
        };
        node.process();
        let forwards = node.take_forwards();
        let msgs = std::mem::take(&mut node.transport_mut().0);
        let mut responses = node.take_responses();
        let storage_failed = node.storage_failure().is_some();
        for msg in msgs {
            self.send(msg);
        }
        for (to, msg) in forwards {
            self.send_forward(i, to as usize - 1, msg);
        }
        // The driver keeps some requests in a HashMap: order answers by id, so runs replay.
        responses.sort_by_key(|(id, _)| *id);
        for (req_id, resp) in responses {
            self.respond(i, req_id, resp);
        }
        if storage_failed {
            // What the node did up to the failure still counts.
            let raft = self.machines[i].node.as_ref().map(|n| n.raft());
            if let Some(Err(e)) = raft.map(|r| self.inv.check(i, r)) {
                self.fail(e);
            }
            // The fsync failed: the machine lost power in the middle of it. It restarts
            // from what reached the disk (maybe a prefix of the unsynced writes).
            let unsynced = self.machines[i]
                .node
                .as_ref()
                .map_or(0, |n| n.store().unsynced_entries());
            let keep = self.rng.range(0, unsynced as u64 + 1) as usize;
            self.crash_node(i, keep, "power lost during fsync");
            let delay = self.rng.range(0, 3_000_000);
            self.schedule_restart(i, delay);
            return;
        }
        let Some(node) = self.machines[i].node.as_ref() else {
            return;
        };
        let (leads, term) = (node.raft().role() == Role::Leader, node.raft().term());
        if let Err(e) = self.inv.check(i, node.raft()) {
            self.fail(e);
        }
        if leads {
            self.maybe_churn(i, term);
        }
        self.update_wake(i);
    }

    pub fn update_wake(&mut self, i: usize) {
        let m = &mut self.machines[i];
        m.wake = match (&m.node, m.paused) {
            (Some(node), false) => {
                let local = m.clock.ticks(self.now);
                let deadline = node.next_deadline().max(local + 1);
                m.clock.global_for_tick(deadline).max(self.now + 1)
            }
            _ => u64::MAX,
        };
    }

    fn send(&mut self, msg: Message) {
        let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
        if matches!(
            msg.body,
            MessageBody::PreVote { .. }
                | MessageBody::Vote { .. }
                | MessageBody::Append { .. }
                | MessageBody::Snapshot { .. }
                | MessageBody::TimeoutNow
        ) {
            self.net.stats.requests += 1;
        }
        if to >= self.n() || from >= self.n() {
            return;
        }
        let now = self.now;
        match self.net.fate(&mut self.rng, now, from, to) {
            Fate::Drop(why) => {
                let words = msg_words(&msg);
                self.trace
                    .event(now, "lose", &words, || format!("{msg} ({why})"));
            }
            Fate::Deliver(at, dup) => {
                if let Some(at2) = dup {
                    self.queue.push(at2, Ev::Deliver(msg.clone()));
                }
                self.queue.push(at, Ev::Deliver(msg));
            }
        }
    }

    /// A router's message goes out over the connection to slot `to`: partitions and
    /// loss (a connection reset drops what was queued) apply, duplication does not.
    fn send_forward(&mut self, from: usize, to: usize, msg: Forward) {
        if to >= self.n() {
            return;
        }
        let now = self.now;
        match self.net.fate(&mut self.rng, now, from, to) {
            Fate::Drop(why) => {
                self.trace
                    .event(now, "lose", &[from as u64, to as u64], || {
                        format!("{}->{} {msg:?} ({why})", from + 1, to + 1)
                    });
            }
            Fate::Deliver(at, _) => {
                self.queue.push(at, Ev::DeliverForward { from, to, msg });
            }
        }
    }

    fn respond(&mut self, node: usize, req_id: ReqId, resp: Response) {
        if req_id >> 48 == DIRECT_CLIENT {
            self.direct_responses.push((req_id, resp));
            return;
        }
        if req_id >> 48 == TTL_CLIENT {
            return;
        }
        if req_id >> 48 == MEMBER_CLIENT {
            self.member_answer(node, req_id, resp);
            return;
        }
        let at = self.now + self.net.client_delay(&mut self.rng);
        self.queue.push(at, Ev::ToClient { node, req_id, resp });
    }

    // ----- pauses -----

    pub fn pause_node(&mut self, i: usize) {
        let m = &mut self.machines[i];
        if !m.is_up() || m.paused {
            return;
        }
        m.paused = true;
        m.incarnation += 1;
        m.wake = u64::MAX;
        m.flush_queued = false;
        let (now, id) = (self.now, m.id);
        self.trace
            .event(now, "pause", &[id], || format!("node {id} pauses"));
    }

    pub fn resume_node(&mut self, i: usize) {
        let m = &mut self.machines[i];
        if !m.paused {
            return;
        }
        m.paused = false;
        let inbox = std::mem::take(&mut m.inbox);
        let (now, id) = (self.now, m.id);
        self.trace
            .event(now, "resume", &[id, inbox.len() as u64], || {
                format!("node {id} resumes ({} inputs waiting)", inbox.len())
            });
        let t = self.local_now(i);
        if let Some(node) = self.machines[i].node.as_mut() {
            node.set_wall_clock(WALL_EPOCH_MS + t);
            node.tick(t);
        }
        // With batching, the backlog is one batch, as a process resumed from SIGSTOP
        // finds every queued event at once.
        let batched = self.p.batch_max > 1;
        if batched {
            self.machines[i].batch_target = u32::MAX;
        }
        self.after_node(i);
        for ev in inbox {
            if self.failure.is_some() || !self.machines[i].is_up() {
                break;
            }
            self.handle(ev);
        }
        if batched && self.machines[i].is_up() && self.failure.is_none() {
            self.run_ready(i);
        }
    }

    // ----- observations -----

    /// The leader of the highest term among up nodes, if any.
    pub fn leader(&self) -> Option<usize> {
        self.machines
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.raft().map(|r| (i, r)))
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(i, _)| i)
    }

    /// Every up node that considers itself leader, with its term.
    pub fn leaders(&self) -> Vec<(usize, u64)> {
        self.machines
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.raft().map(|r| (i, r)))
            .filter(|(_, r)| r.role() == Role::Leader)
            .map(|(i, r)| (i, r.term()))
            .collect()
    }
}
