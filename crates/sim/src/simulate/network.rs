//! The fake network between nodes: per-link partitions (directed, so one-way cuts are
//! possible) and clogs, random loss, duplication, delay and reordering.
//!
//! A message's fate is drawn when it is sent; a partition that starts while it is in
//! flight still stops it (checked again on delivery).

use super::params::Params;
use super::rng::SimRng;

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Drop(&'static str),
    /// Delivered at the first time, and a duplicate at the second if any.
    Deliver(u64, Option<u64>),
}

#[derive(Clone, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    /// Requests among `sent` (PreVote, Vote, Append, Snapshot, TimeoutNow): the "RPC count"
    /// of the Raft labs.
    pub requests: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub duplicated: u64,
    pub delivered: u64,
    /// Delivered AppendResp rejections (fast backup probes).
    pub append_rejections: u64,
}

pub struct Network {
    n: usize,
    /// `blocked[from * n + to]`: the directed link is cut.
    blocked: Vec<bool>,
    /// `(clogged until, clog id)` per directed link.
    clog: Vec<(u64, u64)>,
    /// Identifies the partition in force (0: none), so a stale heal does not undo a newer one.
    pub partition_id: u64,
    pub partition_desc: String,
    next_id: u64,
    pub loss: f64,
    pub dup: f64,
    pub lat_min_us: u64,
    pub lat_max_us: u64,
    pub slow_p: f64,
    pub slow_max_us: u64,
    pub stats: NetStats,
}

impl Network {
    pub fn new(p: &Params) -> Network {
        let n = p.nodes + p.spares;
        Network {
            n,
            blocked: vec![false; n * n],
            clog: vec![(0, 0); n * n],
            partition_id: 0,
            partition_desc: String::new(),
            next_id: 0,
            loss: p.loss,
            dup: p.dup,
            lat_min_us: p.lat_min_us,
            lat_max_us: p.lat_max_us,
            slow_p: p.slow_p,
            slow_max_us: p.slow_max_us,
            stats: NetStats::default(),
        }
    }

    pub fn blocked(&self, from: usize, to: usize) -> bool {
        self.blocked[from * self.n + to]
    }

    pub fn set_link(&mut self, from: usize, to: usize, cut: bool) {
        self.blocked[from * self.n + to] = cut;
    }

    /// Replaces whatever partition is in force by `cut` (directed pairs); returns its id.
    pub fn partition(&mut self, cut: &[(usize, usize)], desc: String) -> u64 {
        self.blocked.iter_mut().for_each(|b| *b = false);
        for &(a, b) in cut {
            self.blocked[a * self.n + b] = true;
        }
        self.next_id += 1;
        self.partition_id = self.next_id;
        self.partition_desc = desc;
        self.partition_id
    }

    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.partition_id = 0;
        self.partition_desc.clear();
    }

    /// Clogs the directed link until `until`: messages sent on it wait until then.
    pub fn clog(&mut self, from: usize, to: usize, until: u64) -> u64 {
        self.next_id += 1;
        self.clog[from * self.n + to] = (until, self.next_id);
        self.next_id
    }

    pub fn unclog(&mut self, from: usize, to: usize, id: u64) {
        let c = &mut self.clog[from * self.n + to];
        if c.1 == id {
            *c = (0, 0);
        }
    }

    pub fn unclog_all(&mut self) {
        self.clog.iter_mut().for_each(|c| *c = (0, 0));
    }

    /// The network becomes reliable (liveness phase): no loss, no duplication, no slow
    /// path; latency stays.
    pub fn make_reliable(&mut self) {
        self.heal();
        self.unclog_all();
        self.loss = 0.0;
        self.dup = 0.0;
        self.slow_p = 0.0;
    }

    fn one_delay(&self, rng: &mut SimRng) -> u64 {
        let mut d = rng.range(self.lat_min_us, self.lat_max_us + 1);
        if rng.chance(self.slow_p) {
            d += rng.range(0, self.slow_max_us + 1);
        }
        d
    }

    /// Draws the fate of a message sent now on `from → to`.
    pub fn fate(&mut self, rng: &mut SimRng, now: u64, from: usize, to: usize) -> Fate {
        self.stats.sent += 1;
        if self.blocked(from, to) {
            self.stats.dropped_partition += 1;
            return Fate::Drop("partition");
        }
        if rng.chance(self.loss) {
            self.stats.dropped_loss += 1;
            return Fate::Drop("loss");
        }
        let clogged_until = self.clog[from * self.n + to].0;
        let at = |d: u64| (now + d).max(clogged_until + d.min(1_000));
        let first = at(self.one_delay(rng));
        let dup = if rng.chance(self.dup) {
            self.stats.duplicated += 1;
            Some(at(self.one_delay(rng)))
        } else {
            None
        };
        Fate::Deliver(first, dup)
    }

    /// Latency of a client ↔ node hop (clients are not partitioned and lose nothing: they
    /// talk over a connection; a crashed or paused node still loses or delays them).
    pub fn client_delay(&self, rng: &mut SimRng) -> u64 {
        rng.range(self.lat_min_us, self.lat_max_us + 1)
    }
}
