//! The state machine: an ordered map from keys to values.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::command::{Command, DecodeError};
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
}

#[derive(Clone, Debug, Default)]
pub struct KvStore {
    map: BTreeMap<Bytes, Bytes>,
    /// Bytes of keys and values held (for limits and metrics).
    size_bytes: usize,
    sessions: Sessions,
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    pub fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Put { key, value } => {
                self.insert(key, value);
                Outcome::Done
            }
            Command::Delete { key } => Outcome::Deleted(self.remove(&key)),
            Command::Cas { key, expected, new } => {
                let current = self.map.get(&key).cloned();
                if current == expected {
                    self.insert(key, new);
                    Outcome::Cas {
                        swapped: true,
                        current,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current,
                    }
                }
            }
        }
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

    /// A store holding `map` and `sessions` (restored from a snapshot); `size_bytes` is
    /// recomputed here so it cannot disagree with the map.
    pub(crate) fn from_parts(map: BTreeMap<Bytes, Bytes>, sessions: Sessions) -> KvStore {
        let size_bytes = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        KvStore {
            map,
            size_bytes,
            sessions,
        }
    }

    /// Every key and value, in key order.
    pub(crate) fn entries(&self) -> &BTreeMap<Bytes, Bytes> {
        &self.map
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Keys starting with `prefix`, after `after` (exclusive), at most `limit`.
    pub fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(Bytes::copy_from_slice(a)),
            _ => std::ops::Bound::Included(Bytes::copy_from_slice(prefix)),
        };
        self.map
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    fn insert(&mut self, key: Bytes, value: Bytes) {
        let added = key.len() + value.len();
        if let Some(old) = self.map.insert(key.clone(), value) {
            self.size_bytes -= key.len() + old.len();
        }
        self.size_bytes += added;
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove_entry(key) {
            Some((k, v)) => {
                self.size_bytes -= k.len() + v.len();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn put_get_delete() {
        let mut kv = KvStore::new();
        kv.apply(Command::Put {
            key: b("a"),
            value: b("1"),
        });
        assert_eq!(kv.get(b"a"), Some(&b("1")));
        assert_eq!(
            kv.apply(Command::Delete { key: b("a") }),
            Outcome::Deleted(true)
        );
        assert_eq!(
            kv.apply(Command::Delete { key: b("a") }),
            Outcome::Deleted(false)
        );
        assert_eq!(kv.size_bytes(), 0);
    }

    #[test]
    fn cas_swaps_only_on_match() {
        let mut kv = KvStore::new();
        let r = kv.apply(Command::Cas {
            key: b("k"),
            expected: None,
            new: b("x"),
        });
        assert_eq!(
            r,
            Outcome::Cas {
                swapped: true,
                current: None
            }
        );
        let r = kv.apply(Command::Cas {
            key: b("k"),
            expected: Some(b("y")),
            new: b("z"),
        });
        assert_eq!(
            r,
            Outcome::Cas {
                swapped: false,
                current: Some(b("x"))
            }
        );
        assert_eq!(kv.get(b"k"), Some(&b("x")));
    }

    #[test]
    fn scan_by_prefix_pages() {
        let mut kv = KvStore::new();
        for k in ["a1", "a2", "a3", "b1"] {
            kv.apply(Command::Put {
                key: b(k),
                value: b("v"),
            });
        }
        let keys = |v: Vec<(Bytes, Bytes)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(kv.scan(b"a", None, 10)),
            vec![b("a1"), b("a2"), b("a3")]
        );
        assert_eq!(keys(kv.scan(b"a", Some(b"a1"), 1)), vec![b("a2")]);
    }
}
