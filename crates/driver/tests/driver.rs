//! The driver over a tiny in-process network of three nodes: request holding, redirects,
//! bounce-back damping and the resolution of proposals by what commits at their index.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use driver::{Node, NodeOptions, Request, Response, Transport};
use raft::{Config, Membership, Message, NodeId};
use storage::MemLogStore;

#[derive(Clone, Default)]
struct Wire(Rc<RefCell<VecDeque<Message>>>);

impl Transport for Wire {
    fn send(&mut self, msg: Message) {
        self.0.borrow_mut().push_back(msg);
    }
}

struct Cluster {
    nodes: Vec<Node<Wire, MemLogStore>>,
    wire: Wire,
    now: u64,
    /// Links cut (from, to).
    cut: Vec<(NodeId, NodeId)>,
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

fn options() -> NodeOptions {
    NodeOptions {
        hold_ticks: 500,
        fresh_leader_ticks: 30,
        ..NodeOptions::default()
    }
}

impl Cluster {
    fn new() -> Cluster {
        let wire = Wire::default();
        let nodes = (1..=3)
            .map(|id| {
                Node::open(
                    config(id),
                    Membership::new([1, 2, 3]),
                    wire.clone(),
                    MemLogStore::new(),
                    options(),
                )
                .expect("open")
            })
            .collect();
        Cluster {
            nodes,
            wire,
            now: 0,
            cut: Vec::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node<Wire, MemLogStore> {
        &mut self.nodes[id as usize - 1]
    }

    fn deliver(&mut self) {
        for n in &mut self.nodes {
            n.process();
        }
        loop {
            let Some(msg) = self.wire.0.borrow_mut().pop_front() else {
                break;
            };
            if self.cut.contains(&(msg.from, msg.to)) {
                continue;
            }
            let now = self.now;
            let to = msg.to;
            self.node(to).step(now, msg);
            self.node(to).process();
        }
    }

    fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.now += 1;
            let now = self.now;
            for n in &mut self.nodes {
                n.tick(now);
            }
            self.deliver();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
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

    fn responses(&mut self, id: NodeId) -> Vec<(u64, Response)> {
        self.node(id).take_responses()
    }

    fn isolate(&mut self, id: NodeId) {
        for other in 1..=3 {
            if other != id {
                self.cut.push((id, other));
                self.cut.push((other, id));
            }
        }
    }
}

fn session(client: u64, seq: u64) -> kv::SessionTag {
    kv::SessionTag {
        client,
        seq,
        first_outstanding: seq,
    }
}

fn put(k: &str, v: &str) -> Request {
    Request::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
}

fn get(k: &str) -> Request {
    Request::Get {
        key: Bytes::copy_from_slice(k.as_bytes()),
    }
}

#[test]
fn writes_are_answered_after_commit_and_reads_see_them() {
    let mut c = Cluster::new();
    let l = c.elect();
    c.submit(l, 1, put("k", "v"));
    c.run(3);
    assert_eq!(c.responses(l), vec![(1, Response::Done)]);
    c.submit(l, 2, get("k"));
    c.run(1);
    assert_eq!(
        c.responses(l),
        vec![(2, Response::Value(Some(Bytes::from_static(b"v"))))]
    );
}

#[test]
fn a_follower_redirects_to_a_leader_it_hears_from() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = (1..=3).find(|&id| id != l).unwrap();
    c.run(2);
    c.submit(f, 7, get("k"));
    assert_eq!(c.responses(f), vec![(7, Response::Redirect(Some(l)))]);
}

#[test]
fn requests_are_held_while_no_leader_is_known_then_redirected() {
    let mut c = Cluster::new();
    c.run(1);
    // Before any election: hold.
    c.submit(2, 9, put("a", "1"));
    assert!(c.responses(2).is_empty(), "held, not failed");
    let l = c.elect();
    c.run(30);
    let resp = c.responses(2);
    if l == 2 {
        assert_eq!(resp, vec![(9, Response::Done)]);
    } else {
        assert_eq!(resp, vec![(9, Response::Redirect(Some(l)))]);
    }
}

#[test]
fn a_client_bouncing_back_is_held_instead_of_redirected_again() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = (1..=3).find(|&id| id != l).unwrap();
    // The leader dies silently; the follower still believes in it for a moment.
    c.isolate(l);
    let now = c.now;
    c.node(f).submit_tagged(now, 1, get("k"), 77);
    c.deliver();
    assert_eq!(c.responses(f), vec![(1, Response::Redirect(Some(l)))]);
    // The same client (tag) comes straight back: the named leader is not serving it.
    let now = c.now;
    c.node(f).submit_tagged(now, 2, get("k"), 77);
    c.deliver();
    assert!(c.responses(f).is_empty(), "held, not bounced again");
    // A new leader is elected among the other two; the held request goes to it.
    c.run(600);
    let resp = c.responses(f);
    assert_eq!(resp.len(), 1);
    let new_leader = c
        .nodes
        .iter()
        .filter(|n| n.raft().id() != l)
        .find(|n| n.raft().is_leader())
        .map(|n| n.raft().id());
    match &resp[0].1 {
        Response::Value(_) => assert_eq!(new_leader, Some(f)),
        Response::Redirect(Some(to)) => assert_eq!(Some(*to), new_leader),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_deposed_leaders_lost_proposal_is_answered_with_a_redirect() {
    let mut c = Cluster::new();
    let old = c.elect();
    c.isolate(old);
    // Accepted by the old leader, which can no longer commit it.
    c.submit(old, 5, put("lost", "x"));
    assert!(c.responses(old).is_empty());
    c.run(400);
    let new = c
        .nodes
        .iter()
        .find(|n| n.raft().is_leader() && n.raft().id() != old)
        .map(|n| n.raft().id())
        .unwrap();
    c.submit(new, 6, put("kept", "y"));
    c.submit(new, 7, put("kept2", "z"));
    c.run(5);
    c.cut.clear();
    c.run(200);
    // The old leader learns that another entry took the slot: its client is redirected.
    let resp = c.responses(old);
    assert_eq!(resp.len(), 1, "{resp:?}");
    assert!(matches!(resp[0], (5, Response::Redirect(_))), "{resp:?}");
    assert!(c.node(old).kv().get(b"lost").is_none());
}

#[test]
fn a_session_write_submitted_twice_applies_once_and_answers_with_the_first_outcome() {
    let mut c = Cluster::new();
    let l = c.elect();
    c.submit(l, 1, put("k", "v"));
    c.run(3);
    c.responses(l);
    let del = Request::Delete {
        key: Bytes::from_static(b"k"),
    };
    let now = c.now;
    c.node(l).submit_session(now, 2, del.clone(), session(9, 1));
    c.deliver();
    c.run(3);
    assert_eq!(c.responses(l), vec![(2, Response::Deleted(true))]);
    // Someone writes the key again; then the first delete is retried (same session and
    // sequence number, say after a timeout): it must not delete the new value.
    c.submit(l, 3, put("k", "v2"));
    c.run(3);
    c.responses(l);
    let now = c.now;
    c.node(l).submit_session(now, 4, del, session(9, 1));
    c.deliver();
    c.run(3);
    assert_eq!(
        c.responses(l),
        vec![(4, Response::Deleted(true))],
        "the first outcome, replayed"
    );
    for id in 1..=3 {
        assert_eq!(
            c.node(id).kv().get(b"k"),
            Some(&Bytes::from_static(b"v2")),
            "node {id}"
        );
    }
}

/// Plain writes carry the leader's clock as typed writes do. A key set with a TTL reads
/// as gone once the leader's clock passes its deadline, even before the next stamped
/// entry moves the state machine's clock; a CAS expecting the old value must then fail
/// and a DELETE must say the key was not there. Unstamped, both applied at the state
/// machine's older clock: the GET answered nil, then the CAS swapped (and brought the
/// key back without a TTL).
#[test]
fn plain_writes_see_a_key_expired_by_the_leaders_clock() {
    const WALL: u64 = 1_700_000_000_000;
    let mut c = Cluster::new();
    let l = c.elect();
    for n in &mut c.nodes {
        n.set_wall_clock(WALL);
    }
    let set_with_ttl = |k: &str, ms: u64| {
        Request::Write(kv::Command::Set {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::from_static(b"v"),
            cond: kv::SetCond::Always,
            ttl: kv::SetTtl::Expire(kv::When::InMs(ms)),
            get: false,
        })
    };
    let interval = kv::expiry::EXPIRE_INTERVAL_MS;
    c.submit(l, 1, set_with_ttl("soon", 1));
    c.submit(l, 2, set_with_ttl("a", interval / 2));
    c.submit(l, 3, set_with_ttl("b", interval / 2));
    c.run(3);
    assert_eq!(c.responses(l).len(), 3);
    // "soon" expires, and the leader's active expiry removes it: a batch stamped
    // WALL + 2, the state machine's last clock.
    c.node(l).set_wall_clock(WALL + 2);
    c.run(3);
    // "a" and "b" are past their deadline on the leader's clock, but the next expiry
    // batch waits out its pace (`EXPIRE_INTERVAL_MS`): nothing stamped is proposed.
    c.node(l).set_wall_clock(WALL + interval / 2 + 10);
    c.submit(
        l,
        4,
        Request::Cas {
            key: Bytes::from_static(b"a"),
            expected: Some(Bytes::from_static(b"v")),
            new: Bytes::from_static(b"w"),
        },
    );
    c.submit(
        l,
        5,
        Request::Delete {
            key: Bytes::from_static(b"b"),
        },
    );
    c.run(3);
    c.submit(l, 6, get("a"));
    c.run(3);
    assert_eq!(
        c.responses(l),
        vec![
            (
                4,
                Response::Cas {
                    swapped: false,
                    current: None
                }
            ),
            (5, Response::Deleted(false)),
            (6, Response::Value(None)),
        ]
    );
}
