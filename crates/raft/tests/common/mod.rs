//! A tiny synchronous network of cores for the paper tests: instant persistence, messages
//! delivered in FIFO order, links cut by `isolate`/`cut`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raft::{
    Config, Entry, EntryKind, HardState, Membership, Message, MessageBody, NodeId, Raft, RaftLog,
    ReadState, Role, Snapshot,
};

/// Decides which messages the network loses.
pub type DropFilter = Box<dyn FnMut(&Message) -> bool>;

pub struct Net {
    pub nodes: BTreeMap<NodeId, Raft>,
    pub now: u64,
    queue: VecDeque<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub reads: BTreeMap<NodeId, Vec<ReadState>>,
    pub sent: Vec<Message>,
    /// Snapshots each node was told to install, in order.
    pub installed: BTreeMap<NodeId, Vec<Snapshot>>,
    /// Each node's snapshot sink: the chunks of the snapshot it is receiving.
    receiving: BTreeMap<NodeId, Vec<u8>>,
    /// Messages for which this returns true are lost.
    pub drop_if: Option<DropFilter>,
}

pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = id * 7919;
    c.election_timeout_ticks = 10;
    c.heartbeat_interval_ticks = 2;
    c.lease_ticks = 8;
    c.retransmit_ticks = 4;
    c
}

impl Net {
    pub fn new(n: u64) -> Net {
        Net::with_config(n, config)
    }

    pub fn with_config(n: u64, cfg: impl Fn(NodeId) -> Config) -> Net {
        let ids: Vec<NodeId> = (1..=n).collect();
        let nodes = ids
            .iter()
            .map(|&id| (id, Raft::new(cfg(id), ids.clone())))
            .collect();
        Net {
            nodes,
            now: 0,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            sent: Vec::new(),
            installed: BTreeMap::new(),
            receiving: BTreeMap::new(),
            drop_if: None,
        }
    }

    pub fn node(&self, id: NodeId) -> &Raft {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Runs every node's Ready and delivers messages until the network is quiet.
    pub fn stabilize(&mut self) {
        // A healthy exchange settles in far fewer: more means nodes answer each other
        // forever (a livelock), which should fail the test rather than exhaust memory.
        const MAX_DELIVERIES: usize = 100_000;
        let mut delivered = 0;
        loop {
            delivered += 1;
            assert!(
                delivered <= MAX_DELIVERIES,
                "the network never went quiet: {MAX_DELIVERIES} deliveries in one step"
            );
            self.collect_ready();
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            if self.cut.contains(&(msg.from, msg.to)) {
                continue;
            }
            if self.drop_if.as_mut().is_some_and(|drop| drop(&msg)) {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&msg.to) {
                node.step(msg);
            }
        }
    }

    fn collect_ready(&mut self) {
        for (&id, node) in self.nodes.iter_mut() {
            while node.has_ready() {
                let rd = node.ready();
                // A memory sink: the chunks in order, a new transfer at offset 0; the
                // snapshot installed after the last chunk that completes a transfer.
                let sink = self.receiving.entry(id).or_default();
                let last_done = rd.snapshot_chunks.iter().rposition(|c| c.done);
                for (i, c) in rd.snapshot_chunks.iter().enumerate() {
                    if c.offset == 0 {
                        sink.clear();
                    }
                    assert_eq!(c.offset, sink.len() as u64, "chunks out of order");
                    sink.extend_from_slice(&c.data);
                    if Some(i) == last_done {
                        let snap = Snapshot {
                            meta: rd.snapshot.clone().expect("an install with its last chunk"),
                            data: Bytes::from(std::mem::take(sink)),
                        };
                        node.set_snapshot(snap.clone());
                        self.installed.entry(id).or_default().push(snap);
                    }
                }
                if let Some(last) = rd.entries.last() {
                    node.on_persisted(last.index, last.term);
                }
                for m in rd.messages.into_iter().chain(rd.persisted_messages) {
                    self.sent.push(m.clone());
                    self.queue.push_back(m);
                }
                self.applied
                    .entry(id)
                    .or_default()
                    .extend(rd.committed_entries);
                self.reads.entry(id).or_default().extend(rd.read_states);
            }
        }
    }

    /// Advances time one tick at a time, stabilizing after each.
    pub fn tick(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.now += 1;
            let now = self.now;
            for node in self.nodes.values_mut() {
                node.tick(now);
            }
            self.stabilize();
        }
    }

    /// Ticks until some node leads (panics after `limit` ticks).
    pub fn elect(&mut self, limit: u64) -> NodeId {
        for _ in 0..limit {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick(1);
        }
        panic!("no leader after {limit} ticks");
    }

    /// The unique leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<&Raft> = self
            .nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .collect();
        leaders.iter().max_by_key(|n| n.term()).map(|n| n.id())
    }

    pub fn propose(&mut self, id: NodeId, data: &str) -> u64 {
        let idx = self
            .node_mut(id)
            .propose(Bytes::copy_from_slice(data.as_bytes()))
            .expect("leader accepts");
        self.stabilize();
        idx
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn cut_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Loses every message from `from` to `to` (the other direction still works).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Application payloads applied on `id`, in order.
    pub fn applied_data(&self, id: NodeId) -> Vec<String> {
        self.applied
            .get(&id)
            .map(|v| {
                v.iter()
                    .filter(|e| e.kind == EntryKind::Normal)
                    .map(|e| String::from_utf8_lossy(&e.data).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn count_sent(&self, pred: impl Fn(&Message) -> bool) -> usize {
        self.sent.iter().filter(|m| pred(m)).count()
    }

    /// Checks Election Safety and Log Matching across all nodes (§5.2, §5.3).
    pub fn check_invariants(&self) {
        let mut leaders_by_term: BTreeMap<u64, NodeId> = BTreeMap::new();
        for n in self.nodes.values() {
            if n.role() == Role::Leader {
                if let Some(&other) = leaders_by_term.get(&n.term()) {
                    panic!("two leaders in term {}: {} and {}", n.term(), other, n.id());
                }
                leaders_by_term.insert(n.term(), n.id());
            }
        }
        let nodes: Vec<&Raft> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                let last = a.log().last_index().min(b.log().last_index());
                for i in (1..=last).rev() {
                    if a.log().term(i).is_some() && a.log().term(i) == b.log().term(i) {
                        // Below a snapshot point the entries are gone (and were
                        // committed, so they matched).
                        let first = a.log().first_index().max(b.log().first_index());
                        for j in first..=i {
                            assert_eq!(
                                a.log().entry(j),
                                b.log().entry(j),
                                "log matching broken at {j}"
                            );
                        }
                        break;
                    }
                }
            }
        }
    }
}

pub fn is_append(m: &Message) -> bool {
    matches!(m.body, MessageBody::Append { .. })
}

impl Net {
    /// The highest-term leader among nodes matching `pred`.
    pub fn leader_among(&self, pred: impl Fn(NodeId) -> bool) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| pred(n.id()) && n.role() == Role::Leader)
            .max_by_key(|n| n.term())
            .map(|n| n.id())
    }
}

impl Net {
    /// A node with an empty disk that knows no configuration yet (one joining the
    /// cluster), on the network from now on.
    pub fn add_joiner(&mut self, id: NodeId) {
        let raft = Raft::restore(
            config(id),
            Membership::default(),
            HardState::default(),
            RaftLog::new(),
        );
        self.nodes.insert(id, raft);
    }

    /// Restarts `id` from its durable state (this network persists at once): the
    /// configuration is rebuilt from `base` (the one at the log's snapshot point) and
    /// the log.
    pub fn restart(&mut self, id: NodeId, base: Membership) {
        let old = self.nodes.remove(&id).expect("node exists");
        let log = old.log();
        let entries: Vec<Entry> = (log.first_index()..=log.last_index())
            .filter_map(|i| log.entry(i).cloned())
            .collect();
        let snap = log.snapshot_index();
        let restored = RaftLog::restore(snap, log.term(snap).unwrap_or(0), entries, log.committed);
        let raft = Raft::restore(old.config().clone(), base, old.hard_state(), restored);
        self.nodes.insert(id, raft);
    }

    /// Drops every message queued (a crash of the whole network's buffers).
    pub fn drop_queued(&mut self) {
        self.queue.clear();
    }
}
