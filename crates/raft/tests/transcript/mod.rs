//! Transcript tests of the core, after etcd-io/raft's `testdata/` (datadriven): each file
//! in `tests/testdata/` is a sequence of blocks
//!
//! ```text
//! # comments and blank lines between blocks are kept
//! command arg key=value
//! ----
//! the output the command must print (no blank lines)
//! ```
//!
//! run against a small in-memory cluster whose nodes persist instantly and exchange
//! messages only when told to (`deliver`, `stabilize`), so every step and every message
//! is visible. `RAFT_REWRITE=1 cargo test -p raft --test transcripts` rewrites the
//! expected output from what the commands print now (then review the diff).
//!
//! Commands (node lists default to every node):
//! - `add-nodes N [election=10 heartbeat=2 lease=8 retransmit=4 pre-vote=true
//!   check-quorum=true fanout=all|quorum extra=0 relay=false max-inflight=256 max-entries=4096
//!   chunk=1048576 max-snapshot=BYTES voters=[..]]`: nodes `next..next+N`, voters the
//!   new nodes unless `voters=[..]` says otherwise (`voters=[]`: nodes that know no
//!   configuration yet, joining);
//! - `campaign ID`: ticks ID alone to its next deadline until it leaves the follower role;
//! - `tick [IDS] [n=1] [at=T]`: advances the clocks of IDS by n ticks, one at a time
//!   (or straight to tick T, one timer check);
//! - `run [n=1] [verbose=false]`: n times: every node ticks once, then `stabilize`; prints
//!   only role changes unless verbose;
//! - `propose ID DATA`, `read ID CTX`: a proposal or a read on ID (prints the outcome);
//! - `process-ready [IDS]`: takes one Ready per node, persists it at once, queues its
//!   messages and prints it;
//! - `deliver [IDS]`: delivers the queued messages addressed to IDS (one pass; messages
//!   they send in answer wait in their Ready);
//! - `drop [from=ID] [to=ID]`: drops queued messages matching;
//! - `stabilize [IDS]`: process-ready and deliver until nothing moves;
//! - `isolate ID`, `cut A B`, `heal`: links cut both ways, and restored;
//! - `send FROM->TO tTERM Kind fields…`: steps one message (as `Display` prints it) into
//!   TO at once, links ignored: how a transcript forges a hostile peer's frame;
//! - `snapshot ID`: takes a snapshot of ID's state machine at its applied index;
//!   `compact ID INDEX`: drops ID's log up to INDEX;
//! - `conf-change ID STEP…`: a membership change proposed on ID, steps `add:N`
//!   (learner), `promote:N`, `remove:N` (prints the index or the refusal);
//!   `membership [IDS]`: each node's configuration in force and its entry's index;
//! - `status [IDS]`, `log [IDS]`: a node's state and its log.
//!
//! After every command, role or term changes are printed (`1: Leader t2`), and the
//! cluster is checked for Election Safety and Log Matching.

mod parse;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use raft::{
    ConfChange, Config, Entry, EntryKind, Fanout, Membership, Message, NodeId, Raft, Role,
    Snapshot, Term,
};

use parse::{words, Args};

struct Node {
    raft: Raft,
    now: u64,
    /// The application payloads applied, in order (the "state machine").
    applied: Vec<String>,
    /// The snapshot sink: chunks of the snapshot being received.
    receiving: Vec<u8>,
    /// Role and term as last printed.
    seen: (Role, Term),
}

/// The cluster one transcript runs against.
#[derive(Default)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    out: String,
}

/// Output of one command, or a reason the transcript itself is wrong.
type Outcome = Result<(), String>;

impl Cluster {
    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn node(&mut self, id: NodeId) -> Result<&mut Node, String> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// Runs one command line; returns what it printed.
    pub fn run(&mut self, line: &str) -> Result<String, String> {
        self.out.clear();
        let w = words(line);
        let (cmd, rest) = w.split_first().ok_or("empty command")?;
        let args = Args::new(rest);
        match cmd.as_str() {
            "add-nodes" => self.add_nodes(&args)?,
            "campaign" => self.campaign(&args)?,
            "tick" => self.tick(&args)?,
            "run" => self.run_ticks(&args)?,
            "propose" => self.propose(&args)?,
            "read" => self.read(&args)?,
            "process-ready" => {
                let ids = args.positional_ids(&self.ids())?;
                self.process_ready(&ids);
            }
            "deliver" => {
                let ids = args.positional_ids(&self.ids())?;
                self.deliver(&ids);
            }
            "drop" => self.drop_queued(&args)?,
            "stabilize" => self.stabilize(&args)?,
            "isolate" => {
                let id = one_id(&args)?;
                for other in self.ids() {
                    if other != id {
                        self.cut.insert((id, other));
                        self.cut.insert((other, id));
                    }
                }
            }
            "cut" => {
                let [a, b] = args.positional_ids(&[])?[..] else {
                    return Err("cut A B".into());
                };
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
            "heal" => self.cut.clear(),
            "send" => {
                let msg = parse::message(rest)?;
                let to = msg.to;
                self.node(to)?.raft.step(msg);
            }
            "snapshot" => self.snapshot(&args)?,
            "conf-change" => self.conf_change(&args)?,
            "membership" => {
                for id in args.positional_ids(&self.ids())? {
                    let r = &self.node(id)?.raft;
                    let text = format!(
                        "{id}: {} at {}{}",
                        membership_text(r.membership()),
                        r.membership_index(),
                        if r.is_removed() { " (removed)" } else { "" }
                    );
                    self.line(text);
                }
            }
            "compact" => {
                let [id, index] = args.positional_ids(&[])?[..] else {
                    return Err("compact ID INDEX".into());
                };
                let node = self.node(id)?;
                node.raft.compact(index);
                let first = node.raft.log().first_index();
                self.line(format!("{id}: log starts at {first}"));
            }
            "status" => {
                for id in args.positional_ids(&self.ids())? {
                    let text = self.status(id)?;
                    self.line(text);
                }
            }
            "log" => {
                for id in args.positional_ids(&self.ids())? {
                    let text = self.log(id)?;
                    self.line(text);
                }
            }
            other => return Err(format!("unknown command {other:?}")),
        }
        self.print_role_changes();
        self.check_safety();
        Ok(std::mem::take(&mut self.out))
    }

    fn add_nodes(&mut self, a: &Args) -> Outcome {
        let n = a
            .positional
            .first()
            .ok_or("add-nodes N")
            .and_then(|s| s.parse::<u64>().map_err(|_| "add-nodes N"))?;
        let first = self.nodes.keys().last().map_or(1, |l| l + 1);
        let new: Vec<NodeId> = (first..first + n).collect();
        let voters = a.ids("voters")?.unwrap_or_else(|| new.clone());
        for &id in &new {
            let mut c = Config::new(id);
            c.seed = id * 7919;
            c.election_timeout_ticks = a.u64_or("election", 10)?;
            c.heartbeat_interval_ticks = a.u64_or("heartbeat", 2)?;
            c.lease_ticks = a.u64_or("lease", 8)?;
            c.retransmit_ticks = a.u64_or("retransmit", 4)?;
            c.pre_vote = a.bool_or("pre-vote", true)?;
            c.check_quorum = a.bool_or("check-quorum", true)?;
            c.max_inflight_msgs = a.u64_or("max-inflight", 256)? as usize;
            c.max_msg_entries = a.u64_or("max-entries", 4096)? as usize;
            c.snapshot_chunk_bytes = a.u64_or("chunk", 1 << 20)? as usize;
            c.max_snapshot_bytes = a.u64_or("max-snapshot", 8 << 30)?;
            c.relay = a.bool_or("relay", false)?;
            c.fanout = match a.named.get("fanout").map(String::as_str) {
                None | Some("all") => Fanout::All,
                Some("quorum") => Fanout::Quorum {
                    extra: a.u64_or("extra", 0)? as usize,
                },
                Some(v) => return Err(format!("fanout={v}")),
            };
            c.validate()?;
            let raft = Raft::new(c, voters.clone());
            let seen = (raft.role(), raft.term());
            self.nodes.insert(
                id,
                Node {
                    raft,
                    now: 0,
                    applied: Vec::new(),
                    receiving: Vec::new(),
                    seen,
                },
            );
        }
        self.line(format!("added {new:?}, voters {voters:?}"));
        Ok(())
    }

    /// A follower ticks until it (pre-)campaigns; a candidate until it starts a new
    /// term. Only ID's clock moves.
    fn campaign(&mut self, a: &Args) -> Outcome {
        let id = one_id(a)?;
        let node = self.node(id)?;
        let start = (node.raft.role(), node.raft.term());
        if start.0 == Role::PreCandidate || start.0 == Role::Leader {
            return Err(format!("{id} is {:?} already", start.0));
        }
        for _ in 0..1000 {
            let now = (node.raft.role(), node.raft.term());
            if now.0 != Role::Follower && now != start {
                return Ok(());
            }
            node.now = node.raft.next_deadline().max(node.now + 1);
            node.raft.tick(node.now);
        }
        Err(format!("{id} never campaigned"))
    }

    fn tick(&mut self, a: &Args) -> Outcome {
        let n = a.u64_or("n", 1)?;
        let at = a.u64("at")?;
        for id in a.positional_ids(&self.ids())? {
            let node = self.node(id)?;
            if let Some(at) = at {
                node.now = node.now.max(at);
                node.raft.tick(node.now);
                continue;
            }
            for _ in 0..n {
                node.now += 1;
                node.raft.tick(node.now);
            }
        }
        Ok(())
    }

    fn run_ticks(&mut self, a: &Args) -> Outcome {
        let all = Args::new(&[]);
        let verbose = a.bool_or("verbose", false)?;
        let printed = self.out.len();
        for _ in 0..a.u64_or("n", 1)? {
            for node in self.nodes.values_mut() {
                node.now += 1;
                node.raft.tick(node.now);
            }
            self.stabilize(&all)?;
        }
        if !verbose {
            self.out.truncate(printed);
        }
        Ok(())
    }

    fn propose(&mut self, a: &Args) -> Outcome {
        let [id, data] = &a.positional[..] else {
            return Err("propose ID DATA".into());
        };
        let id = parse::num(id)?;
        let result = self
            .node(id)?
            .raft
            .propose(Bytes::copy_from_slice(data.as_bytes()));
        match result {
            Ok(index) => self.line(format!("{id}: proposed at {index}")),
            Err(e) => self.line(format!("{id}: refused: {e:?}")),
        }
        Ok(())
    }

    fn conf_change(&mut self, a: &Args) -> Outcome {
        let (id, steps) = a.positional.split_first().ok_or("conf-change ID STEP…")?;
        let id = parse::num(id)?;
        let mut changes = Vec::new();
        for step in steps {
            let (op, n) = step
                .split_once(':')
                .ok_or("steps are add:N, promote:N, remove:N")?;
            let n = parse::num(n)?;
            changes.push(match op {
                "add" => ConfChange::AddLearner {
                    id: n,
                    metadata: Bytes::from(format!("addr{n}")),
                },
                "promote" => ConfChange::Promote { id: n },
                "remove" => ConfChange::Remove { id: n },
                other => return Err(format!("unknown step {other:?}")),
            });
        }
        match self.node(id)?.raft.propose_conf_change(&changes) {
            Ok(index) => self.line(format!("{id}: proposed configuration at {index}")),
            Err(e) => self.line(format!("{id}: refused: {e}")),
        }
        Ok(())
    }

    fn read(&mut self, a: &Args) -> Outcome {
        let [id, ctx] = a.positional_ids(&[])?[..] else {
            return Err("read ID CTX".into());
        };
        let result = self.node(id)?.raft.read(ctx);
        if let Err(e) = result {
            self.line(format!("{id}: read {ctx} refused: {e:?}"));
        }
        Ok(())
    }

    /// One Ready per node in `ids`, persisted at once. Returns whether any had one.
    fn process_ready(&mut self, ids: &[NodeId]) -> bool {
        let mut any = false;
        for &id in ids {
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            if !node.raft.has_ready() {
                continue;
            }
            let rd = node.raft.ready();
            any = true;
            let mut lines = Vec::new();
            // The snapshot is installed after the last chunk that completes a transfer.
            let last_done = rd.snapshot_chunks.iter().rposition(|c| c.done);
            for (i, c) in rd.snapshot_chunks.iter().enumerate() {
                lines.push(format!(
                    "write snapshot chunk {}@{} offset={} len={}",
                    c.meta.index,
                    c.meta.term,
                    c.offset,
                    c.data.len()
                ));
                if c.offset == 0 {
                    node.receiving.clear();
                }
                node.receiving.extend_from_slice(&c.data);
                if Some(i) != last_done {
                    continue;
                }
                let snap = Snapshot {
                    meta: rd.snapshot.clone().expect("an install with its last chunk"),
                    data: Bytes::from(std::mem::take(&mut node.receiving)),
                };
                node.raft.set_snapshot(snap.clone());
                let voters: Vec<_> = snap.meta.membership.voters.iter().collect();
                lines.push(format!(
                    "install snapshot {}@{} voters={voters:?} data={:?}",
                    snap.meta.index,
                    snap.meta.term,
                    String::from_utf8_lossy(&snap.data)
                ));
                node.applied = String::from_utf8_lossy(&snap.data)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            if let Some(hs) = rd.hard_state {
                let vote = hs.vote.map_or("-".to_string(), |v| v.to_string());
                lines.push(format!(
                    "hard-state term={} vote={vote} commit={} known={}",
                    hs.term, hs.commit, hs.known_commit
                ));
            }
            if let Some(last) = rd.entries.last() {
                lines.push(format!("persist {}", entry_list(&rd.entries)));
                node.raft.on_persisted(last.index, last.term);
            }
            for m in &rd.messages {
                lines.push(format!("send {m:#}"));
            }
            for m in &rd.persisted_messages {
                lines.push(format!("send-after-persist {m:#}"));
            }
            if !rd.committed_entries.is_empty() {
                lines.push(format!("apply {}", entry_list(&rd.committed_entries)));
                for e in &rd.committed_entries {
                    if e.kind == EntryKind::Normal {
                        node.applied
                            .push(String::from_utf8_lossy(&e.data).into_owned());
                    }
                }
            }
            for r in &rd.read_states {
                lines.push(format!("read ctx={} index={}", r.ctx, r.index));
            }
            if !rd.aborted_reads.is_empty() {
                lines.push(format!("aborted reads {:?}", rd.aborted_reads));
            }
            self.queue.extend(rd.messages);
            self.queue.extend(rd.persisted_messages);
            for l in lines {
                self.line(format!("{id}: {l}"));
            }
        }
        any
    }

    /// Delivers, in order, the queued messages addressed to `ids`. Returns how many.
    fn deliver(&mut self, ids: &[NodeId]) -> usize {
        let (now, later): (Vec<Message>, Vec<Message>) =
            self.queue.drain(..).partition(|m| ids.contains(&m.to));
        self.queue.extend(later);
        let n = now.len();
        for m in now {
            if self.cut.contains(&(m.from, m.to)) {
                self.line(format!("drop {m} (cut)"));
                continue;
            }
            let Some(node) = self.nodes.get_mut(&m.to) else {
                self.line(format!("drop {m} (no such node)"));
                continue;
            };
            self.out.push_str(&format!("deliver {m}\n"));
            node.raft.step(m);
        }
        n
    }

    fn drop_queued(&mut self, a: &Args) -> Outcome {
        let (from, to) = (a.u64("from")?, a.u64("to")?);
        let (dropped, kept): (Vec<Message>, Vec<Message>) = self
            .queue
            .drain(..)
            .partition(|m| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t));
        self.queue.extend(kept);
        for m in dropped {
            self.line(format!("drop {m}"));
        }
        Ok(())
    }

    fn stabilize(&mut self, a: &Args) -> Outcome {
        let ids = a.positional_ids(&self.ids())?;
        for _ in 0..10_000 {
            let readied = self.process_ready(&ids);
            let delivered = self.deliver(&ids);
            if !readied && delivered == 0 {
                return Ok(());
            }
        }
        Err("the cluster never went quiet".into())
    }

    fn snapshot(&mut self, a: &Args) -> Outcome {
        let id = one_id(a)?;
        let node = self.node(id)?;
        let applied = node.raft.log().applied;
        let meta = node
            .raft
            .snapshot_meta(applied)
            .ok_or("nothing applied to snapshot")?;
        let data = Bytes::from(node.applied.join(",").into_bytes());
        node.raft.set_snapshot(Snapshot { meta, data });
        self.line(format!("{id}: snapshot at {applied}"));
        Ok(())
    }

    fn status(&mut self, id: NodeId) -> Result<String, String> {
        let node = self.node(id)?;
        let r = &node.raft;
        let log = r.log();
        let hs = r.hard_state();
        let mut s = format!(
            "{id}: {:?} term={} vote={} leader={} commit={} applied={} last={}@{} persisted={}",
            r.role(),
            r.term(),
            hs.vote.map_or("-".into(), |v| v.to_string()),
            r.leader().map_or("-".into(), |v| v.to_string()),
            r.commit_index(),
            log.applied,
            log.last_index(),
            log.last_term(),
            log.persisted(),
        );
        if r.is_leader() {
            let _ = write!(s, " lease={}", r.lease_valid());
            let matches: Vec<String> = r
                .follower_matches()
                .iter()
                .map(|(f, m)| format!("{f}:{m}"))
                .collect();
            let _ = write!(s, " matches=[{}]", matches.join(" "));
        }
        let st = r.stats();
        let counters = [
            ("followers_lost_log", st.followers_lost_log),
            ("absurd_terms", st.absurd_terms),
            (
                "campaigns_refused_at_term_limit",
                st.campaigns_refused_at_term_limit,
            ),
            ("forged_acks", st.forged_acks),
            ("malformed_appends", st.malformed_appends),
            ("snapshots_refused", st.snapshots_refused),
            ("illegal_conf_changes", st.illegal_conf_changes),
        ];
        for (name, n) in counters {
            if n > 0 {
                let _ = write!(s, " {name}={n}");
            }
        }
        if !node.applied.is_empty() {
            let _ = write!(s, " state={:?}", node.applied);
        }
        Ok(s)
    }

    fn log(&mut self, id: NodeId) -> Result<String, String> {
        let r = &self.node(id)?.raft;
        let log = r.log();
        let entries: Vec<Entry> = (log.first_index()..=log.last_index())
            .filter_map(|i| log.entry(i).cloned())
            .collect();
        let snap = if log.snapshot_index() > 0 {
            format!(
                "snapshot {}@{} ",
                log.snapshot_index(),
                log.term(log.snapshot_index()).unwrap_or(0)
            )
        } else {
            String::new()
        };
        Ok(format!("{id}: {snap}[{}]", entry_list(&entries)))
    }

    fn print_role_changes(&mut self) {
        let mut lines = Vec::new();
        for (&id, node) in self.nodes.iter_mut() {
            let now = (node.raft.role(), node.raft.term());
            if now != node.seen {
                node.seen = now;
                lines.push(format!("{id}: {:?} t{}", now.0, now.1));
            }
        }
        for l in lines {
            self.line(l);
        }
    }

    /// Election Safety and Log Matching (§5.2, §5.3) across the cluster.
    fn check_safety(&self) {
        let mut leaders: BTreeMap<Term, NodeId> = BTreeMap::new();
        for (&id, n) in &self.nodes {
            if n.raft.is_leader() {
                if let Some(other) = leaders.insert(n.raft.term(), id) {
                    panic!("two leaders in term {}: {other} and {id}", n.raft.term());
                }
            }
        }
        let logs: Vec<&raft::RaftLog> = self.nodes.values().map(|n| n.raft.log()).collect();
        for a in &logs {
            for b in &logs {
                let last = a.last_index().min(b.last_index());
                let first = a.first_index().max(b.first_index());
                // The highest common index with equal terms: everything before it matches.
                if let Some(i) = (first..=last).rev().find(|&i| a.term(i) == b.term(i)) {
                    for j in first..=i {
                        assert_eq!(a.entry(j), b.entry(j), "log matching broken at {j}");
                    }
                }
            }
        }
    }
}

fn one_id(a: &Args) -> Result<NodeId, String> {
    match &a.positional[..] {
        [id] => parse::num(id),
        _ => Err("expected one node ID".into()),
    }
}

fn entry_list(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            let tag = match e.kind {
                EntryKind::Noop => "(noop)".to_string(),
                EntryKind::ConfChange => match Membership::from_entry_data(&e.data) {
                    Some(m) => format!("(conf {})", membership_text(&m)),
                    None => "(conf ?)".to_string(),
                },
                EntryKind::Normal if e.data.is_empty() => String::new(),
                EntryKind::Normal => format!(":{}", String::from_utf8_lossy(&e.data)),
            };
            format!("{}@{}{tag}", e.index, e.term)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `v=[1 2 3]`, then `out=[..]` while joint and `learners=[..]` if any.
fn membership_text(m: &Membership) -> String {
    let ids = |s: &std::collections::BTreeSet<NodeId>| {
        s.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut t = format!("v=[{}]", ids(&m.voters));
    if m.is_joint() {
        let _ = write!(t, " out=[{}]", ids(&m.voters_outgoing));
    }
    if !m.learners.is_empty() {
        let _ = write!(t, " learners=[{}]", ids(&m.learners));
    }
    t
}

/// One block of a transcript file.
struct Block {
    /// Comment and blank lines before the command, as written.
    preamble: Vec<String>,
    command: String,
    /// 1-based line of the command.
    line: usize,
    expected: String,
}

fn parse_file(text: &str) -> Result<(Vec<Block>, Vec<String>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut preamble = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            preamble.push(l.to_string());
            i += 1;
            continue;
        }
        let line = i + 1;
        let command = l.to_string();
        i += 1;
        if lines.get(i) != Some(&"----") {
            return Err(format!("line {}: expected ---- after the command", i + 1));
        }
        i += 1;
        let mut expected = String::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        blocks.push(Block {
            preamble: std::mem::take(&mut preamble),
            command,
            line,
            expected,
        });
    }
    Ok((blocks, preamble))
}

/// Runs one transcript file. Returns the mismatches (empty when it passes); with
/// `rewrite`, writes the actual output back instead.
pub fn run_file(path: &Path, rewrite: bool) -> Vec<String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (blocks, trailer) = parse_file(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut cluster = Cluster::default();
    let mut failures = Vec::new();
    let mut rewritten = String::new();
    for b in &blocks {
        // A command the harness cannot run is a broken transcript, not a result: it
        // fails the test (a rewrite records it, so the file shows where it broke).
        let actual = match cluster.run(&b.command) {
            Ok(out) => out,
            Err(e) if rewrite => format!("BROKEN: {e}\n"),
            Err(e) => panic!("{name}:{}: {}: {e}", b.line, b.command),
        };
        assert!(
            !actual.lines().any(|l| l.trim().is_empty()),
            "{name}:{}: output has a blank line",
            b.line
        );
        if actual != b.expected {
            failures.push(format!(
                "{name}:{}: {}\n--- expected\n{}--- actual\n{}",
                b.line, b.command, b.expected, actual
            ));
        }
        for p in &b.preamble {
            rewritten.push_str(p);
            rewritten.push('\n');
        }
        let _ = write!(rewritten, "{}\n----\n{actual}", b.command);
    }
    for p in &trailer {
        rewritten.push_str(p);
        rewritten.push('\n');
    }
    if rewrite {
        if rewritten != text {
            std::fs::write(path, rewritten).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        return Vec::new();
    }
    failures
}
