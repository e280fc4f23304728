//! The seed replica's message economies (`crates/seed/src/tuning.rs` turns them on): a
//! rotated chain over followers at different points, quiet pre-votes when cut off, and the
//! deferred retry of a lost chain.

mod common;

use common::{config, Net};
use raft::{Config, Fanout, Message, MessageBody, NodeId};

fn chained(id: NodeId) -> Config {
    let mut c = config(id);
    c.fanout = Fanout::Quorum { extra: 0 };
    c.relay = true;
    c.rotate_chain = true;
    c
}

/// With one of four followers gone, consecutive chains overlap (three followers, two per
/// chain), so the two followers of a chain are at different points. The chain starts at
/// the lower one (the other finds those entries matching), and every write still costs
/// exactly three messages. Before, the chain needed equal next indices and fell back to
/// two direct appends and their answers: four messages (the same after the kill in
/// advanced-1 and -4, where that doubled the direct appends).
#[test]
fn a_rotated_chain_spans_followers_at_different_points() {
    let mut net = Net::with_config(5, chained);
    let leader = net.elect(100);
    let gone = (1..=5).find(|&id| id != leader).unwrap();
    net.isolate(gone);
    // Long enough that `gone` is no longer a healthy chain member, and every other
    // follower is pipelining.
    net.tick(12);
    for (i, data) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let before = net.sent.len();
        let idx = net.propose(leader, data);
        let sent = &net.sent[before..];
        assert_eq!(sent.len(), 3, "write {i}: one chain of three: {sent:#?}");
        assert!(
            matches!(&sent[0].body, MessageBody::Append { relay, .. } if relay.len() == 1),
            "write {i} goes down a chain: {sent:#?}"
        );
        assert!(net.node(leader).commit_index() >= idx, "write {i} commits");
    }
    net.check_invariants();
}

/// A pre-candidate cut off from everyone asks each voter once per round after its first
/// round heard back from less than a majority, instead of re-asking within every round.
#[test]
fn a_cut_off_pre_candidate_stops_re_asking() {
    let pre_votes_from_isolated = |quiet: bool| {
        let mut net = Net::with_config(5, |id| {
            let mut c = config(id);
            c.quiet_cut_off_pre_votes = quiet;
            c
        });
        let leader = net.elect(100);
        let cut = (1..=5).find(|&id| id != leader).unwrap();
        net.isolate(cut);
        let before = net.sent.len();
        net.tick(200);
        net.sent[before..]
            .iter()
            .filter(|m| m.from == cut && matches!(m.body, MessageBody::PreVote { .. }))
            .count()
    };
    let (loud, quiet) = (
        pre_votes_from_isolated(false),
        pre_votes_from_isolated(true),
    );
    assert!(loud > 0 && quiet > 0, "both campaign: {loud} / {quiet}");
    assert!(
        quiet * 2 <= loud,
        "quiet rounds ask each voter once: {quiet} pre-votes against {loud}"
    );
}

/// Once most chains arrive whole, a lost chain is not retried at the retransmission
/// timeout: the next write's chain carries its entry too, and both commit with three
/// messages.
#[test]
fn a_lost_chain_rides_on_the_next_one_when_deferred() {
    let mut net = Net::with_config(5, |id| {
        let mut c = chained(id);
        // Heartbeats (which carry what a follower lacks) well beyond the test's window.
        c.election_timeout_ticks = 200;
        c.lease_ticks = 150;
        c.heartbeat_interval_ticks = 64;
        c.defer_chain_retry_ticks = 40;
        c
    });
    let leader = net.elect(1_000);
    net.tick(3);
    for i in 0..20 {
        net.propose(leader, &format!("warm-{i}"));
    }
    // The next chain's first message is lost.
    let mut lost = false;
    net.drop_if = Some(Box::new(move |m: &Message| {
        let first =
            !lost && matches!(&m.body, MessageBody::Append { relay, .. } if !relay.is_empty());
        lost |= first;
        first
    }));
    let lost_idx = net.propose(leader, "lost");
    assert!(net.node(leader).commit_index() < lost_idx);
    let before = net.sent.len();
    net.tick(12); // three retransmission timeouts
    let retried = net.sent[before..]
        .iter()
        .filter(|m| m.from == leader && matches!(m.body, MessageBody::Append { .. }))
        .count();
    assert_eq!(retried, 0, "no retry within the deferral");
    let before = net.sent.len();
    let next_idx = net.propose(leader, "next");
    assert_eq!(net.sent.len() - before, 3, "one chain carries both");
    assert!(net.node(leader).commit_index() >= next_idx.max(lost_idx));
    net.check_invariants();
}

/// A follower that lacks only committed entries (here: cut off while the others commit)
/// is not retransmitted to on the doubling ramp: no answer waits for it, and the next
/// heartbeat carries what it lacks.
#[test]
fn a_follower_lacking_only_committed_entries_waits_for_the_heartbeat() {
    let appends_to_cut_off = |lazy: bool| {
        let mut net = Net::with_config(5, |id| {
            let mut c = config(id);
            c.election_timeout_ticks = 200;
            c.lease_ticks = 150;
            c.heartbeat_interval_ticks = 64;
            c.retransmit_ticks = 2;
            c.min_retransmit_ticks = 1;
            c.lazy_committed_catch_up = lazy;
            c
        });
        let leader = net.elect(1_000);
        net.tick(70);
        let cut = (1..=5).find(|&id| id != leader).unwrap();
        net.isolate(cut);
        let idx = net.propose(leader, "x");
        assert!(
            net.node(leader).commit_index() >= idx,
            "the others commit it"
        );
        let before = net.sent.len();
        net.tick(40); // well before the next heartbeat
        net.sent[before..]
            .iter()
            .filter(|m| m.to == cut && matches!(m.body, MessageBody::Append { .. }))
            .count()
    };
    let (eager, lazy) = (appends_to_cut_off(false), appends_to_cut_off(true));
    assert!(eager >= 3, "retransmitted on the ramp: {eager}");
    assert_eq!(lazy, 0, "left to the heartbeat");
}

/// A lost chain over followers at different points (three followers left, overlapping
/// chains) is retried as one chain, not as a direct append to each of its followers.
#[test]
fn a_lost_chain_over_followers_at_different_points_is_retried_as_a_chain() {
    let mut net = Net::with_config(5, |id| {
        let mut c = chained(id);
        // No heartbeats within the test's window.
        c.election_timeout_ticks = 200;
        c.lease_ticks = 150;
        c.heartbeat_interval_ticks = 64;
        c
    });
    let leader = net.elect(1_000);
    net.tick(70);
    let gone = (1..=5).find(|&id| id != leader).unwrap();
    net.isolate(gone);
    net.tick(70); // `gone` is no longer healthy
    net.propose(leader, "a"); // the next chain pairs followers at different points
    let members = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = members.clone();
    net.drop_if = Some(Box::new(move |m: &Message| {
        let MessageBody::Append { relay, .. } = &m.body else {
            return false;
        };
        let first = seen.borrow().is_empty() && !relay.is_empty();
        if first {
            seen.borrow_mut().push(m.to);
            seen.borrow_mut().extend(relay);
        }
        first
    }));
    let idx = net.propose(leader, "b");
    assert!(net.node(leader).commit_index() < idx, "its chain was lost");
    let members = members.borrow().clone();
    let before = net.sent.len();
    net.tick(8);
    assert!(
        net.node(leader).commit_index() >= idx,
        "retried and committed"
    );
    let direct_to_members = net.sent[before..]
        .iter()
        .filter(|m| {
            m.from == leader
                && members.contains(&m.to)
                && matches!(&m.body, MessageBody::Append { relay, entries, .. }
                    if relay.is_empty() && !entries.is_empty())
        })
        .count();
    let chains = net.sent[before..]
        .iter()
        .filter(|m| matches!(&m.body, MessageBody::Append { relay, .. } if !relay.is_empty()))
        .count();
    assert_eq!(direct_to_members, 0, "no direct retries to {members:?}");
    assert!(chains >= 1, "retried as a chain");
}
