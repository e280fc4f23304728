//! The cluster identity (issue 13; `src/cluster_id/`): clusters started side by side
//! with crossed peer lists never exchange a Raft message, a data directory from another
//! cluster never takes part (its higher term never reaches the cluster), a data
//! directory of another member refuses to start, and data directories from before
//! identities bind on their first start. In-process clusters on loopback ports.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{bulk, ok, test_config, Cluster};
use server::cli::RespClient;
use server::cluster_id::ClusterId;
use server::resp::codec::Value;
use server::server::{start, Listeners, Running};

const SETTLE: Duration = Duration::from_secs(10);

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind loopback")
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cluster_ids(c: &Cluster) -> Vec<Option<ClusterId>> {
    c.running_ids()
        .iter()
        .map(|&i| c.node(i).identity.current())
        .collect()
}

/// The one cluster ID all of `c`'s running nodes share (waits for them to bind).
fn shared_id(c: &Cluster) -> ClusterId {
    eventually("every node bound to one cluster ID", || {
        let ids = cluster_ids(c);
        ids[0].is_some() && ids.iter().all(|x| *x == ids[0])
    });
    cluster_ids(c)[0].unwrap()
}

fn nil() -> Value {
    Value::Bulk(None)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Cluster B runs normally; cluster A's peer list sends its node 3 to B's node 3. A's
/// nodes 1 and 2 form A (a majority of A's three), B keeps its three, and not one frame
/// goes from A to B's node 3: each handshake is refused on both sides (by cluster ID
/// once both are bound) with a log line and a metric.
#[test]
fn clusters_with_crossed_peer_lists_never_exchange_a_raft_message() {
    let b = Cluster::start(3, |_| {});
    let b_leader = b.wait_leader(SETTLE);
    let b_id = shared_id(&b);
    let b3 = b.node(3).peer_addr;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peers = [listener(), listener()];
    let list = format!(
        "1={},2={},3={b3}",
        peers[0].local_addr().unwrap(),
        peers[1].local_addr().unwrap()
    );
    let a: Vec<Running> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            let cfg = test_config(i as u64 + 1, &list, dir.path());
            let ls = Listeners {
                peer,
                client: listener(),
                admin: listener(),
            };
            rt.block_on(start(cfg, ls)).expect("node starts")
        })
        .collect();
    let status = |n: &Running| rt.block_on(n.node.status()).unwrap();
    eventually("cluster A elects a leader", || {
        a.iter().any(|n| status(n).role == "leader") && a.iter().all(|n| status(n).leader.is_some())
    });
    let a_id = a[0].identity.current().expect("A is bound");
    assert_eq!(a[1].identity.current(), Some(a_id));
    assert_ne!(a_id, b_id, "two clusters, two IDs");

    let mut to_a = RespClient::connect(&a[0].client_addr.to_string(), SETTLE).unwrap();
    let mut to_b = b.client(b_leader);
    assert_eq!(to_a.call(&["SET", "in-a", "1"]).unwrap(), ok());
    assert_eq!(to_b.call(&["SET", "in-b", "1"]).unwrap(), ok());

    // Refused on both sides, by cluster ID.
    let b3_metrics = b.node(3).node.metrics.clone();
    eventually("B's node 3 refuses A's nodes by cluster ID", || {
        b3_metrics.peer_handshakes_refused.reason("cluster_id") >= 2
    });
    for n in &a {
        let m = n.node.metrics.clone();
        eventually("A's nodes refuse B's node 3 by cluster ID", || {
            m.peer_dials_refused.reason("cluster_id") >= 1
        });
    }
    let metrics = common::http_get(b.node(3).admin_addr, "/metrics").1;
    assert!(
        metrics.contains(
            "raftkv_peer_handshakes_refused_total{direction=\"inbound\",reason=\"cluster_id\"}"
        ),
        "{metrics}"
    );

    // Not one frame went from A to "node 3".
    for n in &a {
        let p3 = status(n).peers.into_iter().find(|p| p.id == 3).unwrap();
        assert_eq!(p3.sent_frames, 0, "A sent frames to B's node 3: {p3:?}");
        assert!(!p3.connected);
    }
    // Nothing crossed: B's node 3 follows B's leader in B's term, and each cluster has
    // only its own writes.
    let bl = b.status(b_leader);
    let target = bl.commit_index;
    let s3 = b.wait_status(3, SETTLE, |s| s.applied_index >= target);
    assert_eq!((s3.leader, s3.term), (Some(b_leader), bl.term));
    assert_eq!(b.client(3).call(&["GET", "in-a"]).unwrap(), nil());
    assert_eq!(b.client(3).call(&["GET", "in-b"]).unwrap(), bulk("1"));
    assert_eq!(to_a.call(&["GET", "in-b"]).unwrap(), nil());
    assert!(b
        .status(3)
        .refused_by_core
        .by_reason()
        .iter()
        .all(|(_, n)| *n == 0));

    for n in a {
        rt.block_on(n.shutdown());
    }
}

/// B's node 3 restarts on cluster A's node 3 data directory (same member ID, another
/// cluster, a much higher term). B's other nodes refuse it by cluster ID, it refuses
/// them, and B goes on serving: the foreign term never reaches B (B's terms stay below
/// it: a message from the foreign node would have raised them to it), and B's writes
/// never reach the foreign data.
#[test]
fn a_data_directory_from_another_cluster_never_takes_part() {
    let mut a = Cluster::start(3, |_| {});
    let mut b = Cluster::start(3, |_| {});
    let a_id = shared_id(&a);
    let b_id = shared_id(&b);
    assert_ne!(a_id, b_id);

    // Leadership transfers raise A's term well above B's.
    for _ in 0..6 {
        let l = a.wait_leader(SETTLE);
        let next = l % 3 + 1;
        let h = a.node(l).node.clone();
        a.rt.block_on(h.hand_over(Some(next), Duration::from_secs(5)))
            .expect("transfer");
    }
    let a_leader = a.wait_leader(SETTLE);
    assert_eq!(
        a.client(a_leader).call(&["SET", "from-a", "1"]).unwrap(),
        ok()
    );
    let a_commit = a.status(a_leader).commit_index;
    a.wait_status(3, SETTLE, |s| s.applied_index >= a_commit);
    let a_term = a.status(3).term;

    let b_leader = b.wait_leader(SETTLE);
    let b_term = b.status(b_leader).term;
    assert!(a_term > b_term + 4, "A's term {a_term}, B's {b_term}");

    // B's node 3 gets A's node 3 disk.
    let b_leader = if b_leader == 3 {
        b.stop_gracefully(3);
        b.wait_leader(SETTLE)
    } else {
        b.stop(3);
        b_leader
    };
    a.stop(3);
    let b3_dir = b.configs[2].data_dir.clone();
    std::fs::remove_dir_all(&b3_dir).unwrap();
    copy_dir(&a.configs[2].data_dir, &b3_dir);
    b.restart(3);
    assert_eq!(b.node(3).identity.current(), Some(a_id));

    let m1 = b.node(b_leader).node.metrics.clone();
    let m3 = b.node(3).node.metrics.clone();
    eventually("B's leader refuses the foreign node 3", || {
        m1.peer_handshakes_refused.reason("cluster_id") >= 1
    });
    eventually("the foreign node 3 refuses B's nodes", || {
        m3.peer_dials_refused.reason("cluster_id") >= 2
    });
    // Several election timeouts (300 ms) of B serving writes beside it.
    let mut cl = b.client(b_leader);
    for i in 0..30 {
        assert_eq!(cl.call(&["SET", &format!("b{i}"), "v"]).unwrap(), ok());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Not "the term is unchanged": a loaded machine may cost B an election of its own.
    for id in b.running_ids().into_iter().filter(|&i| i != 3) {
        let s = b.status(id);
        assert!(
            s.term < a_term,
            "node {id}: the foreign term reached B: {s:?}"
        );
        assert!(matches!(s.leader, Some(1 | 2)), "node {id}: {s:?}");
    }
    let s3 = b.status(3);
    assert_eq!(s3.leader, None, "the foreign node found a leader: {s3:?}");
    assert!(s3.term >= a_term);
    assert_eq!(s3.keys, 1, "B's writes reached the foreign data: {s3:?}");
    let p3 = b
        .status(b_leader)
        .peers
        .into_iter()
        .find(|p| p.id == 3)
        .unwrap();
    assert!(!p3.connected, "{p3:?}");
}

/// A data directory whose identity file names another member refuses the start, naming
/// both IDs; the directory is left as it was.
#[test]
fn a_data_directory_of_another_member_refuses_to_start() {
    let mut c = Cluster::start(3, |_| {});
    shared_id(&c);
    c.stop(3);
    let mut cfg = c.configs[1].clone();
    cfg.data_dir = c.configs[2].data_dir.clone();
    let before = std::fs::read(cfg.data_dir.join("identity")).unwrap();
    let ls = Listeners {
        peer: listener(),
        client: listener(),
        admin: listener(),
    };
    let err = match c.rt.block_on(start(cfg.clone(), ls)) {
        Ok(_) => panic!("node 2 started on node 3's data"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("belongs to member 3") && err.contains("configured as member 2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(cfg.data_dir.join("identity")).unwrap(),
        before
    );
}

/// Data directories from before cluster identities (no identity file) start, bind to one
/// new cluster ID (node 1 mints it, the others adopt it), and keep their data.
#[test]
fn data_directories_from_before_identities_bind_on_their_first_start() {
    let mut c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(SETTLE);
    let old = shared_id(&c);
    assert_eq!(c.client(leader).call(&["SET", "kept", "1"]).unwrap(), ok());
    c.stop_all();
    for cfg in &c.configs {
        std::fs::remove_file(cfg.data_dir.join("identity")).unwrap();
    }
    c.boot(3, |_| {});
    let new = shared_id(&c);
    assert_ne!(new, old, "a new ID was minted");
    let leader = c.wait_leader(SETTLE);
    assert_eq!(c.client(leader).call(&["GET", "kept"]).unwrap(), bulk("1"));
    for cfg in &c.configs {
        let text = std::fs::read_to_string(cfg.data_dir.join("identity")).unwrap();
        assert!(text.contains(&new.to_string()), "{text}");
    }
}
