//! A three-node cluster in one process on loopback ports, driven through its real
//! interfaces: RESP over TCP, HTTP admin, TCP between peers, logs on disk.

mod common;

use std::time::Duration;

use common::{bulk, http_get, ok, Cluster};
use server::resp::codec::Value;

const SETTLE: Duration = Duration::from_secs(10);

fn follower_of(c: &Cluster, leader: u64) -> u64 {
    c.running_ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower")
}

#[test]
fn follower_forwards_and_commands_behave() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let f = follower_of(&c, leader);
    let mut cl = c.client(f);

    assert_eq!(cl.call(&["PING"]).unwrap(), Value::Simple("PONG".into()));
    assert_eq!(cl.call(&["ECHO", "hi"]).unwrap(), bulk("hi"));
    assert_eq!(cl.call(&["SET", "k", "v1"]).unwrap(), ok());
    assert_eq!(cl.call(&["GET", "k"]).unwrap(), bulk("v1"));
    assert_eq!(cl.call(&["GET", "missing"]).unwrap(), Value::Bulk(None));
    // Every node sees the write (reads are linearizable: they go through the leader).
    for id in c.running_ids() {
        assert_eq!(
            c.client(id).call(&["GET", "k"]).unwrap(),
            bulk("v1"),
            "node {id}"
        );
    }

    assert_eq!(
        cl.call(&["SET", "k", "x", "NX"]).unwrap(),
        Value::Bulk(None)
    );
    assert_eq!(
        cl.call(&["SET", "n", "x", "XX"]).unwrap(),
        Value::Bulk(None)
    );
    assert_eq!(cl.call(&["SET", "k", "v2", "XX"]).unwrap(), ok());
    assert_eq!(cl.call(&["SET", "new", "1", "NX"]).unwrap(), ok());
    assert_eq!(
        cl.call(&["CAS", "k", "wrong", "v3"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(cl.call(&["CAS", "k", "v2", "v3"]).unwrap(), Value::Int(1));
    assert_eq!(cl.call(&["GET", "k"]).unwrap(), bulk("v3"));
    assert_eq!(cl.call(&["INCR", "ctr"]).unwrap(), Value::Int(1));
    assert_eq!(cl.call(&["INCRBY", "ctr", "10"]).unwrap(), Value::Int(11));
    assert_eq!(cl.call(&["DECR", "ctr"]).unwrap(), Value::Int(10));
    assert!(
        matches!(cl.call(&["INCR", "k"]).unwrap(), Value::Error(e) if e.contains("not an integer"))
    );
    assert_eq!(cl.call(&["MSET", "a", "1", "b", "2"]).unwrap(), ok());
    assert_eq!(
        cl.call(&["MGET", "a", "b", "zz"]).unwrap(),
        Value::Array(Some(vec![bulk("1"), bulk("2"), Value::Bulk(None)]))
    );
    assert_eq!(cl.call(&["EXISTS", "a", "b", "zz"]).unwrap(), Value::Int(2));
    assert_eq!(cl.call(&["DEL", "a", "zz"]).unwrap(), Value::Int(1));
    // DBSIZE counts the local state machine: exact on the leader (writes are answered
    // once applied there), possibly behind on a follower.
    assert_eq!(c.client(leader).call(&["DBSIZE"]).unwrap(), Value::Int(4)); // k, new, ctr, b
    assert!(matches!(
        cl.call(&["SCAN", "0"]).unwrap(),
        Value::Array(Some(_))
    ));
    assert!(
        matches!(cl.call(&["NOPE"]).unwrap(), Value::Error(e) if e.contains("unknown command"))
    );
    assert!(matches!(cl.call(&["GET"]).unwrap(), Value::Error(e) if e.contains("wrong number")));
    // COMMAND DOCS with no names covers every command, as Redis's does; RESP2 flattens
    // the map into name, docs pairs (the docs are empty: none are kept).
    match cl.call(&["COMMAND", "DOCS"]).unwrap() {
        Value::Array(Some(pairs)) => {
            assert_eq!(pairs.len() % 2, 0);
            assert!(pairs.chunks(2).any(|p| p[0] == bulk("get")));
        }
        other => panic!("COMMAND DOCS answered {other:?}"),
    }
    assert_eq!(cl.call(&["CLIENT", "SETNAME", "t"]).unwrap(), ok());

    // Pipelining: replies in order, and a read sees the writes before it.
    let mut pipe = c.client(f);
    let cmds: &[&[&str]] = &[
        &["SET", "p", "1"],
        &["GET", "p"],
        &["SET", "p", "2"],
        &["SET", "q", "3"],
        &["GET", "p"],
        &["INCR", "pc"],
        &["INCR", "pc"],
        &["GET", "pc"],
        &["PING"],
    ];
    for cmd in cmds {
        pipe.send(cmd).unwrap();
    }
    let replies: Vec<Value> = cmds.iter().map(|_| pipe.read().unwrap()).collect();
    assert_eq!(
        replies,
        vec![
            ok(),
            bulk("1"),
            ok(),
            ok(),
            bulk("2"),
            Value::Int(1),
            Value::Int(2),
            bulk("2"),
            Value::Simple("PONG".into())
        ]
    );

    // INFO on a follower names its role, the leader and the indexes.
    let Value::Bulk(Some(info)) = cl.call(&["INFO"]).unwrap() else {
        panic!("INFO is a bulk string");
    };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("role:follower"), "{info}");
    assert!(info.contains(&format!("leader:{leader}")), "{info}");
    assert!(info.contains("commit_index:"), "{info}");
    assert!(info.contains("applied_index:"), "{info}");
    assert_eq!(cl.call(&["QUIT"]).unwrap(), ok());
    assert!(cl.read().is_err(), "QUIT closes the connection");
}

#[test]
fn admin_endpoints() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    assert_eq!(c.client(leader).call(&["SET", "x", "1"]).unwrap(), ok());

    let (code, body) = http_get(c.node(leader).admin_addr, "/status");
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(s["id"], leader);
    assert_eq!(s["role"], "leader");
    assert_eq!(s["leader"], leader);
    assert!(s["term"].as_u64().unwrap() >= 1);
    assert!(s["commit_index"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["applied_index"].as_u64().is_some());
    let peers = s["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 2);
    for p in peers {
        assert!(
            p["match_index"].as_u64().is_some(),
            "leader knows match: {p}"
        );
        assert!(p["lag"].as_u64().is_some(), "{p}");
    }

    let f = follower_of(&c, leader);
    let (code, body) = http_get(c.node(f).admin_addr, "/status");
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["role"], "follower");
    assert_eq!(s["leader"], leader);

    let (code, metrics) = http_get(c.node(leader).admin_addr, "/metrics");
    assert_eq!(code, 200);
    for name in [
        "raftkv_proposals_total",
        "raftkv_commit_index",
        "raftkv_elections_total",
        "raftkv_log_entries",
        "raftkv_log_bytes",
        "raftkv_commit_latency_seconds_bucket",
        "raftkv_fsync_latency_seconds_count",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let (code, _) = http_get(c.node(f).admin_addr, "/health");
    assert_eq!(code, 200);
    let (code, _) = http_get(c.node(f).admin_addr, "/nope");
    assert_eq!(code, 404);
}

#[test]
fn malformed_frames_and_oversized_values() {
    let c = Cluster::start(3, |cfg| cfg.max_value_bytes = 1000);
    let leader = c.wait_leader(SETTLE);
    let f = follower_of(&c, leader);
    let mut cl = c.client(f);

    // A bad array header: error reply, and the connection keeps working.
    cl.send_raw(b"*x\r\n").unwrap();
    assert!(matches!(cl.read().unwrap(), Value::Error(e) if e.contains("Protocol error")));
    assert_eq!(cl.call(&["PING"]).unwrap(), Value::Simple("PONG".into()));
    cl.send_raw(b"SET inline \"a b\"\r\n").unwrap();
    assert_eq!(cl.read().unwrap(), ok());
    assert_eq!(cl.call(&["GET", "inline"]).unwrap(), bulk("a b"));

    // A value over the limit is refused; smaller ones still go through.
    let big = "x".repeat(1001);
    let r = cl.call(&["SET", "big", big.as_str()]).unwrap();
    assert!(
        matches!(&r, Value::Error(e) if e.contains("value too large")),
        "{r:?}"
    );
    assert!(matches!(
        cl.call(&["MSET", "a", "1", "big", big.as_str()]).unwrap(),
        Value::Error(_)
    ));
    assert_eq!(cl.call(&["GET", "big"]).unwrap(), Value::Bulk(None));
    assert_eq!(
        cl.call(&["GET", "a"]).unwrap(),
        Value::Bulk(None),
        "MSET is checked before any write"
    );
    let fits = "y".repeat(1000);
    assert_eq!(cl.call(&["SET", "big", fits.as_str()]).unwrap(), ok());
    assert_eq!(cl.call(&["GET", "big"]).unwrap(), bulk(&fits));

    // Garbage inside an array cannot be resynchronised: error, then close.
    cl.send_raw(b"*2\r\n$3\r\nGET\r\n+oops\r\n").unwrap();
    assert!(matches!(cl.read().unwrap(), Value::Error(e) if e.contains("Protocol error")));
    assert!(
        cl.read().is_err(),
        "connection closed after a fatal protocol error"
    );

    // A command over the request size limit is refused before it is buffered.
    let mut cl = c.client(f);
    cl.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n")
        .unwrap();
    assert!(matches!(cl.read().unwrap(), Value::Error(e) if e.contains("size limit")));
    // Other clients are unaffected.
    assert_eq!(c.client(f).call(&["GET", "inline"]).unwrap(), bulk("a b"));
}

#[test]
fn leader_failover_and_restart_keep_data() {
    let mut c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let f = follower_of(&c, leader);
    for i in 0..20 {
        let v = i.to_string();
        assert_eq!(
            c.client(f).call(&["SET", &format!("k{i}"), &v]).unwrap(),
            ok()
        );
    }
    c.stop(leader);
    // Straight after the crash the follower still believes in the old leader: the request
    // must not be sent into the void but wait for the new leader.
    std::thread::sleep(Duration::from_millis(50));
    let t = std::time::Instant::now();
    assert_eq!(
        c.client(f).call(&["SET", "during", "election"]).unwrap(),
        ok()
    );
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    let new_leader = c.wait_leader(SETTLE);
    assert_ne!(new_leader, leader);
    let f2 = follower_of(&c, new_leader);
    let mut cl = c.client(f2);
    assert_eq!(cl.call(&["GET", "k7"]).unwrap(), bulk("7"));
    assert_eq!(cl.call(&["SET", "after", "failover"]).unwrap(), ok());

    // Every node down, then up again on the same data (new ports): nothing is lost.
    c.stop_all();
    c.boot(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let mut cl = c.client(follower_of(&c, leader));
    assert_eq!(cl.call(&["GET", "k19"]).unwrap(), bulk("19"));
    assert_eq!(cl.call(&["GET", "after"]).unwrap(), bulk("failover"));
    assert_eq!(cl.call(&["GET", "during"]).unwrap(), bulk("election"));
    assert_eq!(c.client(leader).call(&["DBSIZE"]).unwrap(), Value::Int(22));
}

#[test]
fn stale_reads_are_served_locally() {
    let c = Cluster::start(3, |cfg| cfg.read_mode = server::config::ReadMode::Stale);
    let leader = c.wait_leader(SETTLE);
    let f = follower_of(&c, leader);
    assert_eq!(c.client(f).call(&["SET", "s", "1"]).unwrap(), ok());
    // Read-your-writes holds on the node that forwarded the write once it applied it;
    // poll, since a stale read may lag.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        if c.client(f).call(&["GET", "s"]).unwrap() == bulk("1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        c.status(leader).reads_served,
        0,
        "no read went to the leader"
    );
}

#[test]
fn concurrent_incr_from_every_node_counts_exactly() {
    let c = Cluster::start(3, |_| {});
    c.wait_leader(SETTLE);
    let addrs: Vec<String> = c
        .running_ids()
        .iter()
        .map(|&i| c.client_addr(i).to_string())
        .collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let addr = addrs[t % addrs.len()].clone();
            std::thread::spawn(move || {
                let mut cl =
                    server::cli::RespClient::connect(&addr, Duration::from_secs(2)).unwrap();
                for _ in 0..25 {
                    let r = cl.call(&["INCR", "shared"]).unwrap();
                    assert!(matches!(r, Value::Int(_)), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(c.client(1).call(&["GET", "shared"]).unwrap(), bulk("150"));
}

/// SCAN pages through keys by prefix (MATCH) with numeric cursors, from any node; KEYS
/// returns every match.
#[test]
fn scan_and_keys_page_through_prefixes() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let mut cl = c.client(follower_of(&c, leader));
    for i in 0..25 {
        assert_eq!(
            cl.call(&["SET", &format!("user:{i:02}"), "x"]).unwrap(),
            ok()
        );
    }
    assert_eq!(cl.call(&["SET", "other", "y"]).unwrap(), ok());

    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let reply = cl
            .call(&["SCAN", &cursor, "MATCH", "user:*", "COUNT", "10"])
            .unwrap();
        let Value::Array(Some(parts)) = reply else {
            panic!("bad reply {reply:?}")
        };
        let (Value::Bulk(Some(next)), Value::Array(Some(keys))) = (&parts[0], &parts[1]) else {
            panic!("bad reply {parts:?}")
        };
        for k in keys {
            let Value::Bulk(Some(k)) = k else {
                panic!("bad key {k:?}")
            };
            seen.push(String::from_utf8(k.to_vec()).unwrap());
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user:{i:02}")).collect();
    assert_eq!(seen, expected, "every key once, in order");

    let Value::Array(Some(keys)) = cl.call(&["KEYS", "user:1?"]).unwrap() else {
        panic!()
    };
    assert_eq!(keys.len(), 10);
    let reply = cl.call(&["SCAN", "987654321"]).unwrap();
    assert!(
        matches!(reply, Value::Error(_)),
        "unknown cursor is an error: {reply:?}"
    );
}

/// The bug: a forwarded SCAN answer carried every value; above the peer frame limit it
/// was dropped with a log line and the client waited out the request timeout (measured:
/// ten 400 KiB values, `TIMEOUT … outcome is unknown` after 10.00 s on a follower).
/// Scan pages now carry keys only, bounded in bytes.
#[test]
fn scan_through_a_follower_with_large_values_answers_at_once() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let mut cl = c.client(leader);
    let big = "x".repeat(400 << 10);
    for i in 0..10 {
        assert_eq!(cl.call(&["SET", &format!("big:{i}"), &big]).unwrap(), ok());
    }
    let mut f = c.client(follower_of(&c, leader));
    let started = std::time::Instant::now();
    let Value::Array(Some(parts)) = f.call(&["SCAN", "0", "COUNT", "100"]).unwrap() else {
        panic!("SCAN did not answer an array")
    };
    let Value::Array(Some(keys)) = &parts[1] else {
        panic!("bad reply {parts:?}")
    };
    assert_eq!(keys.len(), 10);
    let Value::Array(Some(keys)) = f.call(&["KEYS", "big:*"]).unwrap() else {
        panic!("KEYS did not answer an array")
    };
    assert_eq!(keys.len(), 10);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SCAN and KEYS through a follower took {:?}",
        started.elapsed()
    );
}

/// Small thresholds so a few hundred writes compact the log several times, and small
/// chunks so a transfer takes many InstallSnapshot messages.
fn snapshot_often(c: &mut server::config::Config) {
    c.snapshot.every_entries = 50;
    c.snapshot.keep_entries = 10;
    c.snapshot.chunk_bytes = 4096;
}

#[test]
fn far_behind_follower_catches_up_through_a_snapshot() {
    let mut c = Cluster::start(3, snapshot_often);
    let leader = c.wait_leader(SETTLE);
    let lagging = follower_of(&c, leader);
    c.stop(lagging);

    let value = |i: usize| format!("{i:0>200}");
    let mut cl = c.client(leader);
    for i in 0..300 {
        assert_eq!(
            cl.call(&["SET", &format!("k{i}"), &value(i)]).unwrap(),
            ok()
        );
    }
    // Snapshots are saved in the background and a trigger that comes while one is being
    // written waits for it, so how many there are depends on the disk's speed (the test
    // once saw two under load, where it asked for five); what matters is that the leader
    // compacted away what the stopped node lacks, which may finish after the last write.
    let ls = c.wait_status(leader, SETTLE, |s| s.first_index > 200);
    assert!(ls.snapshots_taken >= 1, "leader snapshots: {ls:?}");

    c.restart(lagging);
    let target = ls.commit_index;
    let s = c.wait_status(lagging, SETTLE, |s| s.applied_index >= target);
    assert!(
        s.snapshots_installed >= 1,
        "caught up through a snapshot: {s:?}"
    );
    assert_eq!(s.keys, 300, "the snapshot carried every key");
    assert!(
        s.first_index > 200,
        "its log starts after the snapshot: {s:?}"
    );

    // Replication goes on after the snapshot, and the node restarts from its own copy.
    assert_eq!(cl.call(&["SET", "after", "snapshot"]).unwrap(), ok());
    let target = c.status(leader).commit_index;
    c.wait_status(lagging, SETTLE, |s| s.applied_index >= target);
    c.stop(lagging);
    c.restart(lagging);
    let s = c.wait_status(lagging, SETTLE, |s| s.applied_index >= target);
    assert_eq!(s.keys, 301);
    // Its state is the leader's: read every key through it (forwarded, linearizable).
    let mut via = c.client(lagging);
    for i in (0..300).step_by(37) {
        assert_eq!(
            via.call(&["GET", &format!("k{i}")]).unwrap(),
            bulk(&value(i))
        );
    }
}

/// A follower whose disk was replaced (same ID and address, nothing on disk) restarted
/// with its `[peers]` is refused: the members saw it bound, so it forgot its vote and
/// its log (issue 13). It never binds nor takes part (the `raftkv` process exits, see
/// `tests/membership.rs`; here in-process it stays unbound), and the cluster serves on.
/// (This test used to expect the node rebuilt from a snapshot: the unsafe path. The
/// safe replacement — `member remove`, then `--join` — is rebuilt from a snapshot in
/// `tests/membership.rs`, and the raft core's `followers_lost_log` has its own test.)
#[test]
fn a_follower_restarted_on_an_empty_disk_is_refused_not_rebuilt() {
    let mut c = Cluster::start(3, snapshot_often);
    let leader = c.wait_leader(SETTLE);
    let replaced = follower_of(&c, leader);
    let mut cl = c.client(leader);
    for i in 0..200 {
        assert_eq!(cl.call(&["SET", &format!("k{i}"), "v"]).unwrap(), ok());
    }
    c.stop(replaced);
    let dir = c.configs[(replaced - 1) as usize].data_dir.clone();
    std::fs::remove_dir_all(&dir).expect("wipe the node's data");
    assert_eq!(cl.call(&["SET", "while", "away"]).unwrap(), ok());

    c.restart(replaced);
    let deadline = std::time::Instant::now() + SETTLE;
    let why = loop {
        if let Some(why) = c.node(replaced).identity.forgotten() {
            break why;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {replaced} was not told it forgot its state"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        why.contains(&format!("node {replaced}'s data directory is empty"))
            && why.contains(&format!("raftkv member remove {replaced}")),
        "{why}"
    );
    assert_eq!(c.node(replaced).identity.current(), None, "it never binds");
    assert_eq!(c.status(replaced).applied_index, 0, "it never takes part");
    assert_eq!(cl.call(&["SET", "after", "refused"]).unwrap(), ok());
}

/// Stopping the leader as SIGTERM does hands leadership to a caught-up voter first: the
/// others have a new leader well before an election timeout could have elected one
/// (2 s here, so an election after a plain stop takes at least that), and no write
/// acknowledged before the stop is lost.
#[test]
fn a_leader_stopped_gracefully_hands_over_without_an_election_timeout() {
    let election = Duration::from_secs(2);
    let mut c = Cluster::start(3, |cfg| {
        cfg.raft.election_timeout = election;
        cfg.raft.heartbeat = Duration::from_millis(50);
    });
    let leader = c.wait_leader(Duration::from_secs(20));
    let mut client = c.client(leader);
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(client.call(&["SET", k.as_str(), "v"]).unwrap(), ok());
    }
    let started = std::time::Instant::now();
    c.stop_gracefully(leader);
    let new_leader = c.wait_leader(Duration::from_secs(20));
    let took = started.elapsed();
    eprintln!("graceful stop of leader {leader}: node {new_leader} leads after {took:?}");
    assert_ne!(new_leader, leader);
    assert!(
        took < election / 2,
        "a new leader took {took:?}: the stop did not hand over (election timeout {election:?})"
    );
    let mut client = c.client(new_leader);
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(client.call(&["GET", k.as_str()]).unwrap(), bulk("v"));
    }
}

/// `raftkv transfer-leader ID` (the admin route `POST /transfer-leader?to=ID`): the
/// command asks every node, the leader hands over, and ID leads when it returns. A
/// transfer to a node that is not a voter fails with the reason.
#[test]
fn transfer_leader_moves_leadership_to_the_named_voter() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(Duration::from_secs(10));
    let target = if leader == 3 { 1 } else { leader + 1 };
    let admin: Vec<String> = (1..=3).map(|i| c.node(i).admin_addr.to_string()).collect();
    let answer = server::cli::transfer_leader(&admin, Some(target)).expect("transfer");
    assert!(
        answer.contains(&format!("\"leader\": {target}")),
        "{answer}"
    );
    assert_eq!(c.wait_leader(Duration::from_secs(10)), target);
    let err = server::cli::transfer_leader(&admin, Some(9))
        .unwrap_err()
        .to_string();
    assert!(err.contains("node 9 is not a voter"), "{err}");
    assert_eq!(c.wait_leader(Duration::from_secs(10)), target);
}
