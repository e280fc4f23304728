//! Exactly-once client sessions (§6.3 of the Raft thesis).
//!
//! A write may reach the log twice: a client (or a server retrying for it) that times out
//! cannot tell whether the first attempt committed. Tagging each write with a session ID
//! and a sequence number lets the state machine apply it once and answer every copy with
//! the first outcome.
//!
//! Entry layout for a session write: `b'S'`, varint client, varint seq, then the command
//! as `Command::encode` writes it. Every replica applies the same log, so the session table
//! (including which sessions are evicted) is the same everywhere: eviction is driven by a
//! counter of session writes applied, never by wall time.

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::{Command, DecodeError};
use crate::store::Outcome;

const TAG_SESSION: u8 = b'S';

/// Sessions remembered; the least recently used is forgotten beyond this.
pub const MAX_SESSIONS: usize = 100_000;
/// Outcomes remembered per session: a client may have this many writes in flight.
pub const SESSION_WINDOW: usize = 64;

/// Encodes `cmd` as write number `seq` of session `client`.
pub fn encode_session_write(client: u64, seq: u64, cmd: &Command) -> Bytes {
    let inner = cmd.encode();
    let mut buf = BytesMut::with_capacity(inner.len() + 21);
    buf.put_u8(TAG_SESSION);
    put_varint(&mut buf, client);
    put_varint(&mut buf, seq);
    buf.put_slice(&inner);
    buf.freeze()
}

/// A log entry's payload: a command, with its session if it has one.
pub fn decode_entry(data: &Bytes) -> Result<(Option<(u64, u64)>, Command), DecodeError> {
    if data.first() != Some(&TAG_SESSION) {
        return Ok((None, Command::decode(data)?));
    }
    let mut pos = 1;
    let client = take_varint(data, &mut pos)?;
    let seq = take_varint(data, &mut pos)?;
    Ok((Some((client, seq)), Command::decode(&data.slice(pos..))?))
}

#[derive(Clone, Debug, Default)]
struct Session {
    last_used: u64,
    /// Outcomes of the newest writes, by sequence number.
    outcomes: BTreeMap<u64, Outcome>,
}

/// What the state machine remembers of each session.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    by_client: HashMap<u64, Session>,
    /// (last_used, client): least recently used first.
    lru: BTreeMap<u64, u64>,
    clock: u64,
}

/// Whether a session write is new.
pub enum Seen {
    New,
    /// Applied before: here is what it did.
    Duplicate(Outcome),
    /// Older than the window we keep: we cannot tell, so it must not be applied.
    Expired,
}

impl Sessions {
    pub fn check(&self, client: u64, seq: u64) -> Seen {
        let Some(s) = self.by_client.get(&client) else {
            return Seen::New;
        };
        if let Some(o) = s.outcomes.get(&seq) {
            return Seen::Duplicate(o.clone());
        }
        match s.outcomes.first_key_value() {
            Some((&oldest, _)) if seq < oldest && s.outcomes.len() >= SESSION_WINDOW => {
                Seen::Expired
            }
            _ => Seen::New,
        }
    }

    pub fn record(&mut self, client: u64, seq: u64, outcome: Outcome) {
        self.clock += 1;
        let clock = self.clock;
        let s = self.by_client.entry(client).or_default();
        if s.last_used != 0 {
            self.lru.remove(&s.last_used);
        }
        s.last_used = clock;
        s.outcomes.insert(seq, outcome);
        while s.outcomes.len() > SESSION_WINDOW {
            s.outcomes.pop_first();
        }
        self.lru.insert(clock, client);
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

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

fn take_varint(data: &Bytes, pos: &mut usize) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let &byte = data.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_writes_roundtrip_and_plain_commands_still_decode() {
        let cmd = Command::Delete {
            key: Bytes::from_static(b"k"),
        };
        let data = encode_session_write(300, 7, &cmd);
        assert_eq!(decode_entry(&data), Ok((Some((300, 7)), cmd.clone())));
        assert_eq!(decode_entry(&cmd.encode()), Ok((None, cmd)));
        assert_eq!(
            decode_entry(&Bytes::from_static(&[b'S', 0x80])),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn duplicates_get_the_first_outcome_and_old_ones_expire() {
        let mut s = Sessions::default();
        assert!(matches!(s.check(1, 1), Seen::New));
        s.record(1, 1, Outcome::Deleted(true));
        assert!(matches!(
            s.check(1, 1),
            Seen::Duplicate(Outcome::Deleted(true))
        ));
        for seq in 2..=(SESSION_WINDOW as u64 + 1) {
            s.record(1, seq, Outcome::Done);
        }
        assert!(matches!(s.check(1, 1), Seen::Expired));
    }

    #[test]
    fn least_recently_used_sessions_are_forgotten_past_the_bound() {
        let mut s = Sessions::default();
        for client in 0..(MAX_SESSIONS as u64 + 5) {
            s.record(client, 1, Outcome::Done);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            matches!(s.check(0, 1), Seen::New),
            "the oldest session was evicted"
        );
        assert!(matches!(
            s.check(MAX_SESSIONS as u64 + 4, 1),
            Seen::Duplicate(_)
        ));
    }
}
