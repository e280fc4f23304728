//! Log replication (§5.3), commitment (§5.4.2), heartbeats and CheckQuorum.
//!
//! Leader-side functions reach the followers' progress through `self.leadership`; they do
//! nothing when it is `None` (we no longer lead), so a handler that runs after a step-down
//! in the same batch cannot touch a previous term's state.

use alloc::vec::Vec;

use bytes::Bytes;

use crate::config::Fanout;
use crate::message::MessageBody;
use crate::progress::{Progress, ProgressState};
use crate::quorum::joint_value;
use crate::raft::Raft;
use crate::types::{Entry, EntryKind, Index, NodeId, Term};

impl Raft {
    pub(crate) fn append_own_entry(&mut self, kind: EntryKind, data: Bytes) -> Index {
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            kind,
            data,
        });
        let now = self.now;
        if let Some(lead) = self.leadership.as_mut() {
            lead.commit_wait_since.get_or_insert(now);
        }
        index
    }

    /// Everyone a leader sends appends to: the members but itself, and the departing
    /// nodes (`reconfig.rs`). Empty unless leading.
    pub(crate) fn replication_targets(&self) -> Vec<NodeId> {
        self.leadership
            .as_ref()
            .map(|l| l.progress.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The progress of `peer`, if we lead and track it.
    pub(crate) fn progress(&self, peer: NodeId) -> Option<&Progress> {
        self.leadership.as_ref()?.progress.get(&peer)
    }

    /// The progress of `peer`, mutably, if we lead and track it.
    pub(crate) fn progress_mut(&mut self, peer: NodeId) -> Option<&mut Progress> {
        self.leadership.as_mut()?.progress.get_mut(&peer)
    }

    /// After a proposal: push the new entries to the followers that will commit them.
    pub(crate) fn replicate_new_entries(&mut self) {
        let eager = self.eager_peers();
        if self.cfg.relay
            && matches!(self.cfg.fanout, Fanout::Quorum { .. })
            && self.send_chained_append(&eager, false)
        {
            return;
        }
        for peer in eager {
            self.send_append(peer);
        }
    }

    /// The followers that get new entries at once. With `Fanout::Quorum` these are the
    /// most responsive voters, as many as a commit needs (plus `extra`); the others catch
    /// up with the next heartbeat. Learners always wait for heartbeats.
    pub(crate) fn eager_peers(&self) -> Vec<NodeId> {
        let Some(lead) = &self.leadership else {
            return Vec::new();
        };
        let mut voters = self.voter_peers();
        let want = match self.cfg.fanout {
            Fanout::All => return self.peers(),
            Fanout::Quorum { extra } => {
                let m = self.membership();
                if m.is_joint() {
                    // Joint configurations need both halves: keep it simple and send to all.
                    return self.peers();
                }
                // Followers a commit needs: a majority, less ourselves if we vote (a
                // leader removing itself does not).
                let need = (m.voters.len() / 2 + 1) - usize::from(m.voters.contains(&self.cfg.id));
                (need + extra).min(voters.len())
            }
        };
        // Healthy first (in sync and heard from within a heartbeat interval), then the most
        // caught up, then by ID. Ranking by match index keeps the set stable: followers
        // that get every entry stay ahead, so the others do not churn in and out. With
        // `rotate_chain` the least caught up go first instead: the group that missed the
        // last write gets the next one (and the entries it lacks) in one chain.
        let now = self.now;
        let recent = self.cfg.heartbeat_interval_ticks + self.rto_ticks();
        let rotate = self.cfg.rotate_chain && self.cfg.relay;
        voters.sort_by_key(|id| {
            let (healthy, matched) = lead.progress.get(id).map_or((false, 0), |p| {
                let healthy = matches!(p.state, ProgressState::Replicate)
                    && p.last_heard_tick
                        .is_some_and(|t| now.saturating_sub(t) <= recent);
                (healthy, p.match_index)
            });
            let behind = if rotate {
                matched
            } else {
                Index::MAX - matched
            };
            (core::cmp::Reverse(healthy), behind, *id)
        });
        voters.truncate(want);
        voters
    }

    /// Sends `peer` the entries it lacks (or an empty heartbeat), if flow control allows.
    /// Returns whether a message went out.
    pub(crate) fn send_append(&mut self, peer: NodeId) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(pr) = self.progress(peer) else {
            return false;
        };
        if matches!(pr.state, ProgressState::Snapshot { .. }) {
            return self.send_snapshot_chunks(peer);
        }
        if !pr.can_send(max_inflight) {
            return false;
        }
        let next = pr.next_index;
        let prev_index = next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // Compacted away: the follower needs our snapshot.
            return self.send_snapshot_chunks(peer);
        };
        let entries = self
            .log
            .slice(next, self.cfg.max_msg_bytes, self.cfg.max_msg_entries);
        self.send_append_with(peer, prev_index, prev_term, entries);
        true
    }

    fn send_append_with(
        &mut self,
        peer: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
    ) {
        let now = self.now;
        let last = entries.last().map(|e| e.index);
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        let Some(pr) = lead.progress.get_mut(&peer) else {
            return;
        };
        let stamp = lead.stamps.issue(now);
        if pr.state == ProgressState::Probe && prev_index + 1 == pr.next_index {
            pr.probe_stamp = stamp;
        }
        pr.last_sent_tick = now;
        pr.note_sent(last.unwrap_or(prev_index));
        if let Some(last) = last {
            match pr.state {
                ProgressState::Replicate => {
                    pr.next_index = last + 1;
                    pr.inflight.push_back(last);
                }
                ProgressState::Probe => pr.probe_sent = true,
                ProgressState::Snapshot { .. } => {}
            }
            if pr.unacked_since.is_none() {
                pr.unacked_since = Some(now);
            }
        } else if pr.state == ProgressState::Probe {
            pr.probe_sent = true;
            if pr.unacked_since.is_none() {
                pr.unacked_since = Some(now);
            }
        }
        let commit = self.log.committed;
        let leader = self.cfg.id;
        self.send(
            peer,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                stamp,
                leader,
                relay: Vec::new(),
                relayed_by: Vec::new(),
            },
        );
    }

    /// An append to every peer, now (ReadIndex rounds).
    pub(crate) fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            self.send_append_or_heartbeat(peer);
        }
    }

    /// Sends what `peer` lacks; if flow control forbids it, a bare heartbeat at the
    /// follower's match point, which it can always accept.
    pub(crate) fn send_append_or_heartbeat(&mut self, peer: NodeId) {
        if self.send_append(peer) {
            return;
        }
        let Some(m) = self.progress(peer).map(|p| p.match_index) else {
            return;
        };
        if let Some(t) = self.log.term(m) {
            self.send_append_with(peer, m, t, Vec::new());
        }
    }

    /// Leader side: a follower answered an append (for itself and any followers it
    /// vouches for).
    pub(crate) fn handle_append_resp(&mut self, from: NodeId, body: MessageBody) {
        let MessageBody::AppendResp {
            success,
            index,
            hint_term,
            rejected,
            stamp,
            vouch,
            vouch_index,
        } = body
        else {
            return;
        };
        if !self.is_leader() {
            return;
        }
        if success {
            if !vouch.is_empty() {
                if let Some(lead) = self.leadership.as_mut() {
                    lead.chains_answered += 1;
                }
            }
            for peer in vouch {
                if self.sent_at_least(peer, vouch_index) {
                    self.record_ack(peer, vouch_index, stamp);
                }
            }
            if self.sent_at_least(from, index) {
                self.record_ack(from, index, stamp);
            }
        } else {
            self.record_rejection(from, index, hint_term, rejected, stamp);
        }
        self.check_pending_reads();
    }

    /// Whether we sent `peer` the log up to `index` in this term. An acknowledgement of
    /// more is forged (or hopelessly confused): it is ignored and counted, so that it
    /// cannot make us commit what only a minority holds. Unknown peers pass (they are
    /// ignored later anyway).
    pub(crate) fn sent_at_least(&mut self, peer: NodeId, index: Index) -> bool {
        match self.progress(peer) {
            Some(pr) if index > pr.sent_up_to => {
                self.stats.forged_acks += 1;
                false
            }
            _ => true,
        }
    }

    /// Bookkeeping shared by every answer from `peer`: it is alive (CheckQuorum), saw
    /// the message stamped `stamp` (leases, ReadIndex), and its retransmission backoff
    /// resets. Returns false if `peer` is not one we track.
    pub(crate) fn note_answer(&mut self, peer: NodeId, stamp: u64) -> bool {
        let now = self.now;
        let retransmit = self.rto_ticks();
        let Some(pr) = self.progress_mut(peer) else {
            return false;
        };
        pr.recent_active = true;
        pr.backoff_ticks = retransmit;
        pr.last_heard_tick = Some(now);
        pr.acked_stamp = pr.acked_stamp.max(stamp);
        true
    }

    /// `peer` holds our log up to `index` durably, and saw the message stamped `stamp`.
    fn record_ack(&mut self, peer: NodeId, index: Index, stamp: u64) {
        let now = self.now;
        let eager = self.eager_peers().contains(&peer);
        let last_index = self.log.last_index();
        self.sample_rtt(stamp);
        if !self.note_answer(peer, stamp) {
            return;
        }
        let Some(pr) = self.progress_mut(peer) else {
            return;
        };
        // While probing at `next_index - 1` (where a rejection's hint put us), an answer
        // below that point to another message — a heartbeat sent at the match point while
        // the probe was out — says nothing about the probe: keep waiting for the probe's
        // answer, or its retransmission timeout, which resends it there (`tick_leader`).
        // Turning to Replicate from the answer's index threw the probe point away: a
        // follower back from a crash, its commit index not yet persisted, answered a
        // heartbeat at 0 and the whole log was resent from index 1 (kvsim seed 80007056:
        // one 4-entry append in flight, no commit within 7.5 s of the heal). An answer below
        // the probe point to the probe itself (its stamp) is a follower that held the probe
        // ahead of a gap (`inbox.rs`): its log ends below the probe point, so go on from the
        // answer's index. Nothing is sent for an answer below the probe point: resending
        // the probe for each made a follower holding it and the leader ping-pong forever,
        // each copy's answer (a stale stamp) sending another, duplicates multiplying them
        // (kvsim seeds 80000287, 80003228, 80008301: "runaway").
        let below_probe = pr.state == ProgressState::Probe
            && index + 1 < pr.next_index
            && stamp != pr.probe_stamp;
        // The answer to the probe itself, below its point, comes from a follower that held
        // the probe: its log ends at `index`. Below what it acknowledged, it lost entries
        // (as a rejection below the match point says, `record_rejection`): go on from what
        // it holds, or the probe at `match_index` is held and answered the same way forever
        // (kvsim seed 80006783: a follower at 64 that had acknowledged 68).
        let held_probe = pr.state == ProgressState::Probe
            && index + 1 < pr.next_index
            && stamp == pr.probe_stamp;
        let lost_log = held_probe && index < pr.match_index;
        if lost_log {
            pr.match_index = index;
        }
        let probe_outstanding = pr.probe_sent;
        let advanced = pr.maybe_update(index);
        if below_probe {
            pr.probe_sent = probe_outstanding;
            if advanced {
                self.maybe_commit();
            }
            self.release_departed(peer, index, stamp);
            return;
        }
        let was_pipelined = pr.state == ProgressState::Replicate;
        if pr.state == ProgressState::Probe {
            pr.become_replicate();
        }
        if lost_log {
            self.stats.followers_lost_log += 1;
        }
        let Some(pr) = self.progress_mut(peer) else {
            return;
        };
        // The retransmit clock restarts only on progress: an answer that advances nothing
        // (say, to a bare heartbeat while every append in flight was lost) must not keep
        // postponing the retransmission forever. A snapshot transfer keeps its own clock.
        let snapshotting = matches!(pr.state, ProgressState::Snapshot { .. });
        if !snapshotting && pr.inflight.is_empty() {
            pr.unacked_since = None;
        } else if !snapshotting && advanced {
            pr.unacked_since = Some(now);
        }
        let backlog = last_index.saturating_sub(pr.next_index - 1);
        if advanced {
            self.maybe_commit();
            if self.transferring_to() == Some(peer) {
                self.advance_transfer();
            }
        }
        // Keep pipelining to followers that commit entries, and to any follower with
        // more than one message of backlog; others wait for the next heartbeat.
        if backlog > 0 && (eager || backlog as usize >= self.cfg.max_msg_entries) {
            // Two appends for an acknowledgement that moved the pipeline on, one otherwise:
            // the window doubles each round trip up to `max_inflight_msgs` (slow start).
            let sends = if advanced && was_pipelined { 2 } else { 1 };
            self.send_appends(peer, sends);
        }
        self.release_departed(peer, index, stamp);
    }

    /// Sends `peer` up to `max` appends of what it lacks, within its in-flight window:
    /// with two per acknowledgement that advanced it, a follower catching up (a new
    /// learner, one back from a partition) gets a window that doubles each round trip,
    /// where one message per acknowledgement let a new learner fall further behind a
    /// busy leader than it caught up (4 entries a message: kvsim seeds 10366, 36829).
    /// Not more at once: filling the whole window on every acknowledgement stormed on a
    /// reordering network (each gap's rejection restarts the pipeline, and its next
    /// acknowledgement sent a whole new window with the old one still in flight; kvsim
    /// seed 1619). At most two per advance keeps the sends linear in the entries sent.
    /// Outside the pipelined state, one append (a probe, or a snapshot).
    fn send_appends(&mut self, peer: NodeId, max: usize) {
        let (last, max_inflight) = (self.log.last_index(), self.cfg.max_inflight_msgs);
        for _ in 0..max {
            let more = self.progress(peer).is_some_and(|p| {
                p.state == ProgressState::Replicate
                    && p.next_index <= last
                    && p.can_send(max_inflight)
            });
            let pipelined = self
                .progress(peer)
                .is_some_and(|p| p.state == ProgressState::Replicate);
            if !pipelined {
                self.send_append(peer);
                return;
            }
            if !more || !self.send_append(peer) {
                return;
            }
        }
    }

    /// `peer` refused an append whose `prev` (`rejected`) it does not hold.
    fn record_rejection(
        &mut self,
        peer: NodeId,
        index: Index,
        hint_term: Term,
        rejected: Index,
        stamp: u64,
    ) {
        if !self.note_answer(peer, stamp) {
            return;
        }
        let Some(pr) = self.progress(peer) else {
            return;
        };
        if stamp == 0 {
            // A rejection from handle_term (stale leader) carries no hint: the term rule
            // already made us step down if needed.
            return;
        }
        // A rejection of an append sent before our last rewind is stale: the rewind
        // already resent from the follower's end. On a network that reorders, a
        // pipeline's appends that overtake the one filling the follower's gap are all
        // rejected; rewinding once for each of them (and again after the acknowledgement
        // of the gap's filler put us back in Replicate) resent most of the log, and a
        // late learner caught up at 45 entries/s (kvsim seeds 50027776, 50036384). The
        // stamp tells which appends those were exactly, as it does for snapshot chunks.
        let stale = stamp <= pr.rewound_at_stamp
            || match pr.state {
                ProgressState::Replicate => rejected <= pr.match_index,
                _ => rejected != pr.next_index - 1,
            };
        if stale {
            return;
        }
        let newest_stamp = self.leadership.as_ref().map_or(0, |l| l.stamps.last());
        // Fast backup: skip every entry of a term the follower does not have.
        let probe = if hint_term > 0 {
            self.log.find_conflict_by_term(index, hint_term).0
        } else {
            index
        };
        let Some(pr) = self
            .leadership
            .as_mut()
            .and_then(|l| l.progress.get_mut(&peer))
        else {
            return;
        };
        pr.become_probe();
        pr.rewound_at_stamp = newest_stamp;
        if probe < pr.match_index {
            // A current rejection below what the follower acknowledged: it lost entries
            // it had made durable (its disk was wiped or replaced). Raft cannot make that
            // safe in general (the node also forgot its vote), but probing the same index
            // forever would spin; start again from what it holds now.
            pr.match_index = probe;
            self.stats.followers_lost_log += 1;
        }
        pr.next_index = (probe + 1).min(rejected).max(pr.match_index + 1);
        pr.unacked_since = None;
        self.send_append(peer);
    }

    /// Raises the commit index to what a quorum holds, counting only entries of the
    /// current term (§5.4.2: never commit an old-term entry by counting replicas).
    pub(crate) fn maybe_commit(&mut self) {
        let Some(lead) = &self.leadership else {
            return;
        };
        let me = self.cfg.id;
        let own = self.log.persisted();
        let quorum_index = joint_value(
            &self.membership().voters,
            &self.membership().voters_outgoing,
            |id| {
                if id == me {
                    own
                } else {
                    lead.progress.get(&id).map_or(0, |p| p.match_index)
                }
            },
        );
        let own_term = self.log.term(quorum_index) == Some(self.term);
        if quorum_index <= self.log.committed
            || !(own_term || self.cfg.planted_bugs.commit_old_term_by_count)
        {
            return;
        }
        self.log.commit_to(quorum_index);
        let (now, committed) = (self.now, self.log.committed);
        let waiting = committed < self.log.last_index();
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        lead.commit_wait_since = waiting.then_some(now);
        if committed >= lead.term_start_index {
            self.release_reads_awaiting_term_commit();
        }
        self.after_commit_advanced();
    }
}
