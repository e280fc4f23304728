//! A member that misbehaves cannot break the cluster (issue 14): frames a buggy or
//! hostile peer could send, each refused by the core without stopping it, and counted in
//! [`raft::CoreStats`] so the driver can log and export the refusal.

mod common;

use bytes::Bytes;
use common::{config, Net};
use raft::{
    Entry, EntryKind, Fanout, HardState, Membership, Message, MessageBody, Raft, RaftLog, Role,
    SnapshotMeta,
};

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

fn append(leader: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::Append {
        prev_index: prev.0,
        prev_term: prev.1,
        entries,
        commit,
        stamp: 1,
        leader,
        relay: vec![],
        relayed_by: vec![],
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from_static(b"x"),
    }
}

fn ack(index: u64) -> MessageBody {
    MessageBody::AppendResp {
        success: true,
        index,
        hint_term: 0,
        rejected: 0,
        stamp: 1,
        vouch: vec![],
        vouch_index: 0,
    }
}

/// A follower of node 1 in term 1, holding nothing yet.
fn follower(id: u64) -> Raft {
    let mut r = Raft::new(config(id), [1, 2, 3]);
    r.tick(1);
    r.step(msg(1, id, 1, append(1, (0, 0), vec![], 0)));
    r.ready();
    r
}

/// A term of `u64::MAX` (or any jump past the limit) is dropped: not adopted, so not
/// persisted, and the follower keeps following its leader. Before the fix the follower
/// took the term, persisted it, and its next election overflowed `term + 1`.
#[test]
fn an_absurd_term_is_dropped_not_adopted() {
    let mut r = follower(2);
    for term in [u64::MAX, u64::MAX - 1, 1 + (1 << 40)] {
        r.step(msg(3, 2, term, append(3, (0, 0), vec![], 0)));
        assert_eq!(r.term(), 1, "term {term} adopted");
        assert_eq!(r.leader(), Some(1));
    }
    assert_eq!(r.stats().absurd_terms, 3);
    assert!(r.ready().hard_state.is_none(), "nothing to persist");
    // The node keeps serving its real leader.
    r.step(msg(1, 2, 1, append(1, (0, 0), vec![entry(1, 1)], 1)));
    assert_eq!(r.log().last_index(), 1);
}

/// A node that already holds the largest term (persisted before this fix, say) never
/// wraps it: it refuses to campaign instead of overflowing `term + 1`.
#[test]
fn a_node_at_the_last_term_refuses_to_campaign_instead_of_wrapping() {
    for term in [u64::MAX, u64::MAX - 1] {
        let hs = HardState {
            term,
            vote: None,
            commit: 0,
            known_commit: 0,
        };
        let mut r = Raft::restore(config(1), Membership::new([1, 2, 3]), hs, RaftLog::new());
        for now in 1..200 {
            r.tick(now);
            let _ = r.ready();
        }
        assert_eq!(r.term(), term, "the term wrapped or moved");
        assert_eq!(r.role(), Role::Follower);
        assert!(r.stats().campaigns_refused_at_term_limit > 0);
    }
}

/// A forged acknowledgement from a follower the leader never sent the entry to must not
/// count towards a commit: here it would commit an entry only the leader holds (a
/// minority of one), which the next leader would not have — an acknowledged write lost.
#[test]
fn a_forged_match_index_does_not_commit_on_a_minority() {
    let mut net = Net::with_config(3, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c
    });
    let leader = net.elect(200);
    net.tick(3);
    net.isolate(leader);
    let committed = net.node(leader).commit_index();
    net.sent.clear();
    let index = net.propose(leader, "only on the leader");
    let sent_to = |net: &Net, peer: u64| {
        net.sent.iter().any(|m| {
            m.from == leader
                && m.to == peer
                && matches!(&m.body, MessageBody::Append { entries, .. }
                    if entries.iter().any(|e| e.index == index))
        })
    };
    let peers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let forger = *peers
        .iter()
        .find(|&&p| !sent_to(&net, p))
        .expect("with Fanout::Quorum one follower is not sent new entries at once");
    let term = net.node(leader).term();
    for forged in [index, index + 1000] {
        net.node_mut(leader)
            .step(msg(forger, leader, term, ack(forged)));
        assert_eq!(
            net.node(leader).commit_index(),
            committed,
            "committed on a forged acknowledgement of {forged}"
        );
    }
    assert_eq!(net.node(leader).stats().forged_acks, 2);
    assert!(net.node(leader).is_leader(), "the leader keeps serving");
}

/// The same through a vouch: a relayed answer may vouch only for what the leader sent
/// the vouched-for follower.
#[test]
fn a_forged_vouch_does_not_commit_on_a_minority() {
    let mut net = Net::with_config(3, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c
    });
    let leader = net.elect(200);
    net.tick(3);
    net.isolate(leader);
    let committed = net.node(leader).commit_index();
    let index = net.propose(leader, "only on the leader");
    let term = net.node(leader).term();
    let peers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    // A stale answer from one follower (match index already known), vouching for the
    // other at the new index, which that one was never sent or was sent but never got.
    let (from, vouched) = (peers[0], peers[1]);
    let body = MessageBody::AppendResp {
        success: true,
        index: committed,
        hint_term: 0,
        rejected: 0,
        stamp: 1,
        vouch: vec![vouched, from],
        vouch_index: index + 50,
    };
    net.node_mut(leader).step(msg(from, leader, term, body));
    assert_eq!(net.node(leader).commit_index(), committed);
    assert!(net.node(leader).stats().forged_acks >= 1);
}

/// Entries that are not contiguous after `prev_index`, whose terms go down, or that claim
/// a term above the message's are refused whole; the node keeps serving. Before the fix
/// a gap tripped an assertion in the log (a crash) and falling terms were stored.
#[test]
fn a_malformed_append_is_rejected_and_the_node_keeps_serving() {
    let mut r = follower(2);
    let bad = [
        vec![entry(1, 1), entry(3, 1)], // gap
        vec![entry(2, 1)],              // not right after prev (0)
        vec![entry(1, 1), entry(1, 1)], // repeated index
        vec![entry(1, 2), entry(2, 1)], // terms go down
        vec![entry(1, 5)],              // newer than the message's term 2
    ];
    let n = bad.len() as u64;
    r.step(msg(1, 2, 2, append(1, (0, 0), vec![], 0)));
    r.ready();
    for entries in bad {
        r.step(msg(1, 2, 2, append(1, (0, 0), entries, 0)));
        assert_eq!(r.log().last_index(), 0, "a malformed append was stored");
    }
    assert_eq!(r.stats().malformed_appends, n);
    // prev_term above the message's term is refused the same way.
    r.step(msg(1, 2, 2, append(1, (0, 7), vec![], 0)));
    assert_eq!(r.stats().malformed_appends, n + 1);
    r.step(msg(
        1,
        2,
        2,
        append(1, (0, 0), vec![entry(1, 1), entry(2, 2)], 0),
    ));
    assert_eq!(r.log().last_index(), 2, "a good append still works");
}

fn snapshot_with(membership: Membership, stamp: u64) -> MessageBody {
    MessageBody::Snapshot {
        meta: SnapshotMeta {
            index: 5,
            term: 1,
            membership,
        },
        offset: 0,
        data: Bytes::from_static(b"state"),
        done: true,
        stamp,
    }
}

/// A snapshot whose membership would make the receiver the sole voter (it would elect
/// itself alone: split brain), or that is not even well formed (a node both voter and
/// learner), is refused, not installed. No legitimate leader sends the first: a
/// one-voter configuration commits only on that voter's own log.
#[test]
fn a_snapshot_that_makes_the_receiver_sole_voter_is_refused() {
    let mut r = follower(2);
    let mut both = Membership::new([1, 2, 3]);
    both.learners.insert(3);
    for m in [Membership::new([2]), both] {
        r.step(msg(1, 2, 1, snapshot_with(m.clone(), 3)));
        let rd = r.ready();
        assert!(rd.snapshot.is_none(), "installed a snapshot of {m:?}");
        assert_eq!(r.membership(), &Membership::new([1, 2, 3]));
        assert!(rd
            .messages
            .iter()
            .chain(&rd.persisted_messages)
            .any(|m| matches!(m.body, MessageBody::SnapshotResp { success: false, .. })));
    }
    assert_eq!(r.stats().snapshots_refused, 2);
    assert_eq!(r.log().last_index(), 0);
}

/// A follower far behind legitimately receives a membership its log never held (the
/// cluster changed while it was away): it installs, and takes effect at once.
#[test]
fn a_snapshot_with_a_newer_membership_installs() {
    let mut r = follower(2);
    let mut newer = Membership::new([1, 2, 4, 5]);
    newer.learners.insert(7);
    newer
        .metadata
        .insert(7, Bytes::from_static(b"10.0.0.7:7100"));
    r.step(msg(1, 2, 1, snapshot_with(newer.clone(), 4)));
    let rd = r.ready();
    assert_eq!(rd.snapshot.map(|m| m.membership), Some(newer.clone()));
    assert_eq!(r.membership(), &newer);
    assert_eq!(r.stats().snapshots_refused, 0);
}

/// A snapshot that carries no configuration (its sender did not know it) keeps ours at
/// its index: the chunk the driver writes to its sink and the snapshot it installs (and
/// saves, and restarts from) carry our configuration, not an unknown one, and the two
/// metas are the same (the driver matches the install against the sink's).
#[test]
fn a_snapshot_without_a_membership_keeps_ours_in_what_the_driver_installs() {
    let mut r = follower(2);
    r.step(msg(1, 2, 1, snapshot_with(Membership::default(), 4)));
    let rd = r.ready();
    let ours = Membership::new([1, 2, 3]);
    assert_eq!(rd.snapshot_chunks.len(), 1);
    assert_eq!(rd.snapshot_chunks[0].meta.membership, ours);
    assert_eq!(rd.snapshot.as_ref(), Some(&rd.snapshot_chunks[0].meta));
    assert_eq!(r.membership(), &ours);
    assert_eq!(r.log().last_index(), 5);
}

/// `TimeoutNow` is honoured only from the leader we follow, in our term (thesis §3.10).
/// From a follower, or with a newer term, it is refused and counted: the follower neither
/// campaigns nor adopts the term nor takes the sender for its leader. Before the fix any
/// peer could make any node campaign, deposing a healthy leader at will.
#[test]
fn timeout_now_from_anyone_but_our_leader_is_refused() {
    let mut r = follower(2);
    r.step(msg(3, 2, 1, MessageBody::TimeoutNow));
    r.step(msg(3, 2, 2, MessageBody::TimeoutNow));
    r.step(msg(1, 2, 5, MessageBody::TimeoutNow));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!((r.term(), r.leader()), (1, Some(1)));
    assert_eq!(r.stats().timeouts_now_refused, 3);
    assert!(r.ready().hard_state.is_none(), "nothing to persist");
    // A stale one is a late delivery: dropped, not counted.
    let mut r = follower(2);
    r.step(msg(1, 2, 2, append(1, (0, 0), vec![], 0)));
    r.step(msg(1, 2, 1, MessageBody::TimeoutNow));
    assert_eq!(r.stats().timeouts_now_refused, 0);
    // From our leader in our term, it works.
    r.step(msg(1, 2, 2, MessageBody::TimeoutNow));
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(r.term(), 3);
}
