//! The state machine: an ordered map from keys to typed values with optional deadlines
//! and per-key versions, plus the exactly-once session table.
//!
//! Invariants (checked by `debug_check` in tests):
//! - `deadlines` holds exactly one `(deadline, key)` for every entry with a deadline;
//! - `size_bytes` is the sum of `key.len() + value.size()` over the map;
//! - `clock_ms` never decreases; `version` never decreases, and every entry's version is
//!   at most `version`.
//!
//! How commands change it is in `apply.rs`, how queries read it in `read.rs`, and how
//! time enters it in `expiry.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::acl::Acl;
use crate::command::{Command, DecodeError};
use crate::reply::Reply;
use crate::session::{decode_entry, Seen, Sessions};

/// What applying a command produced, returned to the client that proposed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Delete: whether the key existed.
    Deleted(bool),
    /// Compare-and-set: whether it swapped, and the value it found.
    Cas {
        swapped: bool,
        current: Option<Bytes>,
    },
    /// A session write older than the window of outcomes kept: not applied, since we can
    /// no longer tell whether it already was.
    Expired,
    /// The Redis-shaped answer of every command after the first three.
    Reply(Reply),
}

/// A typed value. Lists and sets join here as new variants (with a `TYPE` name, a size,
/// and a snapshot tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
    Hash(BTreeMap<Bytes, Bytes>),
}

impl Value {
    /// Bytes held, for limits and metrics.
    pub fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
        }
    }

    /// What `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
        }
    }
}

/// One key's value and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    /// Unix ms at which the key stops existing (`None`: never).
    pub deadline: Option<u64>,
    /// The store's `version` when the key was last written: WATCH compares these.
    pub version: u64,
}

#[derive(Clone, Debug, Default)]
pub struct KvStore {
    pub(crate) map: BTreeMap<Bytes, Entry>,
    /// (deadline, key) of every key with a deadline, earliest first: active expiry and
    /// DBSIZE read it instead of the whole map.
    pub(crate) deadlines: BTreeSet<(u64, Bytes)>,
    /// The sum of the deadlines in `deadlines` (for `INFO keyspace`'s average TTL).
    deadline_sum: u128,
    /// Bytes of keys and values held (for limits and metrics).
    size_bytes: usize,
    pub(crate) sessions: Sessions,
    /// The latest leader clock (Unix ms) of any entry applied: "now" for the apply.
    pub(crate) clock_ms: u64,
    /// Entries applied: the version stamped on the keys an entry writes.
    pub(crate) version: u64,
    /// The users (`acl.rs`): replicated like the keys, untouched by FLUSHALL.
    pub(crate) acl: Acl,
    /// ACL entries applied by this store (not replicated, not in snapshots): tells a
    /// reader of [`KvStore::acl`] cheaply that the users may have changed.
    pub(crate) acl_changes: u64,
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Applies one command (the entry's session, if any, already checked).
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        self.version += 1;
        self.apply_command(cmd)
    }

    /// Applies a log entry's payload: a command, exactly once per session write.
    pub fn apply_entry(&mut self, data: &Bytes) -> Result<Outcome, DecodeError> {
        let (session, cmd) = decode_entry(data)?;
        let Some(tag) = session else {
            return Ok(self.apply(cmd));
        };
        match self.sessions.check(tag) {
            Seen::Duplicate(outcome) => Ok(outcome),
            Seen::Expired => Ok(Outcome::Expired),
            Seen::New => {
                let outcome = self.apply(cmd);
                self.sessions.record(tag, outcome.clone());
                Ok(outcome)
            }
        }
    }

    /// A store restored from a snapshot; `size_bytes` and the deadline index are
    /// recomputed here so they cannot disagree with the map.
    pub(crate) fn from_parts(
        map: BTreeMap<Bytes, Entry>,
        sessions: Sessions,
        clock_ms: u64,
        version: u64,
        acl: Acl,
    ) -> KvStore {
        let size_bytes = map.iter().map(|(k, e)| k.len() + e.value.size()).sum();
        let deadlines: BTreeSet<(u64, Bytes)> = map
            .iter()
            .filter_map(|(k, e)| e.deadline.map(|d| (d, k.clone())))
            .collect();
        let deadline_sum = deadlines.iter().map(|(d, _)| u128::from(*d)).sum();
        KvStore {
            map,
            deadlines,
            deadline_sum,
            size_bytes,
            sessions,
            clock_ms,
            version,
            acl,
            acl_changes: 0,
        }
    }

    /// Every key and its entry, in key order.
    pub(crate) fn entries(&self) -> &BTreeMap<Bytes, Entry> {
        &self.map
    }

    /// The users and their permissions.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// How many ACL entries this store applied (a store restored from a snapshot
    /// starts again at 0): the users changed only if this did, or the store was replaced.
    pub fn acl_changes(&self) -> u64 {
        self.acl_changes
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The state machine's clock: the latest leader time (Unix ms) applied.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// A string's bytes, whatever its deadline (tests and the seed replica; clients
    /// read through [`crate::Query`], which hides expired keys).
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        match self.map.get(key).map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The entry of `key`, whatever its deadline.
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Keys starting with `prefix`, after `after` (exclusive), at most `limit`, whatever
    /// their deadlines; a hash's value comes back empty.
    pub fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        self.scan_live(prefix, after, limit, None)
    }

    /// Like [`KvStore::scan`], leaving out keys past their deadline at `now_ms` (if
    /// given): a page is full only if `limit` live keys remained.
    pub fn scan_live(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        now_ms: Option<u64>,
    ) -> Vec<(Bytes, Bytes)> {
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(Bytes::copy_from_slice(a)),
            _ => std::ops::Bound::Included(Bytes::copy_from_slice(prefix)),
        };
        self.map
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| now_ms.is_none_or(|now| !expired(e, now)))
            .take(limit)
            .map(|(k, e)| {
                let v = match &e.value {
                    Value::Str(s) => s.clone(),
                    Value::Hash(_) => Bytes::new(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Keys held, counting those past their deadline that are not removed yet.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys with a deadline (for `INFO keyspace`), counting those past it that are not
    /// removed yet (as [`KvStore::len`] counts them).
    pub fn expiring(&self) -> usize {
        self.deadlines.len()
    }

    /// The average time left, in ms at `now_ms`, of the keys with a deadline (0 for
    /// none): `INFO keyspace`'s `avg_ttl`. Exact, from a running sum of the deadlines
    /// (Redis estimates it by sampling); a key past its deadline and not removed yet
    /// counts with its negative time left, and a mean in the past reads as 0.
    pub fn avg_ttl_ms(&self, now_ms: u64) -> u64 {
        let n = self.deadlines.len() as u128;
        if n == 0 {
            return 0;
        }
        let mean = self.deadline_sum / n;
        mean.saturating_sub(u128::from(now_ms)) as u64
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Puts `entry` under `key`, replacing what was there, keeping the indexes right.
    pub(crate) fn put(&mut self, key: Bytes, entry: Entry) {
        self.take(&key);
        self.size_bytes += key.len() + entry.value.size();
        if let Some(d) = entry.deadline {
            self.deadlines.insert((d, key.clone()));
            self.deadline_sum += u128::from(d);
        }
        self.map.insert(key, entry);
    }

    /// Removes `key`, whatever its deadline, keeping the indexes right.
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, e) = self.map.remove_entry(key)?;
        self.size_bytes -= k.len() + e.value.size();
        if let Some(d) = e.deadline {
            self.deadlines.remove(&(d, k));
            self.deadline_sum -= u128::from(d);
        }
        Some(e)
    }

    /// Checks the invariants in the module doc (tests).
    #[cfg(test)]
    pub(crate) fn debug_check(&self) {
        let size: usize = self.map.iter().map(|(k, e)| k.len() + e.value.size()).sum();
        assert_eq!(size, self.size_bytes, "size_bytes");
        let deadlines: BTreeSet<(u64, Bytes)> = self
            .map
            .iter()
            .filter_map(|(k, e)| e.deadline.map(|d| (d, k.clone())))
            .collect();
        assert_eq!(deadlines, self.deadlines, "deadline index");
        let sum: u128 = deadlines.iter().map(|(d, _)| u128::from(*d)).sum();
        assert_eq!(sum, self.deadline_sum, "deadline sum");
        assert!(self.map.values().all(|e| e.version <= self.version));
    }
}

/// Whether `entry` is past its deadline at `now_ms`.
pub(crate) fn expired(entry: &Entry, now_ms: u64) -> bool {
    entry.deadline.is_some_and(|d| d <= now_ms)
}
