//! The frontier carried across a cut, and its pruning.

use std::collections::{HashMap, HashSet};

use crate::model::{Effect, Val};

/// A frontier entry: where some valid linearization of the segments so far
/// can leave the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Entry {
    /// The state, or `future::UNNAMED`.
    pub state: Val,
    /// The live pending ops that are not anonymous (indices into the key's
    /// ops, ascending).
    pub named: Vec<usize>,
    /// Per anonymous class (`Future::anonymous_after`), how many members
    /// are pending; ascending by class, no zero counts.
    pub anonymous: Vec<(Effect, usize)>,
}

impl Entry {
    /// Whether every op pending in `self` is pending in `other` too.
    fn pending_within(&self, other: &Entry) -> bool {
        is_subset(&self.named, &other.named)
            && self
                .anonymous
                .iter()
                .all(|&(class, n)| other.anonymous.iter().any(|&(c, m)| c == class && n <= m))
    }
}

/// Drops every entry whose pending ops are all pending in another entry
/// with the same state: more pending ops only add freedom (each may
/// still never take effect), so whatever the rest of the history allows
/// from the smaller entry it allows from the larger one, and the verdict is
/// unchanged. (The canonical rules do not get in the way: they narrow which
/// linearization is found, never whether one exists.)
pub(crate) fn maximal(entries: HashSet<Entry>) -> Vec<Entry> {
    let mut by_state: HashMap<Val, Vec<Entry>> = HashMap::new();
    for entry in entries {
        by_state.entry(entry.state).or_default().push(entry);
    }
    let mut out = Vec::new();
    for (_, mut group) in by_state {
        // Most pending first, so a kept entry is never dominated by a later
        // one (equal entries were merged by the hash set).
        group.sort_by_key(|e| {
            let anonymous: usize = e.anonymous.iter().map(|&(_, n)| n).sum();
            std::cmp::Reverse(e.named.len() + anonymous)
        });
        let mut kept: Vec<Entry> = Vec::new();
        for entry in group {
            if !kept.iter().any(|k| entry.pending_within(k)) {
                kept.push(entry);
            }
        }
        out.extend(kept);
    }
    // Deterministic order, so budgets and limits hit the same way each run.
    out.sort_unstable();
    out
}

/// Whether sorted `a` is a subset of sorted `b`.
fn is_subset(a: &[usize], b: &[usize]) -> bool {
    let mut b = b.iter();
    a.iter().all(|x| b.any(|y| y == x))
}
