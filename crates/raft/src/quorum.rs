//! Quorum arithmetic, apart from progress tracking: it sees only acknowledged values.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::types::NodeId;

/// The largest value `v` such that a majority of `voters` acknowledged at least `v`.
/// `acked` gives each voter's acknowledged value (0 when unknown).
pub fn majority_value(voters: &BTreeSet<NodeId>, acked: impl Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        // An empty half of a joint config places no constraint.
        return u64::MAX;
    }
    let mut values: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[voters.len() / 2]
}

/// Joint consensus: a value counts only when both halves agree (§6).
pub fn joint_value(
    incoming: &BTreeSet<NodeId>,
    outgoing: &BTreeSet<NodeId>,
    acked: impl Fn(NodeId) -> u64,
) -> u64 {
    majority_value(incoming, &acked).min(majority_value(outgoing, &acked))
}

/// Outcome of a vote count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

pub fn majority_vote(
    voters: &BTreeSet<NodeId>,
    vote: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let need = voters.len() / 2 + 1;
    let (mut yes, mut no) = (0, 0);
    for &id in voters {
        match vote(id) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    if yes >= need {
        VoteResult::Won
    } else if voters.len() - no < need {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

pub fn joint_vote(
    incoming: &BTreeSet<NodeId>,
    outgoing: &BTreeSet<NodeId>,
    vote: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    match (
        majority_vote(incoming, &vote),
        majority_vote(outgoing, &vote),
    ) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_of_five_is_third_highest() {
        let acked = |id: u64| [0, 5, 9, 7, 1, 3][id as usize];
        assert_eq!(majority_value(&set(&[1, 2, 3, 4, 5]), acked), 5);
    }

    #[test]
    fn majority_of_even_needs_more_than_half() {
        let acked = |id: u64| [0, 10, 20, 30, 40][id as usize];
        // 4 voters: need 3 → third highest = 20.
        assert_eq!(majority_value(&set(&[1, 2, 3, 4]), acked), 20);
    }

    #[test]
    fn joint_takes_the_minimum_of_both_halves() {
        let acked = |id: u64| [0, 10, 10, 10, 1, 1, 1][id as usize];
        assert_eq!(joint_value(&set(&[1, 2, 3]), &set(&[4, 5, 6]), acked), 1);
        assert_eq!(joint_value(&set(&[1, 2, 3]), &set(&[]), acked), 10);
    }

    #[test]
    fn vote_outcomes() {
        let voters = set(&[1, 2, 3]);
        assert_eq!(
            majority_vote(&voters, |id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(majority_vote(&voters, |id| Some(id != 3)), VoteResult::Won);
        assert_eq!(majority_vote(&voters, |id| Some(id == 1)), VoteResult::Lost);
        assert_eq!(
            joint_vote(&voters, &set(&[4, 5, 6]), |id| Some(id <= 3)),
            VoteResult::Lost
        );
    }
}
