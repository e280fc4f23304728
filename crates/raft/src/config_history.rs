//! The configurations of one log: the one in force at the log's snapshot point, and one
//! per `ConfChange` entry after it, in log order.
//!
//! A configuration takes effect when its entry is appended, committed or not (thesis
//! §4.1), so the node's configuration is always the newest one here; truncating a
//! conflicting suffix rolls back to the newest one left (`retain_log`). Snapshots carry
//! the configuration at their index (`at`), and a restart rebuilds this from the
//! snapshot's configuration and the log (`Raft::try_restore`).
//!
//! Invariants: `changes` is in strictly increasing index order, every index above
//! `base_index`, and each names an entry of the log with that term.

use alloc::vec::Vec;

use crate::log::RaftLog;
use crate::membership::Membership;
use crate::types::{Index, Term};

#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigHistory {
    /// The log's snapshot point (0 when none).
    base_index: Index,
    /// The configuration in force at `base_index`.
    base: Membership,
    /// (index, term, configuration) of each `ConfChange` entry after `base_index`.
    changes: Vec<(Index, Term, Membership)>,
}

impl ConfigHistory {
    /// A history whose configuration at `index` is `base`, with no change after it.
    pub fn new(index: Index, base: Membership) -> ConfigHistory {
        ConfigHistory {
            base_index: index,
            base,
            changes: Vec::new(),
        }
    }

    /// The configuration in force: the newest in the log.
    pub fn current(&self) -> &Membership {
        self.changes.last().map_or(&self.base, |(_, _, m)| m)
    }

    /// The index of the newest configuration's entry (the snapshot point if none).
    pub fn current_index(&self) -> Index {
        self.changes.last().map_or(self.base_index, |&(i, _, _)| i)
    }

    /// The index of the configuration before the newest one (the snapshot point when the
    /// log holds at most one change): committed, whatever this node's commit index says.
    /// A leader appends a configuration only once the one before it is committed
    /// (`Raft::try_conf_change`, and the leave of a joint configuration once its entry
    /// commits: `after_commit_advanced`), and a log that holds the newer entry matches
    /// that leader's up to it (Log Matching).
    pub fn predecessor_index(&self) -> Index {
        match self.changes.len() {
            0 | 1 => self.base_index,
            n => self.changes[n - 2].0,
        }
    }

    /// The configuration in force once every entry up to `index` is applied (the base
    /// for an index at or below the snapshot point).
    pub fn at(&self, index: Index) -> &Membership {
        self.changes
            .iter()
            .rev()
            .find(|(i, _, _)| *i <= index)
            .map_or(&self.base, |(_, _, m)| m)
    }

    /// The configurations that may still be in force in the cluster, as far as a node
    /// whose commit index is `committed` knows: the one in force at `committed` and
    /// every newer one (uncommitted, each may yet be rolled back or be the one the
    /// cluster runs with). Older ones were superseded by a committed configuration.
    pub fn not_superseded(&self, committed: Index) -> impl Iterator<Item = &Membership> {
        let first = self.changes.iter().rposition(|(i, _, _)| *i <= committed);
        let base = first.is_none().then_some(&self.base);
        let from = first.unwrap_or(0);
        base.into_iter()
            .chain(self.changes[from..].iter().map(|(_, _, m)| m))
    }

    /// Every configuration from the base on: (index, configuration), oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Index, &Membership)> {
        core::iter::once((self.base_index, &self.base))
            .chain(self.changes.iter().map(|(i, _, m)| (*i, m)))
    }

    /// A configuration entry appended at (`index`, `term`).
    pub fn push(&mut self, index: Index, term: Term, m: Membership) {
        debug_assert!(index > self.current_index(), "configurations in log order");
        self.changes.push((index, term, m));
    }

    /// Drops the configurations whose entries the log no longer holds (a conflicting
    /// suffix was truncated). Returns whether the current configuration changed.
    pub fn retain_log(&mut self, log: &RaftLog) -> bool {
        let before = self.changes.len();
        while let Some(&(index, term, _)) = self.changes.last() {
            if log.term(index) == Some(term) {
                break;
            }
            self.changes.pop();
        }
        self.changes.len() != before
    }

    /// The log was compacted up to `index`: the configuration there becomes the base.
    pub fn compact(&mut self, index: Index) {
        if index <= self.base_index {
            return;
        }
        let base = self.at(index).clone();
        self.changes.retain(|(i, _, _)| *i > index);
        self.base = base;
        self.base_index = index;
    }

    /// A snapshot cut at `index` with configuration `m` was installed; the log kept the
    /// entries after it if `kept_suffix`, and their configurations stay.
    pub fn install(&mut self, index: Index, m: Membership, kept_suffix: bool) {
        if kept_suffix {
            self.changes.retain(|(i, _, _)| *i > index);
        } else {
            self.changes.clear();
        }
        self.base = m;
        self.base_index = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, EntryKind};
    use bytes::Bytes;

    fn log_with(terms: &[Term]) -> RaftLog {
        let mut log = RaftLog::new();
        for (i, &t) in terms.iter().enumerate() {
            log.push(Entry {
                term: t,
                index: i as u64 + 1,
                kind: EntryKind::Normal,
                data: Bytes::new(),
            });
        }
        log
    }

    #[test]
    fn truncation_rolls_back_and_compaction_moves_the_base() {
        let mut h = ConfigHistory::new(0, Membership::new([1, 2, 3]));
        h.push(2, 1, Membership::new([1, 2, 3, 4]));
        h.push(4, 2, Membership::new([1, 2, 4]));
        assert_eq!(h.at(3), &Membership::new([1, 2, 3, 4]));
        assert_eq!(h.at(1), &Membership::new([1, 2, 3]));
        let since = |h: &ConfigHistory, c| h.not_superseded(c).cloned().collect::<Vec<_>>();
        assert_eq!(since(&h, 4), [Membership::new([1, 2, 4])]);
        assert_eq!(
            since(&h, 3),
            [Membership::new([1, 2, 3, 4]), Membership::new([1, 2, 4])]
        );
        assert_eq!(since(&h, 1).len(), 3, "the base and both changes");
        // The log lost entry 4@2 to a conflict: back to the configuration of entry 2.
        let mut log = log_with(&[1, 1, 1, 3]);
        assert!(h.retain_log(&log));
        assert_eq!(h.current(), &Membership::new([1, 2, 3, 4]));
        assert_eq!(h.current_index(), 2);
        log.take_unstable();
        log.mark_persisted(4, 3);
        log.commit_to(4);
        log.take_committed(usize::MAX);
        log.compact(3);
        h.compact(3);
        assert_eq!(h.iter().count(), 1);
        assert_eq!(h.current(), &Membership::new([1, 2, 3, 4]));
        assert_eq!(h.current_index(), 3);
    }
}
