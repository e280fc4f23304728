//! The event queue: everything scheduled for a future instant of global time. Ties break
//! by insertion order, so a run is a function of its seed alone.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use driver::{Forward, ReqId, Request, Response};
use kv::SessionTag;
use raft::Message;

/// Fault bookkeeping events (see `faults.rs`).
#[derive(Clone, Debug)]
pub enum FaultEv {
    /// Time for the next random fault.
    Next,
    /// End of partition number `id` (ignored if another replaced it).
    Heal(u64),
    /// End of a clog of the directed link `(from, to)` (slots).
    Unclog { from: usize, to: usize, id: u64 },
    /// Bring a crashed node back (incarnation it crashed in).
    Restart { node: usize, incarnation: u32 },
    /// End of a pause (incarnation it was paused in).
    Resume { node: usize, incarnation: u32 },
    /// Leader churn: depose `node` if it still leads `term` (crash it or cut it off).
    Depose {
        node: usize,
        incarnation: u32,
        term: u64,
    },
}

#[derive(Clone, Debug)]
pub enum Ev {
    /// A peer message arrives at `msg.to`.
    Deliver(Message),
    /// A client request arrives at node slot `node`.
    ToNode {
        node: usize,
        req_id: ReqId,
        req: Request,
        session: Option<SessionTag>,
    },
    /// A router's message (a forwarded request or its answer) arrives at slot `to`.
    DeliverForward {
        from: usize,
        to: usize,
        msg: Forward,
    },
    /// Node slot `node`'s answer arrives at its client.
    ToClient {
        node: usize,
        req_id: ReqId,
        resp: Response,
    },
    /// A client's think time (or back-off) is over; `token` must still be the client's
    /// latest, or a newer wake replaced this one.
    ClientWake {
        client: usize,
        token: u64,
    },
    /// A client's operation `op` (index in the history) ran out of time.
    ClientTimeout {
        client: usize,
        op: usize,
    },
    Fault(FaultEv),
    /// Node slot `node` runs its Ready over the inputs it has taken so far (input
    /// batching; ignored if the node crashed or paused since: `incarnation`).
    Flush {
        node: usize,
        incarnation: u32,
    },
}

struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: invert, earliest (then first scheduled) on top.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Item>,
    seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    pub fn peek_time(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |i| i.at)
    }

    pub fn pop(&mut self) -> Option<(u64, Ev)> {
        self.heap.pop().map(|i| (i.at, i.ev))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
