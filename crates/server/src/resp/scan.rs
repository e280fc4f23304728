//! SCAN and KEYS over the replicated state machine.
//!
//! Each page is one linearizable `Request::Scan` (a prefix range read). Redis clients treat
//! the cursor as a number (redis-cli parses it with `strtoull`), while our position is the
//! last key returned, so cursors are numbers that map to a key in a shared, bounded table.
//! A cursor that has been evicted is refused with an error rather than restarting silently.
//! Guarantee, as Redis's: a key present for the whole iteration is returned at least once
//! (in fact exactly once: pages are key ranges, not hash buckets).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// Live cursors kept (oldest evicted first).
const MAX_CURSORS: usize = 10_000;

/// Default and maximum keys asked for per SCAN page (COUNT).
pub const DEFAULT_COUNT: u32 = 10;
pub const MAX_COUNT: u32 = 1_000;

/// Keys KEYS may return before it refuses (use SCAN beyond).
pub const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Cursors {
    inner: Mutex<CursorTable>,
}

#[derive(Default)]
struct CursorTable {
    next: u64,
    by_id: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Cursors {
    /// A cursor that resumes after `key`.
    pub fn save(&self, key: Bytes) -> u64 {
        let mut t = self.inner.lock().expect("cursor table");
        t.next += 1;
        let id = t.next;
        t.by_id.insert(id, key);
        t.order.push_back(id);
        while t.order.len() > MAX_CURSORS {
            if let Some(old) = t.order.pop_front() {
                t.by_id.remove(&old);
            }
        }
        id
    }

    /// The key a cursor resumes after; `Ok(None)` for cursor 0 (the start).
    pub fn resume(&self, cursor: u64) -> Result<Option<Bytes>, String> {
        if cursor == 0 {
            return Ok(None);
        }
        let t = self.inner.lock().expect("cursor table");
        t.by_id.get(&cursor).cloned().map(Some).ok_or_else(|| {
            format!("invalid cursor {cursor} (expired or never issued); start again from 0")
        })
    }
}

/// The literal prefix of a glob pattern: everything before its first special character.
pub fn literal_prefix(pattern: &[u8]) -> Bytes {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    Bytes::copy_from_slice(&pattern[..end])
}

pub use crate::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"user:*", b"user:42"));
        assert!(!glob_match(b"user:*", b"users:42"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(!glob_match(b"a*b*c", b"axxbyy"));
        assert!(glob_match(b"\\*x", b"*x"));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"a"));
    }

    #[test]
    fn literal_prefix_stops_at_the_first_special() {
        assert_eq!(&literal_prefix(b"user:*")[..], b"user:");
        assert_eq!(&literal_prefix(b"a?c")[..], b"a");
        assert_eq!(&literal_prefix(b"*")[..], b"");
        assert_eq!(&literal_prefix(b"plain")[..], b"plain");
    }

    #[test]
    fn cursors_resume_and_expire() {
        let c = Cursors::default();
        assert_eq!(c.resume(0), Ok(None));
        let id = c.save(Bytes::from_static(b"k5"));
        assert_eq!(c.resume(id), Ok(Some(Bytes::from_static(b"k5"))));
        for i in 0..MAX_CURSORS {
            c.save(Bytes::from(format!("x{i}")));
        }
        assert!(c.resume(id).is_err(), "evicted");
        assert!(c.resume(u64::MAX).is_err());
    }
}
