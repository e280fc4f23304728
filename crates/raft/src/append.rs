//! AppendEntries, follower side (§5.3): the consistency check, merging, the commit
//! index, and the acknowledgement (sent only once the entries are durable).

use alloc::vec::Vec;

use crate::message::MessageBody;
use crate::raft::{Raft, Role};

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
        self.last_leader_contact = Some(self.now);
        self.reset_election_timer();

        // The index every follower that accepts this append holds the leader's log up to.
        let msg_last = entries.last().map_or(prev_index, |e| e.index);

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
        // Configurations in the append take effect once merged, and must each be a legal
        // step from the one before (checked first: a refused append changes nothing).
        let Ok(configs) = self.configs_in_append(prev_index, &entries) else {
            return;
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
        if onward.is_some_and(|append| self.relay_onward(append)) {
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
}
