//! Chain replication of new entries (`Config::relay`): the leader sends a fresh append to
//! the first eager follower only; each follower passes it on, once durable, to the next,
//! and the last one answers the leader for all of them (`vouch`). One message fewer per
//! commit than a star. A lost chain is retried as a chain (with `rotate_chain`, once);
//! further retransmissions fall back to direct appends.

use alloc::vec::Vec;

use crate::config::Fanout;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::NodeId;

/// Chains of a term seen before `chain_retry_delay` trusts their answered ratio.
const MIN_CHAINS_SEEN: u64 = 16;

/// Chains answered by their tail, in percent of those sent, above which a lost chain's
/// retry is deferred (`chain_retry_delay`): with 20 % reads it keeps at least 64 % of the
/// answers immediate, and 50 % even with no reads at all.
const DEFER_MIN_ANSWERED_PERCENT: u64 = 55;

impl Raft {
    /// Chain replication: one append to the first of `chain`, relayed by each follower to
    /// the next once durable. Only when every follower in the chain expects the same next
    /// index, so one `prev` fits all — or, with `rotate_chain`, from the lowest next index
    /// among them (the lowest unacknowledged one while retries are deferred, so that a
    /// lost chain's entries ride along: `chain_retry_delay`): a follower that holds more
    /// just finds those entries matching (an append truncates only at a conflict).
    /// Returns false (nothing sent) otherwise, or (rotated) when every follower of the
    /// chain was already sent all of it and this is not a `retry`.
    pub(crate) fn send_chained_append(&mut self, chain: &[NodeId], retry: bool) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(&first) = chain.first() else {
            return false;
        };
        let rotate = self.cfg.rotate_chain;
        let deferred = self.chain_retry_delay();
        // With deferred retries a chain also carries what its followers were sent but
        // have not acknowledged (a lost chain's entries); otherwise only what they were
        // not sent yet, so a second call before the answers sends nothing twice.
        let from = |p: &crate::progress::Progress| {
            if deferred.is_some() {
                p.match_index + 1
            } else {
                p.next_index
            }
        };
        let start = if rotate {
            chain
                .iter()
                .map(|&id| self.progress(id).map_or(0, from))
                .min()
        } else {
            self.progress(first).map(|p| p.next_index)
        };
        let Some(next) = start.filter(|&n| n > 0) else {
            return false;
        };
        // Rotated, and not a retry: if every follower of the chain was already sent all
        // of it (possible while retries are deferred, the chain then starting at the
        // lowest unacknowledged index), there is nothing new to send: the chain in
        // flight, or its deferred retry, covers it. A version that started every chain
        // there without this check sent identical chains on every call before the
        // answers came back (three in one wake-up in advanced-3, measured).
        let newest_sent = chain
            .iter()
            .map(|&id| self.progress(id).map_or(0, |p| p.sent_up_to))
            .min()
            .unwrap_or(0);
        let fits = chain.iter().all(|&id| {
            self.progress(id).is_some_and(|p| {
                p.state == ProgressState::Replicate
                    && (rotate || p.next_index == next)
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
        if !fits || chain.len() < 2 || (rotate && !retry && last <= newest_sent) {
            return false;
        }
        let now = self.now;
        let Some(lead) = self.leadership.as_mut() else {
            return false;
        };
        let stamp = lead.stamps.issue(now);
        lead.chains_sent += 1;
        for id in chain {
            let Some(pr) = lead.progress.get_mut(id) else {
                continue; // `fits` saw every one of them
            };
            pr.last_sent_tick = now;
            pr.note_sent(last);
            pr.next_index = last + 1;
            pr.inflight.push_back(last);
            if let Some(delay) = deferred {
                // This chain carries everything the follower has not acknowledged: a
                // new whole attempt, so its retry clock starts now, and runs long.
                pr.unacked_since = Some(now);
                pr.backoff_ticks = pr.backoff_ticks.max(delay);
            } else if pr.unacked_since.is_none() {
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

    /// How long a chain that got no answer waits before it is sent again, when that is
    /// longer than the retransmission timeout: `Config::defer_chain_retry_ticks`, once at
    /// least `MIN_CHAINS_SEEN` chains of this term were sent and at least
    /// `DEFER_MIN_ANSWERED_PERCENT` of them were answered by their tail.
    ///
    /// Why it pays, and why only then: a retried chain costs another three messages,
    /// while the next write's chain (rotated chains start at the lowest unacknowledged
    /// index of their followers) carries the lost entries for free. The price is the
    /// latency of the writes whose chain was lost: they wait for the next write, or this
    /// delay. When most chains arrive whole, those writes are a minority of the answers
    /// and the median latency is that of the writes answered at once; when chains are
    /// lost more often than not (30 % loss: 34 % arrive whole), the lost ones would set
    /// the median, so retries stay at the retransmission timeout. The ratio does not
    /// depend on this choice (deferring changes when chains are retried, not how often
    /// one arrives), so the decision cannot feed on itself.
    pub(crate) fn chain_retry_delay(&self) -> Option<u64> {
        let delay = self.cfg.defer_chain_retry_ticks;
        let lead = self.leadership.as_ref()?;
        let enough = lead.chains_sent >= MIN_CHAINS_SEEN
            && lead.chains_answered * 100 >= lead.chains_sent * DEFER_MIN_ANSWERED_PERCENT;
        (delay > 0 && self.cfg.rotate_chain && self.cfg.relay && enough)
            .then_some(delay.max(self.rto_ticks()))
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
        // Rotated chains may span followers at different points (`send_chained_append`),
        // so their followers need not agree on where they stand: each timed out is
        // enough. Without that, a lost chain over two such followers was retried as two
        // direct appends with their answers (and a widening append besides: six
        // messages, measured in advanced-4 after its kill, where three followers are
        // left and consecutive chains overlap).
        // Only its first retry goes down the chain, though: a chain whose head is cut off
        // by a partition never reaches its live tail, and retried whole it stalled every
        // commit for the half second until the head stopped counting as healthy
        // (measured in advanced-1). After that, each follower is retried directly.
        let rotate = self.cfg.rotate_chain;
        let first_retry = 2 * self.rto_ticks();
        let all_lost = chain.len() >= 2
            && chain.iter().all(|&id| {
                self.progress(id).is_some_and(|p| {
                    p.state == ProgressState::Replicate
                        && if rotate {
                            p.backoff_ticks < first_retry
                        } else {
                            p.match_index == matched && p.backoff_ticks == backoff
                        }
                        && p.unacked_since.is_some_and(|t| now >= t + p.backoff_ticks)
                })
            });
        // A chain whose entries all committed through other followers is not retried:
        // the timer loop rewinds its followers instead (`Config::lazy_committed_catch_up`).
        let committed = self.log.committed;
        let all_committed = chain
            .iter()
            .all(|&id| self.progress(id).is_some_and(|p| p.sent_up_to <= committed));
        if !all_lost || (self.cfg.lazy_committed_catch_up && all_committed) {
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
        if self.send_chained_append(&chain, true) {
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
