//! The Raft invariants, checked after every step on the node that took it.
//!
//! Everything is read from the outside, through `Raft`'s accessors (`term`, `role`,
//! `log().term/entry/committed/applied`), against global records kept here:
//!
//! - **Election safety**: at most one leader per term, over the whole run
//!   (`leaders`: term → node).
//! - **Log matching**: an (index, term) pair names one entry everywhere — same content,
//!   same predecessor term (`registry`). By induction two logs that share an (index, term)
//!   agree on everything before it. Checked on every entry a node's log gains; a full pass
//!   over every log runs at the end of a run.
//! - **Leader append-only**: a leader never rewrites its own log in its term.
//! - **Leader completeness**: a node becoming leader of term t holds every entry known to
//!   have been committed in a term below t (`committed`: index → entry and the term it was
//!   first seen committed in).
//! - **Commit rule** (§5.4.2): a leader raises its commit index only to an entry of its
//!   own term.
//! - **Commit safety / state-machine safety**: no two nodes ever commit, nor apply,
//!   different entries at one index (`committed`, `applied`).
//! - **Monotonic commit**, monotonic term: never decrease on a node, except across a crash
//!   (the node restarts from storage, whose commit is a hint).
//! - **No committed entry is overwritten** on a node that knew it committed.
//! - **Applied ⊆ committed**: `applied ≤ committed` on every node.
//! - **Configurations overlap** (thesis §4): every configuration entry, when first seen
//!   in any log, is checked against the configuration before it in that log: every
//!   quorum of the new one (a majority of each half while joint) shares a node with
//!   every quorum of the old one, so no two leaders can be elected, nor two commits
//!   made, by disjoint quorums while the change is in flight. Checked by enumerating
//!   the subsets of the voters, independently of the core's own rule.
//! - **Leaders vote**: a node becoming leader is a voter of its newest configuration,
//!   or (thesis §4.2.2: a node removed by a configuration not yet committed may still be
//!   needed, and campaigns) that configuration is above its commit index and it votes
//!   in the one in force at its commit index or a later one (`leader_may_vote`).

use std::collections::{BTreeMap, HashMap};

use std::collections::BTreeSet;

use raft::{Entry, EntryKind, Index, Membership, NodeId, Raft, Role, Term};

/// A fingerprint of an entry's identity and content.
pub fn entry_hash(e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |w: u64| h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    mix(e.term);
    mix(e.index);
    mix(u64::from(e.kind.as_u8()));
    mix(e.data.len() as u64);
    for chunk in e.data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        mix(u64::from_le_bytes(w));
    }
    h
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    term: Term,
    hash: u64,
}

#[derive(Clone, Copy, Debug)]
struct Committed {
    slot: Slot,
    /// The term of the node that first reported it committed (≥ the committing leader's).
    commit_term: Term,
    by: NodeId,
}

#[derive(Clone, Debug, Default)]
struct Shadow {
    /// (term, hash) of every entry of the node's log as last seen.
    log: Vec<Slot>,
    commit: Index,
    applied: Index,
    term: Term,
    leader_of: Option<Term>,
    /// The node restarted since the last check: its volatile state starts over.
    restarted: bool,
    /// The log's snapshot point as last seen.
    snapshot_index: Index,
}

#[derive(Default)]
pub struct Invariants {
    leaders: BTreeMap<Term, NodeId>,
    registry: HashMap<(Index, Term), (u64, Term)>,
    committed: Vec<Committed>,
    /// The committed entries themselves, in order (logs are compacted, so the end-of-run
    /// replay cannot read them from any node).
    committed_log: Vec<Entry>,
    applied: Vec<Slot>,
    nodes: Vec<Shadow>,
    pub checks: u64,
    pub elections: u64,
    /// Check the commit rule (on by default; off, only its consequences are caught).
    pub commit_rule: bool,
    /// Check configuration transitions (`check_transition`); off only to measure how
    /// long a planted two-voter switch takes to break something else.
    pub conf_overlap: bool,
}

impl Invariants {
    pub fn new(n: usize) -> Invariants {
        Invariants {
            nodes: vec![Shadow::default(); n],
            commit_rule: true,
            conf_overlap: true,
            ..Invariants::default()
        }
    }

    /// The node in slot `i` crashed; its next check is of a restarted node.
    pub fn on_crash(&mut self, i: usize) {
        let s = &mut self.nodes[i];
        s.restarted = true;
        s.leader_of = None;
    }

    /// The node in slot `i` lost its disk (a replacement machine): it starts over, and
    /// nothing of its past log is held against it.
    pub fn on_wipe(&mut self, i: usize) {
        self.nodes[i] = Shadow {
            restarted: true,
            ..Shadow::default()
        };
    }

    /// Every entry ever committed, from index 1.
    pub fn committed_log(&self) -> &[Entry] {
        &self.committed_log
    }

    /// Highest index known committed anywhere.
    pub fn committed_len(&self) -> Index {
        self.committed.len() as Index
    }

    /// Highest index applied anywhere.
    pub fn applied_len(&self) -> Index {
        self.applied.len() as Index
    }

    pub fn leaders_seen(&self) -> usize {
        self.leaders.len()
    }

    /// Checks node slot `i` (NodeId `raft.id()`) after it took a step.
    pub fn check(&mut self, i: usize, raft: &Raft) -> Result<(), String> {
        self.checks += 1;
        let id = raft.id();
        let log = raft.log();
        let term = raft.term();
        let mut sh = std::mem::take(&mut self.nodes[i]);
        let restarted = std::mem::replace(&mut sh.restarted, false);
        let res = self.check_inner(id, raft, &mut sh, restarted);
        sh.term = term;
        sh.commit = log.committed;
        sh.applied = log.applied;
        self.nodes[i] = sh;
        res
    }

    fn check_inner(
        &mut self,
        id: NodeId,
        raft: &Raft,
        sh: &mut Shadow,
        restarted: bool,
    ) -> Result<(), String> {
        let log = raft.log();
        let term = raft.term();
        if restarted {
            // Volatile state starts over; durable state is re-checked from scratch.
            sh.commit = 0;
            sh.applied = 0;
        } else if term < sh.term {
            return Err(format!(
                "node {id}: term went back from {} to {term}",
                sh.term
            ));
        }

        // ----- the snapshot point: entries up to it are gone from the log -----
        let snap = log.snapshot_index();
        if snap != sh.snapshot_index || restarted {
            self.check_snapshot_prefix(id, snap, log.committed, sh)?;
            sh.snapshot_index = snap;
        }

        // ----- the log: find what changed since the last look -----
        let last = log.last_index();
        let mut same = (last as usize).min(sh.log.len()) as Index;
        while same > snap && log.term(same) != Some(sh.log[same as usize - 1].term) {
            same -= 1;
        }
        let rewrote = (same as usize) < sh.log.len();
        if rewrote && !restarted {
            let from = same + 1;
            if from <= sh.commit {
                return Err(format!(
                    "node {id}: committed entry {from} (term {}) was overwritten (commit index {})",
                    sh.log[from as usize - 1].term,
                    sh.commit
                ));
            }
            if sh.leader_of == Some(term) && raft.role() == Role::Leader {
                return Err(format!(
                    "node {id}: leader of term {term} rewrote its own log from index {from}"
                ));
            }
        }
        sh.log.truncate(same as usize);
        for index in same + 1..=last {
            let e = log
                .entry(index)
                .ok_or_else(|| format!("node {id}: log has no entry {index} ≤ last {last}"))?;
            if e.index != index {
                return Err(format!(
                    "node {id}: entry at {index} says index {}",
                    e.index
                ));
            }
            let hash = entry_hash(e);
            let prev_term = log.term(index - 1).unwrap_or(0);
            if e.term < prev_term {
                return Err(format!(
                    "node {id}: term decreases along the log at {index} ({prev_term} → {})",
                    e.term
                ));
            }
            match self.registry.get(&(index, e.term)) {
                Some(&(h, p)) if h != hash || p != prev_term => {
                    return Err(format!(
                        "log matching: node {id} has a different entry {index}@{} than another \
                         node had (content differs: {}, predecessor term {prev_term} vs {p})",
                        e.term,
                        h != hash
                    ));
                }
                Some(_) => {}
                None => {
                    self.registry.insert((index, e.term), (hash, prev_term));
                    if self.conf_overlap && e.kind == EntryKind::ConfChange {
                        check_transition(id, index, raft.membership_at(index - 1), e)?;
                    }
                }
            }
            sh.log.push(Slot { term: e.term, hash });
        }

        // ----- commit -----
        let commit = log.committed;
        if commit < sh.commit {
            return Err(format!(
                "node {id}: commit index went back from {} to {commit}",
                sh.commit
            ));
        }
        if commit > last {
            return Err(format!(
                "node {id}: commit index {commit} beyond its log ({last})"
            ));
        }
        // Figure 2 / §5.4.2: a leader raises its commit index only to an entry of its own
        // term (older entries commit with it, never by counting their replicas).
        if self.commit_rule
            && commit > sh.commit
            && raft.role() == Role::Leader
            && sh.leader_of == Some(term)
            && log.term(commit) != Some(term)
        {
            return Err(format!(
                "commit rule (§5.4.2): leader {id} of term {term} advanced its commit index \
                 from {} to {commit}, an entry of term {:?}",
                sh.commit,
                log.term(commit)
            ));
        }
        for index in sh.commit + 1..=commit {
            let slot = sh.log[index as usize - 1];
            match self.committed.get(index as usize - 1) {
                Some(c) if c.slot != slot => {
                    return Err(format!(
                        "commit safety: node {id} committed {index}@{} but node {} committed \
                         {index}@{} (seen in term {})",
                        slot.term, c.by, c.slot.term, c.commit_term
                    ));
                }
                Some(_) => {}
                None => {
                    debug_assert_eq!(self.committed.len() as Index, index - 1);
                    // First seen committed, in this step: not compacted yet (see
                    // `check_snapshot_prefix`), so the entry itself is at hand.
                    let entry = log.entry(index).ok_or_else(|| {
                        format!("node {id}: committed entry {index} is not in its log")
                    })?;
                    self.committed_log.push(entry.clone());
                    self.committed.push(Committed {
                        slot,
                        commit_term: term,
                        by: id,
                    });
                }
            }
        }

        // ----- applied -----
        let applied = log.applied;
        if applied > commit {
            return Err(format!(
                "node {id}: applied {applied} beyond commit index {commit}"
            ));
        }
        if applied < sh.applied {
            return Err(format!(
                "node {id}: applied index went back from {} to {applied}",
                sh.applied
            ));
        }
        for index in sh.applied + 1..=applied {
            let slot = sh.log[index as usize - 1];
            match self.applied.get(index as usize - 1) {
                Some(a) if *a != slot => {
                    return Err(format!(
                        "state-machine safety: node {id} applied {index}@{} where another node \
                         applied {index}@{}",
                        slot.term, a.term
                    ));
                }
                Some(_) => {}
                None => self.applied.push(slot),
            }
        }

        // ----- leadership -----
        if raft.role() == Role::Leader {
            let prev = *self.leaders.entry(term).or_insert(id);
            if prev != id {
                return Err(format!(
                    "election safety: nodes {prev} and {id} both led term {term}"
                ));
            }
            if sh.leader_of != Some(term) {
                self.elections += 1;
                sh.leader_of = Some(term);
                if !leader_may_vote(raft) {
                    return Err(format!(
                        "node {id} leads term {term} but is no voter of its configuration {:?} \
                         (at index {}, commit {}) nor of one it supersedes without commit",
                        raft.membership(),
                        raft.membership_index(),
                        raft.commit_index()
                    ));
                }
                for (k, c) in self.committed.iter().enumerate() {
                    if c.commit_term >= term {
                        continue;
                    }
                    let index = k + 1;
                    if sh.log.get(k) != Some(&c.slot) {
                        return Err(format!(
                            "leader completeness: node {id} leads term {term} without entry \
                             {index}@{} committed in term {} (its log: {})",
                            c.slot.term,
                            c.commit_term,
                            sh.log
                                .get(k)
                                .map_or("ends before".to_string(), |s| format!("term {}", s.term))
                        ));
                    }
                }
            }
        } else {
            sh.leader_of = None;
        }
        Ok(())
    }

    /// A snapshot may only cover committed entries, and then the node's log prefix up to
    /// it *is* the committed prefix: the shadow takes it (keeping the node's suffix if its
    /// prefix already matched — the log kept it). Entries this node commits in the very
    /// step it snapshots them are checked by the commit pass below, from the shadow, so
    /// they must have been seen in an earlier step (the driver compacts a step later).
    fn check_snapshot_prefix(
        &self,
        id: NodeId,
        snap: Index,
        commit: Index,
        sh: &mut Shadow,
    ) -> Result<(), String> {
        let known = self.committed_len();
        if snap > commit {
            return Err(format!(
                "node {id}: its snapshot covers index {snap} beyond its commit index {commit}"
            ));
        }
        if snap > known {
            if (sh.log.len() as Index) < snap {
                return Err(format!(
                    "node {id}: its log was compacted to {snap} before entries {}..={snap} \
                     were ever seen committed",
                    known.max(sh.log.len() as Index) + 1
                ));
            }
            // Seen in earlier steps; the commit pass records them.
            return Ok(());
        }
        let n = snap as usize;
        let matches = sh.log.len() >= n
            && sh.log[..n]
                .iter()
                .zip(&self.committed[..n])
                .all(|(s, c)| *s == c.slot);
        if !matches {
            sh.log.clear();
            sh.log.extend(self.committed[..n].iter().map(|c| c.slot));
        }
        Ok(())
    }

    /// The end-of-run pass: every live node's whole log against the registry (catches an
    /// entry rewritten in place with the same term, which the incremental check skips).
    pub fn full_pass(&self, raft: &Raft) -> Result<(), String> {
        let log = raft.log();
        for index in log.first_index()..=log.last_index() {
            let e = log.entry(index).expect("contiguous log");
            let prev_term = log.term(index - 1).unwrap_or(0);
            match self.registry.get(&(index, e.term)) {
                Some(&(h, p)) if h == entry_hash(e) && p == prev_term => {}
                _ => {
                    return Err(format!(
                        "log matching (final pass): node {} entry {index}@{} differs from the \
                         first entry seen there",
                        raft.id(),
                        e.term
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The configuration entry `e` (first seen at `index` on node `id`) against the
/// configuration before it in that log: no quorum of one may be disjoint from a quorum
/// of the other.
fn check_transition(id: NodeId, index: Index, prev: &Membership, e: &Entry) -> Result<(), String> {
    let next = Membership::from_entry_data(&e.data).ok_or_else(|| {
        format!(
            "node {id}: configuration entry {index}@{} does not decode",
            e.term
        )
    })?;
    if prev.is_unknown() {
        return Ok(()); // a node that joined: what came before is not in its log
    }
    if let Some((a, b)) = disjoint_quorums(prev, &next) {
        return Err(format!(
            "configurations overlap: entry {index}@{} on node {id} goes from {prev:?} to \
             {next:?}; {a:?} is a quorum of the old one and {b:?}, disjoint from it, of \
             the new one",
            e.term
        ));
    }
    Ok(())
}

/// Whether `set` holds a quorum of `m`: a majority of each non-empty half.
fn is_quorum(m: &Membership, set: &BTreeSet<NodeId>) -> bool {
    [&m.voters, &m.voters_outgoing]
        .into_iter()
        .all(|half| half.is_empty() || 2 * half.intersection(set).count() > half.len())
}

/// A quorum of `a` and a quorum of `b` that share no node, if there are any: every
/// split of their voters in two, tried (clusters here have at most nine machines).
fn disjoint_quorums(
    a: &Membership,
    b: &Membership,
) -> Option<(BTreeSet<NodeId>, BTreeSet<NodeId>)> {
    let all: Vec<NodeId> = a.all_voters().union(&b.all_voters()).copied().collect();
    assert!(all.len() < 20, "too many voters to enumerate");
    for mask in 0u32..(1 << all.len()) {
        let (mut left, mut right) = (BTreeSet::new(), BTreeSet::new());
        for (bit, &id) in all.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                left.insert(id);
            } else {
                right.insert(id);
            }
        }
        if is_quorum(a, &left) && is_quorum(b, &right) {
            return Some((left, right));
        }
    }
    None
}

/// The "leaders vote" invariant, read through `Raft`'s accessors only: `raft` (a new
/// leader) votes in its newest configuration, or that configuration is not committed on
/// it and it votes in one it holds that is not superseded by a committed one (the
/// configuration in force at its commit index, or a later one).
fn leader_may_vote(raft: &Raft) -> bool {
    let id = raft.id();
    if raft.membership().is_voter(id) {
        return true;
    }
    let commit = raft.commit_index();
    if raft.membership_index() <= commit {
        return false;
    }
    let history: Vec<(Index, &Membership)> = raft.membership_history().collect();
    let in_force_at_commit = history.iter().rposition(|&(i, _)| i <= commit).unwrap_or(0);
    history[in_force_at_commit..]
        .iter()
        .any(|(_, m)| m.is_voter(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(new: &[NodeId], old: &[NodeId]) -> Membership {
        Membership {
            voters: new.iter().copied().collect(),
            voters_outgoing: old.iter().copied().collect(),
            ..Membership::default()
        }
    }

    #[test]
    fn joint_steps_overlap_and_a_two_voter_switch_does_not() {
        let old = Membership::new([1, 2, 3]);
        let new = Membership::new([1, 2, 4]);
        assert!(disjoint_quorums(&old, &joint(&[1, 2, 4], &[1, 2, 3])).is_none());
        assert!(disjoint_quorums(&joint(&[1, 2, 4], &[1, 2, 3]), &new).is_none());
        assert!(disjoint_quorums(&old, &Membership::new([1, 2, 3, 4])).is_none());
        let (a, b) = disjoint_quorums(&old, &new).expect("disjoint");
        assert!(a.is_disjoint(&b));
    }
}
