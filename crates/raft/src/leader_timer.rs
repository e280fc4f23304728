//! The leader's timer: CheckQuorum, retransmission with backoff, heartbeats, and the
//! deadline the driver should wake it at.

use crate::progress::ProgressState;
use crate::quorum::joint_value;
use crate::raft::Raft;
use crate::types::NodeId;

impl Raft {
    /// Leader timer: CheckQuorum, retransmissions, heartbeats, and widening the fan-out
    /// when a commit is stuck.
    pub(crate) fn tick_leader(&mut self) {
        self.tick_transfer();
        let now = self.now;
        let Some(deadline) = self.leadership.as_ref().map(|l| l.check_quorum_deadline) else {
            return;
        };
        // CheckQuorum: step down if a quorum has gone quiet for an election timeout.
        if self.cfg.check_quorum && now >= deadline {
            if !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
            let election_timeout = self.cfg.election_timeout_ticks;
            if let Some(lead) = self.leadership.as_mut() {
                for pr in lead.progress.values_mut() {
                    pr.recent_active = false;
                }
                lead.check_quorum_deadline = now + election_timeout;
            }
        }
        // A commit stuck for a retransmit interval (or, while lost chains are left to
        // the next write, for that delay): widen the fan-out by one follower.
        let stuck_after = self.commit_stuck_ticks();
        let mut commit_stuck = false;
        if let Some(lead) = self.leadership.as_mut() {
            commit_stuck = lead
                .commit_wait_since
                .is_some_and(|t| now >= t + stuck_after);
            if commit_stuck {
                lead.commit_wait_since = Some(now);
            }
        }
        let max_backoff = self.max_backoff_ticks();
        let (lazy, committed) = (self.cfg.lazy_committed_catch_up, self.log.committed);
        let mut retried = self.retry_lost_chain(max_backoff);
        let last_index = self.log.last_index();
        // A chain retry already is this round's second chance.
        let mut widened = !retried.is_empty();
        for peer in self.replication_targets() {
            if retried.contains(&peer) {
                continue;
            }
            let interval = self.heartbeat_interval_for(peer);
            let newest_stamp = self.leadership.as_ref().map_or(0, |l| l.stamps.last());
            let Some(pr) = self.progress_mut(peer) else {
                continue;
            };
            let timed_out = pr
                .unacked_since
                .is_some_and(|t| now >= t + pr.backoff_ticks);
            if timed_out
                && lazy
                && pr.state == ProgressState::Replicate
                && pr.sent_up_to <= committed
            {
                // Everything it may lack is committed (`Config::lazy_committed_catch_up`):
                // rewind, and let the next chain or heartbeat carry it.
                pr.become_replicate();
                pr.unacked_since = None;
                continue;
            }
            if timed_out {
                // Assume the in-flight appends were lost: resend from the match point,
                // and wait longer next time if it stays silent.
                pr.backoff_ticks = (pr.backoff_ticks * 2).min(max_backoff);
                match pr.state {
                    ProgressState::Snapshot { .. } => pr.rewind_snapshot(pr.snapshot_acked),
                    // A probe that got no answer: send it again where it was, whether
                    // a rejection put it there (the follower's log end, §5.3 fast
                    // backup) or it is a new leader's guess (its own log's end).
                    // Rewinding to the match point forgot what the rejection told us
                    // (kvsim seed 80007056), and for a new leader, whose match point is
                    // 0, sent the whole log again a window at a time (seed 95001254,
                    // finding 8: 200 entries at 4 per round trip). `next_index` stays,
                    // so `rewound_at_stamp` stays too: the late answer to the first
                    // copy is as current as the answer to this one, and on a slow link
                    // it is the one that comes first.
                    ProgressState::Probe => pr.probe_sent = false,
                    ProgressState::Replicate => {
                        pr.become_probe();
                        pr.rewound_at_stamp = newest_stamp;
                    }
                }
                pr.unacked_since = None;
                self.send_append(peer);
                retried.push(peer);
                continue;
            }
            let widen = commit_stuck
                && !widened
                && pr.unacked_since.is_none()
                && pr.match_index < last_index
                && now >= pr.last_sent_tick + pr.backoff_ticks;
            if widen || now >= pr.last_sent_tick + interval {
                widened |= widen;
                self.send_append_or_heartbeat(peer);
            }
        }
    }

    /// Retransmission timeout (see `rtt.rs`), within the configured bounds; the
    /// configured maximum before any round trip was measured.
    pub(crate) fn rto_ticks(&self) -> u64 {
        let (min, max) = (self.cfg.min_retransmit_ticks, self.cfg.retransmit_ticks);
        self.rtt.rto(min, max)
    }

    /// How long the oldest uncommitted entry waits before the fan-out widens.
    fn commit_stuck_ticks(&self) -> u64 {
        self.chain_retry_delay().unwrap_or_else(|| self.rto_ticks())
    }

    /// One round-trip sample from an acknowledged stamp of this term.
    pub(crate) fn sample_rtt(&mut self, stamp: u64) {
        let now = self.now;
        let Some(lead) = &self.leadership else {
            return;
        };
        if let Some(sent) = lead.stamps.tick_of(stamp) {
            self.rtt.sample(now.saturating_sub(sent));
        }
    }

    /// The longest a silent follower waits between our messages.
    pub(crate) fn max_backoff_ticks(&self) -> u64 {
        self.cfg.election_timeout_ticks
    }

    /// Heartbeats keep followers from starting elections; a follower silent for an
    /// election timeout is probably dead or cut off, so it only gets one per backoff.
    fn heartbeat_interval_for(&self, peer: NodeId) -> u64 {
        let Some(pr) = self.progress(peer) else {
            return self.cfg.heartbeat_interval_ticks;
        };
        let silent_for = pr
            .last_heard_tick
            .map_or(self.now, |t| self.now.saturating_sub(t));
        if silent_for > self.cfg.election_timeout_ticks {
            self.max_backoff_ticks()
                .max(self.cfg.heartbeat_interval_ticks)
        } else {
            self.cfg.heartbeat_interval_ticks
        }
    }

    /// The earliest tick at which the leader timer has something to do.
    pub(crate) fn leader_deadline(&self) -> u64 {
        let Some(lead) = &self.leadership else {
            return u64::MAX;
        };
        let mut next = if self.cfg.check_quorum {
            lead.check_quorum_deadline
        } else {
            u64::MAX
        };
        if let Some(t) = lead.commit_wait_since {
            next = next.min(t + self.commit_stuck_ticks());
        }
        if let Some(t) = self.transfer_deadline() {
            next = next.min(t);
        }
        for (&peer, pr) in &lead.progress {
            next = next.min(pr.last_sent_tick + self.heartbeat_interval_for(peer));
            if let Some(t) = pr.unacked_since {
                next = next.min(t + pr.backoff_ticks);
            }
        }
        next
    }

    fn quorum_recently_active(&self) -> bool {
        let me = self.cfg.id;
        let active = joint_value(
            &self.membership().voters,
            &self.membership().voters_outgoing,
            |id| u64::from(id == me || self.progress(id).is_some_and(|p| p.recent_active)),
        );
        active == 1
    }
}
