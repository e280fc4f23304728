//! A map whose entries each have a due time, with the earliest due time and the entries
//! due by a given time found in O(log n): the router's requests and forwards, so that a
//! wake-up costs what is due, not what is in flight.

use std::collections::{BTreeMap, BTreeSet};

/// Entries by key, each with a due time (ticks).
///
/// Invariant: `by_due` holds exactly one `(due, key)` for each entry of `entries`, with
/// the entry's current due time. A due time changes only by removing and re-inserting
/// the entry, so the two never disagree.
#[derive(Debug)]
pub(crate) struct DeadlineMap<K: Ord + Copy, V> {
    /// Ordered by key, so iteration is deterministic (simulator replays depend on it).
    entries: BTreeMap<K, (u64, V)>,
    by_due: BTreeSet<(u64, K)>,
}

impl<K: Ord + Copy, V> Default for DeadlineMap<K, V> {
    fn default() -> Self {
        DeadlineMap {
            entries: BTreeMap::new(),
            by_due: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy, V> DeadlineMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds (or replaces) `key`, due at `due`.
    pub(crate) fn insert(&mut self, key: K, due: u64, value: V) {
        if let Some((old_due, _)) = self.entries.insert(key, (due, value)) {
            self.by_due.remove(&(old_due, key));
        }
        self.by_due.insert((due, key));
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (due, value) = self.entries.remove(key)?;
        self.by_due.remove(&(due, *key));
        Some(value)
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The earliest due time, `u64::MAX` when empty.
    pub(crate) fn first_due(&self) -> u64 {
        self.by_due.first().map_or(u64::MAX, |&(due, _)| due)
    }

    /// Keys due at or before `now`, earliest first (ties by key: deterministic).
    pub(crate) fn due_by(&self, now: u64) -> Vec<K> {
        self.by_due
            .iter()
            .take_while(|(due, _)| *due <= now)
            .map(|&(_, k)| k)
            .collect()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_inserts_replacements_and_removals() {
        let mut m = DeadlineMap::default();
        assert_eq!(m.first_due(), u64::MAX);
        m.insert(1u64, 50, "a");
        m.insert(2, 10, "b");
        m.insert(3, 30, "c");
        assert_eq!(m.first_due(), 10);
        assert_eq!(m.due_by(30), vec![2, 3]);
        m.insert(2, 70, "b2"); // a new due time replaces the old one
        assert_eq!(m.first_due(), 30);
        assert_eq!(m.due_by(60), vec![3, 1]);
        assert_eq!(m.remove(&3), Some("c"));
        assert_eq!(m.remove(&3), None);
        assert_eq!(m.due_by(1_000), vec![1, 2]);
        assert_eq!(m.get(&2), Some(&"b2"));
        assert_eq!(m.len(), 2);
    }
}
