//! Log replication (§5.3), commitment (§5.4.2), heartbeats and CheckQuorum.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::config::Fanout;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::quorum::joint_value;
use crate::raft::{Raft, Role};
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
        if self.commit_wait_since.is_none() {
            self.commit_wait_since = Some(self.now);
        }
        index
    }

    /// After a proposal: push the new entries to the followers that will commit them.
    pub(crate) fn replicate_new_entries(&mut self) {
        let eager = self.eager_peers();
        if self.cfg.relay
            && matches!(self.cfg.fanout, Fanout::Quorum { .. })
            && self.send_chained_append(&eager)
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
    fn eager_peers(&self) -> Vec<NodeId> {
        let mut voters = self.voter_peers();
        let want = match self.cfg.fanout {
            Fanout::All => return self.peers(),
            Fanout::Quorum { extra } => {
                let voters_total = self.membership.voters.len();
                let joint_extra = self.membership.voters_outgoing.len();
                if joint_extra > 0 {
                    // Joint configurations need both halves: keep it simple and send to all.
                    return self.peers();
                }
                (voters_total / 2 + extra).min(voters.len())
            }
        };
        // Healthy first (in sync and heard from within a heartbeat interval), then the most
        // caught up, then by ID. Ranking by match index keeps the set stable: followers
        // that get every entry stay ahead, so the others do not churn in and out.
        let now = self.now;
        let recent = self.cfg.heartbeat_interval_ticks + self.rto_ticks();
        voters.sort_by_key(|id| {
            let p = &self.progress[id];
            let healthy = matches!(p.state, ProgressState::Replicate)
                && p.last_heard_tick
                    .is_some_and(|t| now.saturating_sub(t) <= recent);
            (
                core::cmp::Reverse(healthy),
                core::cmp::Reverse(p.match_index),
                *id,
            )
        });
        voters.truncate(want);
        voters
    }

    /// Sends `peer` the entries it lacks (or an empty heartbeat), if flow control allows.
    /// Returns whether a message went out.
    pub(crate) fn send_append(&mut self, peer: NodeId) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(pr) = self.progress.get(&peer) else {
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
        let stamp = self.stamps.issue(now);
        let last = entries.last().map(|e| e.index);
        let pr = self.progress.get_mut(&peer).expect("peer progress");
        pr.last_sent_tick = now;
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

    /// Chain replication: one append to the first of `chain`, relayed by each follower to
    /// the next once durable. Only when every follower in the chain expects the same next
    /// index, so one `prev` fits all. Returns false (nothing sent) otherwise.
    fn send_chained_append(&mut self, chain: &[NodeId]) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(first) = chain.first() else {
            return false;
        };
        let next = self.progress[first].next_index;
        let fits = chain.iter().all(|id| {
            let p = &self.progress[id];
            p.state == ProgressState::Replicate && p.next_index == next && p.can_send(max_inflight)
        });
        let Some(prev_term) = self.log.term(next - 1) else {
            return false;
        };
        let entries = self
            .log
            .slice(next, self.cfg.max_msg_bytes, self.cfg.max_msg_entries);
        let Some(last) = entries.last().map(|e| e.index) else {
            return false;
        };
        if !fits || chain.len() < 2 {
            return false;
        }
        let now = self.now;
        let stamp = self.stamps.issue(now);
        for id in chain {
            let pr = self.progress.get_mut(id).expect("peer progress");
            pr.last_sent_tick = now;
            pr.next_index = last + 1;
            pr.inflight.push_back(last);
            if pr.unacked_since.is_none() {
                pr.unacked_since = Some(now);
            }
        }
        let body = MessageBody::Append {
            prev_index: next - 1,
            prev_term,
            entries,
            commit: self.log.committed,
            stamp,
            leader: self.cfg.id,
            relay: chain[1..].to_vec(),
            relayed_by: Vec::new(),
        };
        self.send(*first, body);
        true
    }

    /// An append to every peer, now (ReadIndex rounds).
    pub(crate) fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            self.send_append_or_heartbeat(peer);
        }
    }

    /// Sends what `peer` lacks; if flow control forbids it, a bare heartbeat at the
    /// follower's match point, which it can always accept.
    fn send_append_or_heartbeat(&mut self, peer: NodeId) {
        if self.send_append(peer) {
            return;
        }
        let m = self.progress[&peer].match_index;
        if let Some(t) = self.log.term(m) {
            self.send_append_with(peer, m, t, Vec::new());
        }
    }

    /// Follower side of AppendEntries (§5.3), including relayed appends.
    pub(crate) fn handle_append(&mut self, body: MessageBody) {
        let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay,
            relayed_by,
        } = body
        else {
            return;
        };
        // Same term (handle_term ran): the append's author leads this term.
        if self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.last_leader_contact = Some(self.now);
        self.reset_election_timer();

        // What a relayed copy must carry on unchanged, and the index every follower that
        // accepts it holds the leader's log up to.
        let msg_last = entries.last().map_or(prev_index, |e| e.index);
        let forward = (!relay.is_empty()).then(|| (prev_index, prev_term, entries.clone()));

        let (mut prev_index, mut prev_term, mut entries) = (prev_index, prev_term, entries);
        let committed = self.log.committed;
        if prev_index < committed {
            // Our committed prefix equals the leader's: skip the part of the append it covers.
            entries.retain(|e| e.index > committed);
            prev_index = committed;
            prev_term = self.log.term(committed).unwrap_or(0);
            if entries.first().is_some_and(|e| e.index != committed + 1) {
                entries.clear();
            }
        }
        let term = self.term;
        if !self.log.matches(prev_index, prev_term) {
            let (index, hint_term) = self.log.find_conflict_by_term(prev_index, prev_term);
            let body = MessageBody::AppendResp {
                success: false,
                index,
                hint_term,
                rejected: prev_index,
                stamp,
                vouch: Vec::new(),
                vouch_index: 0,
            };
            self.send_after_persist(leader, term, body);
            return;
        }
        // An empty append proves a match only up to `prev_index`: our log may hold more
        // that the leader's does not.
        let last_match = if entries.is_empty() {
            prev_index
        } else {
            self.log.merge(entries)
        };
        self.log.commit_to(commit.min(last_match));
        if let (Some((prev_index, prev_term, entries)), Some((&next, rest))) =
            (forward, relay.split_first())
        {
            // Pass it on, unchanged, once durable here: the next follower vouches for us.
            let mut relayed_by = relayed_by;
            relayed_by.push(self.cfg.id);
            let body = MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                stamp,
                leader,
                relay: rest.to_vec(),
                relayed_by,
            };
            self.send_after_persist(next, term, body);
            return;
        }
        // Acknowledge only once the entries are durable: the leader counts this reply
        // towards a commit.
        let vouch_index = if relayed_by.is_empty() { 0 } else { msg_last };
        let body = MessageBody::AppendResp {
            success: true,
            index: last_match,
            hint_term: 0,
            rejected: 0,
            stamp,
            vouch: relayed_by,
            vouch_index,
        };
        self.send_after_persist(leader, term, body);
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
        if self.role != Role::Leader {
            return;
        }
        if success {
            for peer in vouch {
                self.record_ack(peer, vouch_index, stamp);
            }
            self.record_ack(from, index, stamp);
        } else {
            self.record_rejection(from, index, hint_term, rejected, stamp);
        }
        self.check_pending_reads();
    }

    /// Bookkeeping shared by every answer from `peer`: it is alive (CheckQuorum), saw
    /// the message stamped `stamp` (leases, ReadIndex), and its retransmission backoff
    /// resets. Returns false if `peer` is not one we track.
    pub(crate) fn note_answer(&mut self, peer: NodeId, stamp: u64) -> bool {
        let now = self.now;
        let retransmit = self.rto_ticks();
        let Some(pr) = self.progress.get_mut(&peer) else {
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
        let pr = self.progress.get_mut(&peer).expect("note_answer checked");
        let advanced = pr.maybe_update(index);
        if pr.state == ProgressState::Probe {
            pr.become_replicate();
        }
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
        }
        // Keep pipelining to followers that commit entries, and to any follower with
        // more than one message of backlog; others wait for the next heartbeat.
        if backlog > 0 && (eager || backlog as usize >= self.cfg.max_msg_entries) {
            self.send_append(peer);
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
        let pr = self.progress.get_mut(&peer).expect("note_answer checked");
        if stamp == 0 {
            // A rejection from handle_term (stale leader) carries no hint: the term rule
            // already made us step down if needed.
            return;
        }
        let stale = match pr.state {
            ProgressState::Replicate => rejected <= pr.match_index,
            _ => rejected != pr.next_index - 1,
        };
        if stale {
            return;
        }
        // Fast backup: skip every entry of a term the follower does not have.
        let probe = if hint_term > 0 {
            self.log.find_conflict_by_term(index, hint_term).0
        } else {
            index
        };
        let pr = self.progress.get_mut(&peer).expect("peer progress");
        pr.become_probe();
        if probe < pr.match_index {
            // A current rejection below what the follower acknowledged: it lost entries
            // it had made durable (its disk was wiped or replaced). Raft cannot make that
            // safe in general (the node also forgot its vote), but probing the same index
            // forever would spin; start again from what it holds now.
            pr.match_index = probe;
            self.followers_lost_log += 1;
        }
        pr.next_index = (probe + 1).min(rejected).max(pr.match_index + 1);
        pr.unacked_since = None;
        self.send_append(peer);
    }

    /// Raises the commit index to what a quorum holds, counting only entries of the
    /// current term (§5.4.2: never commit an old-term entry by counting replicas).
    pub(crate) fn maybe_commit(&mut self) {
        let me = self.cfg.id;
        let own = self.log.persisted();
        let quorum_index = joint_value(
            &self.membership.voters,
            &self.membership.voters_outgoing,
            |id| {
                if id == me {
                    own
                } else {
                    self.progress.get(&id).map_or(0, |p| p.match_index)
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
        self.commit_wait_since = (self.log.committed < self.log.last_index()).then_some(self.now);
        if self.log.committed >= self.term_start_index {
            self.release_reads_awaiting_term_commit();
        }
    }

    pub(crate) fn tick_leader(&mut self) {
        let now = self.now;
        // CheckQuorum: step down if a quorum has gone quiet for an election timeout.
        if self.cfg.check_quorum && now >= self.check_quorum_deadline {
            if !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
            self.check_quorum_deadline = now + self.cfg.election_timeout_ticks;
        }
        let retransmit = self.rto_ticks();
        // A commit stuck for a retransmit interval: widen the fan-out by one follower.
        let commit_stuck = self
            .commit_wait_since
            .is_some_and(|t| now >= t + retransmit);
        if commit_stuck {
            self.commit_wait_since = Some(now);
        }
        let max_backoff = self.max_backoff_ticks();
        let mut retried = self.retry_lost_chain(max_backoff);
        let last_index = self.log.last_index();
        // A chain retry already is this round's second chance.
        let mut widened = !retried.is_empty();
        for peer in self.peers() {
            if retried.contains(&peer) {
                continue;
            }
            let interval = self.heartbeat_interval_for(peer);
            let pr = self.progress.get_mut(&peer).expect("peer progress");
            if pr
                .unacked_since
                .is_some_and(|t| now >= t + pr.backoff_ticks)
            {
                // Assume the in-flight appends were lost: resend from the match point,
                // and wait longer next time if it stays silent.
                pr.backoff_ticks = (pr.backoff_ticks * 2).min(max_backoff);
                if matches!(pr.state, ProgressState::Snapshot { .. }) {
                    pr.rewind_snapshot(pr.snapshot_acked);
                } else {
                    pr.become_probe();
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

    /// If the eager followers of a relayed append all timed out together at the same
    /// point, the chain lost a message somewhere: send the chain again (one message, and
    /// a follower that already has the entries just passes them on). Returns the
    /// followers retried.
    fn retry_lost_chain(&mut self, max_backoff: u64) -> Vec<NodeId> {
        if !self.cfg.relay || !matches!(self.cfg.fanout, Fanout::Quorum { .. }) {
            return Vec::new();
        }
        let now = self.now;
        let chain = self.eager_peers();
        let Some(first) = chain.first().map(|id| &self.progress[id]) else {
            return Vec::new();
        };
        let (matched, backoff) = (first.match_index, first.backoff_ticks);
        let all_lost = chain.len() >= 2
            && chain.iter().all(|id| {
                let p = &self.progress[id];
                p.state == ProgressState::Replicate
                    && p.match_index == matched
                    && p.backoff_ticks == backoff
                    && p.unacked_since.is_some_and(|t| now >= t + p.backoff_ticks)
            });
        if !all_lost {
            return Vec::new();
        }
        for id in &chain {
            let pr = self.progress.get_mut(id).expect("peer progress");
            pr.backoff_ticks = (pr.backoff_ticks * 2).min(max_backoff);
            pr.become_replicate();
            pr.unacked_since = None;
        }
        if self.send_chained_append(&chain) {
            chain
        } else {
            Vec::new()
        }
    }

    /// Retransmission timeout, as TCP computes it (RFC 6298): smoothed round trip plus
    /// four mean deviations, within the configured bounds (the configured maximum until a
    /// round trip has been measured).
    pub(crate) fn rto_ticks(&self) -> u64 {
        let max = self.cfg.retransmit_ticks;
        match self.srtt_x8 {
            Some((srtt, rttvar)) => {
                ((srtt + 4 * rttvar) / 8).clamp(self.cfg.min_retransmit_ticks, max)
            }
            None => max,
        }
    }

    /// One round-trip sample from an acknowledged stamp.
    fn sample_rtt(&mut self, stamp: u64) {
        let Some(sent) = self.stamps.tick_of(stamp) else {
            return;
        };
        let rtt = self.now.saturating_sub(sent) * 8;
        self.srtt_x8 = Some(match self.srtt_x8 {
            Some((srtt, rttvar)) => {
                let rttvar = rttvar - rttvar / 4 + srtt.abs_diff(rtt) / 4;
                (srtt - srtt / 8 + rtt / 8, rttvar)
            }
            None => (rtt, rtt / 2),
        });
    }

    /// The longest a silent follower waits between our messages.
    fn max_backoff_ticks(&self) -> u64 {
        self.cfg.election_timeout_ticks
    }

    /// Heartbeats keep followers from starting elections; a follower silent for an
    /// election timeout is probably dead or cut off, so it only gets one per backoff.
    fn heartbeat_interval_for(&self, peer: NodeId) -> u64 {
        let pr = &self.progress[&peer];
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

    pub(crate) fn leader_deadline(&self) -> u64 {
        let mut next = if self.cfg.check_quorum {
            self.check_quorum_deadline
        } else {
            u64::MAX
        };
        if let Some(t) = self.commit_wait_since {
            next = next.min(t + self.rto_ticks());
        }
        for (&peer, pr) in &self.progress {
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
            &self.membership.voters,
            &self.membership.voters_outgoing,
            |id| u64::from(id == me || self.progress.get(&id).is_some_and(|p| p.recent_active)),
        );
        active == 1
    }
}
