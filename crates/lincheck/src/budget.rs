//! One wall-clock deadline shared by every search of a `check` call
//! (all keys, and shrinking).

use std::time::{Duration, Instant};

/// Reading the clock costs tens of nanoseconds while a search step costs
/// about as much, so the clock is read only every this many steps.
const STEPS_PER_CLOCK_READ: u32 = 256;

pub(crate) struct Budget {
    /// `None` when `now + total` overflows `Instant`: effectively unbounded.
    deadline: Option<Instant>,
    total: Duration,
    /// Steps left before the next clock read.
    until_clock_read: u32,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Self {
        Budget {
            deadline: Instant::now().checked_add(total),
            total,
            until_clock_read: 0,
        }
    }

    pub(crate) fn total(&self) -> Duration {
        self.total
    }

    /// Counts one search step; true once the deadline has passed. The very
    /// first step reads the clock, so a zero budget stops any search at once.
    pub(crate) fn exhausted(&mut self) -> bool {
        if self.until_clock_read > 0 {
            self.until_clock_read -= 1;
            return false;
        }
        self.until_clock_read = STEPS_PER_CLOCK_READ - 1;
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}
