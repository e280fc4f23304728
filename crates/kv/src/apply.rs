//! How each command changes the state machine, and what it answers (Redis 7's replies
//! and error texts). Everything here is deterministic: the only time is `clock_ms`, the
//! entry's leader clock, so every replica does the same at the same index.
//!
//! A key past its deadline is removed when a command touches it, before the command
//! runs: to the command it is absent.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::command::{Command, ExpireCond, GetExTtl, Op, SetCond, SetTtl, When};
use crate::reply::{Reply, NOT_FLOAT, NOT_INTEGER, NO_SUCH_KEY, OVERFLOW, WRONGTYPE};
use crate::store::{expired, Entry, KvStore, Outcome, Value};

/// A hash taken out of the map to change: fields, deadline, version.
type TakenHash = (BTreeMap<Bytes, Bytes>, Option<u64>, u64);

/// Longest string a command may build (Redis's `proto-max-bulk-len` default).
pub const MAX_STRING_BYTES: u64 = 512 << 20;
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

impl KvStore {
    pub(crate) fn apply_command(&mut self, cmd: Command) -> Outcome {
        let reply = match cmd {
            Command::Put { key, value } => {
                self.set_string(key, value, None);
                return Outcome::Done;
            }
            Command::Delete { key } => return Outcome::Deleted(self.remove_live(&key)),
            Command::Cas { key, expected, new } => {
                let current = self.live(&key).and_then(|e| match &e.value {
                    Value::Str(s) => Some(s.clone()),
                    Value::Hash(_) => None,
                });
                let is_hash = self.live(&key).is_some() && current.is_none();
                let swapped = !is_hash && current == expected;
                if swapped {
                    self.set_string(key, new, None);
                }
                return Outcome::Cas { swapped, current };
            }
            Command::Timed { now_ms, cmd } => {
                // Never backwards: a new leader whose clock is behind the last entry's
                // keeps the state machine's time where it was.
                self.clock_ms = self.clock_ms.max(now_ms);
                return self.apply_command(*cmd);
            }
            Command::Multi { watched, ops } => self.multi(watched, ops),
            other => self.apply_reply(other),
        };
        Outcome::Reply(reply)
    }

    fn multi(&mut self, watched: Vec<(Bytes, u64)>, ops: Vec<Op>) -> Reply {
        let changed = watched
            .iter()
            .any(|(key, seen)| self.version_of(key) != *seen);
        if changed {
            return Reply::NilArray;
        }
        let now = self.clock_ms;
        let replies = ops
            .into_iter()
            .map(|op| match op {
                Op::Write(cmd) => match self.apply_command(cmd) {
                    Outcome::Reply(r) => r,
                    Outcome::Done => Reply::Ok,
                    Outcome::Deleted(d) => Reply::Int(i64::from(d)),
                    Outcome::Cas { swapped, .. } => Reply::Int(i64::from(swapped)),
                    Outcome::Expired => Reply::error("ERR session expired"),
                },
                Op::Read(q) => self.query(&q, now),
                Op::Const(r) => r,
            })
            .collect();
        Reply::Array(replies)
    }

    /// A key's version as WATCH sees it: 0 when absent or past its deadline.
    pub(crate) fn version_of(&self, key: &[u8]) -> u64 {
        match self.map.get(key) {
            Some(e) if !expired(e, self.clock_ms) => e.version,
            _ => 0,
        }
    }

    fn apply_reply(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Set {
                key,
                value,
                cond,
                ttl,
                get,
            } => self.set(key, value, cond, ttl, get),
            Command::SetNx { key, value } => {
                if self.live(&key).is_some() {
                    return Reply::Int(0);
                }
                self.set_string(key, value, None);
                Reply::Int(1)
            }
            Command::GetDel { key } => match self.string_of(&key) {
                Err(e) => e,
                Ok(None) => Reply::Nil,
                Ok(Some(v)) => {
                    self.take(&key);
                    Reply::Bulk(v)
                }
            },
            Command::GetEx { key, ttl } => self.getex(key, ttl),
            Command::Expire { key, when, cond } => self.expire(key, when, cond),
            Command::Persist { key } => {
                let Some(mut e) = self.take_live(&key) else {
                    return Reply::Int(0);
                };
                let had = e.deadline.take().is_some();
                if had {
                    e.version = self.version;
                }
                self.put(key, e);
                Reply::Int(i64::from(had))
            }
            Command::Del { keys } => {
                let n = keys.iter().filter(|k| self.remove_live(k)).count();
                Reply::Int(n as i64)
            }
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    self.set_string(k, v, None);
                }
                Reply::Ok
            }
            Command::MSetNx { pairs } => {
                if pairs.iter().any(|(k, _)| self.live(k).is_some()) {
                    return Reply::Int(0);
                }
                for (k, v) in pairs {
                    self.set_string(k, v, None);
                }
                Reply::Int(1)
            }
            Command::IncrBy { key, by } => self.incr_by(key, by),
            Command::IncrByFloat { key, by } => self.incr_by_float(key, by),
            Command::Append { key, value } => {
                let (old, deadline) = match self.string_and_deadline(&key) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                let old = old.unwrap_or_default();
                if old.len() as u64 + value.len() as u64 > MAX_STRING_BYTES {
                    return Reply::error(TOO_BIG);
                }
                let mut joined = Vec::with_capacity(old.len() + value.len());
                joined.extend_from_slice(&old);
                joined.extend_from_slice(&value);
                let len = joined.len() as i64;
                self.set_string(key, Bytes::from(joined), deadline);
                Reply::Int(len)
            }
            Command::SetRange { key, offset, value } => {
                let (old, deadline) = match self.string_and_deadline(&key) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                let old = old.unwrap_or_default();
                if value.is_empty() {
                    return Reply::Int(old.len() as i64);
                }
                let end = offset.saturating_add(value.len() as u64);
                if end > MAX_STRING_BYTES {
                    return Reply::error(TOO_BIG);
                }
                let mut new = old.to_vec();
                if new.len() < end as usize {
                    new.resize(end as usize, 0);
                }
                new[offset as usize..end as usize].copy_from_slice(&value);
                let len = new.len() as i64;
                self.set_string(key, Bytes::from(new), deadline);
                Reply::Int(len)
            }
            Command::Rename { from, to, nx } => {
                if self.live(&from).is_none() {
                    return Reply::error(NO_SUCH_KEY);
                }
                if from == to {
                    return if nx { Reply::Int(0) } else { Reply::Ok };
                }
                if nx && self.live(&to).is_some() {
                    return Reply::Int(0);
                }
                let mut e = self.take(&from).expect("checked live");
                e.version = self.version;
                self.put(to, e);
                if nx {
                    Reply::Int(1)
                } else {
                    Reply::Ok
                }
            }
            Command::Copy { from, to, replace } => {
                if from == to {
                    return Reply::error("ERR source and destination objects are the same");
                }
                let Some(src) = self.live(&from).cloned() else {
                    return Reply::Int(0);
                };
                if !replace && self.live(&to).is_some() {
                    return Reply::Int(0);
                }
                let e = Entry {
                    version: self.version,
                    ..src
                };
                self.put(to, e);
                Reply::Int(1)
            }
            Command::FlushAll => {
                let keys: Vec<Bytes> = self.map.keys().cloned().collect();
                for k in keys {
                    self.take(&k);
                }
                Reply::Ok
            }
            Command::HSet { key, pairs, hmset } => {
                let (mut hash, deadline, _) = match self.hash_and_deadline(&key) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                let mut added = 0;
                for (f, v) in pairs {
                    added += i64::from(hash.insert(f, v).is_none());
                }
                self.put_hash(key, hash, deadline);
                if hmset {
                    Reply::Ok
                } else {
                    Reply::Int(added)
                }
            }
            Command::HSetNx { key, field, value } => {
                let (mut hash, deadline, version) = match self.hash_and_deadline(&key) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                if hash.contains_key(&field) {
                    self.put_hash_keep_version(key, hash, deadline, version);
                    return Reply::Int(0);
                }
                hash.insert(field, value);
                self.put_hash(key, hash, deadline);
                Reply::Int(1)
            }
            Command::HDel { key, fields } => {
                match self.live(&key).map(|e| &e.value) {
                    None => return Reply::Int(0),
                    Some(Value::Str(_)) => return Reply::error(WRONGTYPE),
                    Some(Value::Hash(_)) => {}
                }
                let (mut hash, deadline, version) = self.hash_and_deadline(&key).expect("a hash");
                let removed = fields.iter().filter(|f| hash.remove(*f).is_some()).count();
                if removed == 0 {
                    // Nothing changed: the version stays (WATCH does not fire).
                    self.put_hash_keep_version(key, hash, deadline, version);
                } else if hash.is_empty() {
                    // A hash with no fields does not exist, as in Redis.
                } else {
                    self.put_hash(key, hash, deadline);
                }
                Reply::Int(removed as i64)
            }
            Command::HIncrBy { key, field, by } => {
                let (mut hash, deadline, version) = match self.hash_and_deadline(&key) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                let current = match hash.get(&field) {
                    None => 0,
                    Some(v) => match parse_i64(v) {
                        Some(n) => n,
                        None => {
                            self.put_hash_keep_version(key, hash, deadline, version);
                            return Reply::error("ERR hash value is not an integer");
                        }
                    },
                };
                let Some(next) = current.checked_add(by) else {
                    self.put_hash_keep_version(key, hash, deadline, version);
                    return Reply::error(OVERFLOW);
                };
                hash.insert(field, Bytes::from(next.to_string()));
                self.put_hash(key, hash, deadline);
                Reply::Int(next)
            }
            Command::ExpireKeys { keys } => {
                let now = self.clock_ms;
                let mut removed = 0;
                for k in keys {
                    if self.map.get(&k).is_some_and(|e| expired(e, now)) {
                        self.take(&k);
                        removed += 1;
                    }
                }
                Reply::Int(removed)
            }
            Command::Acl { op, bootstrap } => {
                self.acl_changes += 1;
                let set = matches!(
                    op,
                    crate::acl::AclOp::SetUser { .. } | crate::acl::AclOp::Init
                );
                match self.acl.apply(op, &bootstrap, self.version) {
                    Ok(_) if set => Reply::Ok,
                    Ok(n) => Reply::Int(n),
                    Err(e) => Reply::Error(e),
                }
            }
            Command::Put { .. }
            | Command::Delete { .. }
            | Command::Cas { .. }
            | Command::Timed { .. }
            | Command::Multi { .. } => unreachable!("handled by apply_command"),
        }
    }

    fn set(&mut self, key: Bytes, value: Bytes, cond: SetCond, ttl: SetTtl, get: bool) -> Reply {
        let old = match self.live(&key) {
            None => None,
            Some(Entry {
                value: Value::Str(s),
                deadline,
                ..
            }) => Some((s.clone(), *deadline)),
            Some(_) if get => return Reply::error(WRONGTYPE),
            Some(e) => Some((Bytes::new(), e.deadline)),
        };
        let answer = |old: &Option<(Bytes, Option<u64>)>, done: bool| {
            if get {
                Reply::bulk_or_nil(old.as_ref().map(|(s, _)| s.clone()))
            } else if done {
                Reply::Ok
            } else {
                Reply::Nil
            }
        };
        let allowed = match cond {
            SetCond::Always => true,
            SetCond::IfAbsent => old.is_none(),
            SetCond::IfPresent => old.is_some(),
        };
        if !allowed {
            return answer(&old, false);
        }
        let deadline = match ttl {
            SetTtl::Clear => None,
            SetTtl::Keep => old.as_ref().and_then(|(_, d)| *d),
            SetTtl::Expire(when) => Some(self.deadline(when)),
        };
        self.set_string(key.clone(), value, deadline);
        self.drop_if_expired(&key);
        answer(&old, true)
    }

    fn getex(&mut self, key: Bytes, ttl: GetExTtl) -> Reply {
        let value = match self.string_of(&key) {
            Err(e) => return e,
            Ok(None) => return Reply::Nil,
            Ok(Some(v)) => v,
        };
        let deadline = match ttl {
            GetExTtl::Leave => return Reply::Bulk(value),
            GetExTtl::Persist => None,
            GetExTtl::Expire(when) => Some(self.deadline(when)),
        };
        let mut e = self.take(&key).expect("checked live");
        if e.deadline != deadline {
            e.version = self.version;
        }
        e.deadline = deadline;
        self.put(key.clone(), e);
        self.drop_if_expired(&key);
        Reply::Bulk(value)
    }

    fn expire(&mut self, key: Bytes, when: When, cond: ExpireCond) -> Reply {
        let Some(current) = self.live(&key).map(|e| e.deadline) else {
            return Reply::Int(0);
        };
        let new = self.deadline(when);
        let allowed = match (cond, current) {
            (ExpireCond::Always, _) => true,
            (ExpireCond::Nx, d) => d.is_none(),
            (ExpireCond::Xx, d) => d.is_some(),
            // No deadline is an infinite one: nothing is greater, everything is less.
            (ExpireCond::Gt, None) => false,
            (ExpireCond::Gt, Some(d)) => new > d,
            (ExpireCond::Lt, None) => true,
            (ExpireCond::Lt, Some(d)) => new < d,
        };
        if !allowed {
            return Reply::Int(0);
        }
        let mut e = self.take(&key).expect("checked live");
        e.deadline = Some(new);
        e.version = self.version;
        self.put(key.clone(), e);
        self.drop_if_expired(&key);
        Reply::Int(1)
    }

    fn incr_by(&mut self, key: Bytes, by: i64) -> Reply {
        let (old, deadline) = match self.string_and_deadline(&key) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let current = match old {
            None => 0,
            Some(v) => match parse_i64(&v) {
                Some(n) => n,
                None => return Reply::error(NOT_INTEGER),
            },
        };
        let Some(next) = current.checked_add(by) else {
            return Reply::error(OVERFLOW);
        };
        self.set_string(key, Bytes::from(next.to_string()), deadline);
        Reply::Int(next)
    }

    fn incr_by_float(&mut self, key: Bytes, by: Bytes) -> Reply {
        let (old, deadline) = match self.string_and_deadline(&key) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let current = match old {
            None => Some(0.0),
            Some(v) => parse_f64(&v),
        };
        let (Some(current), Some(by)) = (current, parse_f64(&by)) else {
            return Reply::error(NOT_FLOAT);
        };
        let next = current + by;
        if !next.is_finite() {
            return Reply::error("ERR increment would produce NaN or Infinity");
        }
        let text = Bytes::from(format_float(next));
        self.set_string(key, text.clone(), deadline);
        Reply::Bulk(text)
    }

    /// The absolute deadline of `when` at the entry's clock.
    fn deadline(&self, when: When) -> u64 {
        match when {
            When::InMs(ms) => self.clock_ms.saturating_add(ms),
            When::AtMs(at) => at,
        }
    }

    /// The live entry of `key` (a key past its deadline reads as absent).
    pub(crate) fn live(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key).filter(|e| !expired(e, self.clock_ms))
    }

    /// Removes `key` if it is past its deadline (it reads as absent anyway; removing it
    /// at apply keeps every replica's map the same).
    fn drop_if_expired(&mut self, key: &[u8]) {
        if self.map.get(key).is_some_and(|e| expired(e, self.clock_ms)) {
            self.take(key);
        }
    }

    fn take_live(&mut self, key: &[u8]) -> Option<Entry> {
        self.drop_if_expired(key);
        self.take(key)
    }

    /// Removes `key`; whether it was live.
    fn remove_live(&mut self, key: &[u8]) -> bool {
        self.take_live(key).is_some()
    }

    fn set_string(&mut self, key: Bytes, value: Bytes, deadline: Option<u64>) {
        let e = Entry {
            value: Value::Str(value),
            deadline,
            version: self.version,
        };
        self.put(key, e);
    }

    /// A live string's value: `Err` with WRONGTYPE if the key holds another type.
    fn string_of(&mut self, key: &[u8]) -> Result<Option<Bytes>, Reply> {
        Ok(self.string_and_deadline(key)?.0)
    }

    fn string_and_deadline(&mut self, key: &[u8]) -> Result<(Option<Bytes>, Option<u64>), Reply> {
        self.drop_if_expired(key);
        match self.map.get(key) {
            None => Ok((None, None)),
            Some(Entry {
                value: Value::Str(s),
                deadline,
                ..
            }) => Ok((Some(s.clone()), *deadline)),
            Some(_) => Err(Reply::error(WRONGTYPE)),
        }
    }

    /// Takes a live hash out of the map to change it (an empty one if absent): `Err`
    /// with WRONGTYPE, and the map untouched, if the key holds another type.
    fn hash_and_deadline(&mut self, key: &[u8]) -> Result<TakenHash, Reply> {
        self.drop_if_expired(key);
        if let Some(Entry {
            value: Value::Str(_),
            ..
        }) = self.map.get(key)
        {
            return Err(Reply::error(WRONGTYPE));
        }
        match self.take(key) {
            None => Ok((BTreeMap::new(), None, 0)),
            Some(Entry {
                value: Value::Hash(h),
                deadline,
                version,
            }) => Ok((h, deadline, version)),
            Some(_) => unreachable!("checked above"),
        }
    }

    fn put_hash(&mut self, key: Bytes, hash: BTreeMap<Bytes, Bytes>, deadline: Option<u64>) {
        let e = Entry {
            value: Value::Hash(hash),
            deadline,
            version: self.version,
        };
        self.put(key, e);
    }

    /// Puts back a hash taken out and not changed (its version stays).
    fn put_hash_keep_version(
        &mut self,
        key: Bytes,
        hash: BTreeMap<Bytes, Bytes>,
        deadline: Option<u64>,
        version: u64,
    ) {
        if hash.is_empty() {
            return; // it did not exist
        }
        let e = Entry {
            value: Value::Hash(hash),
            deadline,
            version,
        };
        self.put(key, e);
    }
}

/// A 64-bit integer exactly as Redis's `string2ll` accepts it: optional `-`, digits, no
/// leading zeros, spaces or `+`, within range.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = match digits {
        [] => false,
        [b'0'] => b.len() == 1,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A float as Redis's `string2ld` accepts it: no surrounding spaces, no NaN.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.len() > 5 * 1024 || s.starts_with(char::is_whitespace) {
        return None;
    }
    if s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// A float the way Redis writes INCRBYFLOAT's result: plain decimal, no exponent, no
/// trailing zeros. (Redis computes in `long double`; we in `f64`, so the last digits
/// of long fractions may differ: listed in the README.)
pub fn format_float(v: f64) -> String {
    let s = format!("{v}");
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}
