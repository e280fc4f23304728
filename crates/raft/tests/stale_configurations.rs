//! A log that ends before an index the node knows is committed cannot belong to a
//! legitimate leader (Leader Completeness: every quorum that could elect one holds that
//! index). So a node with such a log does not campaign, and a voter refuses a candidate
//! with one (`election.rs`, `known_commit`).
//!
//! Why it matters: a node re-added under its old ID on a fresh disk replays the log from
//! the start and, until it reaches its re-addition, believes the old configurations in
//! which it was a voter. kvsim seed 90024938 (3 nodes; voters {1, 2}, learners {3, 4},
//! both learners wiped and re-added): the leader crashed, node 4 (at 132 while the
//! leader's commit index was 215) campaigned with an old configuration naming 3 and 4,
//! node 3 (at 44) voted for it, and node 4 led term 13 without committed entries.
//! Here the same shape, minimal: two voters whose disks were wiped replay a leader's log
//! slowly while the leader, the only node holding the committed entries, is cut off.

mod common;

use common::Net;
use raft::{HardState, Membership, MessageBody, Raft, RaftLog, Role};

/// Nodes 2 and 3 restart empty but still voters of {1, 2, 3} (their old configuration,
/// as a replayed log would give them); node 1 leads with 20 committed entries and gets
/// each of them one 2-entry append (commit index 20) before it is cut off.
fn two_wiped_voters_behind_a_cut_off_leader() -> Net {
    let mut net = Net::with_config(3, |id| {
        let mut c = common::config(id);
        c.max_msg_entries = 2;
        c.max_inflight_msgs = 1;
        c
    });
    // Node 1 leads: the others' election timers run later.
    let leader = net.elect(200);
    for i in 0..20 {
        net.propose(leader, &format!("e{i}"));
    }
    assert!(net.node(leader).commit_index() >= 20);
    for id in (1..=3).filter(|&id| id != leader) {
        let cfg = net.node(id).config().clone();
        let wiped = Raft::restore(
            cfg,
            Membership::new([1, 2, 3]),
            HardState::default(),
            RaftLog::restore(0, 0, Vec::new(), 0),
        );
        net.nodes.insert(id, wiped);
    }
    // One round of appends reaches them (commit index 20, two entries each), then the
    // leader is cut off.
    let mut delivered = std::collections::BTreeMap::new();
    net.drop_if = Some(Box::new(move |m: &raft::Message| {
        if m.from != leader {
            return false;
        }
        let MessageBody::Append { entries, .. } = &m.body else {
            return false;
        };
        if entries.is_empty() {
            return false;
        }
        let n = delivered.entry(m.to).or_insert(0);
        *n += 1;
        *n > 1
    }));
    for _ in 0..50 {
        net.tick(1);
        if (1..=3)
            .filter(|&id| id != leader)
            .all(|id| net.node(id).log().last_index() >= 1)
        {
            break;
        }
    }
    net.isolate(leader);
    net.drop_if = None;
    net
}

fn leaders_other_than_1(net: &Net) -> Vec<u64> {
    net.nodes
        .iter()
        .filter(|(&id, n)| id != 1 && n.role() == Role::Leader)
        .map(|(&id, _)| id)
        .collect()
}

/// Failed before: node 2 or 3 campaigned with its short log, the other voted for it, and
/// a leader without entries 3..20 (committed) was elected.
#[test]
fn nodes_behind_a_known_commit_elect_no_leader() {
    let mut net = two_wiped_voters_behind_a_cut_off_leader();
    assert_eq!(net.leader(), Some(1), "node 1 led first");
    for id in [2, 3] {
        assert!(net.node(id).log().last_index() < 20);
    }
    net.tick(200);
    assert_eq!(leaders_other_than_1(&net), Vec::<u64>::new());
    // Node 1 back: it leads again and brings both up to date, nothing lost.
    net.heal();
    net.tick(200);
    let leader = net.leader().expect("a leader once node 1 is back");
    let last = net.node(leader).log().last_index();
    assert!(last >= 20);
    for id in [2, 3] {
        assert_eq!(net.node(id).log().last_index(), last, "node {id} caught up");
    }
    net.check_invariants();
}

/// Node `id` restarts from what it holds: its log and `hs`.
fn restart(net: &mut Net, id: u64, hs: impl FnOnce(HardState) -> HardState) {
    let old = net.nodes.remove(&id).unwrap();
    let log = old.log();
    let entries: Vec<raft::Entry> = (1..=log.last_index())
        .map(|i| log.entry(i).cloned().unwrap())
        .collect();
    let restarted = Raft::restore(
        old.config().clone(),
        Membership::new([1, 2, 3]),
        hs(old.hard_state()),
        RaftLog::restore(0, 0, entries, 0),
    );
    net.nodes.insert(id, restarted);
}

/// A node that forgot the known commit index (a hard state written before it was kept)
/// campaigns again; a voter that still knows it refuses the vote. Failed before (with
/// the campaign rule alone): node 2 voted for node 3.
#[test]
fn a_voter_refuses_a_candidate_behind_its_known_commit() {
    let mut net = two_wiped_voters_behind_a_cut_off_leader();
    restart(&mut net, 3, |hs| HardState {
        known_commit: 0,
        ..hs
    });
    let sent_before = net.sent.len();
    net.tick(200);
    let campaigned = net.sent[sent_before..]
        .iter()
        .any(|m| m.from == 3 && matches!(m.body, MessageBody::PreVote { .. }));
    assert!(
        campaigned,
        "the restarted node campaigns (it forgot the commit index)"
    );
    assert_eq!(leaders_other_than_1(&net), Vec::<u64>::new());
}

/// The known commit index is part of the hard state: both stale nodes restart and still
/// neither campaigns. Failed while it was volatile (the residual of kvsim finding 7): the
/// restarted nodes campaigned and one elected the other.
#[test]
fn the_known_commit_survives_a_restart() {
    let mut net = two_wiped_voters_behind_a_cut_off_leader();
    for id in [2, 3] {
        assert!(net.node(id).hard_state().known_commit >= 20);
        restart(&mut net, id, |hs| hs);
    }
    let sent_before = net.sent.len();
    net.tick(300);
    let campaigned = net.sent[sent_before..]
        .iter()
        .any(|m| m.from != 1 && matches!(m.body, MessageBody::PreVote { .. }));
    assert!(
        !campaigned,
        "a node behind its known commit index campaigned"
    );
    assert_eq!(leaders_other_than_1(&net), Vec::<u64>::new());
}

/// Every configuration entry but the newest is committed (a leader appends one only once
/// the one before it is), so a restart counts them committed even when the commit hint
/// was lost: a restarted leader never tells a re-added member a commit index below the
/// removal that preceded its re-addition. Failed before: the commit index stayed 0.
#[test]
fn a_restart_counts_every_configuration_but_the_newest_committed() {
    use raft::{Entry, EntryKind};
    let conf = |index, m: Membership| Entry {
        term: 1,
        index,
        kind: EntryKind::ConfChange,
        data: m.to_entry_data(),
    };
    let normal = |index| Entry {
        term: 1,
        index,
        kind: EntryKind::Normal,
        data: bytes::Bytes::from_static(b"x"),
    };
    let entries = vec![
        normal(1),
        conf(2, Membership::new([1, 2])),
        normal(3),
        conf(4, Membership::new([1])),
        normal(5),
    ];
    let node = Raft::restore(
        common::config(1),
        Membership::new([1, 2, 3]),
        HardState::default(),
        RaftLog::restore(0, 0, entries, 0),
    );
    assert_eq!(
        node.commit_index(),
        2,
        "entry 2's configuration was superseded"
    );
}
