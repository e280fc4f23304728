//! The Raft node: state, inputs and the [`Ready`] batch of effects.
//!
//! Role-specific handlers live beside this file: `election.rs` (timeouts, Pre-Vote,
//! votes), `replication.rs` (appends, commit), `read.rs` (lease and ReadIndex reads).

use alloc::vec::Vec;

use bytes::Bytes;

use crate::config::Config;
use crate::config_history::ConfigHistory;
use crate::hostile;
use crate::inbox::Inbox;
use crate::leadership::{Campaign, Leadership};
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::rng::Rng;
use crate::rtt::RttEstimator;
use crate::snapshot::{IncomingSnapshot, SnapshotChunk};
use crate::types::{Entry, EntryKind, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};

/// Where a node stands in its term (§5.1, plus Pre-Vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one): answers requests, starts nothing.
    Follower,
    /// Asking whether it could win (Pre-Vote) without having changed its term.
    PreCandidate,
    /// Campaigning in a term it started, having voted for itself.
    Candidate,
    /// Leads its term: the only role that takes proposals and serves reads.
    Leader,
}

/// A read that may be served once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's tag passed to [`Raft::read`].
    pub ctx: u64,
    /// The commit index at the time of the read: serve it once this is applied.
    pub index: Index,
}

/// Why a proposal or a read was refused. Nothing was appended or queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader takes proposals; here is who we think leads, if anyone.
    NotLeader {
        /// The leader this node follows, if it knows one.
        leader: Option<NodeId>,
    },
    /// The uncommitted tail is at its limit: retry later.
    Busy,
    /// The entry could never fit in one message.
    TooLarge,
    /// Leadership is being handed to this node (transfer.rs): propose there once it
    /// leads.
    Transferring {
        /// The transfer's target.
        to: NodeId,
    },
}

/// Everything the driver must do, in this order: write `snapshot_chunks` to its snapshot
/// sink, install `snapshot` from it (save it durably, align the log store to it, replace
/// the state machine with it, hand it back with [`Raft::set_snapshot`]), persist `hard_state`
/// and `entries` (then report with [`Raft::on_persisted`]), send `messages` (these may go
/// before the persist completes) and `persisted_messages` (only after it), apply
/// `committed_entries` (they follow the snapshot), serve `read_states` once applied, and
/// answer `aborted_reads` with "not leader".
#[derive(Debug, Default)]
pub struct Ready {
    /// Chunks of a snapshot arriving from the leader, in order: write each to the sink
    /// for its `meta` (offset 0 starts a new one, dropping any unfinished transfer).
    /// Their acknowledgements are among `persisted_messages`.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// The snapshot whose last chunk is the last chunk with `done` in `snapshot_chunks`:
    /// make it durable and install it from the sink right after writing that chunk (the
    /// chunks after it belong to a newer transfer; complete transfers before it are
    /// superseded by it), before anything else is persisted or applied.
    pub snapshot: Option<SnapshotMeta>,
    /// Term, vote and commit hint, when they changed: persist with `entries`.
    pub hard_state: Option<HardState>,
    /// New log entries to persist (they may replace a conflicting suffix).
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages that may be sent only once `hard_state` and `entries` are durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads that may be served once their index is applied.
    pub read_states: Vec<ReadState>,
    /// Contexts of reads that will never complete here (leadership was lost).
    pub aborted_reads: Vec<u64>,
}

impl Ready {
    /// Whether the batch holds nothing to do.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.snapshot_chunks.is_empty()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
            && self.aborted_reads.is_empty()
    }
}

/// One Raft node: feed it [`Raft::tick`], [`Raft::step`], [`Raft::propose`] and
/// [`Raft::read`]; drain its effects with [`Raft::ready`]; report durability with
/// [`Raft::on_persisted`].
///
/// Role-specific state lives in `leadership` (only while leading) and `campaign` (only
/// while a (pre-)candidate); at most one of them is set, and the role is read off them.
/// Everything else survives a change of role.
pub struct Raft {
    pub(crate) cfg: Config,
    pub(crate) rng: Rng,
    pub(crate) now: u64,

    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    /// The configurations of the log (`config_history.rs`); the newest is in force.
    pub(crate) configs: ConfigHistory,
    /// This node was a member of some configuration it held (since it started): only
    /// then does a configuration without it mean it was removed. A node joining sees
    /// configurations without itself first (a snapshot taken before it was added).
    pub(crate) was_member: bool,
    pub(crate) log: RaftLog,

    // Elections (every role).
    pub(crate) election_deadline: u64,
    /// When we last heard from the leader we follow (for the lease check on votes).
    /// The highest commit index a leader of our term has told us (in an append, or a
    /// snapshot's index). Every index up to it is committed in the cluster, even where
    /// our log does not reach it yet, so a log that ends before it cannot belong to a
    /// legitimate leader (Leader Completeness): we do not campaign with such a log, nor
    /// vote for a candidate with one (`election.rs`). Volatile: 0 after a restart.
    pub(crate) known_commit: Index,
    pub(crate) last_leader_contact: Option<u64>,
    /// Until this tick we refuse votes as if we heard from a leader. A node that restarts
    /// has forgotten when it last heard from one, and a leader may still hold a lease that
    /// counted on us; staying out of elections for one timeout keeps that lease safe.
    /// Set on the first tick after construction.
    pub(crate) vote_guard_until: Option<u64>,

    /// Set while a (pre-)candidate: the round's votes and retries.
    pub(crate) campaign: Option<Campaign>,
    /// Set while leading: everything that belongs to this term's leadership.
    pub(crate) leadership: Option<Leadership>,
    /// A ReadIndex round to broadcast in the next Ready (a deferred effect, like
    /// `msgs`); done only if we still lead by then.
    pub(crate) read_broadcast_needed: bool,
    /// Counters of refused or suspicious inputs, for the driver's metrics.
    pub(crate) stats: CoreStats,
    /// Round trips of appends, measured while leading; kept across terms, since the
    /// peers (and the network between us) are the same.
    pub(crate) rtt: RttEstimator,

    // Snapshots (§7).
    /// The latest snapshot of our state machine, sent to followers that need entries we
    /// compacted away.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot arriving from the leader, chunk by chunk.
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// Appends of our leader held ahead of a gap in our log (`inbox.rs`); memory only.
    pub(crate) inbox: Inbox,
    /// A received snapshot the driver must install from its sink (next Ready).
    pub(crate) snapshot_to_install: Option<SnapshotMeta>,
    /// Chunks of the incoming snapshot for the driver's sink (next Ready).
    pub(crate) snapshot_chunks: Vec<SnapshotChunk>,

    // Effects collected for the next Ready.
    pub(crate) msgs: Vec<Message>,
    pub(crate) persisted_msgs: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) aborted_reads: Vec<u64>,
    pub(crate) last_hard_state: HardState,
}

/// Counters of what the core refused or found wrong, since the node started. They only
/// grow; a driver exports them as metrics and logs a line when one moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// While leading, a follower turned out to have lost log entries it had acknowledged
    /// (a wiped or replaced disk): worth an operator's attention.
    pub followers_lost_log: u64,
    /// Messages dropped for a term no honest peer can have (see `hostile::MAX_TERM_JUMP`
    /// and `hostile::MAX_TERM`): never adopted, never persisted.
    pub absurd_terms: u64,
    /// Elections not started because our term is at `hostile::MAX_TERM`: raising it
    /// further could overflow. Only a term adopted before these checks existed gets here.
    pub campaigns_refused_at_term_limit: u64,
    /// Append acknowledgements (or vouches) claiming a match beyond anything we sent that
    /// follower in this term; ignored, so a forged answer cannot commit on a minority.
    pub forged_acks: u64,
    /// Appends whose entries are not contiguous after `prev_index`, whose terms go down,
    /// or that claim a term above the message's; refused whole.
    pub malformed_appends: u64,
    /// Snapshots refused because their membership is not the cluster's.
    pub snapshots_refused: u64,
    /// `TimeoutNow` messages refused: not from the leader we follow in our current term.
    pub timeouts_now_refused: u64,
    /// Appends refused because a configuration entry in them is not a legal step from
    /// the configuration before it (`membership::is_valid_transition`).
    pub illegal_conf_changes: u64,
}

impl Raft {
    /// A fresh node with an empty log.
    pub fn new(cfg: Config, voters: impl IntoIterator<Item = NodeId>) -> Raft {
        Raft::restore(
            cfg,
            Membership::new(voters),
            HardState::default(),
            RaftLog::new(),
        )
    }

    /// A node restarting from durable state: `membership` is the configuration in force
    /// at the log's snapshot point (the snapshot's, or the one the cluster was
    /// bootstrapped with when nothing was compacted yet; empty for a node that joins and
    /// has not learned it), and the log's `ConfChange` entries after it are replayed.
    ///
    /// # Panics
    /// If [`Raft::try_restore`] fails: a misconfigured core, or a log whose
    /// configuration entries do not decode, could not keep its guarantees, and this is a
    /// startup error the operator must fix.
    pub fn restore(cfg: Config, membership: Membership, hs: HardState, log: RaftLog) -> Raft {
        match Raft::try_restore(cfg, membership, hs, log) {
            Ok(raft) => raft,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Raft::restore`], with its refusals as errors: `cfg` fails [`Config::validate`],
    /// `membership` is not valid, or a `ConfChange` entry of the log does not decode or
    /// is no legal step from the configuration before it.
    pub fn try_restore(
        cfg: Config,
        membership: Membership,
        hs: HardState,
        log: RaftLog,
    ) -> Result<Raft, alloc::string::String> {
        use alloc::format;
        if let Err(e) = cfg.validate() {
            return Err(format!("invalid raft config: {e}"));
        }
        if let Err(e) = membership.validate() {
            return Err(format!("invalid membership {membership:?}: {e}"));
        }
        let mut configs = ConfigHistory::new(log.snapshot_index(), membership);
        for index in log.first_index()..=log.last_index() {
            let Some(e) = log.entry(index).filter(|e| e.kind == EntryKind::ConfChange) else {
                continue;
            };
            let m = Membership::from_entry_data(&e.data).ok_or_else(|| {
                format!("the configuration entry at index {index} does not decode")
            })?;
            let legal = crate::membership::is_valid_transition(configs.current(), &m)
                || cfg.planted_bugs.conf_change_without_joint;
            if !legal {
                return Err(format!(
                    "the configuration entry at index {index} is no legal step from the one before it"
                ));
            }
            configs.push(index, e.term, m);
        }
        let was_member = configs.iter().any(|(_, m)| m.is_member(cfg.id));
        // What a leader or snapshot told us before the restart still holds; the snapshot
        // point is committed too.
        let known_commit = hs.known_commit.max(log.snapshot_index());
        let mut raft = Raft {
            rng: Rng::new(cfg.seed),
            cfg,
            now: 0,
            term: hs.term,
            vote: hs.vote,
            leader: None,
            configs,
            was_member,
            log,
            election_deadline: 0,
            last_leader_contact: None,
            known_commit,
            vote_guard_until: None,
            campaign: None,
            leadership: None,
            read_broadcast_needed: false,
            stats: CoreStats::default(),
            rtt: RttEstimator::default(),
            snapshot: None,
            incoming_snapshot: None,
            inbox: Inbox::default(),
            snapshot_to_install: None,
            snapshot_chunks: Vec::new(),
            msgs: Vec::new(),
            persisted_msgs: Vec::new(),
            read_states: Vec::new(),
            aborted_reads: Vec::new(),
            last_hard_state: hs,
        };
        // The commit hint may have been lost (it is written without a sync), but every
        // configuration before the newest is committed: a restarted leader must not tell
        // a member less than that (a re-added member's `known_commit` relies on it).
        let committed = hs.commit.max(raft.configs.predecessor_index());
        raft.log.commit_to(committed);
        raft.reset_election_timer();
        Ok(raft)
    }

    // ----- accessors -----

    /// This node's ID.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// The current role, read off the role-specific state.
    pub fn role(&self) -> Role {
        match (&self.leadership, &self.campaign) {
            (Some(_), _) => Role::Leader,
            (None, Some(c)) if c.pre => Role::PreCandidate,
            (None, Some(_)) => Role::Candidate,
            (None, None) => Role::Follower,
        }
    }
    /// The leader of the current term, if known (ourselves when leading).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Whether this node leads its term.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_some()
    }
    /// The in-memory log.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The highest index known committed.
    pub fn commit_index(&self) -> Index {
        self.log.committed
    }
    /// The membership in force (the latest one in the log, committed or not).
    pub fn membership(&self) -> &Membership {
        self.configs.current()
    }
    /// The index of the entry that set the membership in force (the snapshot point if
    /// no entry after it did).
    pub fn membership_index(&self) -> Index {
        self.configs.current_index()
    }
    /// The membership once every entry up to `index` is applied (for an index at or
    /// below the log's snapshot point: the snapshot's).
    pub fn membership_at(&self, index: Index) -> &Membership {
        self.configs.at(index)
    }
    /// Every membership the log holds, from its snapshot point on: (index, membership),
    /// oldest first. The newest is in force; those above the commit index may yet be
    /// rolled back.
    pub fn membership_history(&self) -> impl Iterator<Item = (Index, &Membership)> {
        self.configs.iter()
    }
    /// Whether this node was a member and the configuration in force no longer names
    /// it: it was removed, takes part in nothing and never campaigns. A driver logs it
    /// and an operator may stop the process. (A node still joining, whose configuration
    /// predates its addition, is not removed: it was never a member yet.)
    pub fn is_removed(&self) -> bool {
        self.was_member && !self.configs.current().is_member(self.cfg.id)
    }
    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Term, vote, commit index and known commit index as they would be persisted now.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
            known_commit: self.known_commit,
        }
    }
    /// Ticks since we last heard from the leader we follow (`None`: never, or no leader).
    /// A leader reports zero.
    pub fn leader_contact_age(&self) -> Option<u64> {
        if self.is_leader() {
            return Some(0);
        }
        self.leader?;
        self.last_leader_contact
            .map(|at| self.now.saturating_sub(at))
    }
    /// How often, while leading, a follower turned out to have lost log entries it had
    /// acknowledged (a wiped or replaced disk): worth an operator's attention.
    pub fn followers_lost_log(&self) -> u64 {
        self.stats.followers_lost_log
    }
    /// Counters of refused or suspicious inputs (see [`CoreStats`]).
    pub fn stats(&self) -> CoreStats {
        self.stats
    }
    /// A leader's view of each follower: (id, match index). Empty unless leading.
    pub fn follower_matches(&self) -> Vec<(NodeId, Index)> {
        self.leadership
            .iter()
            .flat_map(|l| l.progress.iter())
            .map(|(&id, p)| (id, p.match_index))
            .collect()
    }

    // ----- inputs -----

    /// Advances logical time to `now` (never backwards) and fires due timers.
    pub fn tick(&mut self, now: u64) {
        if now > self.now {
            self.now = now;
        }
        if self.vote_guard_until.is_none() {
            self.vote_guard_until = Some(self.now.saturating_add(self.cfg.election_timeout_ticks));
            self.reset_election_timer();
        }
        if self.is_leader() {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.drop_stale_held_appends();
        self.check_invariants();
    }

    /// The earliest tick at which [`Raft::tick`] has something to do.
    pub fn next_deadline(&self) -> u64 {
        if self.is_leader() {
            return self.leader_deadline();
        }
        let retry = self
            .campaign
            .as_ref()
            .and_then(|c| c.retry)
            .map_or(u64::MAX, |r| r.at);
        self.election_deadline.min(retry)
    }

    /// Proposes an application command; returns its log index.
    pub fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError> {
        self.propose_entry(EntryKind::Normal, data)
    }

    pub(crate) fn propose_entry(
        &mut self,
        kind: EntryKind,
        data: Bytes,
    ) -> Result<Index, ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(to) = self.transferring_to() {
            return Err(ProposeError::Transferring { to });
        }
        if data.len() + 64 > self.cfg.max_msg_bytes {
            return Err(ProposeError::TooLarge);
        }
        if self.log.bytes_after(self.log.committed) > self.cfg.max_uncommitted_bytes {
            return Err(ProposeError::Busy);
        }
        let index = self.append_own_entry(kind, data);
        if let Some(lead) = self.leadership.as_mut() {
            // Appends go out in `ready()`, so a burst of proposals shares one message.
            lead.replicate_needed = true;
        }
        Ok(index)
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, msg: Message) {
        self.step_message(msg);
        self.drop_stale_held_appends();
        self.check_invariants();
    }

    fn step_message(&mut self, msg: Message) {
        if msg.to != self.cfg.id || msg.from == self.cfg.id {
            return;
        }
        // Checks that need no state: a refused message changes nothing, not even the term.
        if !hostile::plausible_term(self.term, msg.term) {
            self.stats.absurd_terms += 1;
            return;
        }
        if !hostile::well_formed_append(&msg) {
            self.stats.malformed_appends += 1;
            return;
        }
        if matches!(msg.body, MessageBody::TimeoutNow) && !self.timeout_now_from_our_leader(&msg) {
            return;
        }
        if !self.handle_term(&msg) {
            return;
        }
        match msg.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => self.handle_pre_vote(msg.from, msg.term, last_index, last_term),
            MessageBody::PreVoteResp { granted, .. } => {
                self.handle_pre_vote_resp(msg.from, msg.term, granted)
            }
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => self.handle_vote(msg.from, last_index, last_term),
            MessageBody::VoteResp { granted } => self.handle_vote_resp(msg.from, granted),
            body @ MessageBody::Append { .. } => self.handle_append(body),
            body @ MessageBody::AppendResp { .. } => self.handle_append_resp(msg.from, body),
            MessageBody::TimeoutNow => {
                // Only a node that may campaign at all: a `TimeoutNow` can arrive late,
                // after its transfer was abandoned and the log grew on, when this node
                // no longer holds every entry it knows committed. Such a campaign could
                // never win (Leader Completeness), only depose the leader with its new
                // term (kvsim seed 854, a 7-node run with messages slowed up to 689 ms:
                // the target's log ended at 423 with 425 known committed).
                if !self.is_leader() && self.may_campaign() {
                    self.campaign(true);
                }
            }
            MessageBody::Snapshot {
                meta,
                offset,
                data,
                done,
                stamp,
            } => self.handle_snapshot(msg.from, meta, offset, data, done, stamp),
            MessageBody::SnapshotResp {
                index,
                next_offset,
                success,
                stamp,
            } => self.handle_snapshot_resp(msg.from, index, next_offset, success, stamp),
        }
    }

    /// Whether a `TimeoutNow` may make us campaign (thesis §3.10): only the leader we
    /// follow in our current term hands leadership over, to a follower it has brought up to
    /// date. Anyone else's is refused and counted — a follower (buggy, or a stolen
    /// certificate) would otherwise depose a healthy leader at will, and one of a newer
    /// term would also make us adopt that term and its sender as our leader. A stale one
    /// (an older term) is dropped silently: that is an ordinary late delivery.
    fn timeout_now_from_our_leader(&mut self, msg: &Message) -> bool {
        if msg.term < self.term {
            return false;
        }
        let ok = msg.term == self.term && !self.is_leader() && self.leader() == Some(msg.from);
        if !ok {
            self.stats.timeouts_now_refused += 1;
        }
        ok
    }

    /// The driver made the log durable up to (`index`, `term`).
    pub fn on_persisted(&mut self, index: Index, term: Term) {
        self.log.mark_persisted(index, term);
        if self.is_leader() {
            self.maybe_commit();
        }
    }

    /// Where a snapshot of the state machine at applied index `index` cuts the log, or
    /// `None` if `index` is not applied or no longer in the log.
    pub fn snapshot_meta(&self, index: Index) -> Option<SnapshotMeta> {
        if index > self.log.applied {
            return None;
        }
        Some(SnapshotMeta {
            index,
            term: self.log.term(index)?,
            membership: self.configs.at(index).clone(),
        })
    }

    /// The driver saved `snapshot` durably (taken locally, or loaded at restart): it is
    /// what lagging followers get from now on. Older snapshots are ignored.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        let newer = self
            .snapshot
            .as_ref()
            .is_none_or(|s| s.meta.index < snapshot.meta.index);
        if newer {
            self.snapshot = Some(snapshot);
        }
    }

    /// How many appends this follower holds ahead of a gap in its log, waiting for the
    /// append that fills it (`Config::max_held_appends`).
    pub fn held_appends(&self) -> usize {
        self.inbox.len()
    }

    /// The latest snapshot the core knows of.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Drops the log up to `index`, which a durable snapshot must cover (see
    /// [`Raft::set_snapshot`]); a compaction past the snapshot is ignored, since followers
    /// needing those entries could then be sent neither entries nor a snapshot.
    pub fn compact(&mut self, index: Index) {
        let covered = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        self.log.compact(index.min(covered));
        self.configs.compact(self.log.snapshot_index());
    }

    /// Whether [`Raft::ready`] would return a non-empty batch (or has deferred work).
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.snapshot_to_install.is_some()
            || !self.snapshot_chunks.is_empty()
            || !self.persisted_msgs.is_empty()
            || !self.read_states.is_empty()
            || !self.aborted_reads.is_empty()
            || self.read_broadcast_needed
            || self.leadership.as_ref().is_some_and(|l| l.replicate_needed)
            || self.log.has_unstable()
            || self.log.has_committed_to_apply()
            || self.hard_state() != self.last_hard_state
    }

    /// Takes the pending effects. Committed entries are marked applied when handed out.
    pub fn ready(&mut self) -> Ready {
        let replicate = self
            .leadership
            .as_mut()
            .is_some_and(|l| core::mem::take(&mut l.replicate_needed));
        if replicate {
            self.replicate_new_entries();
        }
        if core::mem::take(&mut self.read_broadcast_needed) {
            // A step-down taken in the same batch as the read already handed the read
            // back (aborted_reads) and dropped the leadership with its followers.
            if self.is_leader() {
                self.broadcast_heartbeat();
            } else if self.cfg.planted_bugs.read_round_after_step_down {
                self.planted_read_round_without_leadership();
            }
        }
        let hs = self.hard_state();
        let hard_state = (hs != self.last_hard_state).then(|| {
            self.last_hard_state = hs;
            hs
        });
        let ready = Ready {
            snapshot_chunks: core::mem::take(&mut self.snapshot_chunks),
            snapshot: self.snapshot_to_install.take(),
            hard_state,
            entries: self.log.take_unstable(),
            messages: core::mem::take(&mut self.msgs),
            persisted_messages: core::mem::take(&mut self.persisted_msgs),
            committed_entries: self.log.take_committed(self.cfg.max_msg_bytes),
            read_states: core::mem::take(&mut self.read_states),
            aborted_reads: core::mem::take(&mut self.aborted_reads),
        };
        self.drop_stale_held_appends();
        self.check_invariants();
        ready
    }

    /// TEST ONLY (`PlantedBugs::read_round_after_step_down`): the deposed leader's crash
    /// as it was before per-role state made it unrepresentable — the read round looked up
    /// each peer in the follower progress that stepping down had emptied.
    #[allow(clippy::unnecessary_operation)]
    fn planted_read_round_without_leadership(&self) {
        let emptied: alloc::collections::BTreeMap<NodeId, crate::progress::Progress> =
            alloc::collections::BTreeMap::new();
        for peer in self.peers() {
            let _ = emptied[&peer].match_index;
        }
    }

    // ----- shared helpers -----

    /// Held appends belong to the leader we follow in our term: a new term, a new
    /// leader, or any role but follower drops them (`inbox.rs`).
    fn drop_stale_held_appends(&mut self) {
        let leader = (self.role() == Role::Follower)
            .then_some(self.leader)
            .flatten();
        self.inbox.keep_only(self.term, leader);
    }

    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        let msg = Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        };
        self.msgs.push(msg);
    }

    pub(crate) fn send_after_persist(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let msg = Message {
            from: self.cfg.id,
            to,
            term,
            body,
        };
        self.persisted_msgs.push(msg);
    }

    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.membership()
            .members()
            .into_iter()
            .filter(|&id| id != self.cfg.id)
            .collect()
    }

    pub(crate) fn voter_peers(&self) -> Vec<NodeId> {
        self.membership()
            .all_voters()
            .into_iter()
            .filter(|&id| id != self.cfg.id)
            .collect()
    }

    pub(crate) fn reset_election_timer(&mut self) {
        let e = self.cfg.election_timeout_ticks;
        self.election_deadline = self.now + self.rng.range(e, 2 * e);
    }

    /// Steps down to follower in `term`, following `leader` if known. Dropping the
    /// leadership or the campaign is all the clearing there is; reads the leadership
    /// still held are handed back in `aborted_reads`.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if let Some(leadership) = self.leadership.take() {
            self.aborted_reads
                .extend(leadership.into_unfinished_reads());
        }
        self.campaign = None;
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.leader = leader;
        if leader.is_some() {
            self.last_leader_contact = Some(self.now);
        }
        self.reset_election_timer();
    }

    /// Common term rules (§5.1, plus Pre-Vote and the lease). Returns false when the
    /// message must be dropped.
    fn handle_term(&mut self, msg: &Message) -> bool {
        use MessageBody::*;
        if msg.term > self.term {
            match &msg.body {
                PreVote { .. } => return true,
                PreVoteResp { granted: true, .. } => return true,
                PreVoteResp { granted: false, .. } => {
                    // A newer term exists; its leader (if any) will contact us itself.
                    self.become_follower(msg.term, None);
                    return false;
                }
                Vote { transfer, .. } => {
                    if self.in_lease() && !transfer {
                        // A live leader exists: this candidate is disruptive (§6 of the
                        // thesis). Neither vote nor adopt its term.
                        return false;
                    }
                    // Adopt the newer term, but keep our election timer: Figure 2 restarts
                    // it only when we grant the vote (handle_vote), and restarting it on
                    // a refusal lets a candidate with a stale log hold back the nodes that
                    // could win.
                    let deadline = self.election_deadline;
                    self.become_follower(msg.term, None);
                    self.election_deadline = deadline;
                }
                Append { leader, .. } => self.become_follower(msg.term, Some(*leader)),
                Snapshot { .. } => self.become_follower(msg.term, Some(msg.from)),
                // Refused before this (`timeout_now_from_our_leader`): never of a newer term.
                TimeoutNow => return false,
                VoteResp { .. } | AppendResp { .. } | SnapshotResp { .. } => {
                    self.become_follower(msg.term, None);
                    return false;
                }
            }
            true
        } else if msg.term < self.term {
            match &msg.body {
                // Tell a stale leader about the newer term so it steps down.
                Append { .. } | Snapshot { .. } => {
                    let stale_leader = match &msg.body {
                        Append { leader, .. } => *leader,
                        _ => msg.from,
                    };
                    self.send(stale_leader, MessageBody::stale_term_reply());
                }
                PreVote { .. } => {
                    let leader = self.leader;
                    self.send(
                        msg.from,
                        PreVoteResp {
                            granted: false,
                            leader,
                        },
                    );
                }
                _ => {}
            }
            false
        } else {
            true
        }
    }

    /// Whether we currently believe a leader is alive (CheckQuorum lease on votes).
    pub(crate) fn in_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        if self.is_leader() {
            return true;
        }
        if self.vote_guard_until.is_some_and(|until| self.now < until) {
            return true;
        }
        match (self.leader, self.last_leader_contact) {
            (Some(_), Some(at)) => self.now < at + self.cfg.election_timeout_ticks,
            _ => false,
        }
    }
}
