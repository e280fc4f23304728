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

/// A leader that sent `TimeoutNow` holds no lease for the rest of its term: the target
/// campaigns with vote requests that skip the voters' lease check, so a new leader can
/// commit while the old one's lease would still run. Found by `kvsim simulate --seed
/// 30001884 --nodes 3`: the old leader, cut off right after handing over, answered a
/// lease read 766 ms later with a value two new-term writes had replaced.
#[test]
fn a_leader_that_sent_timeout_now_serves_no_lease_read() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.propose(leader, "old");
    net.tick(1);
    assert!(net.node(leader).lease_valid(), "the lease holds before");
    let (target, other) = (others(leader)[0], others(leader)[1]);
    // Only the leader's messages to the target get through: TimeoutNow arrives, but
    // nothing tells the old leader that it was deposed.
    net.cut_link(leader, other);
    net.cut_one_way(target, leader);
    net.node_mut(leader)
        .transfer_leader(target)
        .expect("transfer starts");
    net.stabilize();
    assert_eq!(net.node(target).role(), Role::Leader);
    assert_eq!(net.node(leader).role(), Role::Leader, "it has not heard");
    let idx = net.propose(target, "new");
    net.stabilize();
    assert!(
        net.node(target).commit_index() >= idx,
        "the new leader commits"
    );

    assert!(!net.node(leader).lease_valid());
    net.node_mut(leader).read(7).expect("a read is taken");
    net.stabilize();
    assert!(
        net.reads
            .get(&leader)
            .is_none_or(|r| r.iter().all(|rs| rs.ctx != 7)),
        "the deposed leader answered a read from its old state: {:?}",
        net.reads.get(&leader)
    );
    net.check_invariants();
}

/// A `TimeoutNow` that arrives late — its transfer abandoned, the log grown on since —
/// finds a target that no longer holds every entry it knows committed. It must not
/// campaign: it could never win (Leader Completeness), and its new term would only
/// depose the leader. It did, and the core's invariant check stopped the node (kvsim
/// seed 854: 7 nodes, messages slowed up to 689 ms; the target's log ended at 423 with
/// 425 known committed). Failed before the fix: the target became a candidate.
#[test]
fn a_late_timeout_now_to_a_target_behind_the_known_commit_starts_no_campaign() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let target = others(leader)[0];
    // The target gets commit indexes (heartbeats) but not the entries behind them.
    net.drop_if = Some(Box::new(move |m: &raft::Message| {
        m.to == target
            && matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty())
    }));
    net.propose(leader, "a");
    net.tick(4);
    let committed = net.node(leader).commit_index();
    let t = net.node(target);
    assert!(
        t.log().last_index() < committed && t.hard_state().known_commit >= committed,
        "the target knows of commits beyond its log"
    );
    let term = t.term();
    net.node_mut(target).step(raft::Message {
        from: leader,
        to: target,
        term,
        body: MessageBody::TimeoutNow,
    });
    assert_eq!(net.node(target).role(), Role::Follower);
    assert_eq!(net.node(target).term(), term, "no new term");
    net.check_invariants();
}
