//! InstallSnapshot (§7 of the Raft paper): a follower whose missing entries were compacted
//! away catches up from the leader's snapshot, streamed in chunks.

mod common;

use bytes::Bytes;
use common::{config, Net};
use raft::{Message, MessageBody, NodeId, Snapshot};

const DATA: &[u8] = b"0123456789abcdefghij"; // 20 bytes: 5 chunks of 4

fn small_chunks(id: NodeId) -> raft::Config {
    let mut c = config(id);
    c.snapshot_chunk_bytes = 4;
    c.max_inflight_msgs = 2;
    c
}

fn is_chunk(m: &Message) -> bool {
    matches!(m.body, MessageBody::Snapshot { .. })
}

/// Elects a leader, cuts off one follower, commits `n` entries without it, and has the
/// leader snapshot (with `DATA` as its state) and compact its whole log.
fn lagging_follower(n: usize) -> (Net, NodeId, NodeId) {
    let mut net = Net::with_config(3, small_chunks);
    let leader = net.elect(100);
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    net.isolate(lagging);
    for i in 0..n {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(1);
    let l = net.node_mut(leader);
    let applied = l.log().applied;
    assert!(
        applied as usize > n,
        "entries committed without the lagging node"
    );
    let meta = l
        .snapshot_meta(applied)
        .expect("applied index is in the log");
    l.set_snapshot(Snapshot {
        meta,
        data: Bytes::from_static(DATA),
    });
    l.compact(applied);
    assert_eq!(l.log().first_index(), applied + 1);
    (net, leader, lagging)
}

#[test]
fn lagging_follower_catches_up_through_a_chunked_snapshot() {
    let (mut net, leader, lagging) = lagging_follower(10);
    let snap_index = net.node(leader).log().first_index() - 1;
    net.sent.clear();
    net.heal();
    net.tick(30);

    let installed = &net.installed[&lagging];
    assert_eq!(installed.len(), 1, "one install");
    assert_eq!(installed[0].data, Bytes::from_static(DATA));
    assert_eq!(installed[0].meta.index, snap_index);
    assert_eq!(
        net.count_sent(is_chunk),
        5,
        "20 bytes in 4-byte chunks, none resent"
    );
    let f = net.node(lagging);
    assert_eq!(f.log().first_index(), snap_index + 1);
    assert_eq!(f.commit_index(), net.node(leader).commit_index());

    // Replication goes on from the snapshot: a new entry reaches the follower's state
    // machine after it.
    let before = net.applied_data(lagging).len();
    net.propose(leader, "after");
    net.tick(5);
    assert_eq!(
        net.applied_data(lagging)[before..],
        ["after".to_string()],
        "applied after the snapshot"
    );
    net.check_invariants();
}

#[test]
fn a_lost_chunk_is_resent_from_what_the_follower_holds() {
    let (mut net, leader, lagging) = lagging_follower(10);
    let mut dropped = false;
    net.drop_if = Some(Box::new(move |m| {
        let second = matches!(m.body, MessageBody::Snapshot { offset: 4, .. });
        if second && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    net.sent.clear();
    net.heal();
    net.tick(40);
    let installed = &net.installed[&lagging];
    assert_eq!(installed.len(), 1);
    assert_eq!(
        installed[0].data,
        Bytes::from_static(DATA),
        "reassembled in order"
    );
    assert!(
        net.count_sent(is_chunk) > 5,
        "the lost chunk was sent again"
    );
    assert_eq!(
        net.node(lagging).commit_index(),
        net.node(leader).commit_index()
    );
}

#[test]
fn window_bounds_chunks_in_flight() {
    let (mut net, leader, lagging) = lagging_follower(10);
    // Lose every answer from the follower: the leader may send only its window (2
    // chunks), then waits for retransmission timeouts.
    net.drop_if = Some(Box::new(move |m| m.from == lagging && m.to == leader));
    net.sent.clear();
    net.heal();
    net.tick(3);
    let chunks = net.count_sent(is_chunk);
    assert!(
        (1..=2).contains(&chunks),
        "{chunks} chunks in flight with a window of 2"
    );
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_not_installed() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    for i in 0..5 {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(3);
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let committed = net.node(follower).commit_index();
    let meta = net.node(leader).snapshot_meta(3).unwrap();
    let term = net.node(leader).term();
    net.sent.clear();
    net.node_mut(follower).step(Message {
        from: leader,
        to: follower,
        term,
        body: MessageBody::Snapshot {
            meta,
            offset: 0,
            data: Bytes::from_static(b"x"),
            done: true,
            stamp: 1,
        },
    });
    net.stabilize();
    assert!(!net.installed.contains_key(&follower), "nothing to install");
    let answered = net.count_sent(|m| {
        matches!(
            m.body,
            MessageBody::SnapshotResp { index, success: true, .. } if index == committed
        )
    });
    assert_eq!(answered, 1, "answers with its commit index");
    net.check_invariants();
}

#[test]
fn compaction_never_passes_the_snapshot() {
    let mut net = Net::new(3);
    let leader = net.elect(100);
    for i in 0..5 {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(3);
    let l = net.node_mut(leader);
    l.compact(4);
    assert_eq!(l.log().first_index(), 1, "no snapshot: nothing compacted");
    let meta = l.snapshot_meta(2).unwrap();
    l.set_snapshot(Snapshot {
        meta,
        data: Bytes::new(),
    });
    l.compact(4);
    assert_eq!(
        l.log().first_index(),
        3,
        "compacted up to the snapshot only"
    );
}

#[test]
fn a_follower_with_an_empty_log_gets_the_snapshot() {
    let (mut net, leader, lagging) = lagging_follower(10);
    // The lagging node's disk is replaced: it starts over, empty, in term 0.
    let voters: Vec<NodeId> = (1..=3).collect();
    net.nodes
        .insert(lagging, raft::Raft::new(small_chunks(lagging), voters));
    net.sent.clear();
    net.heal();
    net.tick(40);
    assert_eq!(
        net.installed.get(&lagging).map(Vec::len),
        Some(1),
        "installed; sent {} messages",
        net.sent.len()
    );
    assert_eq!(
        net.node(lagging).commit_index(),
        net.node(leader).commit_index()
    );
}

#[test]
fn a_follower_that_lost_its_acknowledged_log_is_caught_up_not_probed_forever() {
    let mut net = Net::with_config(3, small_chunks);
    let leader = net.elect(100);
    for i in 0..10 {
        net.propose(leader, &format!("w{i}"));
    }
    net.tick(3);
    let wiped = (1..=3).find(|&id| id != leader).unwrap();
    let l = net.node_mut(leader);
    let applied = l.log().applied;
    let meta = l.snapshot_meta(applied).unwrap();
    l.set_snapshot(Snapshot {
        meta,
        data: Bytes::from_static(DATA),
    });
    l.compact(applied);
    // It had acknowledged everything; now its disk is replaced by an empty one.
    let voters: Vec<NodeId> = (1..=3).collect();
    net.nodes
        .insert(wiped, raft::Raft::new(small_chunks(wiped), voters));
    net.sent.clear();
    net.propose(leader, "after");
    net.tick(40);
    assert_eq!(net.installed.get(&wiped).map(Vec::len), Some(1));
    assert_eq!(net.node(leader).followers_lost_log(), 1);
    assert_eq!(
        net.node(wiped).commit_index(),
        net.node(leader).commit_index()
    );
    assert!(
        net.sent.len() < 200,
        "{} messages: the leader spun on the rejection",
        net.sent.len()
    );
}

#[test]
fn a_late_answer_about_an_older_longer_snapshot_restarts_the_transfer() {
    let (mut net, leader, lagging) = lagging_follower(10);
    // The leader starts streaming DATA (20 bytes) to the cut-off follower...
    net.tick(20);
    // ...then takes a newer, shorter snapshot and streams that instead.
    for i in 0..3 {
        net.propose(leader, &format!("more{i}"));
    }
    net.tick(1);
    let l = net.node_mut(leader);
    let applied = l.log().applied;
    let meta = l.snapshot_meta(applied).unwrap();
    l.set_snapshot(Snapshot {
        meta,
        data: Bytes::from_static(b"short"),
    });
    l.compact(applied);
    net.tick(40);
    // A late acknowledgement from the first transfer: 16 bytes held, past the new end.
    let term = net.node(leader).term();
    net.node_mut(leader).step(Message {
        from: lagging,
        to: leader,
        term,
        body: MessageBody::SnapshotResp {
            index: 0,
            next_offset: 16,
            success: true,
            stamp: 1,
        },
    });
    net.heal();
    net.tick(40);
    let installed = &net.installed[&lagging];
    assert_eq!(installed.last().unwrap().data, Bytes::from_static(b"short"));
    assert_eq!(
        net.node(lagging).commit_index(),
        net.node(leader).commit_index()
    );
}

/// The follower hands every in-order chunk to its driver (`Ready::snapshot_chunks`)
/// instead of buffering it, and acknowledges a chunk only among the messages that wait
/// for the driver's persist; the install is a `SnapshotMeta` the driver fills from its
/// sink.
#[test]
fn chunks_go_to_the_driver_as_they_arrive_and_are_acknowledged_after_its_persist() {
    let mut f = raft::Raft::new(small_chunks(2), vec![1, 2, 3]);
    let meta = raft::SnapshotMeta {
        index: 7,
        term: 1,
        membership: raft::Membership::new([1, 2, 3]),
    };
    let chunk = |offset: u64, data: &'static [u8], done: bool, stamp: u64| Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Snapshot {
            meta: meta.clone(),
            offset,
            data: Bytes::from_static(data),
            done,
            stamp,
        },
    };
    f.step(chunk(0, b"abcd", false, 1));
    let rd = f.ready();
    assert_eq!(rd.snapshot_chunks.len(), 1);
    assert_eq!(
        (
            rd.snapshot_chunks[0].offset,
            &rd.snapshot_chunks[0].data[..]
        ),
        (0, &b"abcd"[..])
    );
    assert!(rd.snapshot.is_none());
    let acked = |msgs: &[Message], next: u64| {
        msgs.iter().any(|m| {
            matches!(m.body, MessageBody::SnapshotResp { success: true, next_offset, .. }
                if next_offset == next)
        })
    };
    assert!(
        !acked(&rd.messages, 4),
        "acknowledged before the driver wrote it"
    );
    assert!(acked(&rd.persisted_messages, 4));
    f.step(chunk(4, b"efgh", false, 2));
    assert_eq!(f.ready().snapshot_chunks.len(), 1);
    // A duplicate goes nowhere and is acknowledged at once; a gap asks for a resend.
    f.step(chunk(4, b"efgh", false, 3));
    let rd = f.ready();
    assert!(rd.snapshot_chunks.is_empty());
    assert!(acked(&rd.messages, 8));
    f.step(chunk(12, b"mn", true, 4));
    let rd = f.ready();
    assert!(rd.snapshot_chunks.is_empty() && rd.snapshot.is_none());
    assert!(rd.messages.iter().any(|m| matches!(
        m.body,
        MessageBody::SnapshotResp {
            success: false,
            next_offset: 8,
            ..
        }
    )));
    // The last chunk: written, then installed in the same Ready.
    f.step(chunk(8, b"ij", true, 5));
    let rd = f.ready();
    assert_eq!(rd.snapshot_chunks.len(), 1);
    assert!(rd.snapshot_chunks[0].done);
    assert_eq!(rd.snapshot, Some(meta.clone()));
    assert!(rd.persisted_messages.iter().any(|m| matches!(
        m.body,
        MessageBody::SnapshotResp {
            success: true,
            index: 7,
            ..
        }
    )));
    assert_eq!(f.log().first_index(), 8);
}
