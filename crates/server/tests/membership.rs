//! Membership changes on real `raftkv serve` processes (issue 13): grow 3→5 under
//! writes, leadership transfer, shrink 5→3 removing the leader too; replace a node
//! whose data directory was deleted (refused while it is still a voter); a rolling
//! restart of every node under writes; `raftkv member add --learner`, `member add` and
//! `member promote` by hand. In each, every acknowledged write is read back
//! at the end: no acknowledged write is lost.
//!
//! Nodes run with 300 ms elections; the membership CLI (`raftkv member ...`,
//! `raftkv transfer-leader`) drives the changes, as an operator would.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::member_procs::{check_acked, log_of, Cluster, Writer};

/// Grow 3→5 under writes (each new node joins with `--join`, is promoted once caught
/// up), move leadership, then shrink 5→3 removing two voters — the leader among them
/// (it hands leadership over first). No acknowledged write lost; the removed nodes say
/// they were removed.
#[test]
fn grow_to_five_transfer_and_shrink_to_three_under_writes() {
    let mut c = Cluster::start(3);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "grow");
    std::thread::sleep(Duration::from_millis(300));

    c.join(4, 1);
    c.wait_members(&[1, 2, 3, 4], &[], Duration::from_secs(20));
    c.join(5, 2);
    c.wait_members(&[1, 2, 3, 4, 5], &[], Duration::from_secs(20));
    *addrs.lock().unwrap() = c.resp_addrs();
    std::thread::sleep(Duration::from_millis(300));

    // Leadership to node 5, a member since a second.
    let out = c.cli_ok(&["transfer-leader", "5"]);
    assert!(out.contains('5'), "{out}");
    assert_eq!(c.wait_leader(Duration::from_secs(5)), 5);

    // Shrink: remove a follower, then the leader.
    let follower = 2;
    c.cli_ok(&["member", "remove", &follower.to_string()]);
    c.wait_members(&[1, 3, 4, 5], &[], Duration::from_secs(10));
    let leader = c.wait_leader(Duration::from_secs(5));
    let table = c.cli_ok(&["member", "remove", &leader.to_string()]);
    let mut left: Vec<u64> = [1, 3, 4, 5].into_iter().filter(|&i| i != leader).collect();
    left.sort();
    assert!(!table.contains(&format!("{:>4}  ", leader)), "{table}");
    let removed = [follower, leader];
    for id in removed {
        // It hears of its removal (the leader sends to it until it holds that entry).
        c.wait_removed(id, Duration::from_secs(5));
        c.stop(id);
    }
    c.wait_members(&left, &[], Duration::from_secs(10));
    *addrs.lock().unwrap() = c.resp_addrs();
    std::thread::sleep(Duration::from_millis(300));
    let acked = w.finish();
    check_acked(&c, &acked, left[0]);
    for id in removed {
        assert!(
            log_of(&c, id).contains("this node was removed from the cluster"),
            "node {id} did not say it was removed"
        );
    }
}

/// The operator's commands, without `--join` doing the promotion: `raftkv member add ID
/// ADDR --learner` adds a learner before its node runs; the node started with `--join
/// --learner` takes that place (it is already a learner) and stays one; `raftkv member
/// add` again (no `--learner`) picks up the existing learner, waits for it to catch up
/// and promotes it. A second node is promoted with `raftkv member promote`. No
/// acknowledged write is lost, and each new voter serves the whole state.
#[test]
fn member_add_learner_then_promote_through_the_cli() {
    let mut c = Cluster::start(3);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "cli");
    std::thread::sleep(Duration::from_millis(300));

    // Added before it runs: a learner at its address, no voter changed.
    c.cli_ok(&["member", "add", "4", &c.peer_addr(4), "--learner"]);
    c.wait_members(&[1, 2, 3], &[4], Duration::from_secs(10));
    let via = c.admin_addr(1);
    c.spawn(4, &["--join", &via, "--learner"]);
    // Run again without --learner: waits for node 4 to catch up, then promotes it.
    c.cli_ok(&["member", "add", "4", &c.peer_addr(4)]);
    c.wait_members(&[1, 2, 3, 4], &[], Duration::from_secs(20));

    // Node 5 joins as a learner and stays one until promoted by hand.
    let via = c.admin_addr(2);
    c.spawn(5, &["--join", &via, "--learner"]);
    c.wait_members(&[1, 2, 3, 4], &[5], Duration::from_secs(20));
    // Promotion is refused while it has not caught up (409): try until it is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.cli(&["member", "promote", "5"]);
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("409"),
            "promote refused for another reason: {err}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never promoted: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    c.wait_members(&[1, 2, 3, 4, 5], &[], Duration::from_secs(20));

    *addrs.lock().unwrap() = c.resp_addrs();
    std::thread::sleep(Duration::from_millis(300));
    let acked = w.finish();
    check_acked(&c, &acked, 4);
    check_acked(&c, &acked, 5);
}

/// A node whose data directory was deleted cannot come back as the voter it was (it
/// forgot its vote): `--join` is refused with what to do, and after `raftkv member
/// remove` it joins again, catches up from a snapshot or the log, and is promoted.
#[test]
fn a_node_whose_data_directory_was_deleted_is_replaced() {
    // Small snapshots, the log compacted close behind them: the replacement catches
    // up through a snapshot taken before it was added (a configuration without it).
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snap.toml");
    std::fs::write(&conf, "[snapshot]\nevery_entries = 50\nkeep_entries = 5\n").unwrap();
    let mut c = Cluster::start_with(3, &["--config", &conf.display().to_string()]);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "replace");
    std::thread::sleep(Duration::from_millis(500));
    let leader = c.wait_leader(Duration::from_secs(5));
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let via = (1..=3).find(|&i| i != victim).unwrap();
    c.kill(victim);
    std::fs::remove_dir_all(c.data_dir(victim)).expect("delete the data directory");
    *addrs.lock().unwrap() = c.resp_addrs();

    let out = c.join_refused(victim, via);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("still a voter") && err.contains(&format!("raftkv member remove {victim}")),
        "{err}"
    );

    c.cli_ok(&["member", "remove", &victim.to_string()]);
    std::fs::remove_dir_all(c.data_dir(victim)).ok();
    c.join(victim, via);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    let client = server::admin_client::AdminClient::new(None, None);
    let (_, body) = client
        .request(
            &c.admin_addr(victim),
            axum::http::Method::GET,
            "/status",
            None,
        )
        .expect("status");
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        s["snapshots_installed"].as_u64() >= Some(1),
        "the replacement caught up from a snapshot: {s}"
    );
    assert!(
        !log_of(&c, victim).contains("was removed from the cluster"),
        "a node joining took itself for removed"
    );
    *addrs.lock().unwrap() = c.resp_addrs();
    std::thread::sleep(Duration::from_millis(300));
    let acked = w.finish();
    // Read through the replaced node: it holds the whole state again.
    check_acked(&c, &acked, victim);
}

/// A replacement under its old ID whose first snapshot predates its removal: that
/// snapshot's configuration names it a voter (of its earlier life). Found by the
/// nemesis (`raftkv-nemesis --nodes 3 --duration 1800 --seed 31`, fault #14): the
/// joining node took itself for a voter, never asked for its promotion, and stayed a
/// learner. It needs the node's status poll (every 200 ms) to fall between the snapshot
/// and the log that follows it (26 ms in the nemesis run), so this passes on the old
/// code most of the time; the rule itself is pinned by `join::tests` (which failed
/// before). This runs the whole path end to end.
#[test]
fn a_replacement_whose_first_snapshot_names_it_a_voter_still_asks_for_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snap.toml");
    std::fs::write(&conf, "[snapshot]\nevery_entries = 50\nkeep_entries = 5\n").unwrap();
    let mut c = Cluster::start_with(3, &["--config", &conf.display().to_string()]);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    // Enough writes for snapshots of {1, 2, 3}; then quiet, so none is taken after the
    // removal below (fewer than 50 entries follow it).
    let w = Writer::start(addrs.clone(), "old-life");
    let leader = c.wait_leader(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let acked = w.finish();
    assert!(acked.len() > 100, "{} writes", acked.len());
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let via = (1..=3).find(|&i| i != victim).unwrap();
    c.kill(victim);
    c.cli_ok(&["member", "remove", &victim.to_string()]);
    std::fs::remove_dir_all(c.data_dir(victim)).expect("delete the data directory");
    c.join(victim, via);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    check_acked(&c, &acked, victim);
}

/// A voter whose data directory was wiped, restarted with the same `[peers]` (not
/// `--join`), refuses to start: a member that saw it bound tells it so, it exits
/// non-zero with what to do, and the cluster keeps serving. Then the remedy it names
/// works: `raftkv member remove`, empty the directory, `--join`.
#[test]
fn a_wiped_voter_restarted_with_its_peers_refuses_to_start() {
    let mut c = Cluster::start(3);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "wiped");
    std::thread::sleep(Duration::from_millis(500));
    c.stop(3);
    *addrs.lock().unwrap() = c.resp_addrs();
    std::fs::remove_dir_all(c.data_dir(3)).expect("delete the data directory");

    // The log file is appended to: look only at what the restart writes.
    let earlier = log_of(&c, 3).len();
    c.spawn(3, &[]);
    // Bounded: the members dial it at once (backoff at most 1 s) and it dials them.
    let status = c.wait_exit(3, Duration::from_secs(15));
    let status = status.expect("node 3 on a wiped data directory kept running");
    assert!(!status.success(), "{status:?}");
    let log = log_of(&c, 3)[earlier..].to_string();
    assert!(
        log.contains("refusing to start")
            && log.contains("node 3's data directory is empty but member")
            && log.contains("raftkv member remove 3")
            && log.contains("--join"),
        "{log}"
    );
    assert!(
        !log.contains("adopted the cluster ID"),
        "the wiped node adopted: {log}"
    );
    // The members said so too, and counted it.
    let client = server::admin_client::AdminClient::new(None, None);
    let refused_by = |id: u64| {
        let (_, m) = client
            .request(&c.admin_addr(id), axum::http::Method::GET, "/metrics", None)
            .expect("metrics");
        m.lines().any(|l| {
            l.starts_with("raftkv_peer_handshakes_refused_total{")
                && l.contains("reason=\"forgot_state\"")
                && !l.ends_with(" 0")
        })
    };
    assert!(
        refused_by(1) || refused_by(2),
        "no member counted a forgot_state refusal"
    );

    // The cluster still serves: writes keep being acknowledged by nodes 1 and 2.
    let before = w.times.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.times.lock().unwrap().len() > before,
        "no write acknowledged"
    );

    // The remedy the message names.
    c.cli_ok(&["member", "remove", "3"]);
    c.wait_members(&[1, 2], &[], Duration::from_secs(10));
    std::fs::remove_dir_all(c.data_dir(3)).expect("empty the data directory again");
    c.join(3, 1);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    *addrs.lock().unwrap() = c.resp_addrs();
    std::thread::sleep(Duration::from_millis(300));
    let acked = w.finish();
    check_acked(&c, &acked, 3);
}

/// The wiped voter is refused even when a member that never saw it bound is up: node 3
/// starts late while node 2 is down (it binds once the grace for node 2 has passed: a
/// majority, itself and node 1, vouches for it), takes writes with node 1, and is
/// wiped; node 2 comes back. Restarted, node 3 hears from node 2 (never saw it) and
/// node 1 (saw it): it waits for the whole list before adopting, so node 1's word
/// counts whichever answers first. (Without the wait, node 2 answering first let it in.)
#[test]
fn a_wiped_voter_is_refused_even_by_a_list_with_a_member_that_never_saw_it() {
    let mut c = Cluster::start_some(3, 2, &[], (300, 30));
    c.stop(2);
    c.spawn(3, &[]);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    assert!(log_of(&c, 3).contains("adopted the cluster ID"));
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs, "unseen");
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.finish();
    c.stop(3);
    std::fs::remove_dir_all(c.data_dir(3)).expect("delete the data directory");
    c.spawn(2, &[]);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));

    let earlier = log_of(&c, 3).len();
    c.spawn(3, &[]);
    let status = c.wait_exit(3, Duration::from_secs(15));
    let status = status.expect("node 3 on a wiped data directory kept running");
    assert!(!status.success(), "{status:?}");
    let log = log_of(&c, 3)[earlier..].to_string();
    assert!(
        log.contains("refusing to start: node 3's data directory is empty but member 1 has seen"),
        "{log}"
    );
    assert!(!log.contains("adopted the cluster ID"), "{log}");
    // Nodes 1 and 2 hold every acknowledged write.
    check_acked(&c, &acked, 2);
}

/// A member of the bootstrap list that starts for the first time after the others
/// bound and took writes (an empty data directory too, but never seen bound) adopts
/// the cluster ID, takes part and catches up.
#[test]
fn a_late_starter_of_the_bootstrap_list_binds_and_catches_up() {
    let mut c = Cluster::start_some(3, 2, &[], (300, 30));
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "late");
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.finish();

    c.spawn(3, &[]);
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    let client = server::admin_client::AdminClient::new(None, None);
    let get = |id: u64, path: &str| -> serde_json::Value {
        let (_, body) = client
            .request(&c.admin_addr(id), axum::http::Method::GET, path, None)
            .expect("admin");
        serde_json::from_str(&body).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(3, "/status")["keys"].as_u64() < Some(acked.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "node 3 never caught up: {}",
            get(3, "/status")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = get(1, "/members")["cluster_id"].clone();
    assert!(id.is_string(), "{id}");
    assert_eq!(get(3, "/members")["cluster_id"], id);
    assert!(log_of(&c, 3).contains("adopted the cluster ID"));
    check_acked(&c, &acked, 3);
}

/// `--initial-cluster ID=ADDR,...` (etcd's spelling) bootstraps a cluster as `--peers`
/// does; given with `--peers` it is refused (one flag, two names), and a bad entry is
/// refused naming the key.
#[test]
fn initial_cluster_is_etcds_spelling_of_peers() {
    let mut c = Cluster::start_some(3, 0, &[], (300, 30));
    let list = c.bootstrap.clone();
    for id in 1..=3 {
        c.spawn_args(id, &["--initial-cluster", &list]);
    }
    c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs, "initial");
    std::thread::sleep(Duration::from_millis(300));
    let acked = w.finish();
    check_acked(&c, &acked, 3);

    let refused = |args: &[&str]| {
        let out = c.command(4).args(args).output().expect("run raftkv serve");
        assert_eq!(out.status.code(), Some(2), "{args:?} was not refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&["--initial-cluster", &list, "--peers", &list]);
    assert!(
        err.contains("--peers") || err.contains("--initial-cluster"),
        "{err}"
    );
    let err = refused(&["--initial-cluster", "4=nowhere"]);
    assert!(err.contains("peers"), "{err}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["serve", "--help"])
        .output()
        .expect("raftkv serve --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--initial-cluster"));
}

/// A rolling restart of every node under writes: each is stopped with SIGTERM (a leader
/// hands over first) and started again on its data; the cluster keeps its members and
/// loses no acknowledged write.
#[test]
fn a_rolling_restart_under_writes_loses_nothing() {
    let mut c = Cluster::start(3);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs.clone(), "rolling");
    std::thread::sleep(Duration::from_millis(300));
    for id in 1..=3 {
        c.stop(id);
        std::thread::sleep(Duration::from_millis(200));
        c.spawn(id, &[]);
        c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    let acked = w.finish();
    let leader = c.wait_leader(Duration::from_secs(5));
    check_acked(&c, &acked, leader);
}
