//! The in-memory Raft log: every entry after the last snapshot, plus the bookkeeping of
//! what is durable, committed and handed out for applying.
//!
//! The core keeps the whole uncompacted log in memory (as etcd does); the driver persists
//! what [`RaftLog::take_unstable`] hands it and reports back with `persisted`.
//!
//! Invariants:
//! - `entries[i].index == offset + 1 + i` (contiguous after the snapshot point `offset`);
//! - `applied <= committed <= last_index()`; `persisted <= last_index()`;
//! - `unstable_from` is the first index the driver has not been given yet.

use crate::types::{Entry, Index, Term};
use alloc::vec::Vec;

#[derive(Clone, Debug)]
/// The log of one node: see the module docs for its invariants.
pub struct RaftLog {
    /// Index of the last entry covered by the snapshot (0 when none).
    offset: Index,
    offset_term: Term,
    entries: Vec<Entry>,
    /// First index not yet handed to the driver for persistence.
    unstable_from: Index,
    /// Highest index the driver confirmed durable.
    persisted: Index,
    /// Highest index known committed.
    pub committed: Index,
    /// Highest index handed out for applying.
    pub applied: Index,
}

impl RaftLog {
    /// An empty log (no snapshot, no entries).
    pub fn new() -> RaftLog {
        RaftLog {
            offset: 0,
            offset_term: 0,
            entries: Vec::new(),
            unstable_from: 1,
            persisted: 0,
            committed: 0,
            applied: 0,
        }
    }

    /// A log restored from storage: entries after `snapshot_index`, all already durable.
    pub fn restore(
        snapshot_index: Index,
        snapshot_term: Term,
        entries: Vec<Entry>,
        committed: Index,
    ) -> RaftLog {
        let last = snapshot_index + entries.len() as u64;
        debug_assert!(entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == snapshot_index + 1 + i as u64));
        RaftLog {
            offset: snapshot_index,
            offset_term: snapshot_term,
            entries,
            unstable_from: last + 1,
            persisted: last,
            committed: committed.clamp(snapshot_index, last),
            applied: snapshot_index,
        }
    }

    /// The first index still held (one past the snapshot point).
    pub fn first_index(&self) -> Index {
        self.offset + 1
    }

    /// The last index held (the snapshot point if there are no entries).
    pub fn last_index(&self) -> Index {
        self.offset + self.entries.len() as u64
    }

    /// The term of the last entry (or of the snapshot point).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// The index the last snapshot covers (0 when none).
    pub fn snapshot_index(&self) -> Index {
        self.offset
    }

    /// Highest index the driver confirmed durable.
    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// The term of the entry at `index`, if the log still knows it.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        if index < self.offset || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.offset - 1) as usize].term)
    }

    /// The entry at `index`, if held (not compacted, not beyond the end).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.offset || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index - self.offset - 1) as usize])
    }

    /// Whether the log holds `index` with term `term` (the §5.3 consistency check).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// §5.4.1: is a log ending at (`last_index`, `last_term`) at least as up to date as ours?
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[lo, ..]` of at most `max_bytes` (always at least one if any exist) and
    /// `max_entries`.
    pub fn slice(&self, lo: Index, max_bytes: usize, max_entries: usize) -> Vec<Entry> {
        if lo <= self.offset || lo > self.last_index() {
            return Vec::new();
        }
        let start = (lo - self.offset - 1) as usize;
        let mut size = 0;
        let mut out = Vec::new();
        for e in &self.entries[start..] {
            size += e.size_bytes();
            if !out.is_empty() && (size > max_bytes || out.len() >= max_entries) {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Appends a leader's own new entry.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        debug_assert!(entry.term >= self.last_term());
        self.entries.push(entry);
    }

    /// Follower side of AppendEntries (§5.3 steps 3–4): skips entries already present,
    /// truncates at the first conflict, appends the rest. Returns the index of the last
    /// entry now known to match the leader's log. The caller checked `prev` matches.
    pub fn merge(&mut self, entries: Vec<Entry>) -> Index {
        let mut last_matching = entries.first().map_or(self.last_index(), |e| e.index - 1);
        for e in entries {
            if e.index <= self.offset {
                // Already covered by our snapshot: committed, hence identical.
                last_matching = e.index;
                continue;
            }
            match self.term(e.index) {
                Some(t) if t == e.term => {
                    last_matching = e.index;
                    continue;
                }
                Some(_) => {
                    // Conflict: an uncommitted suffix from an older term. Never committed
                    // entries (Leader Completeness guarantees the leader has those).
                    debug_assert!(e.index > self.committed, "conflict below commit index");
                    self.truncate_from(e.index);
                }
                None => {}
            }
            debug_assert_eq!(e.index, self.last_index() + 1);
            last_matching = e.index;
            self.entries.push(e);
        }
        last_matching
    }

    fn truncate_from(&mut self, index: Index) {
        let keep = (index - self.offset - 1) as usize;
        self.entries.truncate(keep);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// The entries the driver must persist next, taken once.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let last = self.last_index();
        if self.unstable_from > last {
            return Vec::new();
        }
        let from = self.unstable_from.max(self.offset + 1);
        let out = self.entries[(from - self.offset - 1) as usize..].to_vec();
        self.unstable_from = last + 1;
        out
    }

    /// Whether entries wait to be handed to the driver for persistence.
    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The driver made everything up to (`index`, `term`) durable. Ignored if the log has
    /// since been truncated there (the driver's write raced a conflict).
    pub fn mark_persisted(&mut self, index: Index, term: Term) {
        if index > self.persisted && index < self.unstable_from && self.term(index) == Some(term) {
            self.persisted = index;
        }
    }

    /// Raises the commit index; returns whether it moved.
    pub fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Committed, durable entries not yet handed out for applying; marks them applied.
    pub fn take_committed(&mut self, max_bytes: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.persisted);
        if hi <= self.applied {
            return Vec::new();
        }
        let lo = (self.applied + 1).max(self.offset + 1);
        let mut out = Vec::new();
        let mut size = 0;
        for index in lo..=hi {
            let e = &self.entries[(index - self.offset - 1) as usize];
            size += e.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        if let Some(last) = out.last() {
            self.applied = last.index;
        }
        out
    }

    /// Whether committed, durable entries wait to be handed out for applying.
    pub fn has_committed_to_apply(&self) -> bool {
        self.committed.min(self.persisted) > self.applied
    }

    /// Drops entries up to `index` (a snapshot covers them). `index` must be applied.
    pub fn compact(&mut self, index: Index) {
        if index <= self.offset || index > self.applied {
            return;
        }
        let term = self.term(index).expect("compact index in log");
        let drop = (index - self.offset) as usize;
        self.entries.drain(..drop);
        self.offset = index;
        self.offset_term = term;
    }

    /// A follower installs a snapshot cut at (`index`, `term`), newer than its commit
    /// index. As §7 of the paper says: if the log holds that entry, the entries after it
    /// are kept (they may be the leader's, already acknowledged); otherwise the whole log
    /// is replaced. Either way everything up to `index` counts as committed, applied (the
    /// state machine is replaced) and durable (the driver saves the snapshot before it
    /// acknowledges). Returns whether a suffix was kept.
    pub fn install_snapshot(&mut self, index: Index, term: Term) -> bool {
        debug_assert!(index > self.committed, "installing an older snapshot");
        if !self.matches(index, term) || index <= self.offset {
            self.reset_to_snapshot(index, term);
            return false;
        }
        let drop = (index - self.offset) as usize;
        self.entries.drain(..drop);
        self.offset = index;
        self.offset_term = term;
        self.unstable_from = self.unstable_from.max(index + 1);
        self.persisted = self.persisted.max(index);
        self.committed = index;
        self.applied = index;
        true
    }

    /// Replaces the whole log with a snapshot's cut point (follower installing a snapshot).
    pub fn reset_to_snapshot(&mut self, index: Index, term: Term) {
        self.entries.clear();
        self.offset = index;
        self.offset_term = term;
        self.unstable_from = index + 1;
        self.persisted = index;
        self.committed = index;
        self.applied = index;
    }

    /// Bytes held by entries after `index` (the uncommitted tail, for the proposal limit).
    pub fn bytes_after(&self, index: Index) -> usize {
        if index >= self.last_index() {
            return 0;
        }
        let start = index.saturating_sub(self.offset) as usize;
        self.entries[start..].iter().map(Entry::size_bytes).sum()
    }

    /// Fast backup, follower side: the largest index `<= index` whose term is `<= term`.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term => {
                    if i == self.offset {
                        return (i, t);
                    }
                    i -= 1;
                }
                Some(t) => return (i, t),
                None => return (self.offset, self.offset_term),
            }
        }
    }
}

impl Default for RaftLog {
    fn default() -> Self {
        RaftLog::new()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use bytes::Bytes;

    use super::*;
    use crate::types::EntryKind;

    fn e(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    fn log_with(terms: &[Term]) -> RaftLog {
        let mut log = RaftLog::new();
        for (i, &t) in terms.iter().enumerate() {
            log.push(e(i as u64 + 1, t));
        }
        log
    }

    #[test]
    fn merge_skips_matching_and_truncates_conflicts() {
        let mut log = log_with(&[1, 1, 2, 2]);
        let last = log.merge(vec![e(2, 1), e(3, 3)]);
        assert_eq!(last, 3);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(3));
    }

    #[test]
    fn merge_of_stale_shorter_append_keeps_longer_log() {
        let mut log = log_with(&[1, 1, 1]);
        assert_eq!(log.merge(vec![e(2, 1)]), 2);
        assert_eq!(log.last_index(), 3, "a matching prefix must not truncate");
    }

    #[test]
    fn truncation_rewinds_unstable_and_persisted() {
        let mut log = log_with(&[1, 1, 1]);
        assert_eq!(log.take_unstable().len(), 3);
        log.mark_persisted(3, 1);
        assert_eq!(log.persisted(), 3);
        log.merge(vec![e(2, 2)]);
        assert_eq!(log.persisted(), 1);
        let unstable = log.take_unstable();
        assert_eq!(
            unstable.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn committed_entries_wait_for_persistence() {
        let mut log = log_with(&[1, 1]);
        log.commit_to(2);
        assert!(log.take_committed(usize::MAX).is_empty());
        log.take_unstable();
        log.mark_persisted(2, 1);
        assert_eq!(log.take_committed(usize::MAX).len(), 2);
        assert_eq!(log.applied, 2);
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let log = log_with(&[1, 1, 4, 4, 4, 5]);
        assert_eq!(log.find_conflict_by_term(6, 3), (2, 1));
        assert_eq!(log.find_conflict_by_term(10, 5), (6, 5));
    }

    #[test]
    fn compaction_keeps_term_of_cut_point() {
        let mut log = log_with(&[1, 2, 3]);
        log.take_unstable();
        log.mark_persisted(3, 3);
        log.commit_to(3);
        log.take_committed(usize::MAX);
        log.compact(2);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(2));
        assert_eq!(log.term(1), None);
        assert_eq!(log.slice(3, usize::MAX, 10).len(), 1);
    }

    #[test]
    fn installing_a_snapshot_keeps_a_matching_suffix_only() {
        let mut log = log_with(&[1, 1, 2, 2]);
        log.take_unstable();
        log.mark_persisted(4, 2);
        assert!(log.install_snapshot(2, 1));
        assert_eq!((log.first_index(), log.last_index()), (3, 4));
        assert_eq!((log.committed, log.applied, log.persisted()), (2, 2, 4));
        assert!(!log.has_unstable());

        let mut log = log_with(&[1, 1, 2]);
        assert!(!log.install_snapshot(3, 3), "term differs: replace the log");
        assert_eq!((log.first_index(), log.last_index()), (4, 3));
        assert_eq!(log.term(3), Some(3));
        assert_eq!((log.committed, log.applied, log.persisted()), (3, 3, 3));
        assert!(log.take_unstable().is_empty());
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let log = log_with(&[1, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(1, 2));
        assert!(!log.is_up_to_date(5, 1));
    }
}
