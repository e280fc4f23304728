//! The run's trace: every event the simulator executes, folded into a 64-bit hash (always)
//! and written as a text line (with `--trace`). Two runs of one seed must give the same
//! hash: that is what "replays bit for bit" means, and a test asserts it.

use std::io::Write;

use raft::{Message, MessageBody};

pub struct Trace {
    hash: u64,
    events: u64,
    sink: Option<Box<dyn Write + Send>>,
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MUL: u64 = 0x517c_c1b7_2722_0a95;

impl Trace {
    /// A trace that only hashes.
    pub fn new() -> Trace {
        Trace {
            hash: SEED,
            events: 0,
            sink: None,
        }
    }

    /// A trace that also writes one text line per event to `sink`.
    pub fn to_writer(sink: Box<dyn Write + Send>) -> Trace {
        Trace {
            sink: Some(sink),
            ..Trace::new()
        }
    }

    pub fn is_text(&self) -> bool {
        self.sink.is_some()
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    fn mix(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(MUL);
    }

    /// One event at global time `now`: `kind` and `words` go into the hash; `text` is
    /// called only when a text trace is being written.
    pub fn event(&mut self, now: u64, kind: &str, words: &[u64], text: impl FnOnce() -> String) {
        self.events += 1;
        self.mix(now);
        for b in kind.bytes() {
            self.mix(u64::from(b));
        }
        for &w in words {
            self.mix(w);
        }
        if let Some(out) = self.sink.as_mut() {
            let line = text();
            let _ = writeln!(
                out,
                "{:>7}.{:03}ms {kind:<10} {line}",
                now / 1000,
                now % 1000
            );
        }
    }

    /// A free-form note (phase changes, verdicts). Hashed like an event.
    pub fn note(&mut self, now: u64, text: &str) {
        self.event(now, "note", &[], || text.to_string());
        for b in text.bytes() {
            self.mix(u64::from(b));
        }
    }

    pub fn flush(&mut self) {
        if let Some(out) = self.sink.as_mut() {
            let _ = out.flush();
        }
    }
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

/// The fields of a peer message that identify it, for the hash.
pub fn msg_words(m: &Message) -> [u64; 6] {
    let (kind, a, b, c) = match &m.body {
        MessageBody::PreVote {
            last_index,
            last_term,
            ..
        } => (1, *last_index, *last_term, 0),
        MessageBody::PreVoteResp {
            granted, leader, ..
        } => (2, u64::from(*granted), leader.unwrap_or(0), 0),
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
            ..
        } => (3, *last_index, *last_term, u64::from(*transfer)),
        MessageBody::VoteResp { granted, .. } => (4, u64::from(*granted), 0, 0),
        MessageBody::Append {
            prev_index,
            entries,
            commit,
            stamp,
            ..
        } => (
            5,
            *prev_index,
            entries.len() as u64 ^ (*commit << 20),
            *stamp,
        ),
        MessageBody::AppendResp {
            success,
            index,
            rejected,
            stamp,
            ..
        } => (6, *index ^ (u64::from(*success) << 63), *rejected, *stamp),
        MessageBody::Snapshot { .. } => (7, 0, 0, 0),
        MessageBody::SnapshotResp { .. } => (8, 0, 0, 0),
        MessageBody::TimeoutNow => (9, 0, 0, 0),
    };
    [m.from, m.to, m.term, kind, a ^ (b << 32), c]
}
