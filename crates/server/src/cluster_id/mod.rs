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
//! - **It adopts** the ID of a bound peer whose *bootstrap list* is the same as its own.
//!   The bootstrap list is the initial member list — every member ID with the peer
//!   address it is configured with (`[peers]` plus this node's own `peer_addr`) — and
//!   travels as a 64-bit fingerprint (SHA-256) in the handshake. Both directions count:
//!   the peer's `Hello` on an inbound connection or its reply on an outbound one.
//! - **It mints** a random ID (the OS's random source) — only the member with the
//!   lowest ID in the list does, and only once a majority of the list, itself included,
//!   has shown itself unbound with the same bootstrap list (a one-member list mints at
//!   start). One minter, so no two IDs are minted for one list; the majority rule means
//!   a minter whose disk was wiped adopts the existing cluster's ID from the bound
//!   members instead of minting a second one, whenever a quorum of them could have
//!   committed anything (a majority unbound intersects every quorum that could have
//!   held a committed entry: Raft messages flow only between bound members).
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

/// What a peer said about itself in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerView {
    pub cluster: Option<ClusterId>,
    pub bootstrap: u64,
}

/// Why a handshake was refused on identity grounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Both are bound, to different clusters.
    ClusterId { ours: ClusterId, theirs: ClusterId },
    /// One side is unbound and the two were given different bootstrap lists.
    BootstrapList { ours: u64, theirs: u64 },
    /// Binding needed the identity file, which could not be written.
    Storage(String),
}

impl Refusal {
    /// The `reason` label of `raftkv_peer_handshakes_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::ClusterId { .. } => "cluster_id",
            Refusal::BootstrapList { .. } => "bootstrap_list",
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
            Refusal::Storage(e) => write!(f, "cannot record the cluster identity: {e}"),
        }
    }
}

struct State {
    bound: Option<ClusterId>,
    /// Members seen unbound with our bootstrap list (the minter counts them).
    unbound_peers: BTreeSet<NodeId>,
    /// When each (peer, reason, outbound) refusal was last logged at warn level.
    warned: BTreeMap<(NodeId, &'static str, bool), Instant>,
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
}

/// A refusal is logged at warn once per peer and reason in this long (every retry of a
/// misconfigured peer would otherwise log a line a second).
const WARN_EVERY: Duration = Duration::from_secs(60);

impl ClusterIdentity {
    /// Reads `data_dir`'s identity file. Refuses (with an error naming the file and both
    /// IDs) a directory that belongs to another member than `cfg.id`. A one-member
    /// bootstrap list mints at once.
    pub fn open(cfg: &Config) -> Result<ClusterIdentity, String> {
        let mut members = cfg.peers.clone();
        members.insert(cfg.id, cfg.peer_addr.clone());
        let found = file::read(&cfg.data_dir)?;
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
                warned: BTreeMap::new(),
            }),
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

    /// What this node says about itself in a handshake.
    pub fn view(&self) -> PeerView {
        PeerView {
            cluster: self.current(),
            bootstrap: self.bootstrap,
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
        match (st.bound, theirs.cluster) {
            (Some(ours), Some(t)) if ours == t => Ok(()),
            (Some(ours), Some(t)) => Err(Refusal::ClusterId { ours, theirs: t }),
            // They will adopt ours, from our side of this handshake.
            (Some(_), None) if same_list => Ok(()),
            (None, Some(t)) if same_list => {
                self.bind(&mut st, t)?;
                tracing::info!(cluster_id = %t, from = peer, "adopted the cluster ID of member {peer}");
                Ok(())
            }
            (None, None) if same_list => {
                st.unbound_peers.insert(peer);
                let majority = self.members / 2 + 1;
                if self.minter && st.unbound_peers.len() + 1 >= majority {
                    self.mint(&mut st)?;
                }
                Ok(())
            }
            _ => Err(list_refusal),
        }
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
            .map(|i| ClusterIdentity::open(&cfg(i, dir.path(), LIST)).unwrap())
            .collect();
        assert!(n.iter().all(|x| x.current().is_none()));
        // Node 2 has not heard of any ID: it does not mint.
        n[1].reconcile(3, n[2].view()).unwrap();
        assert_eq!(n[1].current(), None);
        // Node 1 hears node 2 unbound: with itself a majority of three, it mints.
        n[0].reconcile(2, n[1].view()).unwrap();
        let id = n[0].current().expect("minted");
        n[1].reconcile(1, n[0].view()).unwrap();
        n[2].reconcile(2, n[1].view()).unwrap();
        assert!(n.iter().all(|x| x.current() == Some(id)));
        for i in 1..=3 {
            let f = file::read(&dir.path().join(format!("n{i}")))
                .unwrap()
                .unwrap();
            assert_eq!((f.member_id, f.cluster_id), (i, id));
        }
        // A restart reads it back.
        let again = ClusterIdentity::open(&cfg(3, dir.path(), LIST)).unwrap();
        assert_eq!(again.current(), Some(id));
    }

    /// Only the lowest member mints, and only with a majority: node 1 alone in a list of
    /// three does not; node 2 never does.
    #[test]
    fn only_the_lowest_member_mints_and_only_with_a_majority() {
        let dir = tempfile::tempdir().unwrap();
        let five = "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5";
        let n1 = ClusterIdentity::open(&cfg(1, dir.path(), five)).unwrap();
        let n2 = ClusterIdentity::open(&cfg(2, dir.path(), five)).unwrap();
        n1.reconcile(2, n2.view()).unwrap();
        assert_eq!(n1.current(), None, "two of five is no majority");
        for peer in [3, 4, 5] {
            n2.reconcile(peer, n2.view()).unwrap();
        }
        assert_eq!(n2.current(), None, "node 2 never mints");
        n1.reconcile(3, n2.view()).unwrap();
        assert!(n1.current().is_some(), "three of five mint");
        // A one-member list mints at start.
        let solo = ClusterIdentity::open(&cfg(4, dir.path(), "4=h:4")).unwrap();
        assert!(solo.current().is_some());
    }

    /// A wiped minter adopts the cluster's ID from a bound member instead of minting.
    #[test]
    fn a_wiped_minter_adopts_the_existing_id() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = ClusterIdentity::open(&cfg(1, dir.path(), LIST)).unwrap();
        let existing = PeerView {
            cluster: Some(ClusterId(42)),
            bootstrap: n1.bootstrap(),
        };
        n1.reconcile(2, existing).unwrap();
        assert_eq!(n1.current(), Some(ClusterId(42)));
    }

    #[test]
    fn other_clusters_and_other_lists_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ClusterIdentity::open(&cfg(1, dir.path(), LIST)).unwrap();
        let crossed = "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:9";
        let b = ClusterIdentity::open(&cfg(2, dir.path(), crossed)).unwrap();
        // Unbound with different lists: refused, nothing counted or adopted.
        let r = a.reconcile(2, b.view()).unwrap_err();
        assert_eq!(r.reason(), "bootstrap_list");
        assert_eq!(a.current(), None);
        let other = PeerView {
            cluster: Some(ClusterId(7)),
            bootstrap: b.bootstrap(),
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
