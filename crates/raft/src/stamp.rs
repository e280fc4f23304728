//! Stamps tie acknowledgements to the time their message was sent, for leases and
//! ReadIndex. Every message a leader sends carries a fresh, strictly increasing stamp; a
//! follower echoes it. Stamps are counters, not times, so "sent after event E" is exact
//! even within one tick; the clock remembers at which tick each stamp was issued.

use alloc::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct StampClock {
    last: u64,
    /// (first stamp issued at a tick, that tick), oldest first; one row per tick change.
    issued: VecDeque<(u64, u64)>,
}

/// Rows kept; enough for any lease window at any message rate we allow.
const MAX_ROWS: usize = 4096;

impl StampClock {
    /// The newest stamp issued so far (0 before any).
    pub fn last(&self) -> u64 {
        self.last
    }

    pub fn issue(&mut self, now: u64) -> u64 {
        self.last += 1;
        if self.issued.back().is_none_or(|&(_, tick)| tick != now) {
            self.issued.push_back((self.last, now));
            if self.issued.len() > MAX_ROWS {
                self.issued.pop_front();
            }
        }
        self.last
    }

    /// The tick at which `stamp` was issued; `None` if it is older than the rows kept
    /// (callers then treat the acknowledgement as too old to extend a lease).
    pub fn tick_of(&self, stamp: u64) -> Option<u64> {
        if stamp == 0 || stamp > self.last {
            return None;
        }
        let pos = self.issued.partition_point(|&(first, _)| first <= stamp);
        if pos == 0 {
            return None;
        }
        Some(self.issued[pos - 1].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_map_back_to_their_tick() {
        let mut c = StampClock::default();
        let a = c.issue(5);
        let b = c.issue(5);
        let d = c.issue(9);
        assert!(a < b && b < d);
        assert_eq!(c.tick_of(a), Some(5));
        assert_eq!(c.tick_of(b), Some(5));
        assert_eq!(c.tick_of(d), Some(9));
        assert_eq!(c.tick_of(0), None);
        assert_eq!(c.tick_of(d + 1), None);
    }

    #[test]
    fn forgotten_stamps_are_unknown() {
        let mut c = StampClock::default();
        let first = c.issue(0);
        for t in 1..=(MAX_ROWS as u64 + 10) {
            c.issue(t);
        }
        assert_eq!(c.tick_of(first), None);
    }
}
