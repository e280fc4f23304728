//! Time in the state machine: how deadlines are decided, and how expired keys go.
//!
//! # The clock
//!
//! The apply must be deterministic, so it never reads a clock. Time enters through the
//! log: the leader wraps every client write in [`crate::Command::Timed`] with its wall
//! clock (Unix ms) at proposal. Applying it sets the store's `clock_ms` to the larger of
//! its old value and the entry's time — it never goes backwards, even when a new leader's
//! clock is behind the old one's. A relative TTL (`EX`, `PX`, `EXPIRE`, ...) becomes an
//! absolute deadline at apply: `clock_ms + ttl`. Every replica applies the same entries
//! in the same order, so every replica holds the same deadlines and removes the same
//! keys at the same index.
//!
//! **Assumption**: the nodes' wall clocks agree within a skew ε (NTP keeps it to a few
//! ms). A key can then expire up to ε early or late in real time, never differently on
//! two replicas. A leader whose clock jumps far ahead would expire keys early: as in
//! Redis, deadlines trust the (leader's) wall clock.
//!
//! # Reading
//!
//! A key whose deadline is at or before "now" reads as absent. In the apply, "now" is
//! `clock_ms`. A node answering a read uses the later of its wall clock and `clock_ms`
//! ([`KvStore::read_time`]), so a read after a write never sees the clock go back. (A
//! follower-local read on a node whose clock is behind may see a key a little longer,
//! within ε.)
//!
//! # Removing
//!
//! Lazily: a command that touches a key past its deadline removes it first (at apply, so
//! deterministically). Actively: the leader looks at the earliest deadlines
//! ([`KvStore::expiry_batch`], at most [`EXPIRE_BATCH_KEYS`] keys and
//! [`EXPIRE_BATCH_BYTES`] of them) and proposes [`crate::Command::ExpireKeys`] through
//! the log, one entry in flight at a time; apply removes only keys still past their
//! deadline at the entry's clock, so a key refreshed (`EXPIRE`, `SET`) by an entry before
//! it stays.
//!
//! Pace: a batch that came out full is followed by the next as soon as it applied (a
//! backlog drains at one full batch per commit); otherwise the next waits until
//! [`EXPIRE_INTERVAL_MS`] after it, so a steady trickle of expiries costs about ten
//! entries a second, each with the keys that came due meanwhile, rather than one entry
//! per commit round (each an append and an `fdatasync` on every node, competing with the
//! clients' writes: with 64-key batches sent back to back, 8,000 expiries a second were
//! 130 extra entries a second). Memory is thus bounded by the live keys plus what comes
//! due in an interval and a commit — measured with a million keys under TTLs in
//! `kvbench ttl` (crates/bench/README.md).
//!
//! # Leader changes
//!
//! A deadline is an absolute time fixed when its entry applied, the same on every
//! replica: a leader change neither restarts nor shortens it. A new leader expires
//! exactly the keys whose deadline has passed by its wall clock — the keys that are
//! really due. It does not expire keys *because* the old leader stalled: nothing is
//! counted from a leader's term, and nothing was "renewed in memory" on the old leader
//! (etcd's lease revocation after a slow fdatasync came from lease TTLs held in the
//! leader's memory and checkpointed separately). A stalled old leader cannot remove
//! anything either: its `ExpireKeys` entries do not commit once it is deposed, and those
//! that do are re-checked at apply. A refresh that committed before the deletion always
//! wins; one the stall kept from committing was never acknowledged to its client.
//! Deletions are bounded per round, so even a backlog of keys that really are due
//! drains gradually instead of in one burst.

use bytes::Bytes;

use crate::store::KvStore;

/// Keys one active-expiry entry removes at most.
pub const EXPIRE_BATCH_KEYS: usize = 1024;
/// Bytes of keys one active-expiry entry carries at most (keys may be up to the server's
/// `max_key_bytes`; one key always fits).
pub const EXPIRE_BATCH_BYTES: usize = 256 << 10;
/// A batch that did not fill waits this long after the previous one (Unix ms of the
/// leader's clock).
pub const EXPIRE_INTERVAL_MS: u64 = 100;

impl KvStore {
    /// The time a node answers reads at, given its wall clock: never before the last
    /// applied entry's time.
    pub fn read_time(&self, wall_ms: u64) -> u64 {
        self.clock_ms.max(wall_ms)
    }

    /// Up to `limit` keys whose deadline is at or before `now_ms`, earliest first.
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        self.deadlines
            .iter()
            .take_while(|(d, _)| *d <= now_ms)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// The next active-expiry batch at `now_ms`: the keys due, earliest first, within
    /// [`EXPIRE_BATCH_KEYS`] and [`EXPIRE_BATCH_BYTES`]; and whether it is full (more may
    /// be due).
    pub fn expiry_batch(&self, now_ms: u64) -> (Vec<Bytes>, bool) {
        let mut keys = Vec::new();
        let mut bytes = 0;
        for (d, k) in &self.deadlines {
            if *d > now_ms {
                return (keys, false);
            }
            if keys.len() == EXPIRE_BATCH_KEYS
                || (!keys.is_empty() && bytes + k.len() > EXPIRE_BATCH_BYTES)
            {
                return (keys, true);
            }
            bytes += k.len();
            keys.push(k.clone());
        }
        (keys, false)
    }

    /// The earliest deadline held, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }
}
