//! AppendEntries, follower side (§5.3): the consistency check, merging, the commit
//! index, and the acknowledgement (sent only once the entries are durable). Appends
//! that arrive ahead of a gap are held and applied once it is filled (`inbox.rs`).

use alloc::vec::Vec;

use crate::inbox::HeldAppend;
use crate::message::MessageBody;
use crate::raft::{Raft, Role};
use crate::types::{Entry, Index, NodeId, Term};

/// What the log made of one append (`Raft::try_append`).
enum AppendOutcome {
    /// Merged: our log matches the leader's up to `last_match`.
    Accepted { last_match: Index },
    /// Our log does not hold (`prev_index`, `prev_term`); the rejection's hint. `gap` is
    /// set when the append starts beyond the end of our log (rather than conflicting
    /// with an entry we hold): the entries are handed back, untouched, for the inbox.
    Rejected {
        index: Index,
        hint_term: Term,
        rejected: Index,
        gap: Option<Vec<Entry>>,
    },
    /// A configuration entry in it is no legal step (counted): no answer.
    Refused,
}

impl Raft {
    /// Follower side of AppendEntries (§5.3), including relayed appends.
    pub(crate) fn handle_append(&mut self, body: MessageBody) {
        // A relayed append goes on unchanged (but for its route) once accepted here.
        let onward = matches!(&body, MessageBody::Append { relay, .. } if !relay.is_empty())
            .then(|| body.clone());
        let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay: _,
            relayed_by,
        } = body
        else {
            return;
        };
        // Same term (handle_term ran): the append's author leads this term.
        if self.role() != Role::Follower || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.inbox.keep_only(self.term, self.leader);
        self.known_commit = self.known_commit.max(commit);
        self.last_leader_contact = Some(self.now);
        self.reset_election_timer();

        // The index every follower that accepts this append holds the leader's log up to.
        let msg_last = entries.last().map_or(prev_index, |e| e.index);
        let direct = onward.is_none() && relayed_by.is_empty();
        let term = self.term;
        let last_match = match self.try_append(prev_index, prev_term, entries, commit) {
            AppendOutcome::Accepted { last_match } => last_match,
            AppendOutcome::Refused => return,
            AppendOutcome::Rejected {
                index,
                hint_term,
                rejected,
                gap,
            } => {
                if direct {
                    if let Some(entries) = gap {
                        if self.hold_append(prev_index, prev_term, entries, commit, stamp) {
                            return;
                        }
                    }
                }
                self.reject_append(leader, term, index, hint_term, rejected, stamp);
                return;
            }
        };
        self.inbox.note_synced(term, leader, last_match);
        // The appends this one reached, applied in order; acknowledged with it.
        let (held_match, held_stamp) = self.apply_held_appends();
        if onward.is_some_and(|append| self.relay_onward(append)) {
            // The last link of the chain answers for this append; what we held is ours
            // to acknowledge.
            if let Some(index) = held_match {
                self.acknowledge(index, held_stamp, Vec::new(), 0);
            }
            return;
        }
        // Acknowledge only once the entries are durable: the leader counts this reply
        // towards a commit. One answer covers the held appends applied with it: the
        // highest match, and the newest stamp (the leader keeps the highest it saw).
        let vouch_index = if relayed_by.is_empty() { 0 } else { msg_last };
        let index = held_match.map_or(last_match, |h| h.max(last_match));
        self.acknowledge(index, stamp.max(held_stamp), relayed_by, vouch_index);
    }

    /// Refuses an append (`index`, `hint_term`: where the leader should probe next;
    /// `rejected`: the append's previous index), after persisting what this Ready holds.
    fn reject_append(
        &mut self,
        leader: NodeId,
        term: Term,
        index: Index,
        hint_term: Term,
        rejected: Index,
        stamp: u64,
    ) {
        let body = MessageBody::AppendResp {
            success: false,
            index,
            hint_term,
            rejected,
            stamp,
            vouch: Vec::new(),
            vouch_index: 0,
        };
        self.send_after_persist(leader, term, body);
    }

    fn acknowledge(
        &mut self,
        index: Index,
        stamp: u64,
        vouch: Vec<crate::types::NodeId>,
        vouch_index: Index,
    ) {
        let Some(leader) = self.leader else {
            return;
        };
        let term = self.term;
        let body = MessageBody::AppendResp {
            success: true,
            index,
            hint_term: 0,
            rejected: 0,
            stamp,
            vouch,
            vouch_index,
        };
        self.send_after_persist(leader, term, body);
    }

    /// The log side of one append: skip what our commit index covers, check that our
    /// log holds (`prev_index`, `prev_term`), check its configurations, merge, and move
    /// the commit index. The same for an append just received and one held (§5.3).
    fn try_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) -> AppendOutcome {
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
        if !self.log.matches(prev_index, prev_term) {
            let (index, hint_term) = self.log.find_conflict_by_term(prev_index, prev_term);
            // Beyond our log (never below the commit index, so nothing was trimmed).
            let gap = (prev_index > self.log.last_index()).then_some(entries);
            return AppendOutcome::Rejected {
                index,
                hint_term,
                rejected: prev_index,
                gap,
            };
        }
        // Configurations in the append take effect once merged, and must each be a legal
        // step from the one before (checked first: a refused append changes nothing).
        let Ok(configs) = self.configs_in_append(prev_index, &entries) else {
            return AppendOutcome::Refused;
        };
        // An empty append proves a match only up to `prev_index`: our log may hold more
        // that the leader's does not.
        let last_match = if entries.is_empty() {
            prev_index
        } else {
            self.log.merge(entries)
        };
        self.note_merged_configs(configs);
        self.log.commit_to(commit.min(last_match));
        AppendOutcome::Accepted { last_match }
    }

    /// An append of our leader starts beyond the end of our log. Once an append of this
    /// leader's term was accepted (we know where we match its log), keep it for when the
    /// gap fills (entries; within the inbox's bounds) and answer as a heartbeat at that
    /// match point would be answered: no rewind. Returns false when it must be rejected
    /// instead: not synced yet (a new leader probing must learn where our log ends), or
    /// the bounds are reached.
    fn hold_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        stamp: u64,
    ) -> bool {
        let (term, Some(leader)) = (self.term, self.leader) else {
            return false;
        };
        if self.cfg.max_held_appends == 0 {
            return false;
        }
        let Some(synced_to) = self.inbox.synced_to(term, leader) else {
            return false;
        };
        // The inbox's invariant: synced_to never exceeds our log (nothing of this leader's
        // term truncates below it, and a snapshot clears the inbox).
        if synced_to > self.log.last_index() {
            return false;
        }
        if !entries.is_empty() {
            let (max, bytes) = (self.cfg.max_held_appends, self.cfg.max_held_bytes);
            if !self
                .inbox
                .hold(max, bytes, prev_index, (prev_term, entries, commit, stamp))
            {
                return false;
            }
        }
        // What a heartbeat at (synced_to, its term) would do: the commit index up to our
        // proven match, and a success there (the leader does not rewind; the stamp
        // counts for its reads and lease).
        self.log.commit_to(commit.min(synced_to));
        self.acknowledge(synced_to, stamp, Vec::new(), 0);
        true
    }

    /// Applies, in order, the held appends our log now reaches, each through
    /// `try_append` as if it had just arrived. Returns the highest match they proved (if
    /// any was accepted) and the newest stamp among them (0 if none).
    fn apply_held_appends(&mut self) -> (Option<Index>, u64) {
        let (mut matched, mut newest_stamp) = (None::<Index>, 0);
        let (term, Some(leader)) = (self.term, self.leader) else {
            return (None, 0);
        };
        while let Some((prev_index, held)) = self.inbox.take_ready(self.log.last_index()) {
            let HeldAppend {
                prev_term,
                entries,
                commit,
                stamp,
                ..
            } = held;
            match self.try_append(prev_index, prev_term, entries, commit) {
                AppendOutcome::Accepted { last_match } => {
                    self.inbox.note_synced(term, leader, last_match);
                    matched = Some(matched.map_or(last_match, |m| m.max(last_match)));
                    newest_stamp = newest_stamp.max(stamp);
                }
                AppendOutcome::Refused => {}
                AppendOutcome::Rejected {
                    index,
                    hint_term,
                    rejected,
                    ..
                } => {
                    // It reaches into our log but conflicts with an entry there (a stale
                    // suffix of an older term): answered as a late delivery would be.
                    self.reject_append(leader, term, index, hint_term, rejected, stamp);
                }
            }
        }
        (matched, newest_stamp)
    }
}
