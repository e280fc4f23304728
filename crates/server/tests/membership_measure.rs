//! Measurements of membership operations on real processes (issue 13's closing note).
//! Ignored by `cargo test`; run them in release, one at a time, on a quiet machine:
//!
//! ```sh
//! cargo test --release -p server --test membership_measure -- --ignored --nocapture --test-threads 1
//! RAFTKV_MEASURE_MB=256 cargo test --release -p server --test membership_measure add_a_member -- --ignored --nocapture
//! ```
//!
//! - `add_a_member_with_a_gib_of_data`: three nodes hold `RAFTKV_MEASURE_MB` MiB (default
//!   1024) in 1,000,000-byte values, snapshotted and compacted; a fourth joins with
//!   `--join`. Reported: the snapshot's size, the time from the join until the new node
//!   installed it (and the transfer rate), and until it is a voter.
//! - `pause_during_leader_transfer`: a client writes one key at a time, without pause;
//!   leadership moves ten times (`raftkv transfer-leader`). Reported: the longest gap
//!   between two acknowledged writes around each transfer, p50 and max, beside the
//!   longest gap of a quiet period.
//! - `pause_during_rolling_restart`: ten rolling restarts of three nodes (each node
//!   SIGTERMed — a leader hands over first — and started again, until it caught up),
//!   under the same client. Reported per step: the longest gap between acknowledged
//!   writes from the SIGTERM until the node is back, p50 and max, for all steps and for
//!   the steps that stopped the leader.
//!
//! Nodes use the production timings (1 s election timeout, 100 ms heartbeat).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::member_procs::{Cluster, Writer};
use server::cli::RespClient;
use server::resp::codec::Value;

const PRODUCTION: (u64, u64) = (1000, 100);

fn percentile(mut xs: Vec<Duration>, p: f64) -> Duration {
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i]
}

/// The longest gap between consecutive acknowledgements within `[from, to]`
/// (acknowledgements just outside count as its ends).
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut prev = times
        .iter()
        .rev()
        .find(|&&t| t <= from)
        .copied()
        .unwrap_or(from);
    let mut most = Duration::ZERO;
    for &t in times.iter().filter(|&&t| t > from) {
        most = most.max(t - prev);
        prev = t;
        if t > to {
            break;
        }
    }
    most.max(
        to.saturating_duration_since(prev)
            .min(Duration::from_secs(60)),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn status(c: &Cluster, id: u64) -> Option<serde_json::Value> {
    let client = server::admin_client::AdminClient::new(None, None);
    client
        .request(&c.admin_addr(id), axum::http::Method::GET, "/status", None)
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
}

#[test]
#[ignore]
fn add_a_member_with_a_gib_of_data() {
    let mb: u64 = std::env::var("RAFTKV_MEASURE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let values = mb * (1 << 20) / 1_000_000;
    // Two snapshots while loading, the log compacted to 8 entries behind the last: a
    // new member must take the snapshot.
    let every = (values / 2).max(8);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snap.toml");
    std::fs::write(
        &conf,
        format!("[snapshot]\nevery_entries = {every}\nkeep_entries = 8\n"),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let mut c = Cluster::start_timed(3, &["--config", &conf], PRODUCTION);
    let value = vec![b'x'; 1_000_000];
    let started = Instant::now();
    let next = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (next, value) = (next.clone(), value.clone());
            let addr = c.client_addr(1 + t % 3);
            std::thread::spawn(move || {
                let mut cl = RespClient::connect(&addr, Duration::from_secs(2)).unwrap();
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    if i >= values {
                        return;
                    }
                    let key = format!("big-{i}");
                    loop {
                        match cl.call(&[b"SET".as_slice(), key.as_bytes(), &value[..]]) {
                            Ok(Value::Simple(ok)) if ok == "OK" => break,
                            other => {
                                eprintln!("SET {key}: {other:?}; again");
                                std::thread::sleep(Duration::from_millis(100));
                                cl = RespClient::connect(&addr, Duration::from_secs(2)).unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let loaded = started.elapsed();
    let leader = c.wait_leader(Duration::from_secs(10));
    // Until the leader has snapshotted (in the background) the bulk of it.
    let deadline = Instant::now() + Duration::from_secs(300);
    let snap_index = loop {
        let s = status(&c, leader).unwrap();
        let (snap, last) = (
            s["snapshot_index"].as_u64().unwrap(),
            s["last_index"].as_u64().unwrap(),
        );
        if snap > 0 && last - snap < every && s["first_index"].as_u64().unwrap() > 1 {
            break snap;
        }
        assert!(Instant::now() < deadline, "no snapshot: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let snap_file = std::fs::read_dir(c.data_dir(leader).join("snap"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap();
    println!(
        "loaded {mb} MiB ({values} values of 1,000,000 bytes) in {:.1} s; leader {leader}'s \
         snapshot at index {snap_index}: {:.1} MiB",
        loaded.as_secs_f64(),
        snap_file as f64 / (1 << 20) as f64
    );

    let t0 = Instant::now();
    c.join(4, leader);
    let mut installed = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let voter = loop {
        if let Some(s) = status(&c, 4) {
            if installed.is_none() && s["snapshots_installed"].as_u64().unwrap_or(0) >= 1 {
                installed = Some(t0.elapsed());
            }
            let voters = s["membership"]["voters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if voters.iter().any(|v| v == 4) {
                break t0.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "node 4 never became a voter");
        std::thread::sleep(Duration::from_millis(20));
    };
    let installed = installed.expect("installed a snapshot");
    println!(
        "added a member with {:.1} MiB of data: snapshot installed {:.2} s after the join \
         ({:.0} MiB/s, join and save included), voter after {:.2} s",
        snap_file as f64 / (1 << 20) as f64,
        installed.as_secs_f64(),
        snap_file as f64 / (1 << 20) as f64 / installed.as_secs_f64(),
        voter.as_secs_f64()
    );
}

#[test]
#[ignore]
fn pause_during_leader_transfer() {
    let c = Cluster::start_timed(3, &[], PRODUCTION);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs, "transfer");
    std::thread::sleep(Duration::from_secs(2));
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let quiet = longest_gap(&w.times.lock().unwrap(), quiet_from, Instant::now());
    let mut pauses = Vec::new();
    for _ in 0..10 {
        let leader = c.wait_leader(Duration::from_secs(5));
        let to = (1..=3).find(|&i| i != leader).unwrap();
        let at = Instant::now();
        c.cli_ok(&["transfer-leader", &to.to_string()]);
        std::thread::sleep(Duration::from_millis(1500));
        let gap = longest_gap(
            &w.times.lock().unwrap(),
            at,
            at + Duration::from_millis(1400),
        );
        pauses.push(gap);
    }
    let acked = w.finish();
    println!(
        "leader transfer, 10 tries: longest gap between acknowledged writes p50 {} max {} \
         (quiet period: {}); {} writes acknowledged",
        ms(percentile(pauses.clone(), 0.5)),
        ms(*pauses.iter().max().unwrap()),
        ms(quiet),
        acked.len()
    );
}

#[test]
#[ignore]
fn pause_during_rolling_restart() {
    let mut c = Cluster::start_timed(3, &[], PRODUCTION);
    let addrs = Arc::new(Mutex::new(c.resp_addrs()));
    let w = Writer::start(addrs, "rolling");
    std::thread::sleep(Duration::from_secs(2));
    let (mut all, mut leader_steps) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for id in 1..=3 {
            let was_leader = c.wait_leader(Duration::from_secs(10)) == id;
            let at = Instant::now();
            c.stop(id);
            c.spawn(id, &[]);
            c.wait_members(&[1, 2, 3], &[], Duration::from_secs(20));
            // Caught up: its applied index reaches the leader's commit index.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let l = c.wait_leader(Duration::from_secs(10));
                let commit = status(&c, l).and_then(|s| s["commit_index"].as_u64());
                let applied = status(&c, id).and_then(|s| s["applied_index"].as_u64());
                if matches!((commit, applied), (Some(c), Some(a)) if a + 50 >= c) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {id} did not catch up");
                std::thread::sleep(Duration::from_millis(20));
            }
            let gap = longest_gap(&w.times.lock().unwrap(), at, Instant::now());
            all.push(gap);
            if was_leader {
                leader_steps.push(gap);
            }
        }
    }
    let acked = w.finish();
    println!(
        "rolling restart, 10 × 3 steps: longest gap between acknowledged writes per step \
         p50 {} max {}; steps that stopped the leader ({}): p50 {} max {}; {} writes acknowledged",
        ms(percentile(all.clone(), 0.5)),
        ms(*all.iter().max().unwrap()),
        leader_steps.len(),
        ms(percentile(leader_steps.clone(), 0.5)),
        ms(*leader_steps.iter().max().unwrap_or(&Duration::ZERO)),
        acked.len()
    );
}
