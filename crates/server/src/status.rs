//! A consistent view of one node (role, log, state machine, peers), taken inside the node
//! loop and served by the admin endpoint and the RESP `INFO` command.

use raft::{NodeId, Role};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    /// Its place in the configuration in force: "voter", "learner" or "none" (removed,
    /// or not yet added).
    pub member: &'static str,
    pub connected: bool,
    /// Known on the leader only.
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
    pub queued: usize,
    pub sent_frames: u64,
    pub dropped_frames: u64,
}

/// What the consensus core refused from peers, by reason (`raft::CoreStats`): each is
/// something no honest peer of this cluster sends, so any non-zero count deserves a look.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CoreRefusals {
    /// Messages with a term no honest peer can have.
    pub absurd_terms: u64,
    /// Elections not started because the term is at its limit.
    pub campaigns_at_term_limit: u64,
    /// Append acknowledgements claiming more than was sent.
    pub forged_acks: u64,
    /// Appends with non-contiguous entries or impossible terms.
    pub malformed_appends: u64,
    /// Snapshots whose membership is not the cluster's.
    pub snapshots: u64,
    /// `TimeoutNow` not from the leader this node follows in its term.
    pub timeouts_now: u64,
    /// Configuration entries that are no legal step from the configuration before them.
    pub illegal_conf_changes: u64,
}

impl CoreRefusals {
    pub fn of(s: &raft::CoreStats) -> CoreRefusals {
        CoreRefusals {
            absurd_terms: s.absurd_terms,
            campaigns_at_term_limit: s.campaigns_refused_at_term_limit,
            forged_acks: s.forged_acks,
            malformed_appends: s.malformed_appends,
            snapshots: s.snapshots_refused,
            timeouts_now: s.timeouts_now_refused,
            illegal_conf_changes: s.illegal_conf_changes,
        }
    }

    /// `(reason label, count)` for the metrics endpoint.
    pub fn by_reason(&self) -> [(&'static str, u64); 7] {
        [
            ("absurd_term", self.absurd_terms),
            ("campaign_at_term_limit", self.campaigns_at_term_limit),
            ("forged_ack", self.forged_acks),
            ("malformed_append", self.malformed_appends),
            ("foreign_snapshot", self.snapshots),
            ("timeout_now_not_from_leader", self.timeouts_now),
            ("illegal_conf_change", self.illegal_conf_changes),
        ]
    }
}

/// The configuration in force on this node (raft's `Raft::membership`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct MembershipStatus {
    pub voters: Vec<NodeId>,
    /// Non-empty while a change of voters is in flight (joint consensus).
    pub voters_outgoing: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// The index of the entry that set it (the snapshot point if none after it).
    pub index: u64,
    /// Whether that entry is committed (as far as this node knows).
    pub committed: bool,
    /// This node knows a configuration and is not in it: it was removed.
    pub removed: bool,
    /// Each member's peer address, from the configuration's metadata.
    pub addresses: std::collections::BTreeMap<NodeId, String>,
}

/// A consistent view of the node, taken inside the loop.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub id: NodeId,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    /// The highest index a leader told this node is committed (0: none): beyond
    /// `last_index` while it catches up (see raft's `HardState::known_commit`).
    pub known_commit: u64,
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
    /// Peer messages the consensus core refused as impossible from an honest peer.
    pub refused_by_core: CoreRefusals,
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
    pub membership: MembershipStatus,
    pub peers: Vec<PeerStatus>,
}

/// The role and leader a node reports. A node whose log store failed no longer takes
/// part: its core's role (perhaps still "leader", frozen at the failure) and the leader it
/// last knew are stale, so it reports "failed" and no leader, and nobody routes to it.
pub fn reported_role(
    r: Role,
    leader: Option<NodeId>,
    storage_failed: bool,
) -> (&'static str, Option<NodeId>) {
    if storage_failed {
        ("failed", None)
    } else {
        (role_name(r), leader)
    }
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_whose_store_failed_reports_failed_and_no_leader() {
        assert_eq!(reported_role(Role::Leader, Some(1), true), ("failed", None));
        assert_eq!(
            reported_role(Role::Leader, Some(1), false),
            ("leader", Some(1))
        );
        assert_eq!(
            reported_role(Role::Follower, Some(2), false),
            ("follower", Some(2))
        );
    }
}
