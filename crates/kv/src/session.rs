//! Exactly-once client sessions (§6.3 of the Raft thesis).
//!
//! A write may reach the log twice: a client (or a server retrying for it) that times out
//! cannot tell whether the first attempt committed. Tagging each write with a session ID
//! and a sequence number lets the state machine apply it once and answer every copy with
//! the first outcome.
//!
//! Entry layout for a session write: `b'S'`, varint client, varint seq, varint
//! `first_outstanding`, then the command as `Command::encode` writes it.
//! `first_outstanding` is the client's lowest sequence number still awaiting an answer:
//! the client will never send anything below it again, so outcomes below it are dropped
//! (§6.3 of the thesis) — a session remembers only what is in flight, however many writes
//! it has in flight. Every replica applies the same log, so the session table (including
//! which sessions are evicted) is the same everywhere: eviction is driven by a counter of
//! session writes applied, never by wall time.

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::{Command, DecodeError};
use crate::store::Outcome;
use crate::varint::{self, put as put_varint};

const TAG_SESSION: u8 = b'S';

/// Sessions remembered; the least recently used is forgotten beyond this.
pub const MAX_SESSIONS: usize = 100_000;
/// Hard bound on outcomes remembered per session (a client that never advances
/// `first_outstanding` loses its oldest ones first).
pub const SESSION_WINDOW: usize = 65_536;

/// A write's place in its client's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionTag {
    pub client: u64,
    pub seq: u64,
    /// The client's lowest sequence number still awaiting an answer (`<= seq`).
    pub first_outstanding: u64,
}

/// Encodes `cmd` as a session write.
pub fn encode_session_write(tag: SessionTag, cmd: &Command) -> Bytes {
    let inner = cmd.encode();
    let mut buf = BytesMut::with_capacity(inner.len() + 31);
    buf.put_u8(TAG_SESSION);
    put_varint(&mut buf, tag.client);
    put_varint(&mut buf, tag.seq);
    put_varint(&mut buf, tag.first_outstanding);
    buf.put_slice(&inner);
    buf.freeze()
}

/// A log entry's payload: a command, with its session if it has one.
pub fn decode_entry(data: &Bytes) -> Result<(Option<SessionTag>, Command), DecodeError> {
    if data.first() != Some(&TAG_SESSION) {
        return Ok((None, Command::decode(data)?));
    }
    let mut pos = 1;
    let client = take_varint(data, &mut pos)?;
    let seq = take_varint(data, &mut pos)?;
    let first_outstanding = take_varint(data, &mut pos)?;
    let tag = SessionTag {
        client,
        seq,
        first_outstanding,
    };
    Ok((Some(tag), Command::decode(&data.slice(pos..))?))
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    /// The value of `Sessions::clock` when this session last recorded a write (>= 1).
    pub(crate) last_used: u64,
    /// Below this the client waits for nothing: those outcomes are gone.
    pub(crate) first_outstanding: u64,
    /// Outcomes of writes the client may still be waiting for, by sequence number.
    pub(crate) outcomes: BTreeMap<u64, Outcome>,
}

/// What the state machine remembers of each session.
///
/// Invariant: `lru` holds exactly one `(last_used, client)` for each session in
/// `by_client`, and every `last_used` is distinct, in `1..=clock`.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    by_client: HashMap<u64, Session>,
    /// (last_used, client): least recently used first.
    lru: BTreeMap<u64, u64>,
    /// Session writes recorded so far; drives LRU eviction.
    clock: u64,
}

/// Why `Sessions::push_restored` refused a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestoreError {
    DuplicateClient,
    /// `last_used` must exceed the previous session's and be at most the clock.
    LastUsedOutOfOrder {
        previous: u64,
        clock: u64,
    },
}

/// Whether a session write is new.
pub enum Seen {
    New,
    /// Applied before: here is what it did.
    Duplicate(Outcome),
    /// Below what the client still waits for (a stale duplicate), or older than the
    /// window kept: it must not be applied.
    Expired,
}

impl Sessions {
    pub fn check(&self, tag: SessionTag) -> Seen {
        let Some(s) = self.by_client.get(&tag.client) else {
            return Seen::New;
        };
        if let Some(o) = s.outcomes.get(&tag.seq) {
            return Seen::Duplicate(o.clone());
        }
        let oldest_kept = s.outcomes.first_key_value().map(|(&k, _)| k);
        let beyond_window =
            s.outcomes.len() >= SESSION_WINDOW && oldest_kept.is_some_and(|o| tag.seq < o);
        if tag.seq < s.first_outstanding || beyond_window {
            Seen::Expired
        } else {
            Seen::New
        }
    }

    /// Records what a new session write did, and forgets what the client no longer waits for.
    pub fn record(&mut self, tag: SessionTag, outcome: Outcome) {
        self.clock += 1;
        let clock = self.clock;
        let s = self.by_client.entry(tag.client).or_default();
        if s.last_used != 0 {
            self.lru.remove(&s.last_used);
        }
        s.last_used = clock;
        s.first_outstanding = s.first_outstanding.max(tag.first_outstanding.min(tag.seq));
        s.outcomes.insert(tag.seq, outcome);
        let keep_from = s.first_outstanding;
        s.outcomes.retain(|&seq, _| seq >= keep_from);
        while s.outcomes.len() > SESSION_WINDOW {
            s.outcomes.pop_first();
        }
        self.lru.insert(clock, tag.client);
        while self.by_client.len() > MAX_SESSIONS {
            let Some((_, old)) = self.lru.pop_first() else {
                break;
            };
            self.by_client.remove(&old);
        }
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// The session write counter (see `Session::last_used`).
    pub(crate) fn clock(&self) -> u64 {
        self.clock
    }

    /// Every session with its client, least recently used first: a deterministic order,
    /// unlike `by_client`'s.
    pub(crate) fn lru_order(&self) -> impl Iterator<Item = (u64, &Session)> + '_ {
        self.lru.values().map(|client| {
            let session = self.by_client.get(client);
            (
                *client,
                session.expect("lru and by_client hold the same clients"),
            )
        })
    }

    /// An empty table about to be refilled by `push_restored` (from a snapshot).
    pub(crate) fn restoring(clock: u64) -> Sessions {
        Sessions {
            clock,
            ..Sessions::default()
        }
    }

    /// Adds a restored session. Sessions must come in `lru_order`, so each `last_used`
    /// must exceed the previous one (and 0) and not exceed the clock: that keeps the
    /// type's invariant, and with it eviction order, exactly as it was.
    pub(crate) fn push_restored(
        &mut self,
        client: u64,
        session: Session,
    ) -> Result<(), RestoreError> {
        let previous = self.lru.last_key_value().map_or(0, |(&used, _)| used);
        if session.last_used <= previous || session.last_used > self.clock {
            let clock = self.clock;
            return Err(RestoreError::LastUsedOutOfOrder { previous, clock });
        }
        if self.by_client.contains_key(&client) {
            return Err(RestoreError::DuplicateClient);
        }
        self.lru.insert(session.last_used, client);
        self.by_client.insert(client, session);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}

fn take_varint(data: &Bytes, pos: &mut usize) -> Result<u64, DecodeError> {
    varint::get(data, pos).map_err(|_| DecodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before the shared varint, session entries ignored bits beyond the 64th in a tenth
    /// byte (the transport and snapshots refused them), so two encodings of one client id
    /// decoded alike. One rule now: refused everywhere.
    #[test]
    fn a_session_tag_with_bits_beyond_64_is_refused() {
        let good = encode_session_write(
            tag(u64::MAX, 1, 1),
            &Command::Delete {
                key: Bytes::from_static(b"k"),
            },
        );
        assert_eq!(good[10], 0x01, "the client id's tenth byte");
        assert!(decode_entry(&good).is_ok());
        let mut bad = good.to_vec();
        bad[10] = 0x03;
        assert!(decode_entry(&Bytes::from(bad)).is_err());
    }

    fn tag(client: u64, seq: u64, first_outstanding: u64) -> SessionTag {
        SessionTag {
            client,
            seq,
            first_outstanding,
        }
    }

    #[test]
    fn session_writes_roundtrip_and_plain_commands_still_decode() {
        let cmd = Command::Delete {
            key: Bytes::from_static(b"k"),
        };
        let data = encode_session_write(tag(300, 7, 5), &cmd);
        assert_eq!(decode_entry(&data), Ok((Some(tag(300, 7, 5)), cmd.clone())));
        assert_eq!(decode_entry(&cmd.encode()), Ok((None, cmd)));
        assert_eq!(
            decode_entry(&Bytes::from_static(&[b'S', 0x80])),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn duplicates_get_the_first_outcome_until_the_client_moves_past_them() {
        let mut s = Sessions::default();
        assert!(matches!(s.check(tag(1, 1, 1)), Seen::New));
        s.record(tag(1, 1, 1), Outcome::Deleted(true));
        assert!(matches!(
            s.check(tag(1, 1, 1)),
            Seen::Duplicate(Outcome::Deleted(true))
        ));
        // Many writes in flight at once: all remembered while outstanding.
        for seq in 2..=1000 {
            s.record(tag(1, seq, 1), Outcome::Done);
        }
        assert!(matches!(s.check(tag(1, 1, 1)), Seen::Duplicate(_)));
        // The client got every answer below 1001: those outcomes go.
        s.record(tag(1, 1001, 1001), Outcome::Done);
        assert!(matches!(s.check(tag(1, 1, 1001)), Seen::Expired));
        assert!(matches!(s.check(tag(1, 1001, 1001)), Seen::Duplicate(_)));
    }

    #[test]
    fn least_recently_used_sessions_are_forgotten_past_the_bound() {
        let mut s = Sessions::default();
        for client in 0..(MAX_SESSIONS as u64 + 5) {
            s.record(tag(client, 1, 1), Outcome::Done);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            matches!(s.check(tag(0, 1, 1)), Seen::New),
            "the oldest session was evicted"
        );
        assert!(matches!(
            s.check(tag(MAX_SESSIONS as u64 + 4, 1, 1)),
            Seen::Duplicate(_)
        ));
    }
}
