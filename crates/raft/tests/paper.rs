//! Paper tests: one claim of the Raft paper (Ongaro & Ousterhout, 2014) or of Ongaro's
//! thesis (2014) per test, with the section it comes from.

mod common;

use bytes::Bytes;
use common::{config, is_append, Net};
use raft::{Fanout, MessageBody, ProposeError, Raft, Role};

/// §5.2: a cluster elects exactly one leader, and every node learns who it is.
#[test]
fn s5_2_initial_election_elects_one_leader_known_to_all() {
    let mut net = Net::new(5);
    let leader = net.elect(100);
    net.tick(5);
    net.check_invariants();
    for n in net.nodes.values() {
        assert_eq!(
            n.leader(),
            Some(leader),
            "node {} follows the leader",
            n.id()
        );
        assert_eq!(n.term(), net.node(leader).term());
    }
}

/// §5.2: when the leader fails, the others elect a new one in a later term.
#[test]
fn s5_2_reelection_after_leader_failure() {
    let mut net = Net::new(3);
    let old = net.elect(100);
    let old_term = net.node(old).term();
    net.isolate(old);
    net.tick(60);
    let new = net.leader_among(|id| id != old).expect("new leader");
    assert_ne!(new, old);
    assert!(net.node(new).term() > old_term);
    net.check_invariants();
}

/// §5.2 Election Safety: at most one leader per term, over many elections with churn.
#[test]
fn s5_2_election_safety_under_repeated_partitions() {
    let mut net = Net::new(5);
    for round in 0..20u64 {
        net.elect(200);
        let victim = 1 + (round * 3) % 5;
        net.isolate(victim);
        net.tick(40);
        net.check_invariants();
        net.heal();
        net.tick(20);
        net.check_invariants();
    }
}

/// §5.3: a committed entry is applied by every node, in the same order.
#[test]
fn s5_3_entries_replicate_and_apply_everywhere() {
    let mut net = Net::new(5);
    let leader = net.elect(100);
    for i in 0..10 {
        net.propose(leader, &format!("cmd{i}"));
    }
    net.tick(10);
    let expected: Vec<String> = (0..10).map(|i| format!("cmd{i}")).collect();
    for id in 1..=5 {
        assert_eq!(net.applied_data(id), expected, "node {id}");
    }
    net.check_invariants();
}

/// §5.3: progress continues with a minority of followers unreachable.
#[test]
fn s5_3_agreement_despite_follower_failure() {
    let mut net = Net::new(5);
    let leader = net.elect(100);
    let followers: Vec<u64> = (1..=5).filter(|&id| id != leader).collect();
    net.isolate(followers[0]);
    net.isolate(followers[1]);
    let idx = net.propose(leader, "x");
    net.tick(5);
    assert!(net.node(leader).commit_index() >= idx);
}

/// §5.3: nothing commits without a quorum.
#[test]
fn s5_3_no_agreement_without_quorum() {
    let mut net = Net::new(5);
    let leader = net.elect(100);
    net.tick(3);
    let before = net.node(leader).commit_index();
    for id in (1..=5).filter(|&id| id != leader).take(3) {
        net.isolate(id);
    }
    let idx = net
        .node_mut(leader)
        .propose(Bytes::from_static(b"lost"))
        .unwrap();
    net.tick(5);
    assert!(net.node(leader).commit_index() < idx);
    assert_eq!(net.node(leader).commit_index(), before);
}

/// §5.3 "fast backup": a follower with 50 conflicting entries is repaired in a few
/// round trips, not 50.
#[test]
fn s5_3_fast_backup_over_50_conflicting_entries() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.propose(leader, "base");
    net.tick(3);
    // The old leader, cut off, appends 50 entries that will never commit.
    net.isolate(leader);
    for i in 0..50 {
        net.node_mut(leader)
            .propose(Bytes::from(format!("doomed{i}")))
            .unwrap();
    }
    net.stabilize();
    net.tick(60);
    let new = net.leader_among(|id| id != leader).expect("new leader");
    for i in 0..50 {
        net.propose(new, &format!("kept{i}"));
    }
    net.tick(3);
    let rejections_before =
        net.count_sent(|m| matches!(m.body, MessageBody::AppendResp { success: false, .. }));
    net.heal();
    net.tick(30);
    let rejections = net
        .count_sent(|m| matches!(m.body, MessageBody::AppendResp { success: false, .. }))
        - rejections_before;
    assert!(rejections <= 4, "took {rejections} rejections to back up");
    assert_eq!(net.applied_data(leader), net.applied_data(new));
    net.check_invariants();
}

/// §5.4.1: a candidate whose log is behind cannot win.
#[test]
fn s5_4_1_stale_log_cannot_win_election() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let stale = (1..=3).find(|&id| id != leader).unwrap();
    net.isolate(stale);
    net.propose(leader, "newer");
    net.tick(3);
    net.heal();
    // Force the stale node to campaign without Pre-Vote or a lease in its way.
    let term = net.node(leader).term();
    net.node_mut(stale).step(raft::Message {
        from: leader,
        to: stale,
        term,
        body: MessageBody::TimeoutNow,
    });
    net.stabilize();
    assert_ne!(net.node(stale).role(), Role::Leader);
    net.tick(100);
    net.check_invariants();
    let l = net.leader().unwrap();
    assert_ne!(l, stale, "stale node must not lead");
}

/// §5.4.2 / Figure 8: a leader never commits an entry of an earlier term by counting
/// replicas; it commits it only together with an entry of its own term.
#[test]
fn s5_4_2_figure_8_old_term_entries_not_committed_by_count() {
    let mut net = Net::new(5);
    let s1 = net.elect(100);
    net.tick(3);
    // S1 replicates an entry only to one follower, then is cut off.
    let others: Vec<u64> = (1..=5).filter(|&id| id != s1).collect();
    let (s2, rest) = (others[0], &others[1..]);
    for &id in rest {
        net.isolate(id);
    }
    let idx = net
        .node_mut(s1)
        .propose(Bytes::from_static(b"term2"))
        .unwrap();
    net.stabilize();
    assert!(net.node(s2).log().last_index() >= idx);
    net.isolate(s1);
    net.isolate(s2);
    // The other three elect a leader in a later term with a shorter log; it appends
    // (its no-op) but cannot reach S1/S2.
    net.heal();
    net.isolate(s1);
    net.isolate(s2);
    net.tick(80);
    let s5 = net
        .leader_among(|id| rest.contains(&id))
        .expect("leader among the three");
    net.check_invariants();
    // Now S1 comes back alone with S2..: make S1 leader again in a newer term over a
    // quorum {S1, S2, one other}; it must not commit `idx` before its own new entry.
    net.heal();
    net.isolate(s5);
    net.tick(100);
    net.check_invariants();
    if let Some(leader) = net.leader_among(|id| id != s5) {
        let n = net.node(leader);
        if n.commit_index() >= idx {
            let t = n.log().term(n.commit_index()).unwrap();
            assert_eq!(
                t,
                n.term(),
                "commit index must land on an entry of the current term"
            );
        }
    }
}

/// §5.4.2 directly: the quorum holds an old-term entry, but the commit index does not
/// move until an entry of the leader's own term is replicated.
#[test]
fn s5_4_2_commit_waits_for_current_term_entry() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.tick(3);
    let n = net.node(leader);
    assert!(n.commit_index() > 0);
    let t = n.log().term(n.commit_index()).unwrap();
    assert_eq!(
        t,
        n.term(),
        "the first commit of a term is the leader's own no-op"
    );
}

/// §9.6 of the thesis (Pre-Vote): an isolated node does not inflate its term, so on
/// rejoining it does not depose the leader.
#[test]
fn thesis_9_6_prevote_keeps_partitioned_node_from_disrupting() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    let term = net.node(leader).term();
    let loner = (1..=3).find(|&id| id != leader).unwrap();
    net.isolate(loner);
    net.tick(200);
    assert_eq!(
        net.node(loner).term(),
        term,
        "pre-vote must not bump the term"
    );
    net.heal();
    net.tick(20);
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.node(leader).term(), term);
}

/// §6.2 of the thesis (CheckQuorum): a leader that cannot hear a quorum steps down.
#[test]
fn thesis_6_2_check_quorum_deposes_isolated_leader() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.isolate(leader);
    net.tick(25);
    assert_ne!(net.node(leader).role(), Role::Leader);
}

/// §6.4 of the thesis: with a valid lease a read is confirmed with no messages; without
/// one, a ReadIndex round of heartbeats confirms it.
#[test]
fn thesis_6_4_lease_read_is_free_readindex_costs_a_round() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.tick(2);
    assert!(net.node(leader).lease_valid());
    let sent = net.sent.len();
    net.node_mut(leader).read(1).unwrap();
    net.stabilize();
    assert_eq!(net.sent.len(), sent, "lease read sends nothing");
    assert_eq!(net.reads[&leader].last().unwrap().ctx, 1);

    // No lease: ReadIndex.
    let mut net = Net::with_config(3, |id| {
        let mut c = config(id);
        c.lease_ticks = 0;
        c
    });
    let leader = net.elect(100);
    net.tick(2);
    let sent = net.sent.len();
    net.node_mut(leader).read(7).unwrap();
    net.stabilize();
    assert!(net.sent.len() > sent, "ReadIndex needs a heartbeat round");
    assert_eq!(net.reads[&leader].last().unwrap().ctx, 7);
}

/// §6.4: a leader cut off in a minority never confirms a read (no stale reads).
#[test]
fn thesis_6_4_minority_leader_cannot_read() {
    let mut net = Net::new(5);
    let leader = net.elect(100);
    net.tick(2);
    net.isolate(leader);
    net.tick(9); // the lease (8 ticks) runs out before CheckQuorum (10) deposes it
    let reads_before = net.reads.get(&leader).map_or(0, Vec::len);
    if net.node(leader).role() == Role::Leader {
        assert!(!net.node(leader).lease_valid());
        net.node_mut(leader).read(99).unwrap();
        net.stabilize();
        net.tick(3);
    }
    assert_eq!(
        net.reads.get(&leader).map_or(0, Vec::len),
        reads_before,
        "no read confirmed in a minority"
    );
}

/// Message economy: with quorum fan-out a proposal goes to exactly as many followers as
/// a commit needs; the rest catch up with heartbeats.
#[test]
fn quorum_fanout_sends_new_entries_to_a_quorum_only() {
    let mut net = Net::with_config(5, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c
    });
    let leader = net.elect(100);
    net.tick(3);
    let before = net.count_sent(|m| is_append(m) && m.from == leader);
    net.propose(leader, "x");
    let appends = net.count_sent(|m| is_append(m) && m.from == leader) - before;
    assert_eq!(appends, 2, "5 nodes: leader + 2 followers make a quorum");
    net.tick(6);
    for id in 1..=5 {
        assert_eq!(
            net.applied_data(id),
            vec!["x".to_string()],
            "node {id} catches up"
        );
    }
}

/// Flow control: an append never carries more than `max_msg_bytes` of entries.
#[test]
fn appends_respect_the_message_size_limit() {
    let mut net = Net::with_config(3, |id| {
        let mut c = config(id);
        c.max_msg_bytes = 1000;
        c
    });
    let leader = net.elect(100);
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    net.isolate(others[0]);
    for _ in 0..20 {
        net.node_mut(leader)
            .propose(Bytes::from(vec![b'a'; 200]))
            .unwrap();
    }
    net.stabilize();
    net.heal();
    net.tick(20);
    for m in &net.sent {
        if let MessageBody::Append { entries, .. } = &m.body {
            let size: usize = entries.iter().map(|e| e.size_bytes()).sum();
            assert!(entries.len() <= 1 || size <= 1000, "append of {size} bytes");
        }
    }
    assert_eq!(net.applied_data(others[0]).len(), 20);
}

/// Only the leader takes proposals, and it names itself to others.
#[test]
fn followers_refuse_proposals_naming_the_leader() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.tick(3);
    let f = (1..=3).find(|&id| id != leader).unwrap();
    let err = net
        .node_mut(f)
        .propose(Bytes::from_static(b"x"))
        .unwrap_err();
    assert_eq!(
        err,
        ProposeError::NotLeader {
            leader: Some(leader)
        }
    );
}

/// A single-node cluster elects itself and commits alone.
#[test]
fn single_node_commits_alone() {
    let mut r = Raft::new(config(1), [1]);
    for now in 1..=40 {
        r.tick(now);
    }
    assert!(r.is_leader());
    let rd = r.ready();
    let last = rd.entries.last().unwrap();
    r.on_persisted(last.index, last.term);
    assert_eq!(r.commit_index(), last.index);
}

/// §5.3: a heartbeat proves agreement only up to its `prev_index`; a follower with a
/// longer (divergent) log must not claim more.
#[test]
fn s5_3_heartbeat_ack_claims_no_more_than_prev_index() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    net.tick(3);
    let f = (1..=3).find(|&id| id != leader).unwrap();
    let term = net.node(leader).term();
    // Give the follower an uncommitted entry the leader never sent.
    let fterm = net.node(f).term();
    let last = net.node(f).log().last_index();
    let bogus = raft::Entry {
        term: fterm,
        index: last + 1,
        kind: raft::EntryKind::Normal,
        data: Bytes::new(),
    };
    let commit = net.node(f).commit_index();
    net.node_mut(f).step(raft::Message {
        from: leader,
        to: f,
        term,
        body: MessageBody::Append {
            prev_index: last,
            prev_term: fterm,
            entries: vec![bogus],
            commit,
            stamp: 4,
            leader,
            relay: vec![],
            relayed_by: vec![],
        },
    });
    net.node_mut(f).ready();
    let committed = net.node(f).commit_index();
    net.node_mut(f).step(raft::Message {
        from: leader,
        to: f,
        term,
        body: MessageBody::Append {
            prev_index: 0,
            prev_term: 0,
            entries: vec![],
            commit: 0,
            stamp: 5,
            leader,
            relay: vec![],
            relayed_by: vec![],
        },
    });
    let rd = net.node_mut(f).ready();
    let resp = rd.persisted_messages.last().expect("a response");
    match resp.body {
        MessageBody::AppendResp { success, index, .. } => {
            assert!(success);
            assert!(
                index <= committed,
                "claimed match {index} beyond its committed prefix {committed}"
            );
        }
        ref other => panic!("unexpected {other:?}"),
    }
}

/// §6.4 of the thesis, lease safety across restarts: a node that restarts has forgotten
/// when it last heard from the leader, so it refuses votes for one election timeout.
#[test]
fn thesis_6_4_restarted_node_refuses_votes_for_a_timeout() {
    let mut r = Raft::new(config(2), [1, 2, 3]);
    r.tick(1);
    r.step(raft::Message {
        from: 3,
        to: 2,
        term: 5,
        body: MessageBody::Vote {
            last_index: 10,
            last_term: 4,
            transfer: false,
        },
    });
    assert_eq!(r.term(), 0, "a vote request inside the guard is ignored");
    r.tick(1 + config(2).election_timeout_ticks);
    r.step(raft::Message {
        from: 3,
        to: 2,
        term: 5,
        body: MessageBody::Vote {
            last_index: 10,
            last_term: 4,
            transfer: false,
        },
    });
    assert_eq!(r.term(), 5);
    let rd = r.ready();
    assert!(rd
        .persisted_messages
        .iter()
        .any(|m| matches!(m.body, MessageBody::VoteResp { granted: true })));
}

/// Chain replication (`Config::relay`): a fresh entry costs one append to the first eager
/// follower, one relayed append, and one answer that vouches for both — and commits.
#[test]
fn relay_commits_with_three_messages() {
    let mut net = Net::with_config(5, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c.relay = true;
        c
    });
    let leader = net.elect(100);
    net.tick(3);
    let before = net.sent.len();
    let idx = net.propose(leader, "x");
    let sent = &net.sent[before..];
    assert_eq!(
        sent.len(),
        3,
        "append, relayed append, vouching answer: {sent:#?}"
    );
    assert!(
        matches!(&sent[1].body, MessageBody::Append { relayed_by, .. } if relayed_by.len() == 1)
    );
    assert!(matches!(&sent[2].body, MessageBody::AppendResp { vouch, .. } if vouch.len() == 1));
    assert!(net.node(leader).commit_index() >= idx);
    net.tick(6);
    for id in 1..=5 {
        assert_eq!(
            net.applied_data(id),
            vec!["x".to_string()],
            "node {id} catches up"
        );
    }
    net.check_invariants();
}

/// `rotate_chain`: consecutive writes go down chains of different followers (the ones
/// that missed the previous write, with what they lack), still three messages each, so
/// every follower hears from the leader without catch-up appends of its own.
#[test]
fn rotated_chains_alternate_between_followers() {
    let mut net = Net::with_config(5, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c.relay = true;
        c.rotate_chain = true;
        c
    });
    let leader = net.elect(100);
    net.tick(3);
    let mut chains = Vec::new();
    for data in ["a", "b"] {
        let before = net.sent.len();
        let idx = net.propose(leader, data);
        let sent = &net.sent[before..];
        assert_eq!(sent.len(), 3, "one chain per write: {sent:#?}");
        let MessageBody::Append { relay, .. } = &sent[0].body else {
            panic!("a chain starts with an append: {sent:#?}");
        };
        let mut members = vec![sent[0].to];
        members.extend(relay);
        members.sort_unstable();
        chains.push(members);
        assert!(net.node(leader).commit_index() >= idx);
    }
    assert!(
        chains[0].iter().all(|id| !chains[1].contains(id)),
        "the second write goes to the followers the first skipped: {chains:?}"
    );
    net.tick(6);
    for id in 1..=5 {
        assert_eq!(net.applied_data(id), vec!["a".to_string(), "b".to_string()]);
    }
    net.check_invariants();
}

/// A broken chain (the middle follower unreachable) falls back to direct appends after
/// the retransmit interval, and still commits.
#[test]
fn relay_recovers_from_a_broken_chain() {
    let mut net = Net::with_config(5, |id| {
        let mut c = config(id);
        c.fanout = Fanout::Quorum { extra: 0 };
        c.relay = true;
        c
    });
    let leader = net.elect(100);
    net.tick(3);
    let first = (1..=5).find(|&id| id != leader).unwrap();
    net.cut_link(leader, first);
    let idx = net
        .node_mut(leader)
        .propose(Bytes::from_static(b"y"))
        .unwrap();
    net.stabilize();
    net.tick(10);
    assert!(net.node(leader).commit_index() >= idx);
    net.check_invariants();
}

/// A lost vote request (or answer) is asked again within the round, after the
/// retransmission timeout, instead of costing a whole election timeout and a new term.
#[test]
fn lost_vote_requests_are_retried_within_the_round() {
    let mut net = Net::new(3);
    let mut seen = std::collections::BTreeSet::new();
    // Every (pre-)vote request is lost the first time it goes from one node to another.
    net.drop_if = Some(Box::new(move |m: &raft::Message| {
        let request = matches!(
            m.body,
            MessageBody::PreVote { .. } | MessageBody::Vote { .. }
        );
        request && seen.insert((m.from, m.to, m.body.name()))
    }));
    let leader = net.elect(100);
    assert_eq!(
        net.node(leader).term(),
        1,
        "elected in the first round, not after a timeout and a new term"
    );
    net.check_invariants();
}

/// §5.3 (pipelining, thesis §10.2.2): a follower catching up — here one cut off while
/// 60 entries were committed — gets its whole in-flight window per round trip, not one
/// message per acknowledgement. With 2 entries a message and stop-and-wait, a new
/// learner fell further behind a busy leader than it caught up (kvsim seeds 10366 and
/// 36829); before the fix at most one append was outstanding here.
#[test]
fn a_lagging_follower_is_caught_up_a_window_at_a_time() {
    let mut net = Net::with_config(3, |id| {
        let mut c = config(id);
        c.max_msg_entries = 2;
        c.max_inflight_msgs = 4;
        c
    });
    let leader = net.elect(100);
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    net.isolate(lagging);
    for i in 0..60 {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(2);
    net.sent.clear();
    net.heal();
    net.tick(6);
    assert_eq!(
        net.node(lagging).log().last_index(),
        net.node(leader).log().last_index()
    );
    // The most appends with entries the leader had out to it at once.
    let (mut out, mut most) = (0i64, 0i64);
    for m in &net.sent {
        match &m.body {
            MessageBody::Append { entries, .. }
                if m.from == leader && m.to == lagging && !entries.is_empty() =>
            {
                out += 1
            }
            MessageBody::AppendResp { .. } if m.from == lagging => out = (out - 1).max(0),
            _ => {}
        }
        most = most.max(out);
    }
    assert!(
        most >= 3,
        "at most {most} appends in flight while catching up"
    );
    net.check_invariants();
}
