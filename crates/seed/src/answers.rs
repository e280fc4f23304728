//! Who answers a client's write: the chain's tail, when it learns the commit first.
//!
//! With chain replication (leader → A → B), B is the first replica to know that a write
//! committed: it holds the entry, and the relayed append proves that A and the leader
//! do too — a quorum of five. So B answers the client at once, and the leader does not.
//! The harness accepts an answer to a MID from any replica. This saves a harness
//! crossing per write, and above all it answers writes whose leader is killed after the
//! entry left it: the tail (or, if the chain broke, the designated replica once the next
//! leader commits the entry) still answers.
//!
//! Exactly once: every write has ONE designated answerer, fixed by the leader when the
//! entry first leaves it and carried with the entry in every append that holds it
//! (`q` on the wire). A write first sent in a chain is designated to the chain's tail; any
//! other write to the leader that proposed it (answered as before, on apply). A replica
//! answers a write designated to it once, when it learns that the entry at that index
//! committed with the term it was designated in — from a relayed append that reaches a
//! quorum, or from its commit index. The leader drops its own `ok` for a write designated
//! to another replica (a `redirect`, when another entry took the slot, still goes out:
//! that write never committed, so its designee never answers it).
//!
//! Reads stay linearizable: a leader whose tails answer writes may not know they
//! committed, so it holds a get until its commit index reaches every entry it designated
//! (see [`Answers::read_gate`]).

use std::collections::{BTreeMap, HashSet};

use node::ReqId;
use raft::{Entry, Index, NodeId, Term};

/// The replica that answers the write at some log index, and whom to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Designation {
    /// The term of the entry it was designated for; an entry of another term in that
    /// slot is someone else's.
    pub term: Term,
    pub answerer: NodeId,
    pub client: String,
    pub mid: String,
}

/// A write this replica proposed as leader and has not sent yet.
struct Proposed {
    term: Term,
    req: ReqId,
    client: String,
    mid: String,
}

/// Designations known here are kept this far below the last resolved index, so that a
/// future leader can still pass them on with entries a lagging follower lacks.
const KEEP_BEHIND: Index = 50_000;
/// Bounds the table whatever peers send.
const MAX_KNOWN: usize = 200_000;
const MAX_PROPOSED: usize = 200_000;

pub struct Answers {
    me: NodeId,
    /// Off: no write is ever designated, the leader answers all (RAFTKV_TAIL_ANSWERS=0).
    enabled: bool,
    known: BTreeMap<Index, Designation>,
    proposed: BTreeMap<Index, Proposed>,
    /// Our requests whose `ok` another replica sends.
    delegated: HashSet<ReqId>,
    /// Every designation at or below this index has been resolved here (answered if it
    /// was ours); later news about them is ignored, so nothing is answered twice.
    resolved_upto: Index,
    /// The highest index we designated to another replica.
    max_delegated: Index,
}

impl Answers {
    pub fn new(me: NodeId, enabled: bool) -> Answers {
        Answers {
            me,
            enabled,
            known: BTreeMap::new(),
            proposed: BTreeMap::new(),
            delegated: HashSet::new(),
            resolved_upto: 0,
            max_delegated: 0,
        }
    }

    /// We proposed a client's write at `index` in `term`, as leader.
    pub fn proposed(&mut self, index: Index, term: Term, req: ReqId, client: &str, mid: &str) {
        if !self.enabled || self.proposed.len() >= MAX_PROPOSED {
            // Unbounded growth would need a leader that never sends: just answer it
            // ourselves (no designation is ever made for it).
            return;
        }
        self.proposed.insert(
            index,
            Proposed {
                term,
                req,
                client: client.to_string(),
                mid: mid.to_string(),
            },
        );
    }

    /// The designations to carry in an append we send with `entries`; `relay` is its
    /// chain after the first hop (empty for a direct append). A write of ours leaving
    /// for the first time is designated here, once: to the chain's tail, or (direct
    /// append) to ourselves, which needs nothing on the wire.
    pub fn outgoing(&mut self, entries: &[Entry], relay: &[NodeId]) -> Vec<(Index, Designation)> {
        let mut out = Vec::new();
        for e in entries {
            if let Some(p) = self.proposed.remove(&e.index) {
                if p.term == e.term {
                    if let Some(&tail) = relay.last() {
                        let d = Designation {
                            term: p.term,
                            answerer: tail,
                            client: p.client,
                            mid: p.mid,
                        };
                        self.delegated.insert(p.req);
                        self.max_delegated = self.max_delegated.max(e.index);
                        self.insert_known(e.index, d);
                    }
                }
            }
            if let Some(d) = self.known.get(&e.index).filter(|d| d.term == e.term) {
                out.push((e.index, d.clone()));
            }
        }
        out
    }

    /// Designations that came with an append.
    pub fn learn(&mut self, ds: Vec<(Index, Designation)>) {
        for (index, d) in ds {
            if index > self.resolved_upto {
                self.insert_known(index, d);
            }
        }
    }

    fn insert_known(&mut self, index: Index, d: Designation) {
        if self.known.len() >= MAX_KNOWN && !self.known.contains_key(&index) {
            return;
        }
        self.known.insert(index, d);
    }

    /// Everything up to `commit` is committed, and `term_at` gives the term of each
    /// entry of our log. Returns the writes we must now answer `ok`, as (client, MID).
    pub fn resolve(
        &mut self,
        commit: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) -> Vec<(String, String)> {
        if commit <= self.resolved_upto {
            return Vec::new();
        }
        let out = self
            .known
            .range(self.resolved_upto + 1..=commit)
            .filter(|(&i, d)| d.answerer == self.me && term_at(i) == Some(d.term))
            .map(|(_, d)| (d.client.clone(), d.mid.clone()))
            .collect();
        self.resolved_upto = commit;
        let horizon = commit.saturating_sub(KEEP_BEHIND);
        while self
            .known
            .first_key_value()
            .is_some_and(|(&i, _)| i < horizon)
        {
            self.known.pop_first();
        }
        while self
            .proposed
            .first_key_value()
            .is_some_and(|(&i, _)| i < horizon)
        {
            self.proposed.pop_first();
        }
        out
    }

    /// Whether the `ok` our driver produced for `req` is another replica's to send.
    /// (Consumes the mark: call once per response.)
    pub fn is_delegated(&mut self, req: ReqId) -> bool {
        self.delegated.remove(&req)
    }

    /// A get may be served only once our commit index reaches this: every write we
    /// designated to another replica may already have been acknowledged by it.
    pub fn read_gate(&self) -> Index {
        self.max_delegated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft::EntryKind;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn a_chained_write_is_designated_to_the_tail_once() {
        let mut leader = Answers::new(1, true);
        leader.proposed(5, 2, 77, "0015", "m5");
        let ds = leader.outgoing(&[entry(5, 2)], &[3]);
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].1.answerer, 3);
        assert!(leader.read_gate() >= 5);
        // A retransmission, even on another route, carries the same designation.
        let again = leader.outgoing(&[entry(5, 2)], &[4]);
        assert_eq!(again, ds);
        assert!(leader.is_delegated(77));
        assert!(!leader.is_delegated(77), "the mark is consumed");

        let mut tail = Answers::new(3, true);
        tail.learn(ds.clone());
        assert_eq!(
            tail.resolve(5, |_| Some(2)),
            vec![("0015".to_string(), "m5".to_string())]
        );
        // Learning it again, or a later commit, never answers twice.
        tail.learn(ds);
        assert!(tail.resolve(6, |_| Some(2)).is_empty());
    }

    #[test]
    fn a_direct_write_stays_with_its_leader() {
        let mut leader = Answers::new(1, true);
        leader.proposed(5, 2, 77, "0015", "m5");
        assert!(leader.outgoing(&[entry(5, 2)], &[]).is_empty());
        // Not designated later either: the leader may already have answered it.
        assert!(leader.outgoing(&[entry(5, 2)], &[3]).is_empty());
        assert!(!leader.is_delegated(77));
        assert_eq!(leader.read_gate(), 0);
    }

    #[test]
    fn switched_off_the_leader_answers_everything() {
        let mut leader = Answers::new(1, false);
        leader.proposed(5, 2, 77, "0015", "m5");
        assert!(leader.outgoing(&[entry(5, 2)], &[3]).is_empty());
        assert!(!leader.is_delegated(77));
        assert_eq!(leader.read_gate(), 0);
    }

    #[test]
    fn another_entry_in_the_slot_is_not_answered() {
        let mut tail = Answers::new(3, true);
        let d = Designation {
            term: 2,
            answerer: 3,
            client: "0015".into(),
            mid: "m5".into(),
        };
        tail.learn(vec![(5, d)]);
        // Index 5 committed with an entry of term 3: the designated write was lost.
        assert!(tail.resolve(5, |_| Some(3)).is_empty());
    }

    #[test]
    fn only_the_designee_answers() {
        let d = Designation {
            term: 2,
            answerer: 3,
            client: "0015".into(),
            mid: "m5".into(),
        };
        let mut other = Answers::new(4, true);
        other.learn(vec![(5, d.clone())]);
        assert!(other.resolve(5, |_| Some(2)).is_empty());
        // It still passes the designation on with the entry (it may lead one day).
        assert_eq!(other.outgoing(&[entry(5, 2)], &[]), vec![(5, d)]);
    }
}
