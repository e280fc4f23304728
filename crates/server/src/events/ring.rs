//! The events of recently applied entries, kept in memory for subscribers to read at
//! their own pace and for watches that resume from an index (`RAFTKV.WATCH ... FROM`).
//!
//! Invariants:
//! - entries are in strictly increasing index order, each with at least one event;
//! - every entry with an index in `complete_from..=applied` that produced events is
//!   held: a reader whose cursor is at or past `complete_from` misses nothing;
//! - `bytes` (the sum of the entries' sizes) stays at most `max_bytes`: the oldest
//!   entries go first, and `complete_from` moves past them.
//!
//! After a restart the ring is rebuilt by the replay of the log after the latest
//! snapshot, so it holds what that replay produced; a snapshot installed from the leader
//! applies no entries, so the ring starts again after it ([`EventRing::reset`]).

use std::collections::VecDeque;
use std::sync::Arc;

/// One applied entry's events.
#[derive(Debug)]
pub struct EntryEvents {
    pub index: u64,
    pub events: Vec<kv::Event>,
    size: usize,
}

/// A read from before what the ring holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    /// The oldest index a reader may start from now.
    pub oldest: u64,
}

#[derive(Debug)]
pub struct EventRing {
    entries: VecDeque<Arc<EntryEvents>>,
    bytes: usize,
    max_bytes: usize,
    complete_from: u64,
    applied: u64,
}

impl EventRing {
    pub fn new(max_bytes: usize) -> EventRing {
        EventRing {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            complete_from: 1,
            applied: 0,
        }
    }

    /// The entry at `index` (after everything held) produced `events`.
    pub fn push(&mut self, index: u64, events: Vec<kv::Event>) {
        debug_assert!(index > self.applied, "entries apply in order");
        self.applied = self.applied.max(index);
        if events.is_empty() {
            return;
        }
        let size = 32 + events.iter().map(kv::Event::size).sum::<usize>();
        self.bytes += size;
        self.entries.push_back(Arc::new(EntryEvents {
            index,
            events,
            size,
        }));
        while self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.size;
            self.complete_from = old.index + 1;
        }
    }

    /// The state machine applied everything up to `index` (entries that produced no
    /// events included).
    pub fn advance(&mut self, index: u64) {
        self.applied = self.applied.max(index);
    }

    /// The state machine is at `index`, and the events up to it are not known here (a
    /// snapshot was installed, or recording starts): forget everything held.
    pub fn reset(&mut self, index: u64) {
        self.entries.clear();
        self.bytes = 0;
        self.applied = index;
        self.complete_from = index + 1;
    }

    /// Up to `max` entries with an index at or after `from`, and where to read next.
    /// `Err` if events from `from` on are no longer (or were never) all held here.
    pub fn read(&self, from: u64, max: usize) -> Result<(Vec<Arc<EntryEvents>>, u64), Trimmed> {
        if from < self.complete_from {
            return Err(Trimmed {
                oldest: self.complete_from,
            });
        }
        let start = self.entries.partition_point(|e| e.index < from);
        let out: Vec<Arc<EntryEvents>> = self.entries.range(start..).take(max).cloned().collect();
        let next = if start + out.len() < self.entries.len() {
            out.last().map_or(from, |e| e.index + 1)
        } else {
            from.max(self.applied + 1)
        };
        Ok((out, next))
    }

    /// The index a live reader starts at: the next to apply.
    pub fn next_index(&self) -> u64 {
        self.applied + 1
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The oldest index a reader may start from.
    pub fn oldest(&self) -> u64 {
        self.complete_from
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes held in entries at or after `from` (a reader's backlog).
    pub fn bytes_from(&self, from: u64) -> usize {
        let start = self.entries.partition_point(|e| e.index < from);
        self.entries.range(start..).map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn set(key: &str) -> Vec<kv::Event> {
        vec![kv::Event::Key {
            kind: kv::KeyEvent::Set,
            key: Bytes::copy_from_slice(key.as_bytes()),
        }]
    }

    fn indexes(r: &EventRing, from: u64, max: usize) -> (Vec<u64>, u64) {
        let (es, next) = r.read(from, max).expect("held");
        (es.iter().map(|e| e.index).collect(), next)
    }

    #[test]
    fn readers_page_through_in_index_order_and_wait_at_the_end() {
        let mut r = EventRing::new(1 << 20);
        r.push(1, set("a"));
        r.push(2, Vec::new()); // a no-op: nothing held, but applied
        r.push(3, set("b"));
        r.push(4, set("c"));
        r.advance(6);
        assert_eq!(indexes(&r, 1, 2), (vec![1, 3], 4));
        assert_eq!(indexes(&r, 4, 2), (vec![4], 7));
        assert_eq!(indexes(&r, 2, 10), (vec![3, 4], 7));
        // A reader ahead of this node (it came from a node further along) waits.
        assert_eq!(indexes(&r, 9, 10), (vec![], 9));
        assert_eq!(r.next_index(), 7);
    }

    #[test]
    fn the_oldest_entries_go_when_full_and_reading_before_them_is_refused() {
        let one = 32 + set("k").iter().map(kv::Event::size).sum::<usize>();
        let mut r = EventRing::new(3 * one);
        for i in 1..=5 {
            r.push(i, set("k"));
        }
        assert_eq!(r.bytes(), 3 * one);
        assert_eq!(r.oldest(), 3);
        assert_eq!(r.read(2, 10).unwrap_err(), Trimmed { oldest: 3 });
        assert_eq!(indexes(&r, 3, 10), (vec![3, 4, 5], 6));
        assert_eq!(r.bytes_from(4), 2 * one);
    }

    #[test]
    fn a_reset_forgets_and_starts_after_the_snapshot() {
        let mut r = EventRing::new(1 << 20);
        r.push(1, set("a"));
        r.reset(100);
        assert_eq!(r.read(50, 10).unwrap_err(), Trimmed { oldest: 101 });
        assert_eq!(indexes(&r, 101, 10), (vec![], 101));
        r.push(101, set("b"));
        assert_eq!(indexes(&r, 101, 10), (vec![101], 102));
    }

    #[test]
    fn an_entry_larger_than_the_ring_is_not_kept() {
        let mut r = EventRing::new(10);
        r.push(1, set("a"));
        assert_eq!(r.bytes(), 0);
        assert_eq!(r.oldest(), 2);
        assert_eq!(indexes(&r, 2, 10), (vec![], 2));
    }
}
