//! Leader election (§5.2) with Pre-Vote (§9.6 of the thesis).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use bytes::Bytes;

use crate::hostile;
use crate::leadership::{Campaign, Departure, Leadership};
use crate::message::MessageBody;
use crate::progress::Progress;
use crate::quorum::{joint_vote, VoteResult};
use crate::raft::Raft;
use crate::types::{EntryKind, Index, NodeId, Term};

/// Times a (pre-)candidate re-asks voters that have not answered, within one round.
const MAX_VOTE_RETRIES: u32 = 3;

/// A round of vote requests waiting for answers: when to ask the silent voters again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VoteRetry {
    pub at: u64,
    pub interval: u64,
    pub left: u32,
}

impl Raft {
    /// Follower and candidate timer: start an election when no leader was heard from.
    pub(crate) fn tick_election(&mut self) {
        if self.now < self.election_deadline {
            self.maybe_retry_votes();
            return;
        }
        if !self.may_campaign() {
            self.reset_election_timer();
            return;
        }
        if hostile::next_term(self.term).is_none() {
            self.refuse_campaign_at_term_limit();
            return;
        }
        // A node outside its newest configuration asks first without raising its term,
        // even with Pre-Vote off: it may have been removed by a configuration that did
        // commit without its hearing of it, and its real elections would then disrupt
        // the cluster every election timeout (with Pre-Vote its requests are refused, its
        // log being behind, and nothing changes).
        if self.cfg.pre_vote || !self.membership().is_voter(self.cfg.id) {
            self.pre_campaign();
        } else {
            self.campaign(false);
        }
    }

    /// Whether this node may start an election: it votes in a configuration that may
    /// still be in force — the one in force at its commit index, or a newer one in its
    /// log (`ConfigHistory::not_superseded`). Being a voter of the newest configuration
    /// is not required: one that removes this node and is not known to be committed
    /// may yet need it (thesis §4.2.2: "a server that is not part of its own latest
    /// configuration should still start new elections, as it might still be needed
    /// until the C_new entry is committed"). Without that, a removal that reached
    /// only the node it removes deadlocks the cluster: the others' newest
    /// configuration still needs that node's vote, which it refuses them because its
    /// log is longer, and it never campaigned itself (kvsim seed 50035511).
    ///
    /// Votes are still counted in the newest configuration (`count_votes`), where a
    /// node it does not name counts only the others' votes; once elected, such a
    /// leader commits the configuration that removes it and steps down
    /// (`after_commit_advanced`). A node removed by a committed configuration it
    /// knows to be committed never campaigns; the leader keeps it on until it has
    /// learned that (`release_departed`).
    ///
    /// Nor does a node whose log ends before an index it knows is committed
    /// (`known_commit`): no quorum that holds that index would elect it, and the
    /// configurations its log holds may be long superseded. A node re-added under its
    /// old ID on a fresh disk replays the log from the start and, until it reaches its
    /// re-addition, finds itself a voter of the old configurations (kvsim seed
    /// 90024938: two such nodes elected one of them with an old configuration's
    /// majority, and the leader lacked committed entries).
    pub(crate) fn may_campaign(&self) -> bool {
        let me = self.cfg.id;
        self.log.last_index() >= self.known_commit
            && self
                .configs
                .not_superseded(self.log.committed)
                .any(|m| m.is_voter(me))
    }

    /// Whether a candidate whose log ends at `last_index` could hold every entry we know
    /// committed. One that could not can never be a legitimate leader (Leader
    /// Completeness), so refusing it costs no election a correct cluster could win.
    fn holds_known_commit(&self, last_index: Index) -> bool {
        last_index >= self.known_commit || self.cfg.planted_bugs.vote_without_log_check
    }

    /// A lost request or answer would otherwise cost a whole election timeout (a new
    /// round), and with a bare majority alive and lossy links most rounds lose one
    /// (measured: 4 s without a leader after a kill, at 15 % loss with 3 of 5 nodes left).
    /// So a (pre-)candidate asks the voters that have not answered again, after the
    /// retransmission timeout and then twice as long each time, at most
    /// `MAX_VOTE_RETRIES` times per round. Requests are idempotent: a voter that granted
    /// already grants again (the same term, the same candidate).
    fn maybe_retry_votes(&mut self) {
        let now = self.now;
        let voters = self.voter_peers();
        let Some(campaign) = self.campaign.as_mut() else {
            return;
        };
        let Some(retry) = campaign.retry.filter(|r| now >= r.at) else {
            return;
        };
        let pre = campaign.pre;
        let silent: Vec<NodeId> = voters
            .into_iter()
            .filter(|id| !campaign.votes.contains_key(id))
            .collect();
        campaign.retry = (retry.left > 1 && !silent.is_empty()).then(|| VoteRetry {
            at: now + 2 * retry.interval,
            interval: 2 * retry.interval,
            left: retry.left - 1,
        });
        for peer in silent {
            if pre {
                self.send_pre_vote(peer);
            } else {
                self.send_vote(peer, false);
            }
        }
    }

    fn start_vote_retries(&mut self) {
        let interval = self.cfg.retransmit_ticks.max(1);
        let at = self.now + interval;
        if let Some(campaign) = self.campaign.as_mut() {
            campaign.retry = Some(VoteRetry {
                at,
                interval,
                left: MAX_VOTE_RETRIES,
            });
        }
    }

    fn send_pre_vote(&mut self, peer: NodeId) {
        let msg = crate::message::Message {
            from: self.cfg.id,
            to: peer,
            // tick_election checked that the next term exists.
            term: self.term.saturating_add(1),
            body: MessageBody::PreVote {
                last_index: self.log.last_index(),
                last_term: self.log.last_term(),
            },
        };
        self.msgs.push(msg);
    }

    fn send_vote(&mut self, peer: NodeId, transfer: bool) {
        let body = MessageBody::Vote {
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        // Our own vote must be durable before we solicit others'.
        self.send_after_persist(peer, self.term, body);
    }

    /// Our term is at `hostile::MAX_TERM`: raising it could overflow, so we stay a
    /// follower (only a term adopted before the term checks existed gets here).
    fn refuse_campaign_at_term_limit(&mut self) {
        self.stats.campaigns_refused_at_term_limit += 1;
        self.campaign = None;
        self.reset_election_timer();
    }

    /// Asks whether we could win, without touching our term (nothing to persist).
    fn pre_campaign(&mut self) {
        debug_assert!(!self.is_leader(), "a leader does not campaign");
        // Our previous pre-vote round, retries included, heard back from fewer voters
        // than a majority (ourselves counted): we are cut off in a minority, and
        // re-asking within the round only spends messages the partition drops
        // (`Config::quiet_cut_off_pre_votes`). On a lossy link a round that asked every
        // voter four times almost never ends so (30 % loss: about 1 in 800 with five
        // voters), so an unlucky round keeps its retries.
        let majority = self.membership().voters.len() / 2 + 1;
        let cut_off = self.cfg.quiet_cut_off_pre_votes
            && self
                .campaign
                .as_ref()
                .is_some_and(|c| c.pre && c.votes.len() < majority);
        self.campaign = Some(Campaign::new(true, self.cfg.id));
        self.leader = None;
        self.reset_election_timer();
        if self.count_votes() == VoteResult::Won {
            self.campaign(false);
            return;
        }
        for peer in self.voter_peers() {
            self.send_pre_vote(peer);
        }
        if !cut_off {
            self.start_vote_retries();
        }
    }

    /// A real election: new term, vote for ourselves, ask the others (§5.2).
    pub(crate) fn campaign(&mut self, transfer: bool) {
        debug_assert!(!self.is_leader(), "a leader does not campaign");
        let Some(next_term) = hostile::next_term(self.term) else {
            self.refuse_campaign_at_term_limit();
            return;
        };
        self.campaign = Some(Campaign::new(false, self.cfg.id));
        self.term = next_term;
        self.vote = Some(self.cfg.id);
        self.leader = None;
        self.last_leader_contact = None;
        self.reset_election_timer();
        if self.count_votes() == VoteResult::Won {
            self.become_leader();
            return;
        }
        for peer in self.voter_peers() {
            self.send_vote(peer, transfer);
        }
        self.start_vote_retries();
    }

    /// The outcome of the current campaign (`Pending` if there is none).
    fn count_votes(&self) -> VoteResult {
        let Some(campaign) = &self.campaign else {
            return VoteResult::Pending;
        };
        joint_vote(
            &self.membership().voters,
            &self.membership().voters_outgoing,
            |id| campaign.votes.get(&id).copied(),
        )
    }

    pub(crate) fn handle_pre_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_index: Index,
        last_term: Term,
    ) {
        // Grant only if the asker could legitimately win: its term would be newer, its log
        // is at least as up to date, and we do not hear from a live leader.
        let granted = term > self.term
            && !self.in_lease()
            && self.knows_configuration()
            && self.holds_known_commit(last_index)
            && self.pre_vote_log_ok(last_index, last_term);
        let reply_term = if granted { term } else { self.term };
        let leader = if granted { None } else { self.leader };
        self.msgs.push(crate::message::Message {
            from: self.cfg.id,
            to: from,
            term: reply_term,
            body: MessageBody::PreVoteResp { granted, leader },
        });
    }

    /// A refusal's leader hint is not contact with that leader: adopting it would let
    /// nodes keep a dead leader alive by telling each other about it.
    pub(crate) fn handle_pre_vote_resp(&mut self, from: NodeId, term: Term, granted: bool) {
        let next_term = hostile::next_term(self.term);
        let Some(campaign) = self.campaign.as_mut().filter(|c| c.pre) else {
            return;
        };
        if granted && Some(term) != next_term {
            return;
        }
        campaign.votes.insert(from, granted);
        match self.count_votes() {
            VoteResult::Won => self.campaign(false),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    pub(crate) fn handle_vote(&mut self, from: NodeId, last_index: Index, last_term: Term) {
        // Terms already agree (handle_term). Grant at most one vote per term (§5.2), and only
        // to a log at least as up to date as ours (§5.4.1).
        let can_vote = self.vote.is_none_or(|v| v == from)
            && self.leader.is_none()
            && self.knows_configuration()
            && self.holds_known_commit(last_index);
        let up_to_date = self.log.is_up_to_date(last_index, last_term)
            || self.cfg.planted_bugs.vote_without_log_check;
        let granted = can_vote && up_to_date;
        if granted {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        let term = self.term;
        // The vote must be durable before the candidate hears of it.
        self.send_after_persist(from, term, MessageBody::VoteResp { granted });
    }

    /// A node that knows no configuration yet (it joins with an empty disk) grants no
    /// vote: its empty log would grant one to any candidate, and a node re-added under
    /// the ID of a voter whose disk was lost could otherwise help a stale candidate win
    /// with the old configuration's majority. It learns the configuration from the
    /// leader (a snapshot or the log) before it is ever a voter.
    fn knows_configuration(&self) -> bool {
        !self.membership().is_unknown()
    }

    fn pre_vote_log_ok(&self, last_index: Index, last_term: Term) -> bool {
        self.log.is_up_to_date(last_index, last_term)
            || self.cfg.planted_bugs.vote_without_log_check
    }

    pub(crate) fn handle_vote_resp(&mut self, from: NodeId, granted: bool) {
        let Some(campaign) = self.campaign.as_mut().filter(|c| !c.pre) else {
            return;
        };
        campaign.votes.insert(from, granted);
        match self.count_votes() {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    pub(crate) fn become_leader(&mut self) {
        self.campaign = None;
        self.leader = Some(self.cfg.id);
        let next = self.log.last_index() + 1;
        let now = self.now;
        let backoff = self.rto_ticks();
        let progress: BTreeMap<NodeId, Progress> = self
            .peers()
            .into_iter()
            .map(|id| (id, Progress::new(next, now, backoff)))
            .collect();
        self.leadership = Some(Leadership::new(
            progress,
            now,
            self.cfg.election_timeout_ticks,
        ));
        self.track_inherited_departures(next, now, backoff);
        // Commit an entry of our own term at once: only then do we know which entries are
        // committed (§5.4.2, §8), and only then may we serve reads.
        let start = self.append_own_entry(EntryKind::Noop, Bytes::new());
        if let Some(lead) = self.leadership.as_mut() {
            lead.term_start_index = start;
        }
        for peer in self.peers() {
            self.send_append(peer);
        }
    }

    /// New leader: the nodes a configuration of our log removes that is not known to be
    /// committed (members of one in force at our commit index or later, not of the
    /// newest) are departing, as if we had appended that configuration ourselves: we
    /// send to them until they hold it and know it committed (`release_departed`), or
    /// they would go on campaigning (`may_campaign`) once it commits without them.
    fn track_inherited_departures(&mut self, next: Index, now: u64, backoff: u64) {
        let me = self.cfg.id;
        let members = self.membership().members();
        let removed_at = self.configs.current_index();
        let removed: BTreeSet<NodeId> = self
            .configs
            .not_superseded(self.log.committed)
            .flat_map(|m| m.members())
            .filter(|id| *id != me && !members.contains(id))
            .collect();
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        for id in removed {
            lead.progress.insert(id, Progress::new(next, now, backoff));
            lead.departing.insert(
                id,
                Departure {
                    removed_at,
                    committed_by_stamp: None,
                },
            );
        }
    }
}
