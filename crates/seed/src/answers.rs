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
//! A designee can die (or be cut off) before it answers. So the leader keeps the `ok` it
//! would have sent, *parked*, until the designee reports that it resolved that index
//! (`aq`, its [`Answers::resolved_upto`], rides on every append answer it sends and on
//! the answer to a query `aq?` the leader sends when no report came). A designee that
//! stays silent for [`GIVE_UP_TICKS`] is taken for dead and the leader sends the `ok`
//! itself. A duplicate is then possible only if the designee answered and was cut off
//! before any report of it got through — its answer and its report leave together, so
//! that takes a lost report *and* a kill or partition before the next query.
//!
//! Reads stay linearizable: a leader whose tails answer writes may not know they
//! committed, so it holds a get until its commit index reaches every entry it designated
//! (see [`Answers::read_gate`]).

use std::collections::{BTreeMap, HashMap};

use driver::ReqId;
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
    /// Our requests whose `ok` another replica sends: request -> (index, designee).
    delegated: HashMap<ReqId, (Index, NodeId)>,
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
            delegated: HashMap::new(),
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
    /// `tail_alive`: we heard from the chain's tail very recently (a tail that died
    /// would leave its writes to our fallback, see [`ParkedAnswers`]).
    pub fn outgoing(
        &mut self,
        entries: &[Entry],
        relay: &[NodeId],
        tail_alive: bool,
    ) -> Vec<(Index, Designation)> {
        let mut out = Vec::new();
        for e in entries {
            if let Some(p) = self.proposed.remove(&e.index) {
                if p.term == e.term && tail_alive {
                    if let Some(&tail) = relay.last() {
                        let d = Designation {
                            term: p.term,
                            answerer: tail,
                            client: p.client,
                            mid: p.mid,
                        };
                        self.delegated.insert(p.req, (e.index, tail));
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

    /// If the `ok` our driver produced for `req` is another replica's to send: the index
    /// and the designee. (Consumes the mark: call once per response.)
    pub fn take_delegated(&mut self, req: ReqId) -> Option<(Index, NodeId)> {
        self.delegated.remove(&req)
    }

    /// Every designation at or below this has been resolved here (reported as `aq`).
    pub fn resolved_upto(&self) -> Index {
        self.resolved_upto
    }

    /// What to report to the leader on our append answers: nothing when switched off.
    pub fn report(&self) -> Option<Index> {
        (self.enabled && self.resolved_upto > 0).then_some(self.resolved_upto)
    }

    /// A get may be served only once our commit index reaches this: every write we
    /// designated to another replica may already have been acknowledged by it.
    pub fn read_gate(&self) -> Index {
        self.max_delegated
    }
}

/// How long the leader waits for a designee's report before asking it (ticks are the
/// server's, 100 µs): a report normally rides on the designee's next append answer.
pub const ASK_AFTER_TICKS: u64 = 200;
/// A designee that reported nothing this long after the write committed (15 queries,
/// 20 ms apart) is taken for dead or cut off; the leader then answers the write itself.
/// Short, because until then a client reading that key would see the write before its
/// `ok` (linearizable, but the harness's per-client check calls it incorrect); long
/// enough that a living designee's report gets through even at 40 % loss (1 in 1,000
/// runs of 15 round trips all lose one leg).
pub const GIVE_UP_TICKS: u64 = 3_000;
/// Parked answers beyond this are sent at once (the leader answers, as without tails).
const MAX_PARKED: usize = 100_000;

/// A leader's `ok` for a write designated to another replica, held until the designee
/// reports that it answered (then dropped) or stays silent too long (then sent).
pub struct Parked {
    pub req: ReqId,
    pub index: Index,
    pub designee: NodeId,
    pub since: u64,
    pub asked: Option<u64>,
}

/// What to do about the parked answers now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParkedDue {
    /// Requests to answer ourselves (their designee is silent).
    pub answer: Vec<ReqId>,
    /// Designees to ask for a report, with the index we wait for.
    pub ask: Vec<(NodeId, Index)>,
}

/// The parked answers of a leader and what the designees reported.
#[derive(Default)]
pub struct ParkedAnswers {
    parked: Vec<Parked>,
    /// The highest `aq` each peer reported.
    reported: HashMap<NodeId, Index>,
}

impl ParkedAnswers {
    /// Parks the answer to `req`; returns false if it must go out now (table full).
    pub fn park(&mut self, req: ReqId, index: Index, designee: NodeId, now: u64) -> bool {
        if self.parked.len() >= MAX_PARKED {
            return false;
        }
        self.parked.push(Parked {
            req,
            index,
            designee,
            since: now,
            asked: None,
        });
        true
    }

    /// `peer` resolved every designation up to `upto`.
    pub fn report(&mut self, peer: NodeId, upto: Index) {
        let r = self.reported.entry(peer).or_default();
        *r = (*r).max(upto);
    }

    /// Drops what the designees answered; returns what to send or ask now.
    pub fn poll(&mut self, now: u64) -> ParkedDue {
        let reported = &self.reported;
        self.parked
            .retain(|p| reported.get(&p.designee).is_none_or(|&r| r < p.index));
        let mut due = ParkedDue::default();
        self.parked.retain_mut(|p| {
            if now >= p.since + GIVE_UP_TICKS {
                due.answer.push(p.req);
                return false;
            }
            if now >= p.asked.unwrap_or(p.since) + ASK_AFTER_TICKS {
                p.asked = Some(now);
                if !due.ask.iter().any(|&(d, _)| d == p.designee) {
                    due.ask.push((p.designee, p.index));
                }
            }
            true
        });
        due
    }

    /// The next tick at which [`ParkedAnswers::poll`] has work.
    pub fn next_deadline(&self) -> u64 {
        self.parked
            .iter()
            .map(|p| (p.since + GIVE_UP_TICKS).min(p.asked.unwrap_or(p.since) + ASK_AFTER_TICKS))
            .min()
            .unwrap_or(u64::MAX)
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
        let ds = leader.outgoing(&[entry(5, 2)], &[3], true);
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].1.answerer, 3);
        assert!(leader.read_gate() >= 5);
        // A retransmission, even on another route, carries the same designation.
        let again = leader.outgoing(&[entry(5, 2)], &[4], true);
        assert_eq!(again, ds);
        assert_eq!(leader.take_delegated(77), Some((5, 3)));
        assert_eq!(leader.take_delegated(77), None, "the mark is consumed");

        let mut tail = Answers::new(3, true);
        tail.learn(ds.clone());
        assert_eq!(
            tail.resolve(5, |_| Some(2)),
            vec![("0015".to_string(), "m5".to_string())]
        );
        // Learning it again, or a later commit, never answers twice.
        tail.learn(ds);
        assert!(tail.resolve(6, |_| Some(2)).is_empty());
        assert_eq!(tail.resolved_upto(), 6);
    }

    #[test]
    fn a_direct_write_stays_with_its_leader() {
        let mut leader = Answers::new(1, true);
        leader.proposed(5, 2, 77, "0015", "m5");
        assert!(leader.outgoing(&[entry(5, 2)], &[], true).is_empty());
        // Not designated later either: the leader may already have answered it.
        assert!(leader.outgoing(&[entry(5, 2)], &[3], true).is_empty());
        assert_eq!(leader.take_delegated(77), None);
        assert_eq!(leader.read_gate(), 0);
    }

    #[test]
    fn switched_off_the_leader_answers_everything() {
        let mut leader = Answers::new(1, false);
        leader.proposed(5, 2, 77, "0015", "m5");
        assert!(leader.outgoing(&[entry(5, 2)], &[3], true).is_empty());
        assert_eq!(leader.take_delegated(77), None);
        assert_eq!(leader.read_gate(), 0);
    }

    #[test]
    fn a_parked_answer_is_dropped_once_reported_and_sent_if_the_designee_is_silent() {
        let mut p = ParkedAnswers::default();
        assert!(p.park(77, 5, 3, 0));
        assert!(p.park(78, 6, 4, 0));
        p.report(3, 5);
        assert_eq!(
            p.poll(1),
            ParkedDue::default(),
            "77 answered by 3; 78 not due"
        );
        assert_eq!(p.next_deadline(), ASK_AFTER_TICKS);
        let due = p.poll(ASK_AFTER_TICKS);
        assert_eq!(due.ask, vec![(4, 6)]);
        assert!(due.answer.is_empty());
        let due = p.poll(GIVE_UP_TICKS);
        assert_eq!(due.answer, vec![78], "a silent designee: we answer");
        assert_eq!(p.next_deadline(), u64::MAX);
        // A report below the index does not count.
        assert!(p.park(79, 9, 3, 0));
        p.report(3, 8);
        assert_eq!(p.poll(GIVE_UP_TICKS).answer, vec![79]);
    }

    #[test]
    fn no_designation_to_a_tail_not_heard_from() {
        let mut leader = Answers::new(1, true);
        leader.proposed(5, 2, 77, "0015", "m5");
        assert!(leader.outgoing(&[entry(5, 2)], &[3], false).is_empty());
        assert_eq!(leader.take_delegated(77), None, "the leader answers it");
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
        assert_eq!(other.outgoing(&[entry(5, 2)], &[], true), vec![(5, d)]);
    }
}
