//! What a leader knows about each follower (etcd's `tracker`).

use alloc::collections::VecDeque;

use crate::types::Index;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// We do not know where the follower's log ends: one append at a time, then wait.
    Probe,
    /// The follower is in sync: appends are pipelined optimistically.
    Replicate,
    /// Entries it needs were compacted: the snapshot cut at `index` is streaming to it in
    /// chunks (`snapshot_sent`, `snapshot_acked`).
    Snapshot { index: Index },
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub match_index: Index,
    /// Highest index this leadership ever sent the follower (an append's last entry,
    /// or its `prev_index` when empty; a snapshot's index). An acknowledgement beyond it
    /// is forged: an honest follower cannot match what it was never sent (issue 14).
    pub sent_up_to: Index,
    /// Next index to send.
    pub next_index: Index,
    pub state: ProgressState,
    /// Last index of each append in flight, oldest first (Replicate state only).
    pub inflight: VecDeque<Index>,
    /// Tick of the last message sent to this follower (for heartbeats).
    pub last_sent_tick: u64,
    /// Tick when the oldest unacknowledged append went out (for retransmission).
    pub unacked_since: Option<u64>,
    /// Tick of the last message received from it.
    pub last_heard_tick: Option<u64>,
    /// Highest stamp it echoed back in this term.
    pub acked_stamp: u64,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// Probe state: an append is outstanding; wait for its answer or a retransmit timeout.
    pub probe_sent: bool,
    /// Current retransmission timeout: doubles while the follower stays silent, back to
    /// the configured value as soon as it answers (a dead or cut-off follower costs a
    /// message per backoff interval, not one per retransmit interval).
    pub backoff_ticks: u64,
    /// Snapshot state: offset of the next chunk to send. Invariant:
    /// `snapshot_acked <= snapshot_sent`, and the bytes in between are in flight.
    pub snapshot_sent: u64,
    /// Snapshot state: bytes the follower confirmed it holds.
    pub snapshot_acked: u64,
    /// Snapshot state: the last chunk (`done`) went out and no rewind happened since.
    pub snapshot_last_sent: bool,
    /// Snapshot state: the newest stamp issued when the transfer last rewound. Every
    /// chunk sent since carries a larger one, so a refusal echoing a stamp at or below
    /// it answers a chunk from before the rewind and is stale.
    pub snapshot_rewound_at_stamp: u64,
    /// The newest stamp issued when the leader last rewound `next_index` (a rejection or
    /// a retransmission timeout). Every append sent since carries a larger one, so a
    /// rejection echoing a stamp at or below it answers an append from before the rewind:
    /// the rewind already resent from the follower's end, and the rejection is stale.
    pub rewound_at_stamp: u64,
    /// Probe state: the stamp of the last probe sent (at `next_index - 1`). A follower
    /// that holds the probe ahead of a gap in its log (`inbox.rs`) answers a success
    /// below it echoing this stamp: the probe point is beyond its log.
    pub probe_stamp: u64,
}

impl Progress {
    pub fn new(next_index: Index, now: u64, backoff_ticks: u64) -> Progress {
        Progress {
            match_index: 0,
            sent_up_to: 0,
            next_index,
            state: ProgressState::Probe,
            inflight: VecDeque::new(),
            last_sent_tick: now,
            unacked_since: None,
            last_heard_tick: None,
            acked_stamp: 0,
            recent_active: false,
            probe_sent: false,
            backoff_ticks,
            snapshot_sent: 0,
            snapshot_acked: 0,
            snapshot_last_sent: false,
            snapshot_rewound_at_stamp: 0,
            rewound_at_stamp: 0,
            probe_stamp: 0,
        }
    }

    pub fn become_probe(&mut self) {
        if let ProgressState::Snapshot { index } = self.state {
            self.next_index = self.next_index.max(index + 1).max(self.match_index + 1);
        } else {
            self.next_index = self.match_index + 1;
        }
        self.state = ProgressState::Probe;
        self.inflight.clear();
        self.probe_sent = false;
    }

    /// Starts streaming the snapshot cut at `index` from its first byte.
    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ProgressState::Snapshot { index };
        self.inflight.clear();
        self.probe_sent = false;
        self.rewind_snapshot(0);
    }

    /// Snapshot state: the follower holds exactly `offset` bytes; send again from there.
    pub fn rewind_snapshot(&mut self, offset: u64) {
        self.snapshot_sent = offset;
        self.snapshot_acked = offset;
        self.snapshot_last_sent = false;
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
        self.probe_sent = false;
    }

    /// Notes that the follower was sent the log up to `index`.
    pub fn note_sent(&mut self, index: Index) {
        self.sent_up_to = self.sent_up_to.max(index);
    }

    /// Records an acknowledged match; returns whether it advanced.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        if self.next_index < index + 1 {
            self.next_index = index + 1;
        }
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        self.probe_sent = false;
        advanced
    }

    /// Whether the leader may send this follower another append now.
    pub fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => self.inflight.len() < max_inflight,
            ProgressState::Snapshot { .. } => false,
        }
    }
}
