//! The driver: owns the core, the state machine and the client bookkeeping, and runs
//! each `Ready` in order — persist, send, apply, answer.
//!
//! Invariants:
//! - a write is answered `Done` only after its entry is committed and applied here, and
//!   only if the entry applied at its index is the one we proposed (same term);
//! - a read is answered only from a state machine that has applied at least the read
//!   index the core confirmed (lease or ReadIndex).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use kv::{Command, KvStore, Outcome};
use raft::{
    Config, EntryKind, Index, Membership, Message, NodeId, ProposeError, Raft, RaftLog, Term,
    TransferError,
};
use storage::{LogStore, SnapshotStorage, StorageError};

use crate::request::{ReqId, Request, Response};

/// Where the driver sends peer messages. Best effort: the core retransmits.
pub trait Transport {
    fn send(&mut self, msg: Message);
}

/// TEST ONLY: deliberate driver bugs for the simulator to find. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedDriverBugs {
    /// Send votes and acknowledgements before the log and hard state are durable.
    pub ack_before_persist: bool,
    /// Apply every committed entry twice.
    pub apply_twice: bool,
}

#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// How long a request that arrives while no leader is known waits for one, in ticks.
    /// After that it is redirected with no leader named (the client picks another node).
    pub hold_ticks: u64,
    /// A follower redirects clients to its leader only if it heard from it this recently;
    /// otherwise the leader may be gone, and redirecting would bounce clients to a dead
    /// node, so the request is held until a leader is heard from.
    pub fresh_leader_ticks: u64,
    /// Bound on requests held at once; beyond it new ones are redirected at once.
    pub max_held: usize,
    /// Bound on proposals and reads in flight; beyond it requests fail ("busy").
    pub max_in_flight: usize,
    /// TEST ONLY: answer reads from the local state machine with no lease or ReadIndex,
    /// on any node. Breaks linearizability on purpose, to prove our checkers catch it.
    pub unsafe_local_reads: bool,
    /// When to snapshot the state machine and compact the log (needs a snapshot store:
    /// [`Node::open_with_snapshots`]).
    pub snapshot: SnapshotPolicy,
    /// TEST ONLY (see [`PlantedDriverBugs`]).
    pub planted_bugs: PlantedDriverBugs,
}

/// Log compaction (§7 of the paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot once this many entries were applied since the last snapshot (0: never).
    pub every_entries: u64,
    /// Entries kept in the log behind a snapshot, so a follower that lags a little
    /// catches up with appends rather than a whole snapshot.
    pub keep_entries: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_entries: 100_000,
            keep_entries: 1_000,
        }
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            hold_ticks: 5_000,
            fresh_leader_ticks: 1_000,
            max_held: 10_000,
            max_in_flight: 100_000,
            unsafe_local_reads: false,
            snapshot: SnapshotPolicy::default(),
            planted_bugs: PlantedDriverBugs::default(),
        }
    }
}

/// A request waiting for news of a leader.
#[derive(Debug)]
struct Held {
    deadline: u64,
    since: u64,
    id: ReqId,
    req: Request,
    tag: Option<u64>,
}

/// Bound on remembered redirect tags before old ones are pruned.
const MAX_REDIRECT_TAGS: usize = 4096;

/// Counters for metrics and tests.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    pub proposals: u64,
    pub applied: u64,
    pub reads_served: u64,
    pub redirects: u64,
    pub held: u64,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    /// Snapshots that could not be saved (the log is kept, so nothing is lost).
    pub snapshot_failures: u64,
    /// Membership changes proposed as leader.
    pub conf_changes_proposed: u64,
}

pub struct Node<T: Transport, S: LogStore> {
    pub(crate) raft: Raft,
    pub(crate) kv: KvStore,
    transport: T,
    pub(crate) store: S,
    /// Where snapshots go (`None`: never snapshot; the log grows without bound).
    pub(crate) snapshots: Option<Box<dyn SnapshotStorage + Send>>,
    /// Applied index of the last snapshot saved or installed.
    pub(crate) snapshot_index: Index,
    /// Where to compact the log at the start of the next batch.
    pub(crate) pending_compaction: Option<Index>,
    /// A snapshot we took whose save is running in the background.
    pub(crate) snapshot_saving: Option<raft::Snapshot>,
    /// The snapshot arriving from the leader, and the sink its chunks go to.
    pub(crate) receiving: Option<(raft::SnapshotMeta, Box<dyn storage::SnapshotSink>)>,
    /// Set when the store failed: from then on the node takes no part in consensus
    /// (it cannot promise durability) and fails every request.
    storage_failure: Option<String>,
    pub(crate) opts: NodeOptions,
    now: u64,
    /// Our proposals by log index: the term we proposed in and who asked.
    pub(crate) proposals: BTreeMap<Index, (Term, ReqId)>,
    /// Reads waiting for the core to confirm them, by read context. Ordered, not hashed:
    /// a storage failure answers them all in this map's order, and a `HashMap`'s order
    /// (random per map) made simulated runs differ from one replay to the next (kvsim
    /// seed 50039781).
    reads: BTreeMap<u64, (ReqId, Request)>,
    next_read_ctx: u64,
    /// Confirmed reads waiting for the state machine to reach their index.
    reads_awaiting_apply: VecDeque<(Index, ReqId, Request)>,
    /// Requests waiting for news of a leader, oldest first.
    held: VecDeque<Held>,
    /// When we last redirected each client-supplied affinity tag (see
    /// [`Node::submit_tagged`]); pruned after `hold_ticks`.
    redirected: HashMap<u64, u64>,
    pub(crate) applied: Index,
    /// The host's wall clock (Unix ms; see [`Node::set_wall_clock`]).
    wall_ms: u64,
    /// The active-expiry entry we proposed and that has not applied yet (index, term):
    /// one at a time, so expiry never floods the log.
    expiry_in_flight: Option<(Index, Term)>,
    /// When we last proposed one (wall ms), and whether it was full: the pace of
    /// `kv::expiry` (a full batch is followed at once, any other after an interval).
    expiry_last: (u64, bool),
    /// Writes submitted with a session: (client, seq), until answered.
    pub(crate) write_sessions: HashMap<ReqId, kv::SessionTag>,
    /// Our membership changes by the index of their entry: the term we proposed in and
    /// who asked (`membership.rs`).
    pub(crate) conf_changes: BTreeMap<Index, (Term, ReqId)>,
    /// Changes whose joint configuration applied, waiting for the leave to apply.
    pub(crate) awaiting_leave: Vec<ReqId>,
    /// Requests removing us for which leadership was handed over first: if we still
    /// lead when they come back, we make the change ourselves.
    pub(crate) removal_handovers: HashSet<ReqId>,
    /// Configurations applied and not yet taken by the embedder.
    pub(crate) applied_configs: Vec<(Index, raft::Membership)>,
    responses: Vec<(ReqId, Response)>,
    pub(crate) stats: NodeStats,
    /// What applied entries produced, when recorded (`events.rs`).
    pub(crate) applied_events: Option<Vec<crate::events::AppliedEvents>>,
}

impl<T: Transport, S: LogStore> Node<T, S> {
    /// A node whose durable state is in `store` (empty for a new node), without
    /// snapshots. The state machine is rebuilt by re-applying the committed log.
    ///
    /// `membership` is the configuration the cluster was bootstrapped with (empty for a
    /// node that joins an existing cluster and learns it from the leader); a snapshot's
    /// configuration replaces it, and the log's configuration entries after that apply
    /// (raft's `Raft::try_restore`).
    pub fn open(
        cfg: Config,
        membership: Membership,
        transport: T,
        store: S,
        opts: NodeOptions,
    ) -> Result<Node<T, S>, StorageError> {
        Node::open_inner(cfg, membership, transport, store, None, opts)
    }

    /// A node that snapshots its state machine into `snapshots` and compacts its log, as
    /// `opts.snapshot` says. At start the state machine is the latest snapshot plus the
    /// committed log after it.
    pub fn open_with_snapshots(
        cfg: Config,
        membership: Membership,
        transport: T,
        store: S,
        snapshots: Box<dyn SnapshotStorage + Send>,
        opts: NodeOptions,
    ) -> Result<Node<T, S>, StorageError> {
        Node::open_inner(cfg, membership, transport, store, Some(snapshots), opts)
    }

    fn open_inner(
        cfg: Config,
        membership: Membership,
        transport: T,
        mut store: S,
        snapshots: Option<Box<dyn SnapshotStorage + Send>>,
        opts: NodeOptions,
    ) -> Result<Node<T, S>, StorageError> {
        let restored = match &snapshots {
            Some(snaps) => crate::snapshots::restore(snaps.as_ref(), &mut store)?,
            None => None,
        };
        let hs = store.hard_state();
        let first = store.first_index();
        let last = store.last_index();
        let snapshot_term = store.term(first - 1)?.unwrap_or(0);
        let entries = if last >= first {
            store.entries(first, last + 1, u64::MAX)?
        } else {
            Vec::new()
        };
        let log = RaftLog::restore(first - 1, snapshot_term, entries, hs.commit);
        // The configuration at the log's start: the snapshot's, if it knows one.
        let base = match &restored {
            Some((snapshot, _)) if !snapshot.meta.membership.is_unknown() => {
                snapshot.meta.membership.clone()
            }
            _ => membership,
        };
        let raft = Raft::try_restore(cfg, base, hs, log).map_err(|e| {
            StorageError::Snapshot(format!("the durable state cannot be restored: {e}"))
        })?;
        let mut node = Node::with_raft(raft, transport, store, opts);
        node.snapshots = snapshots;
        if let Some((snapshot, kv)) = restored {
            node.applied = snapshot.meta.index;
            node.snapshot_index = snapshot.meta.index;
            node.kv = kv;
            node.raft.set_snapshot(snapshot);
        }
        Ok(node)
    }

    fn with_raft(raft: Raft, transport: T, store: S, opts: NodeOptions) -> Node<T, S> {
        Node {
            raft,
            kv: KvStore::new(),
            transport,
            store,
            snapshots: None,
            snapshot_index: 0,
            pending_compaction: None,
            snapshot_saving: None,
            receiving: None,
            storage_failure: None,
            opts,
            now: 0,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_read_ctx: 1,
            reads_awaiting_apply: VecDeque::new(),
            held: VecDeque::new(),
            redirected: HashMap::new(),
            applied: 0,
            wall_ms: 0,
            expiry_in_flight: None,
            expiry_last: (0, false),
            write_sessions: HashMap::new(),
            conf_changes: BTreeMap::new(),
            awaiting_leave: Vec::new(),
            removal_handovers: HashSet::new(),
            applied_configs: Vec::new(),
            responses: Vec::new(),
            stats: NodeStats::default(),
            applied_events: None,
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }
    /// Gives back the store (a simulator crashes a node and reopens its store).
    pub fn into_store(self) -> S {
        self.store
    }
    /// Why the node stopped taking part, if its store failed.
    pub fn storage_failure(&self) -> Option<&str> {
        self.storage_failure.as_deref()
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader()
    }

    /// The host's wall clock, Unix ms (the server's system clock, the simulator's own).
    /// It only stamps the writes this node proposes as leader and the reads it answers
    /// (see `kv::expiry`); the core never sees it. Call it before `tick`/`submit`.
    pub fn set_wall_clock(&mut self, now_ms: u64) {
        self.wall_ms = now_ms;
    }

    /// Advances time; fires the core's timers and expires held requests.
    pub fn tick(&mut self, now: u64) {
        if self.storage_failure.is_some() {
            return;
        }
        self.now = now.max(self.now);
        // Compaction waits for the next input, not the next `process` (which may run
        // several times for one input): entries that commit and are snapshotted in one
        // step stay visible to whoever watches the log until the step is over.
        if let Err(e) = self.compact_pending() {
            self.fail_storage(e);
            return;
        }
        self.raft.tick(self.now);
        while self.held.front().is_some_and(|h| h.deadline <= self.now) {
            let held = self.held.pop_front().expect("front exists");
            self.respond(held.id, Response::Redirect(None));
        }
        if self.redirected.len() > MAX_REDIRECT_TAGS {
            let horizon = self.now.saturating_sub(self.opts.hold_ticks);
            self.redirected.retain(|_, &mut at| at >= horizon);
        }
        self.expire_actively();
    }

    /// Active expiry (see `kv::expiry`): the leader proposes removing a bounded batch of
    /// keys past their deadline by its clock, one entry in flight at a time, paced.
    fn expire_actively(&mut self) {
        if let Some((_, term)) = self.expiry_in_flight {
            if term == self.raft.term() && self.raft.is_leader() {
                return;
            }
            // Deposed: that entry commits or not without us watching it.
            self.expiry_in_flight = None;
        }
        if !self.raft.is_leader() || self.wall_ms == 0 {
            return;
        }
        // A clock that went back counts as an interval gone by.
        let (last, full) = self.expiry_last;
        let waited = self.wall_ms < last || self.wall_ms - last >= kv::expiry::EXPIRE_INTERVAL_MS;
        if !full && !waited {
            return;
        }
        let (keys, full) = self.kv.expiry_batch(self.wall_ms);
        if keys.is_empty() {
            self.expiry_last.1 = false;
            return;
        }
        let cmd = Command::Timed {
            now_ms: self.wall_ms,
            cmd: Box::new(Command::ExpireKeys { keys }),
        };
        if let Ok(index) = self.raft.propose(cmd.encode()) {
            self.expiry_in_flight = Some((index, self.raft.term()));
            self.expiry_last = (self.wall_ms, full);
        }
    }

    /// The earliest tick at which [`Node::tick`] has work.
    pub fn next_deadline(&self) -> u64 {
        let held = self.held.front().map_or(u64::MAX, |h| h.deadline);
        self.raft.next_deadline().min(held)
    }

    /// A peer message that arrived at `now`.
    pub fn step(&mut self, now: u64, msg: Message) {
        if self.storage_failure.is_some() {
            return;
        }
        self.tick(now);
        self.raft.step(msg);
    }

    /// A client request that arrived at `now`. The answer comes out of
    /// [`Node::take_responses`], now or later. Every input carries the time: the core
    /// stamps what it does with it (leases, retransmission timers), and a stale clock
    /// would make a lease look younger than it is.
    /// Starts handing leadership to `target` (raft's `transfer.rs`): writes submitted
    /// meanwhile are held for the new leader. Call [`Node::process`] after it.
    pub fn transfer_leader(&mut self, now: u64, target: NodeId) -> Result<(), TransferError> {
        self.tick(now);
        self.raft.transfer_leader(target)
    }

    pub fn submit(&mut self, now: u64, id: ReqId, req: Request) {
        if self.storage_failure.is_some() {
            self.respond(
                id,
                Response::Fail("storage failure: this node no longer serves"),
            );
            return;
        }
        self.tick(now);
        self.dispatch(id, req, None);
    }

    /// Like [`Node::submit`], with a tag naming the client's logical request (e.g. a hash
    /// of client ID and key). If we redirected the same tag and have not heard from any
    /// leader since, the client has bounced back: the leader we named is not serving it
    /// (it may be dead), so we hold the request instead of bouncing it again. This keeps
    /// retrying clients from storming the cluster while a dead leader is detected.
    pub fn submit_tagged(&mut self, now: u64, id: ReqId, req: Request, tag: u64) {
        if self.storage_failure.is_some() {
            self.respond(
                id,
                Response::Fail("storage failure: this node no longer serves"),
            );
            return;
        }
        self.tick(now);
        self.dispatch(id, req, Some(tag));
    }

    /// A write with an exactly-once session: `seq` is the client's sequence number for
    /// it. Submitting the same (`client`, `seq`) again — after a timeout, to any node —
    /// applies it at most once and answers with the first outcome (§6.3 of the thesis).
    pub fn submit_session(&mut self, now: u64, id: ReqId, req: Request, session: kv::SessionTag) {
        if !req.is_read() {
            self.write_sessions.insert(id, session);
        }
        self.submit(now, id, req);
    }

    fn dispatch(&mut self, id: ReqId, req: Request, tag: Option<u64>) {
        if self.opts.unsafe_local_reads && req.is_read() {
            let resp = self.read_local(&req);
            self.respond(id, resp);
            return;
        }
        if self.raft.is_removed() {
            self.respond(
                id,
                Response::Fail("this node was removed from the cluster and serves nothing"),
            );
            return;
        }
        if self.raft.is_leader() {
            if self.raft.transferring_to().is_some() && !req.is_read() {
                // Handing leadership over (raft's transfer.rs): the write waits for the
                // new leader (or for the transfer to be abandoned), like one that arrives
                // while no leader is known.
                self.hold(id, req, tag);
                return;
            }
            self.serve_as_leader(id, req);
            return;
        }
        match self.fresh_leader() {
            Some(leader) if !self.bounced_back(tag) => {
                self.stats.redirects += 1;
                if let Some(tag) = tag {
                    self.redirected.insert(tag, self.now);
                }
                self.respond(id, Response::Redirect(Some(leader)));
            }
            _ => self.hold(id, req, tag),
        }
    }

    /// Tick of our last contact with a leader (now, if we lead).
    fn leader_contact_at(&self) -> Option<u64> {
        self.raft
            .leader_contact_age()
            .map(|age| self.now.saturating_sub(age))
    }

    /// We redirected this tag and heard from no leader since.
    fn bounced_back(&self, tag: Option<u64>) -> bool {
        let Some(at) = tag.and_then(|t| self.redirected.get(&t)) else {
            return false;
        };
        self.leader_contact_at()
            .is_none_or(|contact| contact <= *at)
    }

    /// The leader, if we heard from it within `fresh_leader_ticks`.
    fn fresh_leader(&self) -> Option<NodeId> {
        let age = self.raft.leader_contact_age()?;
        (age <= self.opts.fresh_leader_ticks)
            .then(|| self.raft.leader())
            .flatten()
    }

    pub(crate) fn hold(&mut self, id: ReqId, req: Request, tag: Option<u64>) {
        if self.held.len() >= self.opts.max_held {
            self.respond(id, Response::Redirect(None));
            return;
        }
        self.stats.held += 1;
        let deadline = self.now + self.opts.hold_ticks;
        self.held.push_back(Held {
            deadline,
            since: self.now,
            id,
            req,
            tag,
        });
    }

    fn serve_as_leader(&mut self, id: ReqId, req: Request) {
        if self.proposals.len() + self.reads.len() >= self.opts.max_in_flight {
            self.respond(id, Response::Fail("busy: too many requests in flight"));
            return;
        }
        let cmd = match req {
            Request::Get { .. } | Request::Scan { .. } | Request::Read(_) => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.raft.read(ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, (id, req));
                    }
                    Err(e) => self.refuse(id, e),
                }
                return;
            }
            Request::ChangeMembership(changes) => {
                self.serve_conf_change(id, changes);
                return;
            }
            Request::Put { key, value } => self.stamped(Command::Put { key, value }),
            Request::Delete { key } => self.stamped(Command::Delete { key }),
            Request::Cas { key, expected, new } => {
                self.stamped(Command::Cas { key, expected, new })
            }
            // Stamped with our clock: deadlines are decided by the leader (kv::expiry).
            Request::Write(cmd) => Command::Timed {
                now_ms: self.wall_ms,
                cmd: Box::new(cmd),
            },
        };
        let data = match self.write_sessions.get(&id) {
            Some(&session) => kv::encode_session_write(session, &cmd),
            None => cmd.encode(),
        };
        match self.raft.propose(data) {
            Ok(index) => {
                self.stats.proposals += 1;
                self.proposals.insert(index, (self.raft.term(), id));
            }
            Err(e) => self.refuse(id, e),
        }
    }

    /// A plain write (PUT, DELETE, CAS) stamped with our wall clock, as typed writes are,
    /// when there is one. They too see whether a key has expired (DELETE answers whether
    /// it existed, CAS compares with its value): unstamped, one applied at the state
    /// machine's last stamp, which lags our clock until the next stamped entry, and
    /// acted on a key that reads (at our clock) already showed as gone — a GET answered
    /// nil, then a CAS expecting the old value swapped. Without a wall clock (the seed
    /// replica, which has no expiry) there is no time to put in the log.
    fn stamped(&self, cmd: Command) -> Command {
        if self.wall_ms == 0 {
            return cmd;
        }
        Command::Timed {
            now_ms: self.wall_ms,
            cmd: Box::new(cmd),
        }
    }

    fn refuse(&mut self, id: ReqId, e: ProposeError) {
        let resp = match e {
            ProposeError::NotLeader { leader } => Response::Redirect(leader),
            ProposeError::Busy => Response::Fail("busy: uncommitted log at its limit"),
            ProposeError::TooLarge => Response::Fail("request too large"),
            // Not executed: the router holds it until the target leads, then sends it on.
            ProposeError::Transferring { .. } => Response::Redirect(None),
        };
        self.respond(id, resp);
    }

    /// Runs every pending Ready of the core. Call after a batch of inputs.
    pub fn process(&mut self) {
        if let Err(e) = self.poll_snapshot_save() {
            self.fail_storage(e);
            return;
        }
        while self.storage_failure.is_none() && self.raft.has_ready() {
            let rd = self.raft.ready();
            // The leader's appends may leave before its own write is durable (§10.2.1 of
            // the thesis): it counts itself towards a commit only once it is.
            for msg in rd.messages {
                self.transport.send(msg);
            }
            let mut persisted_messages = rd.persisted_messages;
            if self.opts.planted_bugs.ack_before_persist {
                for msg in persisted_messages.drain(..) {
                    self.transport.send(msg);
                }
            }
            // A snapshot from the leader: its chunks go to the sink (their acknowledgements
            // are persisted messages), and once whole it replaces the state machine and
            // the log prefix before anything after it is persisted or applied.
            if let Err(e) = self.receive_snapshot(rd.snapshot_chunks, rd.snapshot) {
                self.fail_storage(e);
                return;
            }
            if let Err(e) = self.persist(&rd.entries, rd.hard_state) {
                self.fail_storage(e);
                return;
            }
            if let Some(last) = rd.entries.last() {
                self.raft.on_persisted(last.index, last.term);
            }
            // Votes and acknowledgements promise durability: only now may they go.
            for msg in persisted_messages {
                self.transport.send(msg);
            }
            for entry in rd.committed_entries {
                if self.opts.planted_bugs.apply_twice {
                    self.apply_unchecked(entry.clone());
                }
                self.apply(entry);
            }
            if let Err(e) = self.maybe_snapshot() {
                self.fail_storage(e);
                return;
            }
            for rs in rd.read_states {
                if let Some((id, req)) = self.reads.remove(&rs.ctx) {
                    self.reads_awaiting_apply.push_back((rs.index, id, req));
                }
            }
            for ctx in rd.aborted_reads {
                if let Some((id, req)) = self.reads.remove(&ctx) {
                    // Leadership moved on: treat it as a new arrival (redirect or hold).
                    self.dispatch(id, req, None);
                }
            }
            self.serve_applied_reads();
        }
        self.release_held();
    }

    /// Appends, saves the hard state, and makes both durable with one sync (group
    /// commit: every proposal in this Ready shares it).
    ///
    /// A `known_commit` that rises beyond the log is saved first (the store syncs it),
    /// with the commit hint the store holds (the new one may cover entries of this very
    /// append, and the store refuses to truncate below its hint): saved after the
    /// append, a crash could keep entries that replay configurations of an earlier life
    /// of this node ID without the index that marks them superseded
    /// (`raft::HardState::known_commit`). A caught-up follower never needs it.
    fn persist(
        &mut self,
        entries: &[raft::Entry],
        hs: Option<raft::HardState>,
    ) -> Result<(), StorageError> {
        let stored = self.store.hard_state();
        let floor_first = hs.filter(|hs| {
            !entries.is_empty()
                && hs.known_commit > stored.known_commit
                && hs.known_commit > self.store.last_index()
        });
        if let Some(hs) = floor_first {
            let commit = stored.commit;
            self.store
                .save_hard_state(&raft::HardState { commit, ..hs })?;
        }
        if !entries.is_empty() {
            self.store.append(entries)?;
        }
        if let Some(hs) = hs {
            self.store.save_hard_state(&hs)?;
        }
        if !entries.is_empty() {
            self.store.sync()?;
        }
        Ok(())
    }

    pub(crate) fn fail_storage(&mut self, e: StorageError) {
        // Without durable storage we may not vote, acknowledge or answer: stop, and let
        // every waiting client know.
        self.storage_failure = Some(e.to_string());
        // A proposal may be replicated and commit without us: its outcome is unknown.
        let proposed: Vec<ReqId> = self.proposals.values().map(|&(_, id)| id).collect();
        for id in proposed {
            self.respond(
                id,
                Response::Unknown("storage failure: the outcome is unknown"),
            );
        }
        let waiting: Vec<ReqId> = self
            .reads
            .values()
            .map(|(id, _)| *id)
            .chain(self.reads_awaiting_apply.iter().map(|(_, id, _)| *id))
            .chain(self.held.iter().map(|h| h.id))
            .collect();
        self.proposals.clear();
        self.fail_conf_changes();
        self.reads.clear();
        self.reads_awaiting_apply.clear();
        self.held.clear();
        for id in waiting {
            self.respond(
                id,
                Response::Fail("storage failure: this node no longer serves"),
            );
        }
    }

    /// The planted "apply twice" bug: the state machine sees the entry an extra time.
    fn apply_unchecked(&mut self, entry: raft::Entry) {
        if let (EntryKind::Normal, Ok((_, cmd))) =
            (entry.kind, kv::session::decode_entry(&entry.data))
        {
            self.kv.apply(cmd);
        }
    }

    fn apply(&mut self, entry: raft::Entry) {
        debug_assert_eq!(
            entry.index,
            self.applied + 1,
            "entries apply in order, once"
        );
        self.applied = entry.index;
        self.stats.applied += 1;
        if self
            .expiry_in_flight
            .is_some_and(|(index, _)| index <= entry.index)
        {
            self.expiry_in_flight = None;
        }
        let outcome = match entry.kind {
            // A payload that does not decode was never proposed by a driver of ours.
            EntryKind::Normal => self.kv.apply_entry(&entry.data).ok(),
            EntryKind::Noop | EntryKind::ConfChange => None,
        };
        self.conf_entry_applied(&entry);
        self.collect_events(entry.index);
        // Resolve our proposals at or below this index.
        while let Some((&index, &(term, id))) = self.proposals.first_key_value() {
            if index > entry.index {
                break;
            }
            self.proposals.pop_first();
            let resp = if index == entry.index && term == entry.term {
                match outcome.clone() {
                    Some(Outcome::Done) => Response::Done,
                    Some(Outcome::Deleted(existed)) => Response::Deleted(existed),
                    Some(Outcome::Cas { swapped, current }) => Response::Cas { swapped, current },
                    Some(Outcome::Reply(reply)) => Response::Reply(reply),
                    Some(Outcome::Expired) => Response::Unknown(
                        "session write too old: whether it applied is no longer known",
                    ),
                    None => Response::Fail("entry could not be applied"),
                }
            } else {
                // Another leader's entry took this slot: ours will never commit.
                Response::Redirect(self.raft.leader())
            };
            self.respond(id, resp);
        }
    }

    fn serve_applied_reads(&mut self) {
        while let Some(&(index, _, _)) = self.reads_awaiting_apply.front() {
            if index > self.applied {
                break;
            }
            let (_, id, req) = self.reads_awaiting_apply.pop_front().expect("front exists");
            let resp = self.read_local(&req);
            self.stats.reads_served += 1;
            self.respond(id, resp);
        }
    }

    /// Answers a read from this node's state machine as it is now: no leader, no quorum,
    /// so possibly stale (the server uses it for stale reads and for `READONLY`
    /// connections). A write is answered `Fail`.
    pub fn read_local(&self, req: &Request) -> Response {
        let now_ms = self.kv.read_time(self.wall_ms);
        match req {
            Request::Get { key } => {
                match self.kv.query(&kv::Query::Get { key: key.clone() }, now_ms) {
                    kv::Reply::Bulk(v) => Response::Value(Some(v)),
                    _ => Response::Value(None),
                }
            }
            Request::Read(q) => Response::Reply(self.kv.query(q, now_ms)),
            Request::Scan {
                prefix,
                after,
                limit,
                max_bytes,
                keys_only,
            } => {
                let limit = (*limit).min(crate::request::MAX_SCAN_LIMIT) as usize;
                let mut bytes = 0usize;
                let mut page = Vec::new();
                for (k, v) in self
                    .kv
                    .scan_live(prefix, after.as_deref(), limit, Some(now_ms))
                {
                    let v = if *keys_only { bytes::Bytes::new() } else { v };
                    bytes += crate::request::scan_entry_bytes(&k, &v);
                    page.push((k, v));
                    if bytes >= *max_bytes as usize {
                        break;
                    }
                }
                Response::Entries(page)
            }
            _ => Response::Fail("not a read"),
        }
    }

    /// Held requests go to the leader once we hear from one after they arrived.
    fn release_held(&mut self) {
        if self.raft.is_leader() && self.raft.transferring_to().is_some() {
            return; // what we hold waits for the transfer's outcome
        }
        let Some(contact) = self.leader_contact_at() else {
            return;
        };
        if self.fresh_leader().is_none() {
            return;
        }
        let leading = self.raft.is_leader();
        let mut released = Vec::new();
        self.held.retain(|h| {
            let news = leading || contact > h.since;
            if news {
                released.push((h.id, h.req.clone(), h.tag));
            }
            !news
        });
        if released.is_empty() {
            return;
        }
        for (id, req, tag) in released {
            self.dispatch(id, req, tag);
        }
        if self.raft.has_ready() {
            self.process();
        }
    }

    pub(crate) fn respond(&mut self, id: ReqId, resp: Response) {
        self.write_sessions.remove(&id);
        self.removal_handovers.remove(&id);
        self.responses.push((id, resp));
    }

    pub fn take_responses(&mut self) -> Vec<(ReqId, Response)> {
        std::mem::take(&mut self.responses)
    }
}
