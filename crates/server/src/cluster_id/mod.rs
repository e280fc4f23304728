//! The cluster identity: a random 128-bit cluster ID, kept durably by every member beside
//! its member ID (`file.rs`) and carried in both directions of the peer handshake, so a
//! node of another cluster — or a data directory from another cluster — is refused
//! before it exchanges a single Raft message.
//!
//! # How the members of a new cluster agree on one ID
//!
//! A node whose data directory has no identity file is *unbound*: it exchanges no Raft
//! message with anyone (a handshake with it always ends before the first frame) until
//! it binds, in one of two ways:
//!
//! - **It adopts** the ID of bound peers whose *bootstrap list* is the same as its own.
//!   The bootstrap list is the initial member list — every member ID with the peer
//!   address it is configured with (`[peers]` plus this node's own `peer_addr`) — and
//!   travels as a 64-bit fingerprint (SHA-256) in the handshake. Both directions count:
//!   the peer's `Hello` on an inbound connection or its reply on an outbound one. It
//!   adopts only once members that *vouch* for it make, with itself, a majority of the
//!   list, and at least one of them is bound: a bound peer vouches when its `Hello`
//!   says it never saw this node bound (`seen_you` false), an unbound peer with the same
//!   list by being unbound (it has seen nobody). See "A member whose data directory was
//!   wiped" below.
//! - **It mints** a random ID (the OS's random source) — only the member with the
//!   lowest ID in the list does, and only once a majority of the list, itself included,
//!   has shown itself unbound with the same bootstrap list (a one-member list mints at
//!   start), and never once it has heard of a bound member with its list (it adopts
//!   that ID instead). One minter, so no two IDs are minted for one list; the majority
//!   rule means a minter whose disk was wiped never mints a second ID whenever a quorum
//!   of bound members could have committed anything (a majority unbound intersects
//!   every quorum that could have held a committed entry: Raft messages flow only
//!   between bound members) — it adopts the existing ID if no member saw it bound, and
//!   refuses to start if one did (below).
//!
//! # A member whose data directory was wiped
//!
//! Without the identity file an empty data directory looks the same whether its member
//! never started (a late starter of the bootstrap list, which must adopt the ID and take
//! part) or ran, voted and acknowledged entries, then lost its disk (which must not: a
//! member back with term 0 and an empty log can vote twice in one term and help elect a
//! leader that lacks committed entries). What tells them apart is the other members'
//! memory: every bound member records, durably and before it exchanges any Raft frame
//! with it, each member it has seen bound in a handshake (`seen.rs`, the
//! `seen_members` file), and says in each `Hello` whether it has seen the member it
//! greets (`seen_you`). So whoever ever received a vote or an acknowledgement from a
//! member has it recorded. An unbound node told `seen_you` refuses to start with what to
//! do (remove it, then join again with `--join`), and the bound member refuses the
//! handshake too (`reason="forgot_state"`).
//!
//! A majority vouching is enough to adopt (or, for the minter, a majority unbound to
//! mint), but unless every member of the list has answered the node still waits
//! [`ADOPT_GRACE`] for the others, so a member that never saw it (down while it ran, or
//! wiped too) cannot let it in by answering before one that did.
//!
//! Residual risk: a wiped member is caught only if a member that has seen it answers
//! within the grace. Since every member dials every other at start, each member that was
//! up while the wiped one was bound has seen it; the hole is a wiped member restarted
//! while every member that saw it is down or unreachable for the grace, and a majority
//! that never saw it (down, or wiped too, the whole time it was bound) is up. In a list
//! of three: node 3 bound and acknowledging only to node 1 while node 2 was down, then
//! wiped and restarted while node 1 is down and node 2 up: node 3 adopts. Clusters bound
//! before this file existed start with empty records: a member wiped before the others'
//! first handshake with it after the upgrade is not caught.
//!
//! Binding writes the identity file durably before the node's first Raft message.
//! After that the file rules: the bootstrap list is never consulted again, and a peer
//! is accepted only if it names the same cluster ID (a mismatch is refused on both
//! sides with a log line and `raftkv_peer_handshakes_refused_total{reason="cluster_id"}`).
//!
//! Consequences, on purpose:
//! - two clusters started separately get different IDs even with identical peer lists
//!   (each minter draws its own), and a data directory moved from one to the other is
//!   refused by its new peers and never takes part;
//! - crossed peer lists (cluster A's node 3 entry pointing at cluster B's node 3) are
//!   refused whichever side is bound: bound members by the ID, unbound ones because
//!   their bootstrap lists differ;
//! - every member must be given the same list, this node included, with the address
//!   the others dial (a node that leaves itself out and listens on `0.0.0.0` computes
//!   another list): a disagreement is refused with both fingerprints in the log;
//! - a cluster without identities cannot bootstrap without its lowest member (it mints);
//! - a data directory from before identities (upgrade) is unbound like a new one: the
//!   cluster binds as a new one would, with a log line saying so. Nodes of the old
//!   version speak the previous frame version and cannot talk to new ones: upgrade all
//!   members together.
//!
//! The cluster ID is an identity, not a secret and not an authentication: it is sent to
//! whoever connects. Authentication is TLS's (`tls/`).

pub mod file;
pub mod seen;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raft::NodeId;

use crate::config::Config;
use file::IdentityFile;

/// A cluster's ID: 128 random bits, shown as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u128);

impl ClusterId {
    /// A fresh ID from the operating system's random source.
    pub fn random() -> ClusterId {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        ClusterId(u128::from_be_bytes(b))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for ClusterId {
    type Err = String;
    fn from_str(s: &str) -> Result<ClusterId, String> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("cluster_id {s:?} is not 32 hex digits"));
        }
        u128::from_str_radix(s, 16)
            .map(ClusterId)
            .map_err(|e| e.to_string())
    }
}

impl serde::Serialize for ClusterId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The 64-bit fingerprint of a bootstrap list (member ID → peer address): the first
/// eight bytes of SHA-256 over `id=addr\n` lines in ID order.
pub fn bootstrap_fingerprint(members: &BTreeMap<NodeId, String>) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"raftkv bootstrap list v1\n");
    for (id, addr) in members {
        ctx.update(format!("{id}={addr}\n").as_bytes());
    }
    let d = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// What a peer said in its handshake: about itself, and whether it has seen the node it
/// greets bound to its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerView {
    pub cluster: Option<ClusterId>,
    pub bootstrap: u64,
    pub seen_you: bool,
}

/// Why a handshake was refused on identity grounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Both are bound, to different clusters.
    ClusterId { ours: ClusterId, theirs: ClusterId },
    /// One side is unbound and the two were given different bootstrap lists.
    BootstrapList { ours: u64, theirs: u64 },
    /// `member` has no cluster ID but `seen_by` has seen it bound to `cluster`: its data
    /// directory was wiped (it forgot its vote and its log).
    ForgotState {
        member: NodeId,
        seen_by: NodeId,
        cluster: ClusterId,
    },
    /// Binding needed the identity file (or recording a peer the seen-members file),
    /// which could not be written.
    Storage(String),
}

impl Refusal {
    /// The `reason` label of `raftkv_peer_handshakes_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::ClusterId { .. } => "cluster_id",
            Refusal::BootstrapList { .. } => "bootstrap_list",
            Refusal::ForgotState { .. } => "forgot_state",
            Refusal::Storage(_) => "storage",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ClusterId { ours, theirs } => write!(
                f,
                "it belongs to cluster {theirs}, this node to cluster {ours}: a node or a data \
                 directory of another cluster (check the peer addresses; a wiped or copied data \
                 directory must not be reused)"
            ),
            Refusal::BootstrapList { ours, theirs } => write!(
                f,
                "its bootstrap member list (fingerprint {theirs:016x}) differs from this node's \
                 ({ours:016x}), and one of the two has no cluster ID yet: give every member the \
                 same [peers] list, this node included, with the addresses the others dial"
            ),
            Refusal::ForgotState {
                member,
                seen_by,
                cluster,
            } => write!(
                f,
                "node {member}'s data directory is empty but member {seen_by} has seen node \
                 {member} as a member of cluster {cluster}: it lost its vote and its log. \
                 Replace it: raftkv member remove {member}, empty its data directory again, \
                 then start it with --join <a member's admin address>"
            ),
            Refusal::Storage(e) => write!(f, "cannot record the cluster identity: {e}"),
        }
    }
}

struct State {
    bound: Option<ClusterId>,
    /// Members seen unbound with our bootstrap list (the minter counts them; they vouch
    /// for an adoption).
    unbound_peers: BTreeSet<NodeId>,
    /// While unbound: bound members with our list that never saw this node bound, and
    /// their cluster ID (they vouch for adopting it).
    vouched: BTreeMap<NodeId, ClusterId>,
    /// While bound: the members seen bound to our ID (`seen.rs`, mirrored on disk).
    seen: BTreeSet<NodeId>,
    /// When each (peer, reason, outbound) refusal was last logged at warn level.
    warned: BTreeMap<(NodeId, &'static str, bool), Instant>,
    /// While unbound: when a majority first vouched for adopting (the grace runs from it).
    majority_since: Option<Instant>,
    /// While unbound: a member saw this node bound (the first such refusal). Final.
    forgot: Option<Refusal>,
}

/// This node's identity, shared by the peer transport's tasks.
pub struct ClusterIdentity {
    me: NodeId,
    data_dir: PathBuf,
    bootstrap: u64,
    members: usize,
    /// This node has the lowest ID of its bootstrap list: it mints the ID.
    minter: bool,
    state: Mutex<State>,
    /// Set (once) when a member has seen this unbound node bound: the process must exit.
    forgot: tokio::sync::watch::Sender<Option<String>>,
    /// [`ADOPT_GRACE`] (shorter in unit tests).
    adopt_grace: Duration,
}

/// A refusal is logged at warn once per peer and reason in this long (every retry of a
/// misconfigured peer would otherwise log a line a second).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How long an unbound node with a majority vouching for it still waits for the rest of
/// its list before adopting (it adopts at once when every member has answered). Every
/// node dials every peer as it starts, so a member that is up answers within
/// milliseconds: this closes the race in which a member that never saw a wiped node
/// answers it before one that did (module docs), at the cost of this delay for a late
/// starter while some member of its list is down.
const ADOPT_GRACE: Duration = Duration::from_secs(2);

impl ClusterIdentity {
    /// Reads `data_dir`'s identity file. Refuses (with an error naming the file and both
    /// IDs) a directory that belongs to another member than `cfg.id`. A one-member
    /// bootstrap list mints at once.
    pub fn open(cfg: &Config) -> Result<ClusterIdentity, String> {
        let mut members = cfg.peers.clone();
        members.insert(cfg.id, cfg.peer_addr.clone());
        let found = file::read(&cfg.data_dir)?;
        // The record counts only for the cluster the identity file names (seen.rs).
        let seen = match (found, seen::read(&cfg.data_dir)?) {
            (Some(f), Some(s)) if s.cluster_id == f.cluster_id => s.members,
            (_, Some(s)) => {
                tracing::info!(
                    recorded_for = %s.cluster_id,
                    "ignoring {}: it is about another cluster ID than this data directory's \
                     identity (or it has none); a new record starts",
                    seen::FILE_NAME
                );
                BTreeSet::new()
            }
            (_, None) => BTreeSet::new(),
        };
        if let Some(f) = found {
            if f.member_id != cfg.id {
                return Err(format!(
                    "the data directory {} belongs to member {} of cluster {} (its {} says so), \
                     but this node is configured as member {}: point --data-dir at member {}'s \
                     own directory, or start this node with --id {}",
                    cfg.data_dir.display(),
                    f.member_id,
                    f.cluster_id,
                    file::FILE_NAME,
                    cfg.id,
                    cfg.id,
                    f.member_id
                ));
            }
        }
        let id = ClusterIdentity {
            me: cfg.id,
            data_dir: cfg.data_dir.clone(),
            bootstrap: bootstrap_fingerprint(&members),
            members: members.len(),
            minter: members.keys().next() == Some(&cfg.id),
            state: Mutex::new(State {
                bound: found.map(|f| f.cluster_id),
                unbound_peers: BTreeSet::new(),
                vouched: BTreeMap::new(),
                seen,
                warned: BTreeMap::new(),
                majority_since: None,
                forgot: None,
            }),
            forgot: tokio::sync::watch::Sender::new(None),
            adopt_grace: ADOPT_GRACE,
        };
        match found {
            Some(f) => {
                tracing::info!(cluster_id = %f.cluster_id, member_id = f.member_id, "cluster identity")
            }
            None => {
                let upgrade = has_entries(&cfg.data_dir);
                tracing::info!(
                    bootstrap_list = ?members,
                    fingerprint = format_args!("{:016x}", id.bootstrap),
                    "no cluster identity yet ({}): {}",
                    if upgrade { "a data directory from before cluster identities" } else { "a new member" },
                    if id.minter {
                        "this node, the lowest member ID, mints the cluster ID once a majority of the list is found without one, or adopts the ID of a bound member"
                    } else {
                        "it adopts the cluster ID from a bound member with the same bootstrap list"
                    }
                );
                if id.minter && id.members == 1 {
                    let mut st = id.lock();
                    id.mint(&mut st).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn member_id(&self) -> NodeId {
        self.me
    }

    /// The cluster ID, once bound.
    pub fn current(&self) -> Option<ClusterId> {
        self.lock().bound
    }

    /// This node's bootstrap list fingerprint.
    pub fn bootstrap(&self) -> u64 {
        self.bootstrap
    }

    /// What this node says in a handshake with `peer`.
    pub fn view_for(&self, peer: NodeId) -> PeerView {
        let st = self.lock();
        PeerView {
            cluster: st.bound,
            bootstrap: self.bootstrap,
            seen_you: st.bound.is_some() && st.seen.contains(&peer),
        }
    }

    /// The explanation, if a member has said it saw this unbound node bound (see
    /// [`ClusterIdentity::forgot_state`]).
    pub fn forgotten(&self) -> Option<String> {
        self.forgot.borrow().clone()
    }

    /// Resolves, with the explanation, once a member has said it saw this unbound node
    /// bound ([`Refusal::ForgotState`]): the node must refuse to run (exit non-zero).
    pub async fn forgot_state(&self) -> String {
        let mut rx = self.forgot.subscribe();
        let why = match rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone(),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        match why {
            Some(w) => w,
            None => std::future::pending().await,
        }
    }

    /// Applies the binding rules (module docs) to what `peer` said in a handshake: may
    /// adopt its ID or mint one, writing the identity file first. `Ok` means nothing
    /// about the two identities forbids talking; the connection carries Raft messages
    /// only if both sides were bound to the same ID when they spoke (the caller checks).
    pub fn reconcile(&self, peer: NodeId, theirs: PeerView) -> Result<(), Refusal> {
        let mut st = self.lock();
        let same_list = theirs.bootstrap == self.bootstrap;
        let list_refusal = Refusal::BootstrapList {
            ours: self.bootstrap,
            theirs: theirs.bootstrap,
        };
        // Told once that it forgot its state, the node never binds (it is exiting): a
        // member that never saw it must not let it in meanwhile.
        if st.bound.is_none() {
            if let Some(r) = &st.forgot {
                return Err(r.clone());
            }
        }
        match (st.bound, theirs.cluster) {
            // Recorded before the caller lets a frame through (module docs).
            (Some(ours), Some(t)) if ours == t => self.record_seen(&mut st, peer),
            (Some(ours), Some(t)) => Err(Refusal::ClusterId { ours, theirs: t }),
            // A member we saw bound is back without its identity: it was wiped.
            (Some(ours), None) if same_list && st.seen.contains(&peer) => {
                Err(Refusal::ForgotState {
                    member: peer,
                    seen_by: self.me,
                    cluster: ours,
                })
            }
            // They may adopt ours, from our side of this handshake.
            (Some(_), None) if same_list => Ok(()),
            (None, Some(t)) if same_list && theirs.seen_you => {
                let r = Refusal::ForgotState {
                    member: self.me,
                    seen_by: peer,
                    cluster: t,
                };
                st.forgot = Some(r.clone());
                self.forgot.send_if_modified(|v| {
                    let first = v.is_none();
                    if first {
                        *v = Some(r.to_string());
                    }
                    first
                });
                Err(r)
            }
            (None, Some(t)) if same_list => {
                st.unbound_peers.remove(&peer);
                st.vouched.insert(peer, t);
                self.adopt_if_vouched(&mut st)
            }
            (None, None) if same_list => {
                st.vouched.remove(&peer);
                st.unbound_peers.insert(peer);
                // A bound member with our list exists: adopt its ID, never mint another.
                if st.vouched.is_empty()
                    && self.minter
                    && st.unbound_peers.len() + 1 >= self.majority()
                {
                    if self.waited_for_the_list(&mut st) {
                        return self.mint(&mut st);
                    }
                    return Ok(());
                }
                self.adopt_if_vouched(&mut st)
            }
            _ => Err(list_refusal),
        }
    }

    fn majority(&self) -> usize {
        self.members / 2 + 1
    }

    /// Adopts a bound member's ID once this node and the members vouching for it (bound
    /// ones with that ID, and unbound ones) are a majority of the list (module docs).
    fn adopt_if_vouched(&self, st: &mut State) -> Result<(), Refusal> {
        let ids: BTreeSet<ClusterId> = st.vouched.values().copied().collect();
        for id in ids {
            let bound = st.vouched.values().filter(|&&c| c == id).count();
            if bound + st.unbound_peers.len() + 1 >= self.majority() {
                if !self.waited_for_the_list(st) {
                    return Ok(());
                }
                self.bind(st, id)?;
                tracing::info!(
                    cluster_id = %id,
                    vouched_by_bound = ?st.vouched.keys().collect::<Vec<_>>(),
                    vouched_by_unbound = ?st.unbound_peers,
                    "adopted the cluster ID: a majority of the bootstrap list, this node \
                     included, has never seen this node bound (a member that did would have \
                     said its data directory was wiped)"
                );
                return Ok(());
            }
        }
        tracing::debug!(
            vouched_by_bound = ?st.vouched,
            vouched_by_unbound = ?st.unbound_peers,
            "not adopting the cluster ID yet: fewer than a majority of the bootstrap list vouch for this node"
        );
        Ok(())
    }

    /// With a majority for binding (adopting or minting): whether every member of the
    /// list has answered, or [`ADOPT_GRACE`] has passed since the majority was first
    /// reached (the rest of the list had its chance to say it saw this node).
    fn waited_for_the_list(&self, st: &mut State) -> bool {
        let everyone = st.vouched.len() + st.unbound_peers.len() + 1 >= self.members;
        let since = *st.majority_since.get_or_insert_with(Instant::now);
        if everyone || since.elapsed() >= self.adopt_grace {
            return true;
        }
        tracing::debug!(
            vouched_by_bound = ?st.vouched,
            vouched_by_unbound = ?st.unbound_peers,
            "a majority of the bootstrap list for binding; waiting up to {:?} for the rest \
             of the list (one of them may have seen this node bound)",
            self.adopt_grace
        );
        false
    }

    /// Records `peer` as seen bound, durably, the first time (`seen.rs`).
    fn record_seen(&self, st: &mut State, peer: NodeId) -> Result<(), Refusal> {
        if st.seen.contains(&peer) {
            return Ok(());
        }
        let Some(cluster_id) = st.bound else {
            return Ok(());
        };
        let mut next = st.seen.clone();
        next.insert(peer);
        // Once per member and data directory: a small synced write, done inline.
        let f = seen::SeenFile {
            cluster_id,
            members: next,
        };
        seen::write(&self.data_dir, &f).map_err(Refusal::Storage)?;
        st.seen = f.members;
        tracing::info!(
            peer,
            "member {peer} seen bound to this cluster for the first time (recorded: should it \
             come back with an empty data directory, it is told it forgot its vote)"
        );
        Ok(())
    }

    fn mint(&self, st: &mut State) -> Result<(), Refusal> {
        let id = ClusterId::random();
        self.bind(st, id)?;
        tracing::info!(
            cluster_id = %id,
            unbound_peers = ?st.unbound_peers,
            "minted the cluster ID (the lowest member ID of the bootstrap list, with a majority of the list unbound)"
        );
        Ok(())
    }

    /// Durable first (the identity file), then visible: no Raft message is exchanged
    /// under an ID a crash could forget.
    fn bind(&self, st: &mut State, id: ClusterId) -> Result<(), Refusal> {
        // Once per node lifetime: a small synced write, done inline.
        file::write(
            &self.data_dir,
            &IdentityFile {
                member_id: self.me,
                cluster_id: id,
            },
        )
        .map_err(Refusal::Storage)?;
        st.bound = Some(id);
        // A record about another binding (none survives `open`, but be sure) is void.
        st.seen.clear();
        Ok(())
    }

    /// Whether a refusal about `peer` should be logged at warn level now (else debug):
    /// once a minute per peer, reason and direction (`outbound`: on a connection this
    /// node dialled).
    pub fn should_warn_about(&self, peer: NodeId, reason: &'static str, outbound: bool) -> bool {
        let mut st = self.lock();
        let now = Instant::now();
        let key = (peer, reason, outbound);
        match st.warned.get(&key) {
            Some(t) if now.duration_since(*t) < WARN_EVERY => false,
            _ => {
                st.warned.insert(key, now);
                true
            }
        }
    }
}

/// A directory holding anything but an empty log: data from before identities.
fn has_entries(data_dir: &Path) -> bool {
    let log = data_dir.join("log");
    std::fs::read_dir(&log).is_ok_and(|mut d| d.next().is_some())
        || std::fs::read_dir(data_dir.join("snap")).is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn cfg(id: u64, dir: &Path, peers: &str) -> Config {
        let flags = Overrides {
            id: Some(id),
            peers: Some(peers.into()),
            data_dir: Some(dir.join(format!("n{id}"))),
            ..Overrides::default()
        };
        Config::resolve(FileConfig::default(), &flags).unwrap()
    }

    /// Opens with no adoption grace: these tests are about the other rules (the grace
    /// has its own test).
    fn open_now(c: &Config) -> ClusterIdentity {
        let mut id = ClusterIdentity::open(c).unwrap();
        id.adopt_grace = Duration::ZERO;
        id
    }

    const LIST: &str = "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3";

    #[test]
    fn cluster_ids_print_and_parse_as_32_hex_digits() {
        let id = ClusterId(0xabc);
        assert_eq!(id.to_string(), "00000000000000000000000000000abc");
        assert_eq!(id.to_string().parse(), Ok(id));
        assert!("abc".parse::<ClusterId>().is_err());
        assert_ne!(ClusterId::random(), ClusterId::random());
    }

    /// The three nodes of one list: node 1 mints once it sees node 2 unbound, node 2
    /// adopts from node 1, node 3 from node 2; all end on one ID, written to disk.
    #[test]
    fn a_new_cluster_binds_to_one_minted_id() {
        let dir = tempfile::tempdir().unwrap();
        let n: Vec<ClusterIdentity> = (1..=3)
            .map(|i| open_now(&cfg(i, dir.path(), LIST)))
            .collect();
        assert!(n.iter().all(|x| x.current().is_none()));
        // Node 2 has not heard of any ID: it does not mint.
        n[1].reconcile(3, n[2].view_for(2)).unwrap();
        assert_eq!(n[1].current(), None);
        // Node 1 hears node 2 unbound: with itself a majority of three, it mints.
        n[0].reconcile(2, n[1].view_for(1)).unwrap();
        let id = n[0].current().expect("minted");
        n[1].reconcile(1, n[0].view_for(2)).unwrap();
        n[2].reconcile(2, n[1].view_for(3)).unwrap();
        assert!(n.iter().all(|x| x.current() == Some(id)));
        for i in 1..=3 {
            let f = file::read(&dir.path().join(format!("n{i}")))
                .unwrap()
                .unwrap();
            assert_eq!((f.member_id, f.cluster_id), (i, id));
        }
        // A restart reads it back.
        let again = open_now(&cfg(3, dir.path(), LIST));
        assert_eq!(again.current(), Some(id));
    }

    /// Only the lowest member mints, and only with a majority: node 1 alone in a list of
    /// three does not; node 2 never does.
    #[test]
    fn only_the_lowest_member_mints_and_only_with_a_majority() {
        let dir = tempfile::tempdir().unwrap();
        let five = "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5";
        let n1 = open_now(&cfg(1, dir.path(), five));
        let n2 = open_now(&cfg(2, dir.path(), five));
        n1.reconcile(2, n2.view_for(1)).unwrap();
        assert_eq!(n1.current(), None, "two of five is no majority");
        for peer in [3, 4, 5] {
            n2.reconcile(peer, n2.view_for(2)).unwrap();
        }
        assert_eq!(n2.current(), None, "node 2 never mints");
        n1.reconcile(3, n2.view_for(1)).unwrap();
        assert!(n1.current().is_some(), "three of five mint");
        // A one-member list mints at start.
        let solo = open_now(&cfg(4, dir.path(), "4=h:4"));
        assert!(solo.current().is_some());
    }

    /// A minter on an empty directory adopts the cluster's ID from a bound member that
    /// never saw it bound, instead of minting.
    #[test]
    fn a_wiped_minter_adopts_the_existing_id() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = open_now(&cfg(1, dir.path(), LIST));
        let existing = PeerView {
            cluster: Some(ClusterId(42)),
            bootstrap: n1.bootstrap(),
            seen_you: false,
        };
        n1.reconcile(2, existing).unwrap();
        assert_eq!(n1.current(), Some(ClusterId(42)));
    }

    /// A bound member records each member it sees bound; one of them back with an empty
    /// data directory is refused on both sides (it forgot its vote), and told so.
    #[test]
    fn a_wiped_member_seen_bound_is_told_it_forgot_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let n: Vec<ClusterIdentity> = (1..=3)
            .map(|i| open_now(&cfg(i, dir.path(), LIST)))
            .collect();
        n[0].reconcile(2, n[1].view_for(1)).unwrap();
        n[1].reconcile(1, n[0].view_for(2)).unwrap();
        n[2].reconcile(1, n[0].view_for(3)).unwrap();
        let id = n[0].current().unwrap();
        assert!(
            !n[0].view_for(3).seen_you,
            "not seen before a bound handshake"
        );
        // Node 1 sees node 3 bound: recorded on disk.
        n[0].reconcile(3, n[2].view_for(1)).unwrap();
        assert!(n[0].view_for(3).seen_you);
        let f = seen::read(&dir.path().join("n1")).unwrap().unwrap();
        assert_eq!((f.cluster_id, f.members.contains(&3)), (id, true));
        // Node 3's directory is wiped; node 1 restarts (reads its record back).
        std::fs::remove_dir_all(dir.path().join("n3")).unwrap();
        let n1 = open_now(&cfg(1, dir.path(), LIST));
        let n3 = open_now(&cfg(3, dir.path(), LIST));
        assert_eq!(n3.current(), None);
        let r = n1.reconcile(3, n3.view_for(1)).unwrap_err();
        assert_eq!(r.reason(), "forgot_state");
        let r = n3.reconcile(1, n1.view_for(3)).unwrap_err();
        assert_eq!(
            r,
            Refusal::ForgotState {
                member: 3,
                seen_by: 1,
                cluster: id
            }
        );
        assert_eq!(n3.current(), None, "a wiped member never adopts");
        // Node 2 never saw it: told first by node 1, it stays refused whatever follows.
        let unseen = n[1].view_for(3);
        assert!(!unseen.seen_you);
        assert_eq!(
            n3.reconcile(2, unseen).unwrap_err().reason(),
            "forgot_state"
        );
        assert_eq!(n3.current(), None);
        assert!(file::read(&dir.path().join("n3")).unwrap().is_none());
        let why = block_on(n3.forgot_state());
        assert!(
            why.contains("node 3's data directory is empty but member 1 has seen node 3")
                && why.contains("raftkv member remove 3")
                && why.contains("--join"),
            "{why}"
        );
        // Node 2 never saw node 3 bound (in this test): it would vouch for it.
        assert!(!n[1].view_for(3).seen_you);
    }

    /// A node adopts only once a majority of the list, itself included, vouches for it:
    /// in a list of five, one bound member is not enough; a second (bound, or unbound
    /// with the same list) is.
    #[test]
    fn adopting_needs_a_majority_of_the_list_to_vouch() {
        let dir = tempfile::tempdir().unwrap();
        let five = "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5";
        let n5 = open_now(&cfg(5, dir.path(), five));
        let bound = |seen_you| PeerView {
            cluster: Some(ClusterId(9)),
            bootstrap: n5.bootstrap(),
            seen_you,
        };
        n5.reconcile(1, bound(false)).unwrap();
        assert_eq!(n5.current(), None, "two of five");
        // Node 3 unbound with the same list vouches too: three of five.
        let unbound = PeerView {
            cluster: None,
            bootstrap: n5.bootstrap(),
            seen_you: false,
        };
        n5.reconcile(3, unbound).unwrap();
        assert_eq!(n5.current(), Some(ClusterId(9)));

        // A minter that has heard of a bound member adopts, never mints a second ID.
        let n1 = open_now(&cfg(1, dir.path(), five));
        n1.reconcile(2, bound(false)).unwrap();
        n1.reconcile(3, unbound).unwrap();
        assert_eq!(n1.current(), Some(ClusterId(9)));
    }

    /// With a majority vouching but a member silent, the node waits for the grace: a
    /// member that saw it bound may still answer (and does here); with every member
    /// answered it adopts at once; after the grace it adopts without the silent one.
    #[test]
    fn adopting_waits_a_grace_for_the_rest_of_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut n3 = open_now(&cfg(3, dir.path(), LIST));
        n3.adopt_grace = Duration::from_millis(200);
        let bound = |seen_you| PeerView {
            cluster: Some(ClusterId(9)),
            bootstrap: n3.bootstrap(),
            seen_you,
        };
        // Node 2 never saw node 3 (it was down): a majority with node 3, but node 1
        // has not answered yet.
        n3.reconcile(2, bound(false)).unwrap();
        assert_eq!(n3.current(), None, "waits for node 1");
        // Node 1 did see it: refused, never adopted.
        let r = n3.reconcile(1, bound(true)).unwrap_err();
        assert_eq!(r.reason(), "forgot_state");
        assert_eq!(n3.current(), None);

        // Everyone answered and vouched: at once.
        let mut late = open_now(&cfg(3, &dir.path().join("b"), LIST));
        late.adopt_grace = Duration::from_secs(3600);
        late.reconcile(2, bound(false)).unwrap();
        assert_eq!(late.current(), None);
        late.reconcile(1, bound(false)).unwrap();
        assert_eq!(late.current(), Some(ClusterId(9)));

        // The minter waits too: node 2 unbound is a majority, node 3 may yet say it saw
        // node 1 (both node 1 and node 2 wiped, node 3 up).
        let mut minter = ClusterIdentity::open(&cfg(1, &dir.path().join("d"), LIST)).unwrap();
        minter.adopt_grace = Duration::from_secs(3600);
        let unbound = PeerView {
            cluster: None,
            bootstrap: minter.bootstrap(),
            seen_you: false,
        };
        minter.reconcile(2, unbound).unwrap();
        assert_eq!(minter.current(), None, "waits for node 3");
        let r = minter.reconcile(3, bound(true)).unwrap_err();
        assert_eq!(r.reason(), "forgot_state");
        minter.reconcile(2, unbound).unwrap_err();
        assert_eq!(minter.current(), None, "never mints after that");

        // Node 1 down: after the grace, a majority is enough.
        let mut alone = open_now(&cfg(3, &dir.path().join("c"), LIST));
        alone.adopt_grace = Duration::from_millis(100);
        alone.reconcile(2, bound(false)).unwrap();
        assert_eq!(alone.current(), None);
        std::thread::sleep(Duration::from_millis(150));
        alone.reconcile(2, bound(false)).unwrap();
        assert_eq!(alone.current(), Some(ClusterId(9)));
    }

    /// Polls a future that is ready (the tests' `forgot_state` after the refusal).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn other_clusters_and_other_lists_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_now(&cfg(1, dir.path(), LIST));
        let crossed = "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:9";
        let b = open_now(&cfg(2, dir.path(), crossed));
        // Unbound with different lists: refused, nothing counted or adopted.
        let r = a.reconcile(2, b.view_for(1)).unwrap_err();
        assert_eq!(r.reason(), "bootstrap_list");
        assert_eq!(a.current(), None);
        let other = PeerView {
            cluster: Some(ClusterId(7)),
            bootstrap: b.bootstrap(),
            seen_you: false,
        };
        assert_eq!(
            a.reconcile(2, other).unwrap_err().reason(),
            "bootstrap_list"
        );
        assert_eq!(a.current(), None, "no ID adopted from another list");
        // Bound: the ID decides, whatever the lists.
        let same_list = PeerView {
            cluster: Some(ClusterId(8)),
            bootstrap: a.bootstrap(),
            seen_you: false,
        };
        a.reconcile(3, same_list).unwrap();
        let r = a.reconcile(2, other).unwrap_err();
        assert_eq!(
            r,
            Refusal::ClusterId {
                ours: ClusterId(8),
                theirs: ClusterId(7)
            }
        );
        assert_eq!(r.reason(), "cluster_id");
        assert!(a.should_warn_about(2, r.reason(), false));
        assert!(!a.should_warn_about(2, r.reason(), false), "once a minute");
        assert!(a.should_warn_about(3, r.reason(), false), "per peer");
        assert!(a.should_warn_about(2, r.reason(), true), "per direction");
    }

    #[test]
    fn a_data_directory_of_another_member_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let c2 = cfg(2, dir.path(), LIST);
        file::write(
            &c2.data_dir,
            &IdentityFile {
                member_id: 3,
                cluster_id: ClusterId(5),
            },
        )
        .unwrap();
        let err = ClusterIdentity::open(&c2).err().expect("refused");
        assert!(
            err.contains("belongs to member 3") && err.contains("configured as member 2"),
            "{err}"
        );
    }
}
