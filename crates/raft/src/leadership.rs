//! What a node holds only while it leads a term, and what it holds only while it campaigns.
//!
//! The node keeps each as an `Option` ([`crate::Raft`]'s `leadership` and `campaign`):
//! becoming leader or candidate creates the value, stepping down drops it, so nothing of a
//! term's leadership (follower progress, stamps, pending reads) can leak
//! into a later term, and what does survive a term change — the log, the term and vote,
//! the election timer, the snapshot, the round-trip estimate (the peers are the same) —
//! is what stays in `Raft` itself.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::election::VoteRetry;
use crate::progress::Progress;
use crate::stamp::StampClock;
use crate::transfer::Transfer;
use crate::types::{Index, NodeId};

/// A read waiting for a quorum to confirm leadership (ReadIndex, §6.4 of the thesis).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingRead {
    pub ctx: u64,
    pub index: Index,
    /// Confirmed once a quorum echoed a stamp at least this large: a message sent after
    /// the read arrived.
    pub stamp_required: u64,
}

/// A node removed by one of our configuration entries, still sent appends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Departure {
    /// The index of the configuration entry that removed it.
    pub removed_at: Index,
    /// The newest stamp issued before our commit index reached `removed_at` (`None`
    /// until it does). Every append stamped above it carries a commit index at or above
    /// `removed_at`, so an acknowledgement of one, matching up to `removed_at` or
    /// beyond, proves the node knows its removal committed (a follower commits up to
    /// the smaller of the append's commit index and the end of what it matched).
    pub committed_by_stamp: Option<u64>,
}

/// The leader's state for one term.
///
/// Invariants (checked by `Raft::check_invariants` in debug builds): there is a
/// `Progress` for every member but ourselves, and for the departing nodes, and for no
/// one else; `term_start_index` holds an entry of the leader's term; reads wait in
/// `reads_awaiting_term_commit` only while that entry is uncommitted.
#[derive(Debug)]
pub(crate) struct Leadership {
    /// What we know of each follower (voters and learners alike, and departing nodes).
    pub progress: BTreeMap<NodeId, Progress>,
    /// Nodes a configuration entry of ours removed: they are still sent appends (they
    /// count for nothing) until they hold that entry *and know it committed*, so they
    /// learn they were removed and stop campaigning (`reconfig.rs`; a node whose
    /// removal is not known to be committed may still campaign, `may_campaign`).
    pub departing: BTreeMap<NodeId, Departure>,
    /// Stamps of the messages sent in this term (leases, ReadIndex, RTT samples).
    pub stamps: StampClock,
    /// Index of this leader's first entry (its no-op); reads wait until it commits.
    pub term_start_index: Index,
    /// The tick this node became leader. Until an election timeout has passed since, a
    /// follower it has not heard from yet may be alive all the same (its first answer
    /// is on the way): health-based refusals are then only provisional (`reconfig.rs`).
    pub elected_at: u64,
    /// When CheckQuorum next asks whether a quorum was heard from.
    pub check_quorum_deadline: u64,
    /// Since when the oldest uncommitted entry of this term has been waiting.
    pub commit_wait_since: Option<u64>,
    /// ReadIndex reads waiting for a quorum's echo, oldest first (stamps increase).
    pub pending_reads: VecDeque<PendingRead>,
    /// Reads that arrived before this term's first entry committed.
    pub reads_awaiting_term_commit: Vec<u64>,
    /// New entries were proposed since the last Ready: send them out once, batched.
    pub replicate_needed: bool,
    /// A leadership transfer in progress (transfer.rs): no proposals meanwhile.
    pub transfer: Option<Transfer>,
    /// `TimeoutNow` went out in this term, so the lease is gone for good: its target
    /// campaigns with votes that skip the voters' lease check, and may win at any time
    /// (even after the transfer is abandoned here: the message may be late). Reads take
    /// the ReadIndex round from then on.
    pub lease_given_up: bool,
    /// Chains sent in this term, and chains answered by their tail (`relay.rs`): their
    /// ratio estimates how often a chain arrives whole (`chain_retry_delay`).
    pub chains_sent: u64,
    pub chains_answered: u64,
}

impl Leadership {
    /// A new term's leadership over `progress`, before its no-op is appended.
    /// `now` is the tick of the election; CheckQuorum first asks an election timeout later.
    pub(crate) fn new(
        progress: BTreeMap<NodeId, Progress>,
        now: u64,
        election_timeout_ticks: u64,
    ) -> Self {
        Leadership {
            progress,
            departing: BTreeMap::new(),
            stamps: StampClock::default(),
            term_start_index: 0,
            elected_at: now,
            check_quorum_deadline: now + election_timeout_ticks,
            commit_wait_since: None,
            pending_reads: VecDeque::new(),
            reads_awaiting_term_commit: Vec::new(),
            replicate_needed: false,
            transfer: None,
            lease_given_up: false,
            chains_sent: 0,
            chains_answered: 0,
        }
    }

    /// The contexts of every read this leadership will now never answer, oldest first:
    /// what a deposed leader hands back as `aborted_reads`.
    pub(crate) fn into_unfinished_reads(self) -> impl Iterator<Item = u64> {
        self.pending_reads
            .into_iter()
            .map(|r| r.ctx)
            .chain(self.reads_awaiting_term_commit)
    }
}

/// A (pre-)candidate's election round.
///
/// Invariant: `votes` holds our own grant from the start; a real (not pre-) campaign
/// is in the term we voted for ourselves in.
#[derive(Debug)]
pub(crate) struct Campaign {
    /// Pre-Vote round (the term is not raised yet) rather than a real election.
    pub pre: bool,
    /// The answers so far, ours included.
    pub votes: BTreeMap<NodeId, bool>,
    /// When to ask the silent voters again, while retries are left.
    pub retry: Option<VoteRetry>,
}

impl Campaign {
    /// A round in which only `me` has voted (for itself).
    pub(crate) fn new(pre: bool, me: NodeId) -> Self {
        Campaign {
            pre,
            votes: BTreeMap::from([(me, true)]),
            retry: None,
        }
    }
}
