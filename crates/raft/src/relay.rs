//! Chain replication of new entries (`Config::relay`): the leader sends a fresh append to
//! the first eager follower only; each follower passes it on, once durable, to the next,
//! and the last one answers the leader for all of them (`vouch`). One message fewer per
//! commit than a star. Retransmissions fall back to direct appends.

use alloc::vec::Vec;

use crate::config::Fanout;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::NodeId;

impl Raft {
    /// Chain replication: one append to the first of `chain`, relayed by each follower to
    /// the next once durable. Only when every follower in the chain expects the same next
    /// index, so one `prev` fits all. Returns false (nothing sent) otherwise.
    pub(crate) fn send_chained_append(&mut self, chain: &[NodeId]) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(&first) = chain.first() else {
            return false;
        };
        let Some(next) = self.progress(first).map(|p| p.next_index) else {
            return false;
        };
        let fits = chain.iter().all(|&id| {
            self.progress(id).is_some_and(|p| {
                p.state == ProgressState::Replicate
                    && p.next_index == next
                    && p.can_send(max_inflight)
            })
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
        let Some(lead) = self.leadership.as_mut() else {
            return false;
        };
        let stamp = lead.stamps.issue(now);
        for id in chain {
            let Some(pr) = lead.progress.get_mut(id) else {
                continue; // `fits` saw every one of them
            };
            pr.last_sent_tick = now;
            pr.note_sent(last);
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
        self.send(first, body);
        true
    }

    /// If the eager followers of a relayed append all timed out together at the same
    /// point, the chain lost a message somewhere: send the chain again (one message, and
    /// a follower that already has the entries just passes them on). Returns the
    /// followers retried.
    pub(crate) fn retry_lost_chain(&mut self, max_backoff: u64) -> Vec<NodeId> {
        if !self.cfg.relay || !matches!(self.cfg.fanout, Fanout::Quorum { .. }) {
            return Vec::new();
        }
        let now = self.now;
        let chain = self.eager_peers();
        let Some(first) = chain.first().and_then(|&id| self.progress(id)) else {
            return Vec::new();
        };
        let (matched, backoff) = (first.match_index, first.backoff_ticks);
        let all_lost = chain.len() >= 2
            && chain.iter().all(|&id| {
                self.progress(id).is_some_and(|p| {
                    p.state == ProgressState::Replicate
                        && p.match_index == matched
                        && p.backoff_ticks == backoff
                        && p.unacked_since.is_some_and(|t| now >= t + p.backoff_ticks)
                })
            });
        if !all_lost {
            return Vec::new();
        }
        for &id in &chain {
            let Some(pr) = self.progress_mut(id) else {
                continue;
            };
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

    /// Follower: passes a relayed append we accepted on, unchanged but for its route, to
    /// the next follower of its `relay` list, once durable here (the next follower then
    /// vouches for us). Returns false when we are the last link, which answers the leader
    /// itself.
    pub(crate) fn relay_onward(&mut self, append: MessageBody) -> bool {
        let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay,
            mut relayed_by,
        } = append
        else {
            return false;
        };
        let Some((&next, rest)) = relay.split_first() else {
            return false;
        };
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
        let term = self.term;
        self.send_after_persist(next, term, body);
        true
    }
}
