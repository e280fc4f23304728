//! The router over a tiny in-process network of three nodes: forwarding, following a new
//! leader, answers matched by the node they came from, and truthful failures. Each test
//! is one of the server bugs of issue 10, now in the driver.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use driver::{
    Forward, Node, NodeOptions, Request, Response, RoutedNode, RoutingOptions, Transport,
};
use kv::SessionTag;
use raft::{Config, Membership, Message, NodeId};
use storage::{FaultInjector, MemLogStore};

#[derive(Clone, Default)]
struct Wire(Rc<RefCell<VecDeque<Message>>>);

impl Transport for Wire {
    fn send(&mut self, msg: Message) {
        self.0.borrow_mut().push_back(msg);
    }
}

type Routed = RoutedNode<Wire, MemLogStore>;

struct Cluster {
    nodes: Vec<Routed>,
    wire: Wire,
    forwards: VecDeque<(NodeId, NodeId, Forward)>,
    now: u64,
    /// Nodes that are frozen (SIGSTOP): they take no input and send nothing.
    paused: Vec<NodeId>,
    answers: Vec<(NodeId, u64, Response, u64)>,
    /// Each node's disk (index = id - 1): fill one to fail its store.
    disks: Vec<Arc<FaultInjector>>,
}

fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = id;
    c.election_timeout_ticks = 100;
    c.heartbeat_interval_ticks = 20;
    c.lease_ticks = 0;
    c.retransmit_ticks = 10;
    c.min_retransmit_ticks = 2;
    c
}

fn routing() -> RoutingOptions {
    RoutingOptions {
        retry_ticks: 200,
        timeout_ticks: 5_000,
        ..RoutingOptions::default()
    }
}

fn open(id: NodeId, wire: &Wire, instance: u64) -> Routed {
    open_with_faults(id, wire, instance, FaultInjector::new())
}

fn open_with_faults(id: NodeId, wire: &Wire, instance: u64, faults: Arc<FaultInjector>) -> Routed {
    let node = Node::open(
        config(id),
        Membership::new([1, 2, 3]),
        wire.clone(),
        MemLogStore::new().with_faults(faults),
        NodeOptions {
            hold_ticks: 1_000,
            fresh_leader_ticks: 30,
            ..NodeOptions::default()
        },
    )
    .expect("open");
    RoutedNode::new(node, routing(), instance)
}

fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

fn session(seq: u64) -> Option<SessionTag> {
    Some(SessionTag {
        client: 77,
        seq,
        first_outstanding: seq,
    })
}

impl Cluster {
    fn new() -> Cluster {
        let wire = Wire::default();
        let disks: Vec<_> = (0..3).map(|_| FaultInjector::new()).collect();
        let nodes = (1..=3)
            .map(|id| open_with_faults(id, &wire, id * 1_000_003, disks[id as usize - 1].clone()))
            .collect();
        Cluster {
            disks,
            nodes,
            wire,
            forwards: VecDeque::new(),
            now: 0,
            paused: Vec::new(),
            answers: Vec::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Routed {
        &mut self.nodes[id as usize - 1]
    }

    fn up(&self, id: NodeId) -> bool {
        !self.paused.contains(&id)
    }

    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            let id = i as NodeId + 1;
            if !self.up(id) {
                continue;
            }
            self.nodes[i].process();
            for (to, f) in self.nodes[i].take_forwards() {
                self.forwards.push_back((id, to, f));
            }
            let now = self.now;
            for (rid, resp) in self.nodes[i].take_responses() {
                self.answers.push((id, rid, resp, now));
            }
        }
    }

    fn deliver(&mut self) {
        for _ in 0..100_000 {
            self.collect();
            let msg = self.wire.0.borrow_mut().pop_front();
            if let Some(msg) = msg {
                if self.up(msg.to) && self.up(msg.from) {
                    let (now, to) = (self.now, msg.to);
                    self.node(to).step(now, msg);
                }
                continue;
            }
            let Some((from, to, f)) = self.forwards.pop_front() else {
                return;
            };
            if self.up(to) {
                let now = self.now;
                self.node(to).on_forward(now, from, f);
            }
        }
        panic!("the network never went quiet");
    }

    fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.now += 1;
            let now = self.now;
            for i in 0..self.nodes.len() {
                if self.up(i as NodeId + 1) {
                    self.nodes[i].tick(now);
                }
            }
            self.deliver();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.up(*i as NodeId + 1))
            .find(|(_, n)| n.raft().is_leader())
            .map(|(_, n)| n.raft().id())
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..5_000 {
            if let Some(l) = self.leader() {
                self.run(30);
                return l;
            }
            self.run(1);
        }
        panic!("no leader");
    }

    fn submit(&mut self, at: NodeId, rid: u64, req: Request, s: Option<SessionTag>) {
        let now = self.now;
        self.node(at).submit(now, rid, req, s);
        self.deliver();
    }

    /// Submits and runs the node, leaving what it sends on the wire.
    fn submit_only(&mut self, at: NodeId, rid: u64, req: Request, s: Option<SessionTag>) {
        let now = self.now;
        self.node(at).submit(now, rid, req, s);
        self.collect();
    }

    /// Runs tick by tick until request `rid` is answered, at most `ticks`.
    fn run_until_answered(&mut self, rid: u64, ticks: u64) {
        for _ in 0..ticks {
            if self.answer(rid).is_some() {
                return;
            }
            self.run(1);
        }
    }

    fn answer(&self, rid: u64) -> Option<(Response, u64)> {
        self.answers
            .iter()
            .find(|(_, r, _, _)| *r == rid)
            .map(|(_, _, resp, at)| (resp.clone(), *at))
    }
}

fn follower_of(leader: NodeId) -> NodeId {
    if leader == 1 {
        2
    } else {
        1
    }
}

#[test]
fn a_follower_forwards_to_the_leader_and_answers_once() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    c.submit(f, 1, put("k", "v"), session(1));
    c.run(50);
    let answers: Vec<_> = c.answers.iter().filter(|a| a.1 == 1).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].2, Response::Done);
    assert_eq!(c.node(f).routing_stats().forwarded_out, 1);
}

/// The bug: a forward sent to a leader that is then paused waited out the whole request
/// timeout (10 s in the server), although a new leader is elected in about one election
/// timeout. Now the router resends it to the new leader as soon as it is known.
#[test]
fn a_forward_behind_a_paused_leader_follows_the_new_leader_at_once() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    c.paused.push(l); // SIGSTOP: the forward reaches the leader's socket, then nothing
    let sent_at = c.now;
    c.submit(f, 1, put("k", "v"), session(1));
    c.run_until_answered(1, 3_000);
    let (resp, at) = c.answer(1).expect("answered");
    assert_eq!(resp, Response::Done);
    let waited = at - sent_at;
    // Election timeouts are 100–200 ticks; the request timeout is 5,000.
    assert!(
        waited < 600,
        "answered after {waited} ticks: it waited for a timeout"
    );
    // And it applied once, on the leader that took it.
    let new_leader = c.leader().unwrap();
    assert_eq!(
        c.node(new_leader).kv().get(b"k".as_slice()).cloned(),
        Some(Bytes::from_static(b"v"))
    );
}

/// The bug: forward ids started at 1 in every process and answers were matched by id
/// alone, so an answer queued for a follower's previous process answered the new one's
/// request. Now ids start at a random point per start, and an answer counts only from
/// a node the forward went to.
#[test]
fn an_answer_from_a_node_the_forward_did_not_go_to_is_ignored() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    let other = 6 - l - f;
    c.paused.push(l);
    c.submit_only(f, 1, put("k", "v"), session(1));
    let (_, to, fwd) = c.forwards.pop_front().expect("a forward to the leader");
    assert_eq!(to, l);
    let Forward::Req { id, .. } = fwd else {
        panic!("not a request: {fwd:?}")
    };
    // A forged or stale answer from the wrong node, with the right id.
    let now = c.now;
    c.node(f).on_forward(
        now,
        other,
        Forward::Resp {
            id,
            resp: Response::Value(Some(Bytes::from_static(b"someone else's"))),
        },
    );
    c.collect();
    assert!(c.answer(1).is_none(), "a stray answer was taken");
    assert_eq!(c.node(f).routing_stats().stray_answers, 1);
}

/// A node that restarts (a new router over the same node here) numbers its forwards
/// from a new random point: an answer meant for its previous process cannot match.
#[test]
fn forward_ids_differ_between_starts_of_a_node() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    c.paused.push(l);
    let first_forward_id = |c: &mut Cluster, rid: u64| {
        c.submit_only(f, rid, put("k", "v"), session(rid));
        let (_, _, fwd) = c.forwards.pop_back().expect("a forward");
        match fwd {
            Forward::Req { id, .. } => id,
            other => panic!("not a request: {other:?}"),
        }
    };
    let before = first_forward_id(&mut c, 1);
    let i = f as usize - 1;
    let node = std::mem::replace(&mut c.nodes[i], open(f, &c.wire.clone(), 1)).into_node();
    c.nodes[i] = RoutedNode::new(node, routing(), 0x5eed_0000_0000_0042);
    let after = first_forward_id(&mut c, 2);
    assert_ne!(before, after);
    assert!(
        before.abs_diff(after) > 1 << 20,
        "ids {before} and {after} are close"
    );
}

/// A write sent to a leader that then failed, and failed again elsewhere, may still have
/// applied: the client must hear "outcome unknown", never "not executed".
#[test]
fn a_write_that_may_have_applied_never_fails_as_not_executed() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    // Without a session the write cannot be resent: its fate is tied to the paused leader.
    c.paused.push(l);
    c.submit(f, 1, put("k", "v"), None);
    c.run(6_000);
    let (resp, _) = c.answer(1).expect("answered within the timeout");
    assert!(
        matches!(resp, Response::Unknown(_)),
        "a write the paused leader may apply was answered {resp:?}"
    );
}

/// Before: a leader whose store failed answered forwards "storage failure", and the
/// follower passed that to its client although a new leader was a second away. Now the
/// failed node answers "no leader known here" and the follower waits for the next one.
#[test]
fn a_forward_to_a_leader_whose_store_failed_follows_the_next_leader() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    // The leader's disk fills: its next write fails its store, and it stops.
    c.disks[l as usize - 1].fail_writes_after(0);
    c.submit(l, 99, put("first", "x"), None);
    c.run(1);
    assert!(
        c.node(l).storage_failure().is_some(),
        "the store did not fail"
    );
    c.submit(f, 1, put("k", "v"), session(1));
    c.run_until_answered(1, 3_000);
    let (resp, _) = c.answer(1).expect("answered");
    assert_eq!(resp, Response::Done);
    // (The failed node still believes it leads: it takes no part any more.)
    let new_leader = (1..=3)
        .find(|&n| n != l && c.node(n).raft().is_leader())
        .expect("a new leader");
    assert_eq!(
        c.node(new_leader).kv().get(b"k".as_slice()).cloned(),
        Some(Bytes::from_static(b"v"))
    );
}

/// Before: a forwarded write whose leader's disk filled while proposing it came back
/// "outcome unknown" although its session made a resend safe. Now it goes to the next
/// leader, and applies exactly once.
#[test]
fn a_forwarded_write_caught_by_its_leaders_disk_failure_is_resent_with_its_session() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = follower_of(l);
    c.disks[l as usize - 1].fail_writes_after(0);
    c.submit(
        f,
        1,
        Request::Cas {
            key: Bytes::from_static(b"n"),
            expected: None,
            new: Bytes::from_static(b"1"),
        },
        session(1),
    );
    c.run_until_answered(1, 3_000);
    assert!(
        c.node(l).storage_failure().is_some(),
        "the store did not fail"
    );
    let (resp, _) = c.answer(1).expect("answered");
    assert_eq!(
        resp,
        Response::Cas {
            swapped: true,
            current: None
        }
    );
}
