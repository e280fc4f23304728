//! State-machine snapshots: a [`KvStore`] as bytes, and back.
//!
//! Raft saves these bytes to a snapshot file (the file layer adds its own CRC32C and
//! atomic rename, so there is no checksum here), compacts its log, and ships them to
//! lagging followers, which restore from them. A restored store behaves exactly like the
//! original for every future command, including the exactly-once session table and the
//! order in which it evicts sessions, so every replica stays deterministic.
//!
//! # Layout (format version 3)
//!
//! Every integer is a LEB128 varint, as in session entries, unless its size is given.
//!
//! ```text
//! magic       4 bytes "RKVS"
//! version     1 byte, 2
//! clock_ms    the state machine's clock (the latest leader time applied, Unix ms)
//! version     entries applied (the per-key version counter)
//! map         entry count, then per entry, keys strictly ascending:
//!               key length, key,
//!               kind: 1 byte, 0 string or 1 hash, plus 0x80 if a deadline follows
//!               string: value length, value
//!               hash: field count, then per field (strictly ascending): length,
//!                     field, length, value; at least one field
//!               deadline (Unix ms), if flagged
//!               version (at most the store's)
//! clock       the count of session writes recorded, which orders LRU eviction
//! sessions    session count, then per session, least recently used first:
//!               client, last_used, first_outstanding,
//!               outcome count, then per outcome: seq, outcome; seqs strictly ascending
//! outcome     1 tag byte: 0 Done, 1 Deleted(false), 2 Deleted(true), 3 Expired,
//!             4..=7 Cas, with bit 0 = swapped and bit 1 = a current value follows
//!             (as length, bytes), 8 a Reply (its own encoding, `reply.rs`)
//! acl         the users (`snapshot_acl.rs`): 0 (never set), or 1 then the users
//! ```
//!
//! Version 2 (before users) still loads, with the users never set. Version 1 (before types, deadlines and versions) still loads: its map is strings
//! only (`key length, key, value length, value`), with no clock and no versions (all
//! 0), and no reply outcomes.
//!
//! Nothing follows the users. `size_bytes` is not stored: it is recomputed from
//! the map. The encoding is canonical — one byte string per state, since sessions go in
//! LRU order rather than hash order — so two stores are equal iff their snapshots are.
//!
//! Decoding treats its input as untrusted: it never panics, bounds every count by the
//! bytes left before using it, and rejects what the encoder cannot write and the store's
//! invariants forbid: keys out of order, sessions whose `last_used` do not ascend strictly
//! within `1..=clock`, a clock of `u64::MAX` (no session write could follow), a client
//! twice, outcome seqs out of order or below their session's
//! `first_outstanding`. It tolerates more sessions or outcomes than today's bounds
//! (`MAX_SESSIONS`, `SESSION_WINDOW`), which the next session write trims to.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::reply::Reply;
use crate::session::{RestoreError, Session, Sessions};
use crate::store::{Entry, KvStore, Outcome, Value};
use crate::varint::{get as get_varint, put as put_varint, VarintError, MAX_LEN as MAX_VARINT_LEN};

const MAGIC: [u8; 4] = *b"RKVS";
const FORMAT_VERSION: u8 = 3;
/// The format before users: still read.
const FORMAT_V2: u8 = 2;
/// The format before types, deadlines and versions: still read.
const FORMAT_V1: u8 = 1;
const KIND_STRING: u8 = 0;
const KIND_HASH: u8 = 1;
const HAS_DEADLINE: u8 = 0x80;
/// Key length, kind, value length (or field count), version.
const MIN_ENTRY_V2_LEN: usize = 4;

// The smallest encoding of each repeated item, to bound counts by the bytes left.
/// Two empty length prefixes.
const MIN_ENTRY_LEN: usize = 2;
/// Four one-byte varints: client, last_used, first_outstanding, outcome count.
const MIN_SESSION_LEN: usize = 4;
/// A one-byte seq and a tag.
const MIN_OUTCOME_LEN: usize = 2;

const OUTCOME_DONE: u8 = 0;
const OUTCOME_NOT_DELETED: u8 = 1;
const OUTCOME_DELETED: u8 = 2;
const OUTCOME_EXPIRED: u8 = 3;
/// Cas outcomes are this, plus either flag below.
const OUTCOME_CAS: u8 = 4;
const OUTCOME_REPLY: u8 = 8;
const CAS_SWAPPED: u8 = 1;
const CAS_HAS_CURRENT: u8 = 2;

/// Why bytes are not a valid snapshot: what was wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot at byte {offset}: {kind}")]
pub struct SnapshotError {
    /// Where the offending field (or session, for session-level checks) starts.
    pub offset: usize,
    pub kind: SnapshotErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotErrorKind {
    #[error("input ends inside the {0}")]
    Truncated(&'static str),
    #[error("bad magic {0:02x?}, expected {MAGIC:02x?} (\"RKVS\")")]
    BadMagic([u8; 4]),
    #[error("unsupported format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("bad varint in the {0}: longer than 10 bytes or above 2^64 - 1")]
    BadVarint(&'static str),
    #[error("{what} {count} is impossible: only {remaining} bytes remain")]
    ImpossibleCount {
        what: &'static str,
        count: u64,
        remaining: usize,
    },
    #[error("key is not greater than the key before it")]
    KeyOutOfOrder,
    #[error("unknown outcome tag {0:#04x}")]
    UnknownOutcome(u8),
    #[error("client {client} has two sessions")]
    DuplicateClient { client: u64 },
    #[error(
        "client {client}'s last_used {last_used} is not above the previous session's \
         ({previous}) and at most the clock ({clock})"
    )]
    LastUsedOutOfOrder {
        client: u64,
        last_used: u64,
        previous: u64,
        clock: u64,
    },
    #[error(
        "client {client}'s outcome for seq {seq} is not above the seq before it and at \
         least first_outstanding ({first_outstanding})"
    )]
    OutcomeSeqOutOfOrder {
        client: u64,
        seq: u64,
        first_outstanding: u64,
    },
    #[error("{0} trailing byte(s) after the last session")]
    TrailingBytes(usize),
    #[error("session clock {0} leaves no room for another session write")]
    ClockExhausted(u64),
    #[error("version counter {0} leaves no room for another entry")]
    VersionExhausted(u64),
    #[error("bad map entry: {0}")]
    BadEntry(&'static str),
    #[error("bad reply outcome: {0}")]
    BadReply(String),
    #[error("bad user: {0}")]
    BadUser(&'static str),
}

impl KvStore {
    /// The whole state machine as bytes (see the module doc for the layout).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let map = self.entries();
        // An upper bound for the map while keys and values are under 16 KiB (length
        // varints of at most two bytes); sessions are usually small. Beyond that the
        // buffer grows, which is correct, just slower.
        let map_len = MAX_VARINT_LEN + self.size_bytes() + map.len() * 4;
        let sessions_len = 2 * MAX_VARINT_LEN + self.sessions().len() * 24;
        let mut buf = Vec::with_capacity(MAGIC.len() + 1 + map_len + sessions_len);
        buf.extend_from_slice(&MAGIC);
        buf.push(FORMAT_VERSION);
        put_varint(&mut buf, self.clock_ms);
        put_varint(&mut buf, self.version);
        write_map(&mut buf, map);
        write_sessions(&mut buf, self.sessions());
        crate::snapshot_acl::write(&mut buf, self.acl());
        buf
    }

    /// The store `encode_snapshot` wrote into `data`. Never panics, whatever `data` is.
    pub fn decode_snapshot(data: &[u8]) -> Result<KvStore, SnapshotError> {
        let mut r = Reader { data, pos: 0 };
        let format = read_header(&mut r)?;
        let (map, clock_ms, version) = match format {
            FORMAT_V1 => (read_map_v1(&mut r)?, 0, 0),
            _ => {
                let clock_ms = r.varint("clock_ms")?;
                let at = r.pos;
                let version = r.varint("version counter")?;
                // Every apply increments it: at the maximum it would overflow.
                if version == u64::MAX {
                    return Err(error(at, SnapshotErrorKind::VersionExhausted(version)));
                }
                (read_map(&mut r, version)?, clock_ms, version)
            }
        };
        let sessions = read_sessions(&mut r)?;
        let acl = match format {
            FORMAT_VERSION => crate::snapshot_acl::read(&mut r)?,
            _ => crate::acl::Acl::default(),
        };
        r.finish()?;
        Ok(KvStore::from_parts(map, sessions, clock_ms, version, acl))
    }
}

// ---- Encoding ----

fn write_map(buf: &mut Vec<u8>, map: &BTreeMap<Bytes, Entry>) {
    put_varint(buf, map.len() as u64);
    // BTreeMap iterates in key order: keys (and fields) go out strictly ascending.
    for (key, entry) in map {
        put_field(buf, key);
        let flag = if entry.deadline.is_some() {
            HAS_DEADLINE
        } else {
            0
        };
        match &entry.value {
            Value::Str(s) => {
                buf.push(KIND_STRING | flag);
                put_field(buf, s);
            }
            Value::Hash(h) => {
                buf.push(KIND_HASH | flag);
                put_varint(buf, h.len() as u64);
                for (f, v) in h {
                    put_field(buf, f);
                    put_field(buf, v);
                }
            }
        }
        if let Some(d) = entry.deadline {
            put_varint(buf, d);
        }
        put_varint(buf, entry.version);
    }
}

fn write_sessions(buf: &mut Vec<u8>, sessions: &Sessions) {
    put_varint(buf, sessions.clock());
    put_varint(buf, sessions.len() as u64);
    for (client, session) in sessions.lru_order() {
        put_varint(buf, client);
        put_varint(buf, session.last_used);
        put_varint(buf, session.first_outstanding);
        put_varint(buf, session.outcomes.len() as u64);
        for (&seq, outcome) in &session.outcomes {
            put_varint(buf, seq);
            write_outcome(buf, outcome);
        }
    }
}

fn write_outcome(buf: &mut Vec<u8>, outcome: &Outcome) {
    match outcome {
        Outcome::Done => buf.push(OUTCOME_DONE),
        Outcome::Deleted(false) => buf.push(OUTCOME_NOT_DELETED),
        Outcome::Deleted(true) => buf.push(OUTCOME_DELETED),
        Outcome::Expired => buf.push(OUTCOME_EXPIRED),
        Outcome::Reply(reply) => {
            buf.push(OUTCOME_REPLY);
            put_field(buf, &reply.encode());
        }
        Outcome::Cas { swapped, current } => {
            let swapped = if *swapped { CAS_SWAPPED } else { 0 };
            let has_current = if current.is_some() {
                CAS_HAS_CURRENT
            } else {
                0
            };
            buf.push(OUTCOME_CAS | swapped | has_current);
            if let Some(current) = current {
                put_field(buf, current);
            }
        }
    }
}

pub(crate) fn put_field(buf: &mut Vec<u8>, field: &[u8]) {
    put_varint(buf, field.len() as u64);
    buf.extend_from_slice(field);
}

// ---- Decoding ----

/// A cursor over untrusted bytes. Invariant: `pos <= data.len()`.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn bytes(
        &mut self,
        n: usize,
        what: &'static str,
    ) -> Result<&'a [u8], SnapshotError> {
        if n > self.remaining() {
            return Err(error(self.pos, SnapshotErrorKind::Truncated(what)));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let start = self.pos;
        let value = get_varint(self.data, &mut self.pos).map_err(|e| match e {
            VarintError::Truncated => error(start, SnapshotErrorKind::Truncated(what)),
            VarintError::Overlong => error(start, SnapshotErrorKind::BadVarint(what)),
        })?;
        Ok(value)
    }

    /// A count of items at least `min_len` bytes each, so at most `remaining / min_len`:
    /// callers may trust it not to exceed the input's length.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_len: usize,
    ) -> Result<usize, SnapshotError> {
        let start = self.pos;
        let count = self.varint(what)?;
        let remaining = self.remaining();
        if count > (remaining / min_len) as u64 {
            let kind = SnapshotErrorKind::ImpossibleCount {
                what,
                count,
                remaining,
            };
            return Err(error(start, kind));
        }
        Ok(count as usize)
    }

    /// A length-prefixed byte string.
    pub(crate) fn field(&mut self, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let len = self.count(what, 1)?;
        self.bytes(len, what)
    }

    fn finish(&self) -> Result<(), SnapshotError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(error(self.pos, SnapshotErrorKind::TrailingBytes(n))),
        }
    }
}

pub(crate) fn error(offset: usize, kind: SnapshotErrorKind) -> SnapshotError {
    SnapshotError { offset, kind }
}

/// The format version, after checking the magic.
fn read_header(r: &mut Reader) -> Result<u8, SnapshotError> {
    let mut magic = [0; 4];
    magic.copy_from_slice(r.bytes(MAGIC.len(), "magic")?);
    if magic != MAGIC {
        return Err(error(0, SnapshotErrorKind::BadMagic(magic)));
    }
    let at = r.pos;
    match r.byte("format version")? {
        v @ (FORMAT_V1 | FORMAT_V2 | FORMAT_VERSION) => Ok(v),
        v => Err(error(at, SnapshotErrorKind::UnsupportedVersion(v))),
    }
}

/// A version-1 map: strings only, no deadlines, version 0.
fn read_map_v1(r: &mut Reader) -> Result<BTreeMap<Bytes, Entry>, SnapshotError> {
    let count = r.count("map entry count", MIN_ENTRY_LEN)?;
    // Collected, then bulk-built: twice as fast as inserting one by one. The Vec grows
    // with what is actually read, not with the untrusted count.
    let mut entries = Vec::new();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let at = r.pos;
        let key = r.field("key length")?;
        // Strictly ascending keys: no duplicates for `from_iter` to drop, and
        // `size_bytes` counts each entry once.
        if previous.is_some_and(|p| key <= p) {
            return Err(error(at, SnapshotErrorKind::KeyOutOfOrder));
        }
        let value = r.field("value length")?;
        // Copies, so the store does not pin the whole snapshot buffer in memory.
        let entry = Entry {
            value: Value::Str(Bytes::copy_from_slice(value)),
            deadline: None,
            version: 0,
        };
        entries.push((Bytes::copy_from_slice(key), entry));
        previous = Some(key);
    }
    Ok(BTreeMap::from_iter(entries))
}

fn read_map(r: &mut Reader, max_version: u64) -> Result<BTreeMap<Bytes, Entry>, SnapshotError> {
    let count = r.count("map entry count", MIN_ENTRY_V2_LEN)?;
    let mut entries = Vec::new();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let at = r.pos;
        let key = r.field("key length")?;
        if previous.is_some_and(|p| key <= p) {
            return Err(error(at, SnapshotErrorKind::KeyOutOfOrder));
        }
        let kind_at = r.pos;
        let kind = r.byte("value kind")?;
        let value = match kind & !HAS_DEADLINE {
            KIND_STRING => Value::Str(Bytes::copy_from_slice(r.field("value length")?)),
            KIND_HASH => {
                let fields = r.count("hash field count", MIN_ENTRY_LEN)?;
                if fields == 0 {
                    return Err(error(kind_at, SnapshotErrorKind::BadEntry("an empty hash")));
                }
                let mut pairs = Vec::with_capacity(fields);
                let mut previous_field: Option<&[u8]> = None;
                for _ in 0..fields {
                    let f_at = r.pos;
                    let f = r.field("hash field length")?;
                    if previous_field.is_some_and(|p| f <= p) {
                        let kind = SnapshotErrorKind::BadEntry("hash fields out of order");
                        return Err(error(f_at, kind));
                    }
                    let v = r.field("hash value length")?;
                    pairs.push((Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)));
                    previous_field = Some(f);
                }
                Value::Hash(BTreeMap::from_iter(pairs))
            }
            _ => {
                return Err(error(
                    kind_at,
                    SnapshotErrorKind::BadEntry("unknown value kind"),
                ))
            }
        };
        let deadline = match kind & HAS_DEADLINE {
            0 => None,
            _ => Some(r.varint("deadline")?),
        };
        let v_at = r.pos;
        let version = r.varint("key version")?;
        if version > max_version {
            let kind = SnapshotErrorKind::BadEntry("key version above the store's");
            return Err(error(v_at, kind));
        }
        let entry = Entry {
            value,
            deadline,
            version,
        };
        entries.push((Bytes::copy_from_slice(key), entry));
        previous = Some(key);
    }
    Ok(BTreeMap::from_iter(entries))
}

fn read_sessions(r: &mut Reader) -> Result<Sessions, SnapshotError> {
    let at = r.pos;
    let clock = r.varint("session clock")?;
    // The next session write increments the clock: at the maximum it would overflow.
    if clock == u64::MAX {
        return Err(error(at, SnapshotErrorKind::ClockExhausted(clock)));
    }
    let count = r.count("session count", MIN_SESSION_LEN)?;
    let mut sessions = Sessions::restoring(clock);
    for _ in 0..count {
        let at = r.pos;
        let (client, session) = read_session(r)?;
        let last_used = session.last_used;
        // `push_restored` keeps the LRU invariant; it refuses what would break it.
        sessions.push_restored(client, session).map_err(|e| {
            let kind = match e {
                RestoreError::DuplicateClient => SnapshotErrorKind::DuplicateClient { client },
                RestoreError::LastUsedOutOfOrder { previous, clock } => {
                    SnapshotErrorKind::LastUsedOutOfOrder {
                        client,
                        last_used,
                        previous,
                        clock,
                    }
                }
            };
            error(at, kind)
        })?;
    }
    Ok(sessions)
}

fn read_session(r: &mut Reader) -> Result<(u64, Session), SnapshotError> {
    let client = r.varint("session client")?;
    let last_used = r.varint("session last_used")?;
    let first_outstanding = r.varint("session first_outstanding")?;
    let count = r.count("outcome count", MIN_OUTCOME_LEN)?;
    let mut outcomes = BTreeMap::new();
    for _ in 0..count {
        let at = r.pos;
        let seq = r.varint("outcome seq")?;
        // Strictly ascending, all at or above first_outstanding (`record` drops the rest).
        let in_order = match outcomes.last_key_value() {
            Some((&previous, _)) => seq > previous,
            None => seq >= first_outstanding,
        };
        if !in_order {
            let kind = SnapshotErrorKind::OutcomeSeqOutOfOrder {
                client,
                seq,
                first_outstanding,
            };
            return Err(error(at, kind));
        }
        outcomes.insert(seq, read_outcome(r)?);
    }
    let session = Session {
        last_used,
        first_outstanding,
        outcomes,
    };
    Ok((client, session))
}

fn read_outcome(r: &mut Reader) -> Result<Outcome, SnapshotError> {
    let at = r.pos;
    let outcome = match r.byte("outcome tag")? {
        OUTCOME_DONE => Outcome::Done,
        OUTCOME_NOT_DELETED => Outcome::Deleted(false),
        OUTCOME_DELETED => Outcome::Deleted(true),
        OUTCOME_EXPIRED => Outcome::Expired,
        OUTCOME_REPLY => {
            let bytes = Bytes::copy_from_slice(r.field("reply length")?);
            let reply = Reply::decode(&bytes)
                .map_err(|e| error(at, SnapshotErrorKind::BadReply(e.to_string())))?;
            Outcome::Reply(reply)
        }
        tag if tag & !(CAS_SWAPPED | CAS_HAS_CURRENT) == OUTCOME_CAS => {
            let current = match tag & CAS_HAS_CURRENT {
                0 => None,
                _ => Some(Bytes::copy_from_slice(r.field("CAS current value length")?)),
            };
            Outcome::Cas {
                swapped: tag & CAS_SWAPPED != 0,
                current,
            }
        }
        tag => return Err(error(at, SnapshotErrorKind::UnknownOutcome(tag))),
    };
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::command::Command;
    use crate::reply::Reply;
    use crate::session::{encode_session_write, SessionTag, MAX_SESSIONS};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: b(key),
            value: b(value),
        }
    }

    fn session_write(client: u64, seq: u64, first_outstanding: u64, cmd: Command) -> Bytes {
        let tag = SessionTag {
            client,
            seq,
            first_outstanding,
        };
        encode_session_write(tag, &cmd)
    }

    /// Sets `key` to "1" only if it is absent: applied twice, it answers differently.
    fn create(key: &str) -> Command {
        Command::Cas {
            key: b(key),
            expected: None,
            new: b("1"),
        }
    }

    fn apply(kv: &mut KvStore, entry: &Bytes) -> Outcome {
        kv.apply_entry(entry).expect("a well-formed entry")
    }

    fn restore(kv: &KvStore) -> KvStore {
        KvStore::decode_snapshot(&kv.encode_snapshot()).expect("a valid snapshot")
    }

    /// Asserts `a` and `b` hold the same state. Snapshots are canonical, so equal bytes
    /// mean equal maps and session tables (clock, LRU order and all); `size_bytes` is
    /// not in them, and the visible contents are compared too for good measure.
    fn assert_same(a: &KvStore, b: &KvStore) {
        assert!(
            a.encode_snapshot() == b.encode_snapshot(),
            "snapshots differ"
        );
        assert_eq!(a.len(), b.len());
        assert_eq!(a.size_bytes(), b.size_bytes());
        assert_eq!(a.sessions().len(), b.sessions().len());
        assert_eq!(a.scan(b"", None, usize::MAX), b.scan(b"", None, usize::MAX));
    }

    /// Applies `entries` to both stores, asserting the same outcomes, then the same state.
    fn apply_both(a: &mut KvStore, b: &mut KvStore, entries: &[Bytes]) -> Vec<Outcome> {
        let outcomes: Vec<Outcome> = entries.iter().map(|e| apply(a, e)).collect();
        let again: Vec<Outcome> = entries.iter().map(|e| apply(b, e)).collect();
        assert_eq!(outcomes, again);
        assert_same(a, b);
        outcomes
    }

    /// Puts, a delete, CASes, and session writes from two clients.
    fn sample_store() -> KvStore {
        let mut kv = KvStore::new();
        for entry in [
            put("a", "1").encode(),
            put("b", "22").encode(),
            put("c", "333").encode(),
            Command::Delete { key: b("b") }.encode(),
            create("c").encode(),
            session_write(7, 1, 1, create("counter")),
            session_write(7, 2, 1, Command::Delete { key: b("a") }),
            session_write(7, 3, 1, Command::Delete { key: b("nothing") }),
            session_write(9, 5, 5, create("c")),
            timed(1_000, typed_hash("h")),
            timed(1_000, ttl_set("t", 60_000)),
            session_write(11, 1, 1, timed_cmd(2_000, typed_hash("h2"))),
            acl_setuser(
                "alice",
                "on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 \
                 ~k* %R~r* &news -@all +@read -get +client|id sanitize-payload",
            ),
            acl_setuser("bob", "reset allkeys allchannels +@all -@dangerous"),
        ] {
            apply(&mut kv, &entry);
        }
        kv
    }

    fn acl_setuser(name: &str, rules: &str) -> Bytes {
        Command::Acl {
            op: crate::AclOp::SetUser {
                name: b(name),
                rules: rules.split_whitespace().map(b).collect(),
            },
            bootstrap: vec![b("resetpass")],
        }
        .encode()
    }

    fn timed_cmd(now_ms: u64, cmd: Command) -> Command {
        Command::Timed {
            now_ms,
            cmd: Box::new(cmd),
        }
    }

    fn timed(now_ms: u64, cmd: Command) -> Bytes {
        timed_cmd(now_ms, cmd).encode()
    }

    fn typed_hash(key: &str) -> Command {
        Command::HSet {
            key: b(key),
            pairs: vec![(b("f1"), b("v1")), (b("f2"), b("v2"))],
            hmset: false,
        }
    }

    fn ttl_set(key: &str, ms: u64) -> Command {
        Command::Set {
            key: b(key),
            value: b("soon"),
            cond: crate::SetCond::Always,
            ttl: crate::SetTtl::Expire(crate::When::InMs(ms)),
            get: false,
        }
    }

    #[test]
    fn typed_values_deadlines_versions_and_replies_roundtrip() {
        let mut original = sample_store();
        let mut restored = restore(&original);
        assert_same(&original, &restored);
        assert_eq!(restored.clock_ms(), 2_000);
        let t = restored.entry(b"t").expect("held");
        assert_eq!(t.deadline, Some(61_000));
        assert_eq!(t.version, original.entry(b"t").unwrap().version);
        assert!(matches!(
            restored.entry(b"h").unwrap().value,
            Value::Hash(_)
        ));
        assert_eq!(restored.expiring(), 1);
        // The session's reply outcome survived: the retry answers it, not a new count.
        let retry = session_write(11, 1, 1, timed_cmd(3_000, typed_hash("h2")));
        let outcomes = apply_both(&mut original, &mut restored, &[retry]);
        assert_eq!(outcomes, [Outcome::Reply(Reply::Int(2))]);
        // The deadline still fires, on both alike, at the same entry.
        let later = timed(61_000, Command::ExpireKeys { keys: vec![b("t")] });
        let outcomes = apply_both(&mut original, &mut restored, &[later]);
        assert_eq!(outcomes, [Outcome::Reply(Reply::Int(1))]);
        assert!(restored.entry(b"t").is_none());
    }

    #[test]
    fn version_1_snapshots_still_load() {
        // Written by the format before types: two strings, a session with a Done.
        let mut v1 = b"RKVS\x01".to_vec();
        for v in [2u64, 1, b'a' as u64, 1, b'1' as u64, 1, b'b' as u64, 2] {
            put_varint(&mut v1, v);
        }
        v1.extend_from_slice(b"22");
        // Session clock 1, one session: client 7, last_used 1, first_outstanding 1,
        // one outcome (seq 1, Done).
        for v in [1u64, 1, 7, 1, 1, 1, 1] {
            put_varint(&mut v1, v);
        }
        v1.push(OUTCOME_DONE);
        let mut kv = KvStore::decode_snapshot(&v1).expect("a version-1 snapshot loads");
        assert_eq!(kv.get(b"a"), Some(&b("1")));
        assert_eq!(kv.get(b"b"), Some(&b("22")));
        assert_eq!(kv.entry(b"a").unwrap().deadline, None);
        assert_eq!(kv.size_bytes(), 5);
        assert_eq!(kv.clock_ms(), 0);
        assert_eq!(
            apply(&mut kv, &session_write(7, 1, 1, put("a", "again"))),
            Outcome::Done
        );
        assert_eq!(
            kv.get(b"a"),
            Some(&b("1")),
            "a retry answered from the session"
        );
        // It re-encodes as version 3, and round-trips.
        let again = restore(&kv);
        assert_eq!(kv.encode_snapshot()[4], 3);
        assert_same(&kv, &again);
    }

    #[test]
    fn users_roundtrip_and_version_2_snapshots_load_with_users_never_set() {
        let original = sample_store();
        let restored = restore(&original);
        assert_same(&original, &restored);
        let users = restored.acl().users().expect("users were set");
        assert_eq!(
            users[&b"alice"[..]].describe(),
            "on sanitize-payload #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 \
             ~k* %R~r* resetchannels &news -@all +@read -get +client|id"
        );
        assert_eq!(users[&b"default"[..]].describe(), "on ~* &* +@all");
        assert_eq!(restored.acl(), original.acl());

        // Version 2 is version 3 without the users byte.
        let mut kv = KvStore::new();
        apply(&mut kv, &put("a", "1").encode());
        let mut v2 = kv.encode_snapshot();
        assert_eq!(v2.pop(), Some(0));
        v2[4] = 2;
        let loaded = KvStore::decode_snapshot(&v2).expect("a version-2 snapshot loads");
        assert_eq!(loaded.get(b"a"), Some(&b("1")));
        assert!(loaded.acl().users().is_none());
    }

    #[test]
    fn bad_users_are_rejected() {
        let mut kv = KvStore::new();
        apply(&mut kv, &acl_setuser("a", "on"));
        let bytes = kv.encode_snapshot();
        // ... "a" (name, incarnation, flags, four empty lists: 8 bytes), then "default"
        // (14 bytes).
        let at = bytes.len() - 14 - 8;
        assert_eq!(&bytes[at..at + 2], b"\x01a");
        let mut swapped = bytes.clone();
        swapped[at + 1] = b'z';
        assert!(decode_error(&swapped).contains("user names out of order"));
    }

    #[test]
    fn bad_typed_entries_are_rejected() {
        let mut kv = KvStore::new();
        apply(&mut kv, &timed(5, typed_hash("h")));
        let bytes = kv.encode_snapshot();
        // Header 5, clock_ms 1, version 1, count 1, key 2, kind at 10.
        assert_eq!(bytes[10], 1);
        let mut unknown = bytes.clone();
        unknown[10] = 7;
        assert!(decode_error(&unknown).contains("unknown value kind"));
        let mut swapped = bytes.clone();
        // Field count at 11, "f1" at 12..15, "v1" at 15..18, "f2" at 18.
        assert_eq!(&bytes[12..15], b"\x02f1");
        swapped[14] = b'3';
        assert!(decode_error(&swapped).contains("hash fields out of order"));
    }

    #[test]
    fn roundtrip_keeps_data_sizes_and_session_outcomes() {
        let mut original = sample_store();
        let mut restored = restore(&original);
        assert_same(&original, &restored);
        assert_eq!(restored.get(b"c"), Some(&b("333")));
        // Strings, then hash "h" (key and fields), "t", and hash "h2".
        let typed = "hf1v1f2v2".len() + "tsoon".len() + "h2f1v1f2v2".len();
        assert_eq!(restored.size_bytes(), "c333counter1".len() + typed);
        assert_eq!(restored.sessions().len(), 3);

        // Retries answer as the first time and are not applied again: re-applying them
        // would delete "a" and find "counter" present.
        let retries = [
            put("a", "back").encode(),
            session_write(7, 2, 1, Command::Delete { key: b("a") }),
            session_write(7, 1, 1, create("counter")),
            session_write(9, 5, 5, create("c")),
        ];
        let outcomes = apply_both(&mut original, &mut restored, &retries);
        let cas = |swapped, current: Option<&str>| Outcome::Cas {
            swapped,
            current: current.map(b),
        };
        assert_eq!(
            outcomes,
            [
                Outcome::Done,
                Outcome::Deleted(true),
                cas(true, None),
                cas(false, Some("333")),
            ]
        );
        assert_eq!(restored.get(b"a"), Some(&b("back")));

        // The client moves on: outcomes it no longer waits for go, in both alike.
        let next = session_write(7, 4, 4, Command::Delete { key: b("a") });
        let stale = session_write(7, 2, 4, Command::Delete { key: b("a") });
        let outcomes = apply_both(&mut original, &mut restored, &[next, stale]);
        assert_eq!(outcomes, [Outcome::Deleted(true), Outcome::Expired]);
    }

    #[test]
    fn restored_store_evicts_the_same_sessions() {
        let mut original = KvStore::new();
        let clients = MAX_SESSIONS as u64;
        for client in 0..clients {
            let entry = session_write(client, 1, 1, create(&format!("k{client}")));
            apply(&mut original, &entry);
        }
        // Touch the oldest ten again, so LRU order is neither client order nor hash order.
        for client in (0..10).rev() {
            apply(&mut original, &session_write(client, 2, 1, put("t", "x")));
        }
        let mut restored = restore(&original);
        assert_same(&original, &restored);

        // Twenty new clients evict the twenty least recently used: clients 10..30.
        let newcomers: Vec<Bytes> = (clients..clients + 20)
            .map(|client| session_write(client, 1, 1, create("new")))
            .collect();
        apply_both(&mut original, &mut restored, &newcomers);
        assert_eq!(restored.sessions().len(), MAX_SESSIONS);

        // Client 10 was forgotten, so its retry runs again and finds its key; client 0 was
        // touched, so kept, and its retry is answered from the session.
        let probes = [
            session_write(10, 1, 1, create("k10")),
            session_write(0, 1, 1, create("k0")),
        ];
        let outcomes = apply_both(&mut original, &mut restored, &probes);
        let found = Outcome::Cas {
            swapped: false,
            current: Some(b("1")),
        };
        let first = Outcome::Cas {
            swapped: true,
            current: None,
        };
        assert_eq!(outcomes, [found, first]);
    }

    #[test]
    fn empty_store_roundtrips() {
        let empty = KvStore::new();
        let bytes = empty.encode_snapshot();
        // Magic, version, clock_ms 0, version 0, zero entries, session clock 0, zero
        // sessions, users never set.
        assert_eq!(bytes, b"RKVS\x03\x00\x00\x00\x00\x00\x00");
        let restored = KvStore::decode_snapshot(&bytes).unwrap();
        assert!(restored.is_empty());
        assert_eq!(restored.size_bytes(), 0);
        assert!(restored.sessions().is_empty());
        assert_same(&empty, &restored);
    }

    #[test]
    fn long_fields_and_big_numbers_roundtrip() {
        let mut original = KvStore::new();
        let long = "v".repeat(20_000);
        apply(&mut original, &put(&"k".repeat(300), &long).encode());
        // A CAS outcome carrying a long current value, and varints of ten bytes.
        let cas = Command::Cas {
            key: b(&"k".repeat(300)),
            expected: Some(b("other")),
            new: b("x"),
        };
        apply(
            &mut original,
            &session_write(u64::MAX, u64::MAX, u64::MAX - 1, cas.clone()),
        );
        let mut restored = restore(&original);
        assert_same(&original, &restored);
        let retry = session_write(u64::MAX, u64::MAX, u64::MAX - 1, cas);
        let outcomes = apply_both(&mut original, &mut restored, &[retry]);
        let expected = Outcome::Cas {
            swapped: false,
            current: Some(b(&long)),
        };
        assert_eq!(outcomes, [expected]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample_store().encode_snapshot();
        for len in 0..bytes.len() {
            let err = KvStore::decode_snapshot(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    err.kind,
                    SnapshotErrorKind::Truncated(_) | SnapshotErrorKind::ImpossibleCount { .. }
                ),
                "cut at {len}: {err}"
            );
            assert!(err.offset <= len, "cut at {len}: {err}");
        }
    }

    /// Decodes `data`; if it is a snapshot, re-encoding what came out must be stable.
    fn decode_without_panic(data: &[u8]) -> Result<KvStore, SnapshotError> {
        let decoded = KvStore::decode_snapshot(data);
        if let Ok(kv) = &decoded {
            assert_same(kv, &restore(kv));
        }
        decoded
    }

    #[test]
    fn single_byte_corruptions_are_caught_or_harmless() {
        let bytes = sample_store().encode_snapshot();
        for pos in 0..bytes.len() {
            for flip in [0x01, 0x02, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[pos] ^= flip;
                let _ = decode_without_panic(&corrupt);
            }
        }
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'X';
        let err = KvStore::decode_snapshot(&bad_magic).unwrap_err();
        assert_eq!(
            (err.offset, err.kind),
            (0, SnapshotErrorKind::BadMagic(*b"XKVS"))
        );

        let mut bad_version = bytes.clone();
        bad_version[4] = 9;
        let err = KvStore::decode_snapshot(&bad_version).unwrap_err();
        assert_eq!(
            (err.offset, err.kind),
            (4, SnapshotErrorKind::UnsupportedVersion(9))
        );

        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = KvStore::decode_snapshot(&trailing).unwrap_err();
        let expected = (bytes.len(), SnapshotErrorKind::TrailingBytes(1));
        assert_eq!((err.offset, err.kind), expected);
    }

    #[test]
    fn keys_out_of_order_are_rejected() {
        let mut kv = KvStore::new();
        apply(&mut kv, &put("a", "1").encode());
        apply(&mut kv, &put("b", "2").encode());
        let mut bytes = kv.encode_snapshot();
        // Header (5), clock_ms (1), version (1), count (1), entry "a" (6: key, kind,
        // value, version), then entry "b" at 14 with its key at 15.
        assert_eq!(&bytes[14..20], b"\x01b\x00\x012\x02");
        bytes[15] = b'a';
        let err = KvStore::decode_snapshot(&bytes).unwrap_err();
        assert_eq!(
            (err.offset, err.kind),
            (14, SnapshotErrorKind::KeyOutOfOrder)
        );
    }

    /// A snapshot assembled by hand: the header, then `varints`, then `tail` bytes.
    fn handmade(varints: &[u64], tail: &[u8]) -> Vec<u8> {
        let mut bytes = b"RKVS\x01".to_vec();
        for &v in varints {
            put_varint(&mut bytes, v);
        }
        bytes.extend_from_slice(tail);
        bytes
    }

    fn decode_error(bytes: &[u8]) -> String {
        KvStore::decode_snapshot(bytes).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_what_was_wrong_and_where() {
        let cases: &[(Vec<u8>, &str)] = &[
            (vec![], "at byte 0: input ends inside the magic"),
            (
                b"RKVS".to_vec(),
                "at byte 4: input ends inside the format version",
            ),
            (
                handmade(&[1_000_000], &[]),
                "at byte 5: map entry count 1000000 is impossible: only 0 bytes remain",
            ),
            (
                handmade(&[1, 200], b"k"),
                "at byte 6: key length 200 is impossible: only 1 bytes remain",
            ),
            (
                handmade(&[], &[0xff; 11]),
                "at byte 5: bad varint in the map entry count",
            ),
            // Ten bytes, but the tenth holds bits past the 64th.
            (
                handmade(
                    &[],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                ),
                "at byte 5: bad varint in the map entry count",
            ),
            (
                handmade(&[0, 0, 0], &[7, 7]),
                "at byte 8: 2 trailing byte(s)",
            ),
            // Map: none. Clock 5, two sessions: client 1 used at 3, then client 2 at 2.
            (
                handmade(&[0, 5, 2, 1, 3, 0, 0, 2, 2, 0, 0], &[]),
                "at byte 12: client 2's last_used 2 is not above the previous session's (3)",
            ),
            (
                handmade(&[0, 5, 1, 1, 6, 0, 0], &[]),
                "at byte 8: client 1's last_used 6 is not above the previous session's (0) \
                 and at most the clock (5)",
            ),
            (
                handmade(&[0, 5, 2, 1, 1, 0, 0, 1, 2, 0, 0], &[]),
                "at byte 12: client 1 has two sessions",
            ),
            // Client 1, first_outstanding 4, one outcome, for seq 3.
            (
                handmade(&[0, 5, 1, 1, 1, 4, 1, 3], &[OUTCOME_DONE]),
                "at byte 12: client 1's outcome for seq 3 is not above the seq before it and \
                 at least first_outstanding (4)",
            ),
            (
                handmade(&[0, 5, 1, 1, 1, 1, 1, 1], &[9]),
                "at byte 13: unknown outcome tag 0x09",
            ),
        ];
        for (bytes, expected) in cases {
            let message = decode_error(bytes);
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    /// xorshift64: deterministic pseudo-random numbers, no dependency needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Mostly small bytes, so counts and lengths are often plausible.
        fn byte(&mut self) -> u8 {
            let r = self.next();
            // One time in four (`is_multiple_of` needs a newer Rust than our 1.85).
            if r & 3 == 0 {
                (r >> 8) as u8
            } else {
                (r >> 8) as u8 % 8
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let valid = sample_store().encode_snapshot();
        for round in 0..20_000 {
            let data: Vec<u8> = match round % 3 {
                // Pure noise.
                0 => (0..rng.next() % 64).map(|_| rng.byte()).collect(),
                // A valid header, then noise.
                1 => handmade(
                    &[],
                    &(0..rng.next() % 64).map(|_| rng.byte()).collect::<Vec<_>>(),
                ),
                // A valid snapshot with a few bytes changed.
                _ => {
                    let mut data = valid.clone();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = (rng.next() % data.len() as u64) as usize;
                        data[at] = rng.byte();
                    }
                    data
                }
            };
            let _ = decode_without_panic(&data);
        }
    }

    #[test]
    fn large_store_roundtrip() {
        let mut kv = KvStore::new();
        let value = Bytes::from(vec![0xab; 256]);
        for i in 0..100_000 {
            kv.apply(Command::Put {
                key: Bytes::from(format!("key{i:08}")),
                value: value.clone(),
            });
        }
        let start = Instant::now();
        let bytes = kv.encode_snapshot();
        let encoded = start.elapsed();
        let start = Instant::now();
        let restored = KvStore::decode_snapshot(&bytes).unwrap();
        let decoded = start.elapsed();
        eprintln!(
            "100k x 256 B: {} bytes, encode {encoded:?}, decode {decoded:?}",
            bytes.len()
        );
        assert_eq!(restored.size_bytes(), kv.size_bytes());
        assert_same(&kv, &restored);
    }
}
