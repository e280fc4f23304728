//! Invariants of one node, checked after every input in debug builds (as TigerBeetle's
//! replica does): a bug then fails at the input that caused it, not three messages later
//! in a symptom. Release builds skip the checks; they cost a pass over the progress table.

use crate::progress::ProgressState;
use crate::raft::Raft;

impl Raft {
    /// Panics if the node's state is inconsistent. Runs at the end of `step`, `tick` and
    /// `ready` in debug builds; a no-op in release builds.
    pub(crate) fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            self.assert_invariants();
        }
    }

    fn assert_invariants(&self) {
        let id = self.cfg.id;
        let log = &self.log;
        assert!(
            log.applied <= log.committed && log.committed <= log.last_index(),
            "node {id}: applied {} <= committed {} <= last {} violated",
            log.applied,
            log.committed,
            log.last_index()
        );
        assert!(
            log.persisted() <= log.last_index(),
            "node {id}: persisted beyond the log"
        );
        assert!(
            log.snapshot_index() <= log.applied,
            "node {id}: the snapshot point is not applied"
        );
        assert!(
            self.leadership.is_none() || self.campaign.is_none(),
            "node {id}: leader and candidate at once"
        );
        assert_eq!(
            self.configs.current_index().max(log.snapshot_index()),
            self.configs.current_index(),
            "node {id}: the configuration in force predates the snapshot point"
        );
        if let Some(e) = log.entry(self.configs.current_index()) {
            assert_eq!(
                e.kind,
                crate::types::EntryKind::ConfChange,
                "node {id}: the configuration in force is not a configuration entry"
            );
        }
        self.assert_inbox_invariants();
        if self.campaign.is_some() {
            assert!(
                self.may_campaign(),
                "node {id}: a node that votes in no configuration in force campaigns"
            );
        }
        if let Some(campaign) = &self.campaign {
            assert_eq!(
                self.leader, None,
                "node {id}: a candidate follows no leader"
            );
            assert_eq!(
                campaign.votes.get(&id),
                Some(&true),
                "node {id}: a campaign counts its own vote"
            );
            if !campaign.pre {
                assert_eq!(
                    self.vote,
                    Some(id),
                    "node {id}: a candidate voted for itself"
                );
            }
        }
        if let Some(lead) = &self.leadership {
            assert_eq!(self.leader, Some(id), "node {id}: a leader follows itself");
            assert_eq!(
                self.vote,
                Some(id),
                "node {id}: a leader voted for itself in its term"
            );
            // A leader removing itself leads until the configuration without it commits.
            assert!(
                self.membership().is_voter(id) || self.configs.current_index() > log.committed,
                "node {id}: a leader must be a voter of a committed configuration"
            );
            for peer in self.peers() {
                assert!(
                    lead.progress.contains_key(&peer),
                    "node {id}: leader without progress for member {peer}"
                );
            }
            for peer in lead.progress.keys() {
                assert!(
                    self.membership().is_member(*peer) || lead.departing.contains_key(peer),
                    "node {id}: leader tracks {peer}, neither member nor departing"
                );
            }
            for peer in lead.departing.keys() {
                assert!(
                    !self.membership().is_member(*peer),
                    "node {id}: member {peer} listed as departing"
                );
            }
            assert!(
                !lead.progress.contains_key(&id),
                "node {id}: a leader tracks itself"
            );
            for (peer, pr) in &lead.progress {
                assert!(
                    pr.match_index <= log.last_index(),
                    "node {id}: follower {peer} matches {} beyond our last index {}",
                    pr.match_index,
                    log.last_index()
                );
                assert!(
                    pr.match_index < pr.next_index,
                    "node {id}: follower {peer} next {} <= match {}",
                    pr.next_index,
                    pr.match_index
                );
                if let ProgressState::Snapshot { .. } = pr.state {
                    assert!(
                        pr.snapshot_acked <= pr.snapshot_sent,
                        "node {id}: follower {peer} acknowledged snapshot bytes never sent"
                    );
                }
            }
            assert!(
                lead.term_start_index > 0 && lead.term_start_index <= log.last_index(),
                "node {id}: the term's first entry {} is not in the log",
                lead.term_start_index
            );
            if let Some(term) = log.term(lead.term_start_index) {
                assert_eq!(
                    term, self.term,
                    "node {id}: the term's first entry is of another term"
                );
            }
            if log.committed >= lead.term_start_index {
                assert!(
                    lead.reads_awaiting_term_commit.is_empty(),
                    "node {id}: reads still wait for a committed term start"
                );
            }
        }
    }

    /// The inbox's bounds and scope (`inbox.rs`): held appends are bounded, belong to
    /// the leader we follow in our term, and all start beyond the end of our log.
    fn assert_inbox_invariants(&self) {
        let id = self.cfg.id;
        let inbox = &self.inbox;
        assert!(
            inbox.len() <= self.cfg.max_held_appends && inbox.bytes() <= self.cfg.max_held_bytes,
            "node {id}: {} held appends, {} bytes, beyond the bounds",
            inbox.len(),
            inbox.bytes()
        );
        if inbox.len() > 0 {
            assert!(
                self.role() == crate::raft::Role::Follower
                    && self.leader.map(|l| (self.term, l)) == inbox.key(),
                "node {id}: appends held for {:?} while following {:?} in term {}",
                inbox.key(),
                self.leader,
                self.term
            );
        }
        if let Some(first) = inbox.first_prev_index() {
            assert!(
                first > self.log.last_index(),
                "node {id}: a held append at prev {first} is within the log (last {})",
                self.log.last_index()
            );
        }
    }
}
