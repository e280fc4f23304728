//! Request routing: any node takes any request. A follower forwards what its node cannot
//! serve to the leader, parks it while no leader is known, follows the leader when it
//! moves, and answers the client once — in the server and in the simulator alike.
//!
//! [`RoutedNode`] wraps a [`Node`] (it derefs to it) and speaks to the other nodes'
//! routers through [`Forward`] messages that the caller carries (sans-IO: it drains
//! them with [`RoutedNode::take_forwards`], and hands in what arrives with
//! [`RoutedNode::on_forward`]).
//!
//! Invariants:
//! - every client request gets exactly one answer, within `timeout_ticks`;
//! - an answer that says "not executed" ([`Response::not_executed`]) is true: a write
//!   that was ever sent to another node and not answered by every one of them is
//!   answered [`Response::Unknown`] when it finally fails;
//! - a write is sent a second time (to a new leader, or after a lost message) only if it
//!   carries a session, so it applies at most once; reads may always be resent;
//! - a forward's answer is taken only from a node the forward was sent to, by an id no
//!   other incarnation of this node uses (ids start at a random point per start), so a
//!   late answer meant for an earlier process cannot answer a new request.

use std::ops::{Deref, DerefMut};

use kv::SessionTag;
use raft::NodeId;
use storage::LogStore;

use crate::deadlines::DeadlineMap;
use crate::node::{Node, Transport};
use crate::request::{ReqId, Request, Response};

/// A message between two nodes' routers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Run this request (the sender believes we lead); answer with `Resp { id }`.
    Req {
        id: u64,
        req: Request,
        session: Option<SessionTag>,
    },
    /// The answer to the sender's `Req { id }` (a `Redirect` if we did not lead).
    Resp { id: u64, resp: Response },
}

/// How patient the router is.
#[derive(Clone, Debug)]
pub struct RoutingOptions {
    /// An unanswered forward that may be resent (a read, or a write with a session) is
    /// sent again after this long, to whoever leads then: a lost frame costs this much.
    pub retry_ticks: u64,
    /// A request not answered within this long fails (outcome unknown once sent).
    pub timeout_ticks: u64,
    /// Sends of one request to other nodes, redirects and retries included.
    pub max_sends: u32,
    /// Bound on requests forwarded and not yet answered; beyond it new ones fail.
    pub max_forwards: usize,
    /// TEST ONLY: deliberate routing bugs for the simulator to find.
    pub planted_bugs: PlantedRoutingBugs,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        RoutingOptions {
            retry_ticks: 2_000,
            timeout_ticks: 10_000,
            max_sends: 8,
            max_forwards: 100_000,
            planted_bugs: PlantedRoutingBugs::default(),
        }
    }
}

/// TEST ONLY: routing bugs the simulator must find. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedRoutingBugs {
    /// Match a forward's answer by id alone, from any node, with ids starting at 1 in
    /// every incarnation (the bug the review found in the server).
    pub forward_reply_by_id_only: bool,
    /// Resend a forwarded write without its session (it may then apply twice).
    pub retry_without_session: bool,
    /// Answer "not executed" when a write that was sent somewhere finally fails.
    pub redirect_for_executed_write: bool,
}

/// Counters for metrics and tests.
#[derive(Clone, Debug, Default)]
pub struct RoutingStats {
    pub forwarded_out: u64,
    pub forwarded_in: u64,
    /// Forwards sent again (leader moved, or no answer within `retry_ticks`).
    pub resent: u64,
    pub timeouts: u64,
    /// Answers from a node the forward was not sent to, or to an unknown id: ignored.
    pub stray_answers: u64,
    /// Forwards held because the node they went to knew no leader (it stepped down, or
    /// its store failed): a leader change or the retry timer sends them on.
    pub parked: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Client(ReqId),
    Peer { from: NodeId, id: u64 },
}

#[derive(Debug)]
struct Pending {
    origin: Origin,
    req: Request,
    session: Option<SessionTag>,
    /// When the request fails without an answer.
    deadline: u64,
    sends: u32,
    /// A write that some node may have executed (sent and not answered "not executed").
    maybe_executed: bool,
    /// False for [`RoutedNode::submit_unrouted`]: the node's answer goes back as it is.
    routed: bool,
}

impl Pending {
    fn resendable(&self, bugs: PlantedRoutingBugs) -> bool {
        self.req.is_read()
            || self.session.is_some()
            || !self.maybe_executed
            || bugs.retry_without_session
    }
}

#[derive(Debug)]
struct InFlight {
    p: Pending,
    /// The nodes this forward went to (an answer from any of them is an answer).
    sent_to: Vec<NodeId>,
    /// When it was last sent, or parked (to no node) while no leader was known.
    last_sent: Option<u64>,
    /// Whether the request may have been executed before this forward began.
    executed_before: bool,
    /// Times this forward was sent (to one node or several).
    sends_here: u32,
}

impl InFlight {
    /// When the router must look at it again: its deadline, or its resend time.
    fn due(&self, retry_ticks: u64, bugs: PlantedRoutingBugs) -> u64 {
        match self.last_sent {
            Some(at) if self.p.resendable(bugs) => self.p.deadline.min(at + retry_ticks),
            _ => self.p.deadline,
        }
    }
}

/// A [`Node`] with request routing in front of it.
pub struct RoutedNode<T: Transport, S: LogStore> {
    node: Node<T, S>,
    opts: RoutingOptions,
    now: u64,
    /// Requests handed to our own node, by the id we gave it.
    local: DeadlineMap<ReqId, Pending>,
    next_local: ReqId,
    /// Requests forwarded (or parked), by forward id.
    forwards: DeadlineMap<u64, InFlight>,
    next_forward: u64,
    out: Vec<(NodeId, Forward)>,
    responses: Vec<(ReqId, Response)>,
    /// The leader forwards were last aimed at.
    last_leader: Option<NodeId>,
    stats: RoutingStats,
}

impl<T: Transport, S: LogStore> Deref for RoutedNode<T, S> {
    type Target = Node<T, S>;
    fn deref(&self) -> &Node<T, S> {
        &self.node
    }
}

impl<T: Transport, S: LogStore> DerefMut for RoutedNode<T, S> {
    fn deref_mut(&mut self) -> &mut Node<T, S> {
        &mut self.node
    }
}

impl<T: Transport, S: LogStore> RoutedNode<T, S> {
    /// `instance` must differ between starts of the same node (a random number): it
    /// picks where this incarnation's forward ids start.
    pub fn new(node: Node<T, S>, opts: RoutingOptions, instance: u64) -> Self {
        let next_forward = if opts.planted_bugs.forward_reply_by_id_only {
            1
        } else {
            // Ids count up from a random point; 2^62 ids apart on average.
            (instance | 1) & (u64::MAX >> 1)
        };
        RoutedNode {
            node,
            opts,
            now: 0,
            local: DeadlineMap::default(),
            next_local: 1,
            forwards: DeadlineMap::default(),
            next_forward,
            out: Vec::new(),
            responses: Vec::new(),
            last_leader: None,
            stats: RoutingStats::default(),
        }
    }

    pub fn node(&self) -> &Node<T, S> {
        &self.node
    }
    pub fn into_node(self) -> Node<T, S> {
        self.node
    }
    /// Gives back the store (a simulator crashes a node and reopens its store).
    pub fn into_store(self) -> S {
        self.node.into_store()
    }
    pub fn routing_stats(&self) -> &RoutingStats {
        &self.stats
    }
    /// Requests waiting here: at our node or forwarded.
    pub fn pending_requests(&self) -> usize {
        self.local.len() + self.forwards.len()
    }

    /// A client's request. Writes should carry a session: only then can the router
    /// resend them safely when a leader fails.
    pub fn submit(&mut self, now: u64, id: ReqId, req: Request, session: Option<SessionTag>) {
        self.now = self.now.max(now);
        let p = Pending {
            origin: Origin::Client(id),
            deadline: self.now + self.opts.timeout_ticks,
            req,
            session,
            sends: 0,
            maybe_executed: false,
            routed: true,
        };
        self.submit_local(p);
    }

    /// A request for this node alone: its answer (a redirect included) comes back as the
    /// node gave it, with no forwarding (scripted tests of the core, the Raft labs).
    pub fn submit_unrouted(&mut self, now: u64, id: ReqId, req: Request) {
        self.now = self.now.max(now);
        let p = Pending {
            origin: Origin::Client(id),
            deadline: self.now + self.opts.timeout_ticks,
            req,
            session: None,
            sends: 0,
            maybe_executed: false,
            routed: false,
        };
        self.submit_local(p);
    }

    /// A message from another node's router.
    pub fn on_forward(&mut self, now: u64, from: NodeId, msg: Forward) {
        self.now = self.now.max(now);
        self.node.tick(self.now);
        match msg {
            Forward::Req { id, .. } if self.node.storage_failure().is_some() => {
                // We cannot serve (and may still look like the leader to the asker):
                // "not executed, no leader known" lets it wait for the next leader.
                self.stats.forwarded_in += 1;
                let resp = Response::Redirect(None);
                self.out.push((from, Forward::Resp { id, resp }));
            }
            Forward::Req { id, req, session } => {
                self.stats.forwarded_in += 1;
                let p = Pending {
                    origin: Origin::Peer { from, id },
                    deadline: self.now + self.opts.timeout_ticks,
                    req,
                    session,
                    sends: 0,
                    maybe_executed: false,
                    routed: false,
                };
                self.submit_local(p);
            }
            Forward::Resp { id, resp } => self.on_forward_answer(from, id, resp),
        }
    }

    /// Advances time: the node's timers, and forwards due for a resend or a timeout.
    pub fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.node.tick(self.now);
        self.expire_local();
        self.expire_forwards();
    }

    /// Requests our node has not answered by their deadline (a leader cut off with
    /// proposals in flight can hold them for long): answered now; the node's answer,
    /// if it comes later, is dropped.
    fn expire_local(&mut self) {
        let now = self.now;
        let expired = self.local.due_by(now);
        if expired.is_empty() {
            return;
        }
        for id in expired {
            let p = self.local.remove(&id).expect("present");
            self.stats.timeouts += 1;
            let resp = if p.req.is_read() {
                Response::Fail("TIMEOUT the read was not confirmed in time")
            } else {
                Response::Unknown(
                    "TIMEOUT the write did not commit in time; the outcome is unknown",
                )
            };
            self.answer(p, resp);
        }
    }

    pub fn step(&mut self, now: u64, msg: raft::Message) {
        self.now = self.now.max(now);
        self.node.step(self.now, msg);
    }

    /// The earliest tick at which [`RoutedNode::tick`] has work.
    pub fn next_deadline(&self) -> u64 {
        let own = self.local.first_due().min(self.forwards.first_due());
        self.node.next_deadline().min(own)
    }

    /// Runs the node and routes its answers until nothing is left to do (routing can
    /// submit again, when a redirect names this node).
    pub fn process(&mut self) {
        for _ in 0..8 {
            self.node.process();
            let answers = self.node.take_responses();
            let idle = answers.is_empty();
            for (id, resp) in answers {
                if let Some(p) = self.local.remove(&id) {
                    self.on_node_answer(p, resp);
                }
            }
            self.follow_leader();
            if idle && !self.node.raft().has_ready() {
                break;
            }
        }
    }

    /// Answers for clients, since the last call.
    pub fn take_responses(&mut self) -> Vec<(ReqId, Response)> {
        std::mem::take(&mut self.responses)
    }

    /// Messages for other nodes' routers, since the last call.
    pub fn take_forwards(&mut self) -> Vec<(NodeId, Forward)> {
        std::mem::take(&mut self.out)
    }

    // ----- internals -----

    /// Files forward `id` under its current due time (every change of `last_sent` or
    /// `deadline` goes through here).
    fn put_forward(&mut self, id: u64, f: InFlight) {
        let due = f.due(self.opts.retry_ticks, self.opts.planted_bugs);
        self.forwards.insert(id, due, f);
    }

    fn me(&self) -> NodeId {
        self.node.raft().id()
    }

    fn submit_local(&mut self, p: Pending) {
        let id = self.next_local;
        self.next_local += 1;
        let (req, session) = (p.req.clone(), p.session);
        self.local.insert(id, p.deadline, p);
        let now = self.now;
        match session {
            Some(tag) if !req.is_read() => self.node.submit_session(now, id, req, tag),
            _ => self.node.submit(now, id, req),
        }
    }

    fn on_node_answer(&mut self, mut p: Pending, resp: Response) {
        if !p.routed {
            // A peer's request follows redirects itself (the asker owns the retries).
            self.answer(p, resp);
            return;
        }
        match resp {
            Response::Redirect(Some(leader)) if leader != self.me() => self.forward(p, leader),
            // Our node held it while no leader was known (`hold_ticks`), in vain.
            Response::Redirect(_) => {
                self.fail(p, "CLUSTERDOWN no leader elected; try again", false)
            }
            // Our node cannot tell (a snapshot swallowed it): a session makes a resend safe.
            Response::Unknown(why) if p.session.is_some() && !p.req.is_read() => {
                p.maybe_executed = true;
                match self.node.leader() {
                    Some(l) if l != self.me() && p.sends < self.opts.max_sends => {
                        self.forward(p, l)
                    }
                    _ => self.answer(p, Response::Unknown(why)),
                }
            }
            other => self.answer(p, other),
        }
    }

    /// Sends `p` to `to` as a new forward.
    fn forward(&mut self, p: Pending, to: NodeId) {
        if self.forwards.len() >= self.opts.max_forwards {
            self.fail(p, "busy: too many requests forwarded", false);
            return;
        }
        let id = self.next_forward;
        self.next_forward = self.next_forward.wrapping_add(1);
        let executed_before = p.maybe_executed;
        self.put_forward(
            id,
            InFlight {
                p,
                sent_to: Vec::new(),
                last_sent: None,
                executed_before,
                sends_here: 0,
            },
        );
        self.send_forward(id, to);
    }

    /// (Re)sends forward `id` to `to`, or fails it once it was sent too often.
    fn send_forward(&mut self, id: u64, to: NodeId) {
        let now = self.now;
        let max_sends = self.opts.max_sends;
        let bugs = self.opts.planted_bugs;
        let Some(mut f) = self.forwards.remove(&id) else {
            return;
        };
        if f.p.sends >= max_sends {
            self.fail(f.p, "CLUSTERDOWN leader keeps moving; try again", false);
            return;
        }
        if f.p.sends > 0 {
            self.stats.resent += 1;
        }
        f.p.sends += 1;
        f.sends_here += 1;
        if !f.p.req.is_read() {
            f.p.maybe_executed = true;
        }
        if !f.sent_to.contains(&to) {
            f.sent_to.push(to);
        }
        f.last_sent = Some(now);
        let session = if f.p.sends > 1 && bugs.retry_without_session {
            None
        } else {
            f.p.session
        };
        self.stats.forwarded_out += 1;
        let req = f.p.req.clone();
        self.put_forward(id, f);
        self.out.push((to, Forward::Req { id, req, session }));
    }

    fn on_forward_answer(&mut self, from: NodeId, id: u64, resp: Response) {
        let by_id_only = self.opts.planted_bugs.forward_reply_by_id_only;
        let Some(f) = self.forwards.get(&id) else {
            self.stats.stray_answers += 1;
            return; // answered or timed out already
        };
        if !by_id_only && !f.sent_to.contains(&from) {
            self.stats.stray_answers += 1;
            return;
        }
        let mut f = self.forwards.remove(&id).expect("present");
        // "Not executed" holds for the request only if this was its one send: an
        // earlier copy (to this node's previous process, or another node) may have run.
        if resp.not_executed() && f.sends_here == 1 && !f.executed_before {
            f.p.maybe_executed = false;
        }
        match resp {
            Response::Redirect(Some(leader)) if leader == self.me() => {
                // We won an election meanwhile: serve it here.
                self.resubmit_here(f.p);
            }
            Response::Redirect(Some(leader)) if f.p.resendable(self.opts.planted_bugs) => {
                self.put_forward(id, f);
                self.send_forward(id, leader);
            }
            Response::Redirect(_) if f.p.resendable(self.opts.planted_bugs) => {
                // The node we asked leads no more and knows no leader: wait for one (a
                // leader change, or the retry timer, sends it on).
                f.last_sent = Some(self.now);
                self.stats.parked += 1;
                self.put_forward(id, f);
            }
            Response::Redirect(_) => {
                self.fail(f.p, "CLUSTERDOWN no leader elected; try again", false)
            }
            // The leader cannot tell (its store failed with the write in flight, or it
            // timed out): the session makes a copy at the next leader harmless.
            Response::Unknown(_)
                if f.p.session.is_some()
                    && !f.p.req.is_read()
                    && f.p.sends < self.opts.max_sends =>
            {
                f.p.maybe_executed = true;
                f.last_sent = Some(self.now);
                self.stats.parked += 1;
                self.put_forward(id, f);
            }
            other => self.answer(f.p, other),
        }
    }

    /// A forwarded request comes home: we lead now.
    fn resubmit_here(&mut self, p: Pending) {
        if p.resendable(self.opts.planted_bugs) {
            self.submit_local(p);
        } else {
            self.fail(
                p,
                "TIMEOUT the leader changed; the outcome is unknown",
                true,
            );
        }
    }

    /// After a leader change, every forward that may be resent goes to the new leader at
    /// once (the session makes a second copy of a write harmless), instead of waiting
    /// out its timeout behind a leader that is gone.
    fn follow_leader(&mut self) {
        let leader = if self.node.raft().is_leader() {
            Some(self.me())
        } else {
            self.node.leader()
        };
        if leader == self.last_leader {
            return;
        }
        self.last_leader = leader;
        let Some(leader) = leader else { return };
        let bugs = self.opts.planted_bugs;
        let movable: Vec<u64> = self
            .forwards
            .values()
            .filter(|(_, f)| f.sent_to.last() != Some(&leader) && f.p.resendable(bugs))
            .map(|(&id, _)| id)
            .collect();
        for id in movable {
            if leader == self.me() {
                let f = self.forwards.remove(&id).expect("present");
                self.resubmit_here(f.p);
            } else {
                self.send_forward(id, leader);
            }
        }
    }

    /// Resends forwards that got no answer within `retry_ticks`; fails those past their
    /// deadline.
    fn expire_forwards(&mut self) {
        let now = self.now;
        let retry = self.opts.retry_ticks;
        let bugs = self.opts.planted_bugs;
        let mut expired = Vec::new();
        let mut resend = Vec::new();
        for id in self.forwards.due_by(now) {
            let f = self.forwards.get(&id).expect("due entries are present");
            if f.p.deadline <= now {
                expired.push(id);
            } else if f.last_sent.is_some_and(|at| at + retry <= now) && f.p.resendable(bugs) {
                resend.push(id);
            }
        }
        for id in expired {
            let f = self.forwards.remove(&id).expect("present");
            self.stats.timeouts += 1;
            self.fail(
                f.p,
                "TIMEOUT no answer from the leader; the outcome is unknown",
                true,
            );
        }
        let leader = self.node.leader();
        for id in resend {
            match leader {
                Some(l) if l == self.me() => {
                    let f = self.forwards.remove(&id).expect("present");
                    self.resubmit_here(f.p);
                }
                Some(l) => self.send_forward(id, l),
                None => {
                    // No leader to send to: wait (the deadline still holds).
                    if let Some(mut f) = self.forwards.remove(&id) {
                        f.last_sent = Some(now);
                        self.put_forward(id, f);
                    }
                }
            }
        }
    }

    /// Fails `p` truthfully: "not executed" only if no node may have executed it.
    fn fail(&mut self, p: Pending, why: &'static str, timed_out: bool) {
        let unknown = if p.maybe_executed && !self.opts.planted_bugs.redirect_for_executed_write {
            Some(if timed_out {
                why
            } else {
                "TIMEOUT the request was sent to a leader that failed; the outcome is unknown"
            })
        } else if timed_out && p.sends > 0 && !p.req.is_read() {
            Some(why)
        } else {
            None
        };
        let resp = match unknown {
            Some(why) => Response::Unknown(why),
            None => Response::Fail(why),
        };
        self.answer(p, resp);
    }

    fn answer(&mut self, p: Pending, mut resp: Response) {
        // A definite failure of this attempt is not definite for the request if an
        // earlier attempt may have executed it.
        if p.maybe_executed
            && resp.not_executed()
            && !self.opts.planted_bugs.redirect_for_executed_write
        {
            resp = Response::Unknown(
                "TIMEOUT the request was sent to a leader that failed; the outcome is unknown",
            );
        }
        match p.origin {
            Origin::Client(id) => self.responses.push((id, resp)),
            Origin::Peer { from, id } => self.out.push((from, Forward::Resp { id, resp })),
        }
    }
}
