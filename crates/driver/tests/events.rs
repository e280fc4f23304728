//! Recorded events (`Node::record_events`): every node produces the same events at the
//! same index, in index order; a node that catches up from a snapshot says where its
//! events start again. And active expiry, whose `expired` events show its pace.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use driver::{AppliedEvents, Node, NodeOptions, Request, SnapshotPolicy, Transport};
use raft::{Config, Membership, Message, NodeId};
use storage::{MemLogStore, MemSnapshotStore};

#[derive(Clone, Default)]
struct Wire(Rc<RefCell<VecDeque<Message>>>);

impl Transport for Wire {
    fn send(&mut self, msg: Message) {
        self.0.borrow_mut().push_back(msg);
    }
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

struct Cluster {
    nodes: Vec<Node<Wire, MemLogStore>>,
    wire: Wire,
    now: u64,
    isolated: Option<NodeId>,
    /// Every node's events so far.
    seen: Vec<Vec<AppliedEvents>>,
}

impl Cluster {
    fn new() -> Cluster {
        let wire = Wire::default();
        let nodes = (1..=3)
            .map(|id| {
                let opts = NodeOptions {
                    snapshot: SnapshotPolicy {
                        every_entries: 20,
                        keep_entries: 2,
                    },
                    ..NodeOptions::default()
                };
                let mut n = Node::open_with_snapshots(
                    config(id),
                    Membership::new([1, 2, 3]),
                    wire.clone(),
                    MemLogStore::new(),
                    Box::new(MemSnapshotStore::new()),
                    opts,
                )
                .expect("open");
                n.record_events();
                n
            })
            .collect();
        Cluster {
            nodes,
            wire,
            now: 0,
            isolated: None,
            seen: vec![Vec::new(); 3],
        }
    }

    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        for n in &mut self.nodes {
            n.set_wall_clock(1_700_000_000_000 + now);
            n.tick(now);
            n.process();
        }
        loop {
            let Some(msg) = self.wire.0.borrow_mut().pop_front() else {
                break;
            };
            if self.isolated.is_some_and(|i| i == msg.from || i == msg.to) {
                continue;
            }
            let n = &mut self.nodes[msg.to as usize - 1];
            n.step(now, msg);
            n.process();
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            self.seen[i].extend(n.take_applied_events());
            n.take_responses();
        }
    }

    /// Delivers the messages queued now (not those they cause): one network round.
    fn wave(&mut self) {
        let now = self.now;
        let queued: Vec<Message> = self.wire.0.borrow_mut().drain(..).collect();
        for msg in queued {
            let n = &mut self.nodes[msg.to as usize - 1];
            n.step(now, msg);
            n.process();
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            self.seen[i].extend(n.take_applied_events());
            n.take_responses();
        }
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.raft().is_leader())
    }

    fn write(&mut self, id: u64, key: &str) {
        let req = Request::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
        };
        self.submit(id, req);
    }

    fn submit(&mut self, id: u64, req: Request) {
        let l = (0..2000)
            .find_map(|_| {
                let l = self.leader();
                if l.is_none() {
                    self.step();
                }
                l
            })
            .expect("a leader");
        let now = self.now;
        self.nodes[l].submit(now, id, req);
        self.step();
    }
}

/// Index → events, for the entries past `from`; panics unless indexes increase.
fn by_index(seen: &[AppliedEvents], from: u64) -> BTreeMap<u64, Vec<kv::Event>> {
    let mut last = 0;
    let mut out = BTreeMap::new();
    for a in seen {
        match a {
            AppliedEvents::Entry { index, events } => {
                assert!(*index > last, "events out of index order");
                last = *index;
                if *index > from {
                    out.insert(*index, events.clone());
                }
            }
            AppliedEvents::Reset { index } => {
                assert!(*index >= last, "a reset went back");
                last = *index;
            }
        }
    }
    out
}

#[test]
fn every_node_produces_the_same_events_at_the_same_index() {
    let mut c = Cluster::new();
    for i in 0..10 {
        c.write(i, &format!("k{i}"));
        c.steps(4);
    }
    // Node 3 misses enough to need the leader's snapshot.
    let leader = c.leader().expect("leader");
    let away = (0..3).find(|&i| i != leader).expect("a follower") as u64 + 1;
    c.isolated = Some(away);
    for i in 10..60 {
        c.write(i, &format!("k{i}"));
        c.steps(4);
    }
    c.isolated = None;
    for _ in 0..400 {
        c.step();
    }
    c.write(60, "last");
    for _ in 0..100 {
        c.step(); // followers learn the last commit index from a heartbeat
    }
    let applied: Vec<u64> = c.nodes.iter().map(|n| n.applied_index()).collect();
    assert!(applied.iter().all(|&a| a == applied[0]), "{applied:?}");

    let away = away as usize - 1;
    let resets: Vec<u64> = c.seen[away]
        .iter()
        .filter_map(|a| match a {
            AppliedEvents::Reset { index } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(resets.len(), 2, "at start, and at the snapshot install");
    let installed = resets[1];
    assert!(installed > 10, "caught up from a snapshot at {installed}");

    let full: Vec<BTreeMap<u64, Vec<kv::Event>>> = (0..3)
        .filter(|&i| i != away)
        .map(|i| by_index(&c.seen[i], 0))
        .collect();
    assert_eq!(full[0], full[1], "two nodes that applied every entry");
    assert_eq!(full[0].len(), 61, "one event per write");
    let after: BTreeMap<u64, Vec<kv::Event>> = full[0]
        .range(installed + 1..)
        .map(|(i, e)| (*i, e.clone()))
        .collect();
    assert_eq!(by_index(&c.seen[away], installed), after);
    assert!(matches!(
        &full[0].values().next().expect("events")[0],
        kv::Event::Key { kind: kv::KeyEvent::Set, key } if key.as_ref() == b"k0"
    ));
}

/// `expired` events the node has produced so far.
fn expired(seen: &[AppliedEvents]) -> usize {
    seen.iter()
        .map(|a| match a {
            AppliedEvents::Entry { events, .. } => events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        kv::Event::Key {
                            kind: kv::KeyEvent::Expired,
                            ..
                        }
                    )
                })
                .count(),
            AppliedEvents::Reset { .. } => 0,
        })
        .sum()
}

/// Three full batches of due keys drain as fast as their entries commit, with no tick in
/// between: every message the leader receives ticks it (`Node::step`), and a full batch
/// is followed at once, so the next goes out as the acknowledgements of the last come in
/// — not at the leader's next heartbeat. Counted in network rounds with the clock
/// stopped: an entry is one round out (the append) and one back (the acknowledgements).
#[test]
fn a_backlog_of_due_keys_drains_as_fast_as_entries_commit() {
    let mut c = Cluster::new();
    let batches = 3;
    let n = batches * kv::expiry::EXPIRE_BATCH_KEYS;
    let ops = (0..n)
        .map(|i| {
            kv::Op::Write(kv::Command::Set {
                key: Bytes::from(format!("t{i:04}")),
                value: Bytes::from_static(b"v"),
                cond: kv::SetCond::Always,
                ttl: kv::SetTtl::Expire(kv::When::InMs(50)),
                get: false,
            })
        })
        .collect();
    c.submit(
        1,
        Request::Write(kv::Command::Multi {
            watched: vec![],
            ops,
        }),
    );
    let leader = c.leader().expect("leader");
    // Quiet: the keys are written and replicated, no message in flight.
    while !c.wire.0.borrow().is_empty() {
        c.wave();
    }
    assert_eq!(expired(&c.seen[leader]), 0);
    // One tick makes them due and starts the first batch; then messages only.
    c.now += 1;
    let now = c.now;
    for node in &mut c.nodes {
        node.set_wall_clock(1_700_000_000_000 + now + 100);
    }
    c.nodes[leader].tick(now);
    c.nodes[leader].process();
    let mut rounds = 0;
    while expired(&c.seen[leader]) < n {
        assert!(
            !c.wire.0.borrow().is_empty(),
            "stalled at {} of {n}",
            expired(&c.seen[leader])
        );
        c.wave();
        rounds += 1;
    }
    assert!(
        rounds <= 2 * batches,
        "{batches} batches took {rounds} rounds: more than one round trip each"
    );
}

/// Keys coming due one a millisecond, for a second: active expiry gathers them into
/// about ten entries (one per `EXPIRE_INTERVAL_MS`), not one per commit round, and no key
/// stays due for much more than an interval.
#[test]
fn a_trickle_of_expiries_is_paced_into_a_few_entries() {
    let mut c = Cluster::new();
    let n = 1000;
    let ops = (0..n)
        .map(|i| {
            kv::Op::Write(kv::Command::Set {
                key: Bytes::from(format!("t{i:04}")),
                value: Bytes::from_static(b"v"),
                cond: kv::SetCond::Always,
                ttl: kv::SetTtl::Expire(kv::When::InMs(100 + i as u64)),
                get: false,
            })
        })
        .collect();
    c.submit(
        1,
        Request::Write(kv::Command::Multi {
            watched: vec![],
            ops,
        }),
    );
    let leader = c.leader().expect("leader");
    let before = c.seen[leader].len();
    let mut steps = 0;
    while expired(&c.seen[leader]) < n {
        c.step();
        steps += 1;
        assert!(
            steps <= 1400,
            "{} of {n} expired after {steps} ms",
            expired(&c.seen[leader])
        );
    }
    let entries = c.seen[leader][before..]
        .iter()
        .filter(|a| match a {
            AppliedEvents::Entry { events, .. } => events.iter().any(|e| {
                matches!(
                    e,
                    kv::Event::Key {
                        kind: kv::KeyEvent::Expired,
                        ..
                    }
                )
            }),
            AppliedEvents::Reset { .. } => false,
        })
        .count();
    assert!(
        (9..=13).contains(&entries),
        "{n} expiries over a second took {entries} entries"
    );
}
