//! Leadership transfer (thesis §3.10, `src/transfer.rs`): the claims, one test each.

mod common;

use bytes::Bytes;
use common::Net;
use raft::{MessageBody, ProposeError, Role, TransferError};

/// The two followers of a three-node cluster led by `leader`.
fn others(leader: u64) -> Vec<u64> {
    (1..=3).filter(|&id| id != leader).collect()
}

/// A caught-up follower takes over at once: one term later, with no election timeout
/// spent, and every committed entry kept.
#[test]
fn a_transfer_to_a_caught_up_voter_makes_it_leader_in_the_next_term() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.propose(leader, "before");
    net.tick(2);
    let target = others(leader)[0];
    let term = net.node(leader).term();
    net.node_mut(leader)
        .transfer_leader(target)
        .expect("transfer starts");
    net.stabilize();
    assert_eq!(net.leader(), Some(target));
    assert_eq!(net.node(target).term(), term + 1);
    assert_eq!(net.node(leader).role(), Role::Follower);
    let idx = net.propose(target, "after");
    net.tick(2);
    assert!(net.node(leader).commit_index() >= idx);
    assert_eq!(net.applied_data(leader), vec!["before", "after"]);
    net.check_invariants();
}

/// A lagging target is first brought up to date; `TimeoutNow` goes only once it holds
/// the whole log (a target behind could not win the election it is told to start).
#[test]
fn a_lagging_target_is_caught_up_before_timeout_now() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let target = others(leader)[0];
    net.cut_link(leader, target);
    for i in 0..5 {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(2);
    assert!(net.node(target).log().last_index() < net.node(leader).log().last_index());
    net.node_mut(leader)
        .transfer_leader(target)
        .expect("transfer starts");
    net.stabilize();
    assert_eq!(
        net.count_sent(|m| matches!(m.body, MessageBody::TimeoutNow)),
        0
    );
    net.heal();
    net.tick(3);
    assert_eq!(net.leader(), Some(target));
    assert_eq!(net.applied_data(target).len(), 5);
    net.check_invariants();
}

/// While a transfer is in progress the leader takes no proposals (the target must catch
/// up with a log that stops growing); a transfer that cannot finish — the target is cut
/// off — is abandoned after an election timeout, and proposals are taken again.
#[test]
fn proposals_wait_during_a_transfer_and_a_failed_one_is_abandoned() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let target = others(leader)[0];
    net.isolate(target);
    net.node_mut(leader)
        .transfer_leader(target)
        .expect("transfer starts");
    assert_eq!(net.node(leader).transferring_to(), Some(target));
    assert_eq!(
        net.node_mut(leader).propose(Bytes::from_static(b"x")),
        Err(ProposeError::Transferring { to: target })
    );
    // The other follower keeps the leader in office; the transfer times out.
    let mut ticks = 0;
    while net.node(leader).transferring_to().is_some() {
        net.tick(1);
        ticks += 1;
        assert!(ticks <= 11, "the transfer was never abandoned");
    }
    assert_eq!(net.leader(), Some(leader));
    net.propose(leader, "after");
    net.check_invariants();
}

#[test]
fn a_transfer_is_refused_off_the_leader_to_itself_or_to_a_non_voter() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let follower = others(leader)[0];
    assert!(matches!(
        net.node_mut(follower).transfer_leader(leader),
        Err(TransferError::NotLeader { leader: Some(l) }) if l == leader
    ));
    assert_eq!(
        net.node_mut(leader).transfer_leader(leader),
        Err(TransferError::AlreadyLeader)
    );
    assert_eq!(
        net.node_mut(leader).transfer_leader(9),
        Err(TransferError::NotAVoter(9))
    );
    let other = others(leader)[1];
    net.isolate(follower);
    net.node_mut(leader).transfer_leader(follower).unwrap();
    assert_eq!(
        net.node_mut(leader).transfer_leader(other),
        Err(TransferError::InProgress(follower))
    );
    assert_eq!(net.node_mut(leader).transfer_leader(follower), Ok(()));
}

/// §6.4 with §3.10: once the leader has sent `TimeoutNow`, its lease no longer protects
/// it — the target's vote requests say "transfer", and voters grant them inside their
/// lease — so it serves no read from the lease again in its term (ReadIndex still works:
/// it needs a quorum of its term). Before the fix a leader that did not hear of the new
/// term at once (its copy of the target's vote request lost) answered a read from the
/// lease after the target had won and committed a write: a stale read (kvsim seed 212,
/// with membership changes drawn).
#[test]
fn a_leader_that_sent_timeout_now_serves_no_lease_read() {
    let mut net = Net::new(3);
    let old = net.elect(100);
    net.propose(old, "a");
    net.tick(2);
    assert!(net.node(old).lease_valid());
    let target = others(old)[0];
    // The old leader hears nothing of the target's campaign or its leadership.
    net.drop_if = Some(Box::new(move |m| m.from == target && m.to == old));
    net.node_mut(old).transfer_leader(target).unwrap();
    net.stabilize();
    assert_eq!(net.leader_among(|id| id != old), Some(target));
    let idx = net.propose(target, "b");
    assert!(net.node(target).commit_index() >= idx);
    // Still leading its old term, within what would have been its lease.
    assert!(net.node(old).is_leader());
    assert!(!net.node(old).lease_valid());
    net.node_mut(old).read(1).unwrap();
    net.stabilize();
    assert!(
        net.reads.get(&old).is_none_or(|r| r.is_empty()),
        "the deposed leader answered a read on its lease"
    );
}
