//! How queries read the state machine (Redis 7's replies). A key past its deadline at
//! `now_ms` reads as absent; reads never change the store.

use bytes::Bytes;

use crate::query::{Query, TtlKind};
use crate::reply::{Reply, WRONGTYPE};
use crate::store::{expired, Entry, KvStore, Value};

/// Fields one HSCAN page returns at most, whatever COUNT asks.
pub const MAX_HSCAN_COUNT: u32 = 1_000;

impl KvStore {
    /// Answers `q` at `now_ms` (see `expiry.rs` for which time a node uses).
    pub fn query(&self, q: &Query, now_ms: u64) -> Reply {
        let live =
            |key: &[u8]| -> Option<&Entry> { self.map.get(key).filter(|e| !expired(e, now_ms)) };
        // A live hash, or nothing: WRONGTYPE for a string.
        let hash = |key: &[u8]| match live(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(Reply::error(WRONGTYPE)),
        };
        let string = |key: &[u8]| match live(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(Reply::error(WRONGTYPE)),
        };
        let answer = || -> Result<Reply, Reply> {
            Ok(match q {
                Query::Get { key } => Reply::bulk_or_nil(string(key)?.cloned()),
                Query::StrLen { key } => Reply::Int(string(key)?.map_or(0, |s| s.len() as i64)),
                Query::GetRange { key, start, end } => {
                    let s = string(key)?.cloned().unwrap_or_default();
                    Reply::Bulk(get_range(&s, *start, *end))
                }
                Query::Type { key } => Reply::Status(
                    live(key)
                        .map_or("none", |e| e.value.type_name())
                        .to_string(),
                ),
                Query::Ttl { key, kind } => Reply::Int(ttl(live(key), *kind, now_ms)),
                Query::Exists { keys } => {
                    Reply::Int(keys.iter().filter(|k| live(k).is_some()).count() as i64)
                }
                Query::MGet { keys } => Reply::Array(
                    keys.iter()
                        .map(|k| match live(k).map(|e| &e.value) {
                            Some(Value::Str(s)) => Reply::Bulk(s.clone()),
                            // MGET answers nil for keys of other types, as Redis does.
                            _ => Reply::Nil,
                        })
                        .collect(),
                ),
                Query::DbSize => Reply::Int(self.live_len(now_ms) as i64),
                Query::HGet { key, field } => {
                    Reply::bulk_or_nil(hash(key)?.and_then(|h| h.get(field)).cloned())
                }
                Query::HMGet { key, fields } => {
                    let h = hash(key)?;
                    Reply::Array(
                        fields
                            .iter()
                            .map(|f| Reply::bulk_or_nil(h.and_then(|h| h.get(f)).cloned()))
                            .collect(),
                    )
                }
                Query::HGetAll { key } => Reply::Map(
                    hash(key)?
                        .map(|h| h.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                ),
                Query::HExists { key, field } => {
                    Reply::Int(i64::from(hash(key)?.is_some_and(|h| h.contains_key(field))))
                }
                Query::HLen { key } => Reply::Int(hash(key)?.map_or(0, |h| h.len() as i64)),
                Query::HKeys { key } => Reply::Array(
                    hash(key)?
                        .map(|h| h.keys().map(|f| Reply::Bulk(f.clone())).collect())
                        .unwrap_or_default(),
                ),
                Query::HVals { key } => Reply::Array(
                    hash(key)?
                        .map(|h| h.values().map(|v| Reply::Bulk(v.clone())).collect())
                        .unwrap_or_default(),
                ),
                Query::HStrLen { key, field } => Reply::Int(
                    hash(key)?
                        .and_then(|h| h.get(field))
                        .map_or(0, |v| v.len() as i64),
                ),
                Query::HScan {
                    key,
                    cursor,
                    count,
                    novalues,
                } => {
                    let count = (*count).clamp(1, MAX_HSCAN_COUNT) as usize;
                    let mut items = Vec::new();
                    let mut next = 0;
                    if let Some(h) = hash(key)? {
                        let start = usize::try_from(*cursor).unwrap_or(usize::MAX);
                        for (f, v) in h.iter().skip(start).take(count) {
                            items.push(Reply::Bulk(f.clone()));
                            if !novalues {
                                items.push(Reply::Bulk(v.clone()));
                            }
                        }
                        let end = start.saturating_add(count);
                        if end < h.len() {
                            next = end as u64;
                        }
                    }
                    Reply::Array(vec![
                        Reply::Bulk(Bytes::from(next.to_string())),
                        Reply::Array(items),
                    ])
                }
                Query::Versions { keys } => Reply::Array(
                    keys.iter()
                        .map(|k| Reply::Int(live(k).map_or(0, |e| e.version) as i64))
                        .collect(),
                ),
            })
        };
        answer().unwrap_or_else(|e| e)
    }

    /// Keys live at `now_ms`: all keys but those whose deadline has passed.
    pub fn live_len(&self, now_ms: u64) -> usize {
        let past = self
            .deadlines
            .range(..(now_ms.saturating_add(1), Bytes::new()))
            .count();
        self.map.len() - past
    }
}

/// `TTL` and friends: -2 for an absent key, -1 for one without a deadline.
fn ttl(entry: Option<&Entry>, kind: TtlKind, now_ms: u64) -> i64 {
    let Some(e) = entry else { return -2 };
    let Some(deadline) = e.deadline else {
        return -1;
    };
    let left = deadline.saturating_sub(now_ms);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match kind {
        // Redis rounds the seconds left to the nearest second.
        TtlKind::Ttl => clamp(left.saturating_add(500) / 1000),
        TtlKind::Pttl => clamp(left),
        TtlKind::ExpireTime => clamp(deadline / 1000),
        TtlKind::PexpireTime => clamp(deadline),
    }
}

/// `GETRANGE`'s inclusive, negative-from-the-end range, clamped as Redis clamps it.
fn get_range(s: &Bytes, start: i64, end: i64) -> Bytes {
    let len = s.len() as i64;
    if len == 0 {
        return Bytes::new();
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end {
        return Bytes::new();
    }
    s.slice(start as usize..=end as usize)
}
