//! The node loop: one OS thread owns the [`driver::Node`] and everything it touches.
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
//! ([`driver::RoutedNode`], so the simulator runs it too); this loop only carries its
//! messages as `ForwardReq`/`ForwardResp` frames and answers local clients.
//! Invariant: every request that enters the loop gets exactly one reply, unless its
//! client went away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driver::{ReqId, Request};
use raft::{NodeId, Role};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, ReadMode};
use crate::handle::Event;
use crate::metrics::LoopMetrics;
use crate::open::ClusterNode;
use crate::reply::Reply;
use crate::resp::acl::users::{Users, UsersTx};
use crate::status::{reported_role, CoreRefusals, MembershipStatus, PeerStatus, Status};
use crate::transport::codec::Frame;
use crate::transport::peer::PeerRouter;

/// Events taken per wake-up before the node runs.
const MAX_BATCH: usize = 512;

/// A local client waiting for its answer.
struct Waiting {
    reply: oneshot::Sender<Reply>,
    started: Instant,
}

pub struct NodeLoop {
    me: NodeId,
    node: ClusterNode,
    router: PeerRouter,
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
    /// The configuration last seen in force (its entry's index and itself).
    seen_membership: (u64, raft::Membership),
    /// The node was found removed from the cluster and said so.
    said_removed: bool,
    /// Members `[peers]` gives an address for: that address is kept, whatever the
    /// configurations' metadata says (a member restarted on another address).
    pinned: std::collections::BTreeSet<NodeId>,
    /// Routing counters already added to the metrics.
    routing_seen: driver::RoutingStats,
    /// Where the users are published for RESP connections (`resp/acl/users.rs`).
    users: UsersTx,
    /// What the last publication was made from: (snapshots installed, ACL entries
    /// applied by the current store).
    users_seen: (u64, u64),
    /// This node's bootstrap rules for `default` (`requirepass`).
    bootstrap: Vec<bytes::Bytes>,
    /// The term in which this node, as leader, proposed the users' initialization.
    users_init_term: Option<u64>,
    /// Whether the replicated `default` was found not to take our `requirepass`.
    warned_requirepass: bool,
    /// Where the applied entries' events go, for subscribers (`events/`).
    hub: Arc<crate::events::Hub>,
}

/// What the loop publishes to the RESP connections as it applies the log.
pub struct Outlets {
    /// The users, for the connections' permission checks (`resp/acl/users.rs`).
    pub users: UsersTx,
    /// The applied entries' events, for subscribers and watches (`events/`).
    pub hub: Arc<crate::events::Hub>,
}

impl NodeLoop {
    pub fn new(
        cfg: &Config,
        node: ClusterNode,
        router: PeerRouter,
        rx: mpsc::Receiver<Event>,
        rt: tokio::runtime::Handle,
        metrics: Arc<LoopMetrics>,
        outlets: Outlets,
    ) -> NodeLoop {
        let Outlets { users, hub } = outlets;
        NodeLoop {
            users,
            users_seen: (u64::MAX, u64::MAX),
            bootstrap: cfg.bootstrap_rules(),
            users_init_term: None,
            warned_requirepass: false,
            me: cfg.id,
            last_role: node.raft().role(),
            last_leader: node.leader(),
            seen_membership: (0, raft::Membership::default()),
            said_removed: false,
            pinned: cfg.peers.keys().copied().collect(),
            node,
            router,
            rx,
            rt,
            clock: crate::clock::BootClock::start(),
            read_mode: cfg.read_mode,
            max_frame: cfg.max_peer_frame_bytes(),
            metrics,
            next_id: 1,
            waiting: HashMap::new(),
            routing_seen: driver::RoutingStats::default(),
            hub,
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
                let msg = driver::Forward::Req { id, req, session };
                self.node.on_forward(now, from, msg);
            }
            Event::ForwardReply { from, id, reply } => {
                let msg = driver::Forward::Resp {
                    id,
                    resp: reply.into_response(),
                };
                self.node.on_forward(now, from, msg);
            }
            Event::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Event::TransferLeader { to, reply } => {
                let _ = reply.send(self.transfer_leader(now, to));
            }
            // Nothing to do here: `process` (after this batch) picks up the outcome.
            Event::SnapshotSaved => {}
            Event::Shutdown => return false,
        }
        true
    }

    /// Starts handing leadership to `to`, or to the voter whose log is the most
    /// complete (the quickest to take over).
    fn transfer_leader(&mut self, now: u64, to: Option<NodeId>) -> Result<NodeId, String> {
        let raft = self.node.raft();
        let target = match to {
            Some(id) => id,
            None => raft
                .follower_matches()
                .into_iter()
                .filter(|(id, _)| raft.membership().is_voter(*id))
                .max_by_key(|&(id, m)| (m, std::cmp::Reverse(id)))
                .map(|(id, _)| id)
                .ok_or_else(|| "no other voter to hand leadership to".to_string())?,
        };
        self.node
            .transfer_leader(now, target)
            .map_err(|e| e.to_string())?;
        tracing::info!(target, "handing leadership over");
        Ok(target)
    }

    /// Runs the node (and its router), then sends what the router has for other nodes
    /// and answers local clients.
    fn process(&mut self) {
        self.node.process();
        // Events before answers: a subscribed client's own write has its notification
        // ready when its reply arrives (Redis sends the notification first).
        let applied = self.node.take_applied_events();
        self.hub.feed(applied, self.node.applied_index());
        self.observe_role();
        self.observe_routing();
        self.observe_membership();
        // Before any answer goes out: a client told OK by ACL SETUSER sees the change.
        self.publish_users();
        self.initialize_users();
        for (to, msg) in self.node.take_forwards() {
            let frame = match msg {
                driver::Forward::Req { id, req, session } => Frame::ForwardReq { id, req, session },
                driver::Forward::Resp { id, resp } => Frame::ForwardResp {
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

    /// Publishes the users if the state machine's changed (an ACL entry applied, or a
    /// snapshot installed) since the last publication.
    fn publish_users(&mut self) {
        let seen = (
            self.node.stats().snapshots_installed,
            self.node.kv().acl_changes(),
        );
        if seen == self.users_seen {
            return;
        }
        self.users_seen = seen;
        let users = Users::of(self.node.kv().acl(), &self.bootstrap);
        if users.replicated && !self.bootstrap.is_empty() && !self.warned_requirepass {
            let ours = self.bootstrap.last().and_then(|r| r.strip_prefix(b"#"));
            let takes_it = users.get(kv::acl::DEFAULT_USER).is_some_and(|d| {
                d.nopass
                    || d.passwords
                        .iter()
                        .any(|h| Some(kv::acl::hash_hex(h).as_bytes()) == ours)
            });
            if !takes_it {
                self.warned_requirepass = true;
                tracing::warn!(
                    "this node's requirepass is not a password of the cluster's default user: \
                     the cluster's users hold (change them with ACL SETUSER default)"
                );
            }
        }
        self.users.send_replace(Arc::new(users));
    }

    /// As leader of a cluster whose users were never set, proposes setting them from our
    /// bootstrap (once a term), so every node shows the same `default` user. Until it
    /// applies, every node uses its own bootstrap, which already requires its password.
    fn initialize_users(&mut self) {
        let raft = self.node.raft();
        if self.bootstrap.is_empty()
            || !raft.is_leader()
            || self.node.kv().acl().users().is_some()
            || self.users_init_term == Some(raft.term())
        {
            return;
        }
        self.users_init_term = Some(raft.term());
        let id = self.next_id;
        self.next_id += 1;
        let cmd = kv::Command::Acl {
            op: kv::AclOp::Init,
            bootstrap: self.bootstrap.clone(),
        };
        // Its answer finds no waiting client and is dropped.
        self.node.submit(self.now(), id, Request::Write(cmd), None);
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

    /// Learns members' addresses from the configuration in force (a new member is
    /// dialled as soon as its entry is appended: the leader replicates to it before the
    /// entry commits), logs the configurations that commit, and says once if this node
    /// was removed.
    fn observe_membership(&mut self) {
        let raft = self.node.raft();
        let index = raft.membership_index();
        if (index, raft.membership()) != (self.seen_membership.0, &self.seen_membership.1) {
            let m = raft.membership().clone();
            for (id, addr) in crate::members::addresses(&m) {
                if !self.pinned.contains(&id) {
                    self.router.add(id, &addr);
                }
            }
            tracing::info!(
                index,
                voters = ?m.voters,
                outgoing = ?m.voters_outgoing,
                learners = ?m.learners,
                "configuration in force"
            );
            self.seen_membership = (index, m);
        }
        for (index, m) in self.node.take_applied_configs() {
            tracing::info!(
                index,
                voters = ?m.voters,
                outgoing = ?m.voters_outgoing,
                learners = ?m.learners,
                "configuration committed"
            );
        }
        if self.node.is_removed() && !self.said_removed {
            self.said_removed = true;
            tracing::warn!(
                "this node was removed from the cluster: it takes part in nothing and serves \
                 no request (stop it; to bring it back, start it on an empty data directory \
                 with --join)"
            );
        }
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
        let membership = raft.membership();
        let member = |id: NodeId| {
            if membership.is_voter(id) {
                "voter"
            } else if membership.learners.contains(&id) {
                "learner"
            } else {
                "none"
            }
        };
        let peers = self
            .router
            .queues()
            .into_iter()
            .map(|(id, e)| {
                let q = &e.queue;
                let m = matches.get(&id).copied();
                PeerStatus {
                    id,
                    addr: e.addr(),
                    member: member(id),
                    connected: q.connected(),
                    match_index: m,
                    lag: m.map(|m| last.saturating_sub(m)),
                    queued: q.len(),
                    sent_frames: q.sent(),
                    dropped_frames: q.dropped(),
                }
            })
            .collect();
        let membership_status = MembershipStatus {
            voters: membership.voters.iter().copied().collect(),
            voters_outgoing: membership.voters_outgoing.iter().copied().collect(),
            learners: membership.learners.iter().copied().collect(),
            index: raft.membership_index(),
            committed: raft.membership_index() <= raft.commit_index(),
            removed: raft.is_removed(),
            addresses: crate::members::addresses(membership),
        };
        let stats = self.node.stats();
        let (role, leader) = reported_role(
            raft.role(),
            raft.leader(),
            self.node.storage_failure().is_some(),
        );
        Status {
            id: self.me,
            role,
            term: raft.term(),
            leader,
            commit_index: raft.commit_index(),
            known_commit: raft.hard_state().known_commit,
            applied_index: log.applied,
            first_index: log.first_index(),
            last_index: last,
            log_entries: last + 1 - log.first_index(),
            log_bytes: log.bytes_after(log.first_index() - 1) as u64,
            snapshot_index: raft.snapshot().map_or(0, |s| s.meta.index),
            snapshots_taken: stats.snapshots_taken,
            snapshots_installed: stats.snapshots_installed,
            followers_lost_log: raft.followers_lost_log(),
            refused_by_core: CoreRefusals::of(&raft.stats()),
            read_mode: self.read_mode.as_str(),
            keys: self.node.kv().len() as u64,
            expires: self.node.kv().expiring() as u64,
            avg_ttl_ms: self
                .node
                .kv()
                .avg_ttl_ms(self.node.kv().read_time(unix_ms())),
            kv_bytes: self.node.kv().size_bytes() as u64,
            proposals: stats.proposals,
            applied_entries: stats.applied,
            reads_served: stats.reads_served,
            pending_requests: self.node.pending_requests(),
            uptime_ms: self.now(),
            storage_failure: self.node.storage_failure().map(String::from),
            membership: membership_status,
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
