//! The run's timeline: client requests, scripted events and held-back
//! datagrams, earliest first.

use crate::harness::config::EventKind;
use std::cmp::Ordering;

/// Something due at a point of the run.
#[derive(Debug)]
pub(super) enum Due {
    /// A client request; the mix coin was tossed when it was scheduled.
    Request {
        get: bool,
    },
    Event(EventKind),
    /// A datagram held back by the `reorder` extension.
    Delayed {
        to: usize,
        raw: Vec<u8>,
    },
}

pub(super) struct Timed {
    pub(super) at: f64,
    pub(super) seq: u64,
    pub(super) what: Due,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first;
    // equal times keep insertion order (requests before scripted events).
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.total_cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BinaryHeap;

    #[test]
    fn earliest_first_and_ties_in_insertion_order() {
        let mut q = BinaryHeap::new();
        let items = [(2.0, 1), (1.0, 2), (2.0, 3), (0.5, 4)];
        for (at, seq) in items {
            q.push(Timed {
                at,
                seq,
                what: Due::Request { get: true },
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|t| t.seq)).collect();
        assert_eq!(order, vec![4, 2, 1, 3]);
    }
}
