//! What applying an entry did, as events: the keyspace notifications Redis sends (the
//! same names, in the same order, for the same commands), the messages `PUBLISH` carries
//! through the log, and the flush that Redis does not notify.
//!
//! The apply produces them (`apply.rs`), so they are as deterministic as the state: every
//! replica produces the same events at the same log index. A store records them only when
//! asked ([`crate::KvStore::record_events`]): the simulator and the seed replica never
//! pay for them. Keys and messages are copied out of the entry, so an event never pins a
//! log entry's buffer (a 1 MiB value behind a 10-byte key).
//!
//! Which command gives which event was read off a real Redis 7.0 (`tests/compat/
//! keyspace_events.txt` in the server crate compares them byte for byte):
//!
//! | command | events |
//! |---|---|
//! | `SET` (all forms, `SETNX`, `MSET`, `MSETNX`, `GETSET`, `CAS` that swaps) | `set`, then `expire` with a TTL |
//! | `DEL`, `UNLINK`, `GETDEL` | `del` per key removed |
//! | `EXPIRE` family, `GETEX EX…`, `SET … EX` | `expire`; `del` instead when the time is already past (not for `SET`) |
//! | `PERSIST`, `GETEX PERSIST` | `persist` (only if there was a TTL) |
//! | `RENAME`, `RENAMENX` | `rename_from` on the source, `rename_to` on the destination |
//! | `COPY` | `copy_to` on the destination |
//! | `INCR`, `DECR`, `INCRBY`, `DECRBY` / `INCRBYFLOAT` / `APPEND` / `SETRANGE` | `incrby` / `incrbyfloat` / `append` / `setrange` |
//! | `HSET`, `HMSET`, `HSETNX` (new field) / `HDEL` / `HINCRBY` | `hset` / `hdel` (then `del` if it emptied the hash) / `hincrby` |
//! | a key removed because its deadline passed (lazily by a write, or by active expiry) | `expired` |
//! | `FLUSHALL`, `FLUSHDB` | [`Event::Flush`] (no Redis notification) |
//! | `PUBLISH` | [`Event::Message`] |

use bytes::Bytes;

/// A key event, by Redis's name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyEvent {
    Set,
    Del,
    Expire,
    Expired,
    Persist,
    RenameFrom,
    RenameTo,
    CopyTo,
    IncrBy,
    IncrByFloat,
    Append,
    SetRange,
    HSet,
    HDel,
    HIncrBy,
}

/// Redis's event classes (`notify-keyspace-events` letters) that key events fall in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventClass {
    /// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
    Generic,
    /// `$`: string commands.
    String,
    /// `h`: hash commands.
    Hash,
    /// `x`: expiry.
    Expired,
}

impl KeyEvent {
    /// The name Redis publishes (`__keyevent@0__:<name>`, and the keyspace message).
    pub fn name(self) -> &'static str {
        match self {
            KeyEvent::Set => "set",
            KeyEvent::Del => "del",
            KeyEvent::Expire => "expire",
            KeyEvent::Expired => "expired",
            KeyEvent::Persist => "persist",
            KeyEvent::RenameFrom => "rename_from",
            KeyEvent::RenameTo => "rename_to",
            KeyEvent::CopyTo => "copy_to",
            KeyEvent::IncrBy => "incrby",
            KeyEvent::IncrByFloat => "incrbyfloat",
            KeyEvent::Append => "append",
            KeyEvent::SetRange => "setrange",
            KeyEvent::HSet => "hset",
            KeyEvent::HDel => "hdel",
            KeyEvent::HIncrBy => "hincrby",
        }
    }

    pub fn class(self) -> EventClass {
        match self {
            KeyEvent::Del
            | KeyEvent::Expire
            | KeyEvent::Persist
            | KeyEvent::RenameFrom
            | KeyEvent::RenameTo
            | KeyEvent::CopyTo => EventClass::Generic,
            KeyEvent::Set
            | KeyEvent::IncrBy
            | KeyEvent::IncrByFloat
            | KeyEvent::Append
            | KeyEvent::SetRange => EventClass::String,
            KeyEvent::HSet | KeyEvent::HDel | KeyEvent::HIncrBy => EventClass::Hash,
            KeyEvent::Expired => EventClass::Expired,
        }
    }
}

/// One thing an applied entry did that someone may be watching for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A key changed (or went).
    Key { kind: KeyEvent, key: Bytes },
    /// `PUBLISH channel message`, replicated through the log.
    Message { channel: Bytes, message: Bytes },
    /// Every key is gone (`FLUSHALL`/`FLUSHDB`): Redis notifies nothing, but a watch
    /// must know its mirror is void.
    Flush,
}

impl Event {
    /// Bytes this event holds, for the bounds of whoever keeps events.
    pub fn size(&self) -> usize {
        const OVERHEAD: usize = 48;
        OVERHEAD
            + match self {
                Event::Key { key, .. } => key.len(),
                Event::Message { channel, message } => channel.len() + message.len(),
                Event::Flush => 0,
            }
    }
}
