//! Cluster membership: voters, learners, and the outgoing voter set during joint consensus.

use alloc::collections::BTreeSet;

use crate::types::NodeId;

/// Who votes and who only listens. During a joint configuration (§6 of the Raft paper),
/// decisions need a majority of `voters` *and* a majority of `voters_outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The voters (of the incoming half, during a joint configuration).
    pub voters: BTreeSet<NodeId>,
    /// Non-empty only while a joint configuration is in force.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Receive the log but never vote nor count towards a quorum.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A plain configuration of `voters` with no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether a joint configuration (old and new voters both deciding) is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Every node that votes in either half of a joint configuration.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.voters_outgoing).copied().collect()
    }

    /// Whether `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Every node that receives the log: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.all_voters();
        all.extend(self.learners.iter().copied());
        all
    }
}
