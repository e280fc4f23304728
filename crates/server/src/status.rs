//! A consistent view of one node (role, log, state machine, peers), taken inside the node
//! loop and served by the admin endpoint and the RESP `INFO` command.

use raft::{NodeId, Role};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub connected: bool,
    /// Known on the leader only.
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
    pub queued: usize,
    pub sent_frames: u64,
    pub dropped_frames: u64,
}

/// A consistent view of the node, taken inside the loop.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub id: NodeId,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub log_entries: u64,
    pub log_bytes: u64,
    /// Index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    pub snapshots_taken: u64,
    /// Snapshots received from a leader (InstallSnapshot) and installed.
    pub snapshots_installed: u64,
    /// While leading: followers found to have lost entries they had acknowledged (a
    /// wiped or replaced disk; such a node should rejoin as a new member).
    pub followers_lost_log: u64,
    pub read_mode: &'static str,
    pub keys: u64,
    /// Keys with a TTL, and their average time left in ms (`INFO keyspace`).
    pub expires: u64,
    pub avg_ttl_ms: u64,
    pub kv_bytes: u64,
    pub proposals: u64,
    pub applied_entries: u64,
    pub reads_served: u64,
    pub pending_requests: usize,
    pub uptime_ms: u64,
    /// Set once the log store failed: the node no longer takes part or serves.
    pub storage_failure: Option<String>,
    pub peers: Vec<PeerStatus>,
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}
