//! Unit tests of each core handler: one input to one node, and the exact effects it
//! must produce (messages, state changes).

mod common;

use bytes::Bytes;
use common::config;
use raft::{Entry, EntryKind, Message, MessageBody, Raft, Role};

fn node(id: u64) -> Raft {
    let mut r = Raft::new(config(id), [1, 2, 3]);
    r.tick(1);
    r
}

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
        stamp: 7,
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

/// All messages of one Ready, persisted ones last.
fn outbox(r: &mut Raft) -> Vec<Message> {
    let rd = r.ready();
    rd.messages
        .into_iter()
        .chain(rd.persisted_messages)
        .collect()
}

/// The first message of a kind (nodes ticked far ahead may also be campaigning).
fn first(out: &[Message], pred: impl Fn(&MessageBody) -> bool) -> &Message {
    out.iter()
        .find(|m| pred(&m.body))
        .expect("expected message")
}

fn is_pre_vote_resp(b: &MessageBody) -> bool {
    matches!(b, MessageBody::PreVoteResp { .. })
}

fn is_vote_resp(b: &MessageBody) -> bool {
    matches!(b, MessageBody::VoteResp { .. })
}

/// Ticks a fresh node past its vote guard and election timeout so it campaigns.
fn campaign(r: &mut Raft) -> Vec<Message> {
    let mut now = 1;
    while r.role() == Role::Follower {
        now += 1;
        r.tick(now);
    }
    outbox(r)
}

#[test]
fn election_timeout_sends_pre_votes_without_bumping_the_term() {
    let mut r = node(1);
    let out = campaign(&mut r);
    assert_eq!(r.role(), Role::PreCandidate);
    assert_eq!(r.term(), 0);
    assert_eq!(out.len(), 2);
    for m in &out {
        assert_eq!(m.term, 1, "pre-vote asks for the next term");
        assert!(matches!(
            m.body,
            MessageBody::PreVote {
                last_index: 0,
                last_term: 0
            }
        ));
    }
}

#[test]
fn pre_vote_quorum_starts_a_real_election_after_persisting_the_vote() {
    let mut r = node(1);
    campaign(&mut r);
    r.step(msg(
        2,
        1,
        1,
        MessageBody::PreVoteResp {
            granted: true,
            leader: None,
        },
    ));
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(r.term(), 1);
    let rd = r.ready();
    assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((1, Some(1))));
    assert!(
        rd.messages.is_empty(),
        "vote requests wait for the vote to be durable"
    );
    assert_eq!(rd.persisted_messages.len(), 2);
    assert!(rd
        .persisted_messages
        .iter()
        .all(|m| matches!(m.body, MessageBody::Vote { .. })));
}

#[test]
fn pre_vote_refusals_from_a_quorum_end_the_attempt() {
    let mut r = node(1);
    campaign(&mut r);
    r.step(msg(
        2,
        1,
        0,
        MessageBody::PreVoteResp {
            granted: false,
            leader: Some(3),
        },
    ));
    r.step(msg(
        3,
        1,
        0,
        MessageBody::PreVoteResp {
            granted: false,
            leader: None,
        },
    ));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(
        r.leader(),
        None,
        "a refusal's hint is not contact with a leader"
    );
    assert_eq!(r.term(), 0);
}

#[test]
fn pre_vote_granted_only_to_an_up_to_date_log_outside_the_lease() {
    let mut r = node(2);
    r.tick(100); // past the vote guard
    r.step(msg(
        1,
        2,
        1,
        MessageBody::PreVote {
            last_index: 0,
            last_term: 0,
        },
    ));
    let out = outbox(&mut r);
    assert!(matches!(
        first(&out, is_pre_vote_resp).body,
        MessageBody::PreVoteResp { granted: true, .. }
    ));
    assert_eq!(
        first(&out, is_pre_vote_resp).term,
        1,
        "a grant echoes the asked term"
    );
    assert_eq!(r.term(), 0, "pre-votes never change our term");

    // While a leader is heard from, pre-votes are refused (naming the leader).
    r.step(msg(3, 2, 1, append(3, (0, 0), vec![], 0)));
    outbox(&mut r);
    r.step(msg(
        1,
        2,
        2,
        MessageBody::PreVote {
            last_index: 5,
            last_term: 1,
        },
    ));
    let out = outbox(&mut r);
    assert!(matches!(
        first(&out, is_pre_vote_resp).body,
        MessageBody::PreVoteResp {
            granted: false,
            leader: Some(3)
        }
    ));
}

#[test]
fn vote_is_granted_once_per_term_and_only_to_up_to_date_logs() {
    let mut r = node(3);
    r.tick(100);
    r.step(msg(
        1,
        3,
        1,
        MessageBody::Vote {
            last_index: 0,
            last_term: 0,
            transfer: false,
        },
    ));
    let rd = r.ready();
    assert_eq!(rd.hard_state.map(|h| h.vote), Some(Some(1)));
    assert!(matches!(
        rd.persisted_messages[0].body,
        MessageBody::VoteResp { granted: true }
    ));
    r.step(msg(
        2,
        3,
        1,
        MessageBody::Vote {
            last_index: 9,
            last_term: 1,
            transfer: false,
        },
    ));
    let out = outbox(&mut r);
    assert!(
        matches!(
            first(&out, is_vote_resp).body,
            MessageBody::VoteResp { granted: false }
        ),
        "one vote per term"
    );

    // A newer term, but a log behind ours: refused (§5.4.1).
    r.step(msg(1, 3, 2, append(1, (0, 0), vec![entry(1, 2)], 0)));
    outbox(&mut r);
    r.tick(1000);
    r.step(msg(
        2,
        3,
        3,
        MessageBody::Vote {
            last_index: 5,
            last_term: 1,
            transfer: false,
        },
    ));
    let out = outbox(&mut r);
    assert_eq!(r.term(), 3);
    assert!(matches!(
        first(&out, is_vote_resp).body,
        MessageBody::VoteResp { granted: false }
    ));
}

#[test]
fn append_with_matching_prev_is_stored_committed_and_acknowledged_after_persist() {
    let mut r = node(2);
    r.step(msg(
        1,
        2,
        1,
        append(1, (0, 0), vec![entry(1, 1), entry(2, 1)], 1),
    ));
    assert_eq!(r.leader(), Some(1));
    let rd = r.ready();
    assert_eq!(rd.entries.len(), 2);
    assert!(rd.messages.is_empty());
    match &rd.persisted_messages[0].body {
        MessageBody::AppendResp {
            success: true,
            index: 2,
            stamp: 7,
            ..
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(r.commit_index(), 1);
}

#[test]
fn append_with_mismatched_prev_is_rejected_with_a_conflict_hint() {
    let mut r = node(2);
    r.step(msg(
        1,
        2,
        1,
        append(1, (0, 0), vec![entry(1, 1), entry(2, 1)], 0),
    ));
    outbox(&mut r);
    // A leader of term 3 believes we hold (5, 3).
    r.step(msg(3, 2, 3, append(3, (5, 3), vec![entry(6, 3)], 0)));
    let out = outbox(&mut r);
    match out.last().unwrap().body {
        MessageBody::AppendResp {
            success: false,
            index,
            hint_term,
            rejected,
            ..
        } => {
            assert_eq!(
                (index, hint_term, rejected),
                (2, 1, 5),
                "our last entry (2, term 1) is the hint"
            );
        }
        ref other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn stale_term_append_is_answered_so_the_old_leader_steps_down() {
    let mut r = node(2);
    r.step(msg(3, 2, 5, append(3, (0, 0), vec![], 0)));
    outbox(&mut r);
    r.step(msg(1, 2, 4, append(1, (0, 0), vec![], 0)));
    let out = outbox(&mut r);
    assert_eq!(out[0].to, 1);
    assert_eq!(out[0].term, 5);
    assert!(matches!(
        out[0].body,
        MessageBody::AppendResp {
            success: false,
            stamp: 0,
            ..
        }
    ));
}

#[test]
fn relayed_append_is_forwarded_after_persist_not_acknowledged() {
    let mut r = node(2);
    let body = MessageBody::Append {
        prev_index: 0,
        prev_term: 0,
        entries: vec![entry(1, 1)],
        commit: 0,
        stamp: 9,
        leader: 1,
        relay: vec![3],
        relayed_by: vec![],
    };
    r.step(msg(1, 2, 1, body));
    let rd = r.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 1);
    let fwd = &rd.persisted_messages[0];
    assert_eq!(fwd.to, 3);
    match &fwd.body {
        MessageBody::Append {
            leader: 1,
            relay,
            relayed_by,
            entries,
            stamp: 9,
            ..
        } => {
            assert!(relay.is_empty());
            assert_eq!(relayed_by, &vec![2]);
            assert_eq!(entries.len(), 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn last_link_of_a_chain_answers_the_leader_vouching_for_the_relayers() {
    let mut r = node(3);
    let body = MessageBody::Append {
        prev_index: 0,
        prev_term: 0,
        entries: vec![entry(1, 1)],
        commit: 0,
        stamp: 9,
        leader: 1,
        relay: vec![],
        relayed_by: vec![2],
    };
    r.step(msg(2, 3, 1, body));
    assert_eq!(r.leader(), Some(1), "the relayer is not the leader");
    let out = outbox(&mut r);
    assert_eq!(out[0].to, 1);
    assert!(
        matches!(&out[0].body, MessageBody::AppendResp { success: true, index: 1, vouch, vouch_index: 1, .. } if vouch == &vec![2])
    );
}

#[test]
fn leader_counts_vouched_followers_towards_commit() {
    let mut cfg = config(1);
    cfg.fanout = raft::Fanout::Quorum { extra: 0 };
    let mut r = Raft::new(cfg, [1, 2, 3, 4, 5]);
    let mut now = 1;
    r.tick(now);
    while r.role() != Role::PreCandidate {
        now += 1;
        r.tick(now);
    }
    for v in [2, 3] {
        r.step(msg(
            v,
            1,
            1,
            MessageBody::PreVoteResp {
                granted: true,
                leader: None,
            },
        ));
    }
    for v in [2, 3] {
        r.step(msg(v, 1, 1, MessageBody::VoteResp { granted: true }));
    }
    assert!(r.is_leader());
    let rd = r.ready();
    let last = rd.entries.last().unwrap().clone();
    r.on_persisted(last.index, last.term);
    // Node 3 answers for itself and vouches for node 2: with us, a quorum of 3 of 5.
    r.step(msg(
        3,
        1,
        1,
        MessageBody::AppendResp {
            success: true,
            index: last.index,
            hint_term: 0,
            rejected: 0,
            stamp: 1,
            vouch: vec![2],
            vouch_index: last.index,
        },
    ));
    assert_eq!(r.commit_index(), last.index);
}

#[test]
fn reads_wait_for_the_first_commit_of_the_term_then_use_the_lease() {
    let mut r = Raft::new(config(1), [1]);
    let mut now = 1;
    while !r.is_leader() {
        now += 1;
        r.tick(now);
    }
    r.read(42).unwrap();
    let rd = r.ready();
    assert!(
        rd.read_states.is_empty(),
        "no read before our no-op commits"
    );
    let last = rd.entries.last().unwrap().clone();
    r.on_persisted(last.index, last.term);
    let rd = r.ready();
    assert_eq!(rd.read_states.len(), 1);
    assert_eq!(rd.read_states[0].ctx, 42);
    assert_eq!(rd.read_states[0].index, last.index);
}

#[test]
fn followers_refuse_reads_and_proposals() {
    let mut r = node(2);
    r.step(msg(1, 2, 1, append(1, (0, 0), vec![], 0)));
    assert_eq!(
        r.read(1),
        Err(raft::ProposeError::NotLeader { leader: Some(1) })
    );
    assert_eq!(
        r.propose(Bytes::from_static(b"x")),
        Err(raft::ProposeError::NotLeader { leader: Some(1) })
    );
}

/// A read and a higher-term message taken in one batch (the server takes many inputs per
/// Ready; a paused leader resuming gets a backlog at once): the read starts a ReadIndex
/// round, the message deposes the leader, and the Ready after both must not try to
/// broadcast that round to followers it no longer tracks. Found by the nemesis of real
/// processes (a panic at `self.progress[&peer]`); the simulator missed it while it ran a
/// Ready after every single input.
#[test]
fn a_read_and_a_step_down_in_one_batch_send_no_read_round() {
    let mut net = common::Net::with_config(3, |id| {
        let mut c = config(id);
        c.lease_ticks = 0; // every read takes a ReadIndex round
        c
    });
    let leader = net.elect(200);
    net.tick(3);
    let peer = if leader == 1 { 2 } else { 1 };
    let term = net.node(leader).term();
    let r = net.node_mut(leader);
    r.read(42).unwrap();
    let newer = msg(peer, leader, term + 1, MessageBody::stale_term_reply());
    r.step(newer);
    assert_eq!(r.role(), Role::Follower);
    let rd = r.ready();
    assert!(
        rd.messages
            .iter()
            .all(|m| !matches!(m.body, MessageBody::Append { .. })),
        "a deposed leader sends no appends: {:?}",
        rd.messages
    );
    assert_eq!(rd.aborted_reads, vec![42], "the read is handed back");
}
