//! Membership changes through the driver (`src/membership.rs`): requests answered when
//! the change is complete, truthful refusals, the leader handing over before it removes
//! itself, configurations reported to the embedder, and restarts that rebuild the
//! configuration from the store (log and snapshots) rather than from what they are
//! started with.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use driver::{Node, NodeOptions, Request, Response, SnapshotPolicy, Transport};
use raft::{ConfChange, ConfChangeError, Config, Membership, Message, NodeId};
use storage::{MemLogStore, MemSnapshotStore};

#[derive(Clone, Default)]
struct Wire(Rc<RefCell<VecDeque<Message>>>);

impl Transport for Wire {
    fn send(&mut self, msg: Message) {
        self.0.borrow_mut().push_back(msg);
    }
}

type TestNode = Node<Wire, MemLogStore>;

/// Nodes by ID, with their snapshot stores (kept across restarts).
struct Cluster {
    nodes: BTreeMap<NodeId, TestNode>,
    snaps: BTreeMap<NodeId, MemSnapshotStore>,
    wire: Wire,
    now: u64,
    opts: NodeOptions,
}

fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = id;
    c.election_timeout_ticks = 100;
    c.heartbeat_interval_ticks = 20;
    c.lease_ticks = 80;
    c.retransmit_ticks = 10;
    c.min_retransmit_ticks = 2;
    c
}

fn bootstrap() -> Membership {
    Membership::new([1, 2, 3])
}

fn add(id: NodeId) -> ConfChange {
    ConfChange::AddLearner {
        id,
        metadata: Bytes::from(format!("127.0.0.1:71{id:02}")),
    }
}

impl Cluster {
    fn new(snapshot_every: u64) -> Cluster {
        let opts = NodeOptions {
            hold_ticks: 500,
            fresh_leader_ticks: 30,
            snapshot: SnapshotPolicy {
                every_entries: snapshot_every,
                keep_entries: 0,
            },
            ..NodeOptions::default()
        };
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            snaps: BTreeMap::new(),
            wire: Wire::default(),
            now: 0,
            opts,
        };
        for id in 1..=3 {
            c.open(id, bootstrap(), MemLogStore::new());
        }
        c
    }

    fn open(&mut self, id: NodeId, membership: Membership, store: MemLogStore) {
        let snaps = self.snaps.entry(id).or_default().clone();
        let node = Node::open_with_snapshots(
            config(id),
            membership,
            self.wire.clone(),
            store,
            Box::new(snaps),
            self.opts.clone(),
        )
        .expect("open");
        self.nodes.insert(id, node);
    }

    /// A node with an empty disk that knows no configuration: it joins.
    fn join(&mut self, id: NodeId) {
        self.open(id, Membership::default(), MemLogStore::new());
    }

    /// Stops `id` and starts it again from its store, told `membership` at start.
    fn restart(&mut self, id: NodeId, membership: Membership) {
        let node = self.nodes.remove(&id).expect("node");
        self.open(id, membership, node.into_store());
    }

    fn node(&mut self, id: NodeId) -> &mut TestNode {
        self.nodes.get_mut(&id).expect("node")
    }

    fn deliver(&mut self) {
        for n in self.nodes.values_mut() {
            n.process();
        }
        loop {
            let Some(msg) = self.wire.0.borrow_mut().pop_front() else {
                break;
            };
            let now = self.now;
            if let Some(n) = self.nodes.get_mut(&msg.to) {
                n.step(now, msg);
                n.process();
            }
        }
    }

    fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.now += 1;
            let now = self.now;
            for n in self.nodes.values_mut() {
                n.tick(now);
            }
            self.deliver();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .find(|n| n.raft().is_leader())
            .map(|n| n.raft().id())
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..2000 {
            if let Some(l) = self.leader() {
                self.run(5);
                return l;
            }
            self.run(1);
        }
        panic!("no leader");
    }

    fn submit(&mut self, id: NodeId, req_id: u64, req: Request) {
        let now = self.now;
        self.node(id).submit(now, req_id, req);
        self.deliver();
    }

    /// Submits a change to `id` and runs until it is answered.
    fn change(&mut self, id: NodeId, req_id: u64, changes: Vec<ConfChange>) -> Response {
        self.submit(id, req_id, Request::ChangeMembership(changes));
        for _ in 0..1000 {
            let resp = self.node(id).take_responses();
            if let Some((_, r)) = resp.into_iter().find(|(i, _)| *i == req_id) {
                return r;
            }
            self.run(1);
        }
        panic!("change {req_id} never answered");
    }

    fn put(&mut self, id: NodeId, req_id: u64, key: &str) {
        let req = Request::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
        };
        self.submit(id, req_id, req);
    }
}

fn voters(ids: &[NodeId]) -> std::collections::BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

#[test]
fn a_member_is_added_and_promoted_and_every_node_hears_of_it() {
    let mut c = Cluster::new(0);
    let l = c.elect();
    c.join(4);
    let r = c.change(l, 1, vec![add(4)]);
    let Response::MembershipChanged(m) = r else {
        panic!("{r:?}");
    };
    assert!(m.learners.contains(&4));
    let r = c.change(l, 2, vec![ConfChange::Promote { id: 4 }]);
    let Response::MembershipChanged(m) = r else {
        panic!("{r:?}");
    };
    // Answered once the joint configuration was left, not when it committed.
    assert!(!m.is_joint());
    assert_eq!(m.voters, voters(&[1, 2, 3, 4]));
    assert_eq!(
        m.metadata.get(&4).map(|b| &b[..]),
        Some(&b"127.0.0.1:7104"[..])
    );
    c.run(30);
    for id in 1..=4 {
        let applied = c.node(id).take_applied_configs();
        let kinds: Vec<bool> = applied.iter().map(|(_, m)| m.is_joint()).collect();
        assert_eq!(kinds, vec![false, true, false], "node {id}: {applied:?}");
        assert_eq!(c.node(id).committed_membership(), &m, "node {id}");
    }
}

#[test]
fn a_change_the_cluster_cannot_make_is_refused_with_the_reason() {
    let mut c = Cluster::new(0);
    let l = c.elect();
    let f = (1..=3).find(|&id| id != l).unwrap();
    let r = c.change(l, 1, vec![ConfChange::Promote { id: f }]);
    assert_eq!(
        r,
        Response::MembershipRefused(ConfChangeError::NotALearner(f))
    );
    assert!(r.not_executed());
    let r = c.change(l, 2, vec![add(f)]);
    assert_eq!(
        r,
        Response::MembershipRefused(ConfChangeError::AlreadyMember(f))
    );
    // On a follower: a redirect to the leader, as for any write.
    let r = c.change(f, 3, vec![add(9)]);
    assert_eq!(r, Response::Redirect(Some(l)));
}

#[test]
fn the_leader_hands_over_before_it_removes_itself() {
    let mut c = Cluster::new(0);
    let l = c.elect();
    let term = c.node(l).raft().term();
    // The request goes to the leader, which hands leadership to a voter that stays and
    // sends the request on (here: answers with a redirect to it, as the router follows).
    let r = c.change(l, 1, vec![ConfChange::Remove { id: l }]);
    let Response::Redirect(Some(new)) = r else {
        panic!("{r:?}");
    };
    assert_ne!(new, l);
    assert_eq!(c.node(new).raft().term(), term + 1);
    let r = c.change(new, 2, vec![ConfChange::Remove { id: l }]);
    let Response::MembershipChanged(m) = r else {
        panic!("{r:?}");
    };
    assert!(!m.is_voter(l));
    c.run(50);
    assert!(c.node(l).is_removed());
    c.put(l, 3, "k");
    let resp = c.node(l).take_responses();
    assert!(
        matches!(&resp[..], [(3, Response::Fail(why))] if why.contains("removed")),
        "{resp:?}"
    );
    // It takes no part any more, and the others go on without it.
    c.run(500);
    assert_eq!(c.node(l).raft().term(), term + 1);
    c.put(new, 4, "k");
    c.run(5);
    let resp = c.node(new).take_responses();
    assert!(matches!(&resp[..], [(4, Response::Done)]), "{resp:?}");
}

#[test]
fn a_restart_takes_the_configuration_from_the_store_not_from_its_start_arguments() {
    let mut c = Cluster::new(0);
    let l = c.elect();
    c.join(4);
    c.change(l, 1, vec![add(4)]);
    let r = c.change(l, 2, vec![ConfChange::Promote { id: 4 }]);
    let Response::MembershipChanged(want) = r else {
        panic!("{r:?}");
    };
    c.run(30);
    let f = (1..=3).find(|&id| id != l).unwrap();
    c.restart(f, bootstrap());
    assert_eq!(c.node(f).raft().membership(), &want);
    c.restart(4, Membership::default());
    assert_eq!(c.node(4).raft().membership(), &want);
    c.run(200);
    assert!(c.leader().is_some());
}

#[test]
fn a_learner_catches_up_from_a_snapshot_and_restarts_from_its_configuration() {
    let mut c = Cluster::new(5);
    let l = c.elect();
    for i in 0..20 {
        c.put(l, 100 + i, &format!("k{i}"));
    }
    c.run(10);
    assert!(
        c.node(l).raft().log().first_index() > 1,
        "the leader compacted"
    );
    c.join(4);
    let r = c.change(l, 1, vec![add(4)]);
    assert!(matches!(r, Response::MembershipChanged(_)), "{r:?}");
    c.run(50);
    assert_eq!(c.node(4).stats().snapshots_installed, 1);
    assert_eq!(c.node(4).kv().len(), 20);
    let m = c.node(4).raft().membership().clone();
    assert!(m.learners.contains(&4));
    // More writes, a snapshot of its own that covers the change, then a restart.
    for i in 20..40 {
        c.put(l, 100 + i, &format!("k{i}"));
    }
    c.run(50);
    c.restart(4, Membership::default());
    assert_eq!(c.node(4).raft().membership(), &m);
    assert!(c.node(4).raft().log().snapshot_index() > 0);
}
