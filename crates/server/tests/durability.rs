//! Crash durability of the `raftkv` binary, with every node a real OS process.
//!
//! Three scenarios, each on a fresh three-node cluster (loopback ports, temp data dirs,
//! fast election timings):
//!
//! 1. `kill -9` of every node while eight writers are busy: after a restart on the same
//!    data, every write that was acknowledged with `+OK` is there with its exact value.
//!    SIGKILL ends the processes but not the machine, so the page cache survives: this
//!    catches acknowledging before a write reached the kernel (user-space buffering, an
//!    ack before the log append) and recovery bugs, not missing `fdatasync`s.
//! 2. A torn final record (a partial record after the end of one node's newest segment,
//!    as a crash in the middle of an append leaves): that node truncates the tail with a
//!    log line naming the file and offset, starts, catches up from the leader, and every
//!    acknowledged write is readable. (Cutting into the last record *already there* would
//!    not model a torn write: that record was synced before the node acknowledged it, the
//!    hard state records so, and recovery refuses it as corruption — see
//!    crates/storage/README.md.)
//! 3. A flipped bit in a record in the middle of a segment: that node refuses to start
//!    (non-zero exit, error naming the segment file and the record's byte offset) and
//!    leaves the file as it was; the other two, a quorum, serve every acknowledged write.
//!
//! The layouts this relies on are the storage crate's (crates/storage/README.md): the log
//! lives in `<data_dir>/log`, segments are named `{first_index:020}.seg`, have a 32-byte
//! header, then records `len: u32 | crc: u32 | type: u8 | payload[len]`.
//!
//! Every spawned process belongs to a [`Cluster`] guard that SIGKILLs it on drop, so a
//! failing assertion leaves no node running. The tests take a global lock and run one at
//! a time: three clusters plus writers on a two-core machine would starve the 300 ms
//! election timeout and turn load into flakiness.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::cli::RespClient;
use server::resp::codec::Value;

mod common;
use common::procs::{serial, Cluster, ELECTION_MS, REQUEST_TIMEOUT_MS, SETTLE};

/// Segment header size and record header size, from crates/storage (segment.rs,
/// record.rs).
const SEGMENT_HEADER: usize = 32;
const RECORD_HEADER: usize = 9;

/// The value written under `key`: derived from the key (so a value landing under the
/// wrong key, or a stale one, is caught) plus a checksum-like tail and some padding.
fn value_for(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{key}={h:016x}-{}", "p".repeat(32))
}

/// Sets `key` to [`value_for`] it over `c`; true only on `+OK`.
fn set_ok(c: &mut RespClient, key: &str) -> std::io::Result<bool> {
    let v = c.call(&["SET", key, &value_for(key)])?;
    Ok(v == Value::Simple("OK".into()))
}

/// Writes `n` keys `{prefix}{i}` one by one through rotating nodes; returns the keys
/// acknowledged with `+OK` (all of them, on a healthy cluster).
fn write_keys(c: &Cluster, prefix: &str, n: usize) -> Vec<String> {
    let mut clients: HashMap<u64, RespClient> = HashMap::new();
    let mut acked = Vec::new();
    let ids = c.running();
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let id = ids[i % ids.len()];
        let cl = match clients.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                RespClient::connect(&c.client_addr(id), Duration::from_secs(1)).expect("connect"),
            ),
        };
        match set_ok(cl, &key) {
            Ok(true) => acked.push(key),
            Ok(false) => {}
            Err(_) => {
                clients.remove(&id);
            }
        }
    }
    assert!(
        acked.len() * 10 >= n * 9,
        "only {} of {n} writes acknowledged on a healthy cluster",
        acked.len()
    );
    acked
}

/// Reads every key in `keys` through node `via` (MGET in batches) and returns the ones
/// missing or holding another value than [`value_for`]. Retries batches that fail
/// (error reply or connection loss, e.g. right after an election) until [`SETTLE`].
fn check_keys(c: &Cluster, via: u64, keys: &[String]) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    let mut bad = Vec::new();
    let mut client: Option<RespClient> = None;
    for batch in keys.chunks(200) {
        loop {
            if client.is_none() {
                client = RespClient::connect(&c.client_addr(via), Duration::from_secs(1)).ok();
            }
            let mut args = vec!["MGET"];
            args.extend(batch.iter().map(String::as_str));
            let reply = client.as_mut().map(|cl| cl.call(&args));
            match reply {
                Some(Ok(Value::Array(Some(items)))) if items.len() == batch.len() => {
                    for (k, v) in batch.iter().zip(items) {
                        let want = value_for(k);
                        match v {
                            Value::Bulk(Some(b)) if b.as_ref() == want.as_bytes() => {}
                            other => bad.push(format!("{k}: {other:?}")),
                        }
                    }
                    break;
                }
                other => {
                    if matches!(other, None | Some(Err(_))) {
                        client = None;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "node {via} did not serve MGET: {other:?}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    bad
}

fn assert_all_present(c: &Cluster, via: u64, keys: &[String]) {
    let bad = check_keys(c, via, keys);
    assert!(
        bad.is_empty(),
        "{} of {} acknowledged keys missing or wrong via node {via}, e.g. {:?}",
        bad.len(),
        keys.len(),
        &bad[..bad.len().min(20)]
    );
}

/// The newest segment of a log directory: the highest first index, which the zero-padded
/// file names sort by.
fn newest_segment(log_dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .expect("log dir")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 24 && n.ends_with(".seg"))
        })
        .collect();
    segs.sort();
    segs.pop().expect("a segment file")
}

/// Start offsets of the records in a segment's bytes, walking the length fields.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + RECORD_HEADER + len;
        assert!(end <= bytes.len(), "record at {at} runs past the end");
        out.push(at);
        at = end;
    }
    assert_eq!(at, bytes.len(), "trailing bytes after the last record");
    out
}

/// Starts a three-node cluster, writes `n` keys and waits until every node holds the
/// whole log; then kills every node. Returns the cluster (stopped) and the acked keys.
fn cluster_with_replicated_writes(n: usize) -> (Cluster, Vec<String>) {
    let mut c = Cluster::new(3);
    c.start_all();
    c.wait_leader();
    let acked = write_keys(&c, "k", n);
    let last = c.wait_caught_up();
    println!(
        "wrote {} keys; every node holds the log up to {last}",
        acked.len()
    );
    c.kill_all();
    (c, acked)
}

#[test]
fn kill_9_every_node_mid_writes_loses_no_acknowledged_write() {
    let _serial = serial();
    let t0 = Instant::now();
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader();
    println!("leader: node {leader} after {:?}", t0.elapsed());

    const WRITERS: usize = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = c.ids().iter().map(|&id| c.client_addr(id)).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let stop = stop.clone();
            let addrs = addrs.clone();
            std::thread::spawn(move || {
                // Each writer rotates over the nodes, starting at a different one; a node
                // forwards to the leader. One connection per node, reopened after an error.
                let mut conns: Vec<Option<RespClient>> = addrs.iter().map(|_| None).collect();
                let (mut acked, mut attempts, mut errors) = (Vec::new(), 0usize, 0usize);
                let mut seq = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let n = (t + seq) % addrs.len();
                    // A fresh key per attempt: a write whose outcome is unknown is never
                    // retried under the same key, so an acked key has exactly one value.
                    let key = format!("w{t}-{seq}");
                    seq += 1;
                    attempts += 1;
                    if conns[n].is_none() {
                        conns[n] = RespClient::connect(&addrs[n], Duration::from_millis(300)).ok();
                    }
                    let Some(cl) = conns[n].as_mut() else {
                        errors += 1;
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    match set_ok(cl, &key) {
                        Ok(true) => acked.push(key),
                        Ok(false) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conns[n] = None;
                        }
                    }
                }
                (acked, attempts, errors)
            })
        })
        .collect();

    // Let the writers run, then SIGKILL all three nodes while requests are in flight.
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.kill_all();
    // The writers' connections are now reset: they see errors and then stop.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut attempts, mut errors) = (Vec::new(), 0, 0);
    for w in writers {
        let (a, n, e) = w.join().expect("writer thread");
        acked.extend(a);
        attempts += n;
        errors += e;
    }
    println!(
        "writers: {attempts} SETs attempted, {} acknowledged, {errors} failed (mostly at \
         the kill); writers stopped {:?} after the kill",
        acked.len(),
        killed_at.elapsed()
    );
    assert!(
        acked.len() > 100,
        "only {} acknowledged writes: too few for the test to mean anything",
        acked.len()
    );

    // Same data dirs, same ports.
    let restarted = Instant::now();
    c.start_all();
    let leader = c.wait_leader();
    println!(
        "after restart: leader node {leader} in {:?}",
        restarted.elapsed()
    );
    // The check is not vacuous: a key never written is reported.
    assert_eq!(
        check_keys(&c, leader, &["never-written".to_string()]).len(),
        1
    );
    // Through a follower as well as the leader: every node answers for the cluster.
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let (half_a, half_b) = acked.split_at(acked.len() / 2);
    assert_all_present(&c, leader, half_a);
    assert_all_present(&c, follower, half_b);
    println!(
        "all {} acknowledged writes present after kill -9 of every node; test took {:?}",
        acked.len(),
        t0.elapsed()
    );
}

#[test]
fn torn_final_record_is_truncated_and_node_serves() {
    let _serial = serial();
    let t0 = Instant::now();
    let (mut c, acked) = cluster_with_replicated_writes(200);

    // Append all but the last 3 bytes of a record after node 2's newest segment: an
    // incomplete final record, exactly what an append torn by a crash leaves. (It lies
    // beyond everything the node synced; the records before it were synced before the
    // node acknowledged them, so damage there would be corruption, not a torn write.)
    let victim = 2;
    let seg = newest_segment(&c.log_dir(victim));
    let bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    let prev_record = *offsets.last().expect("records in the newest segment");
    let last_record = bytes.len();
    let partial = &bytes[prev_record..bytes.len() - 3];
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(partial)
        .unwrap();
    let cut_to = (last_record + partial.len()) as u64;
    println!(
        "appended a torn record of {} bytes to {} at offset {last_record} ({} records)",
        partial.len(),
        seg.display(),
        offsets.len()
    );

    let started = Instant::now();
    c.start_all();
    c.wait_leader();
    let deadline = Instant::now() + SETTLE;
    loop {
        match c.http_get(victim, "/health") {
            Some((200, _)) => break,
            other => assert!(
                Instant::now() < deadline,
                "node {victim} not healthy: {other:?}\n{}",
                c.output(victim)
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The recovery said what it cut, where. (Wording: storage/src/file_store.rs and
    // server/src/node_loop.rs.)
    let out = c.output(victim);
    let name = seg.file_name().unwrap().to_str().unwrap();
    for needle in [
        "WAL recovery: truncating torn tail (incomplete record)",
        "recovery cut a torn final record",
        name,
        &format!("offset={last_record}"),
        &format!("dropped_bytes={}", cut_to - last_record as u64),
    ] {
        assert!(
            out.contains(needle),
            "node {victim}'s output lacks {needle:?}:\n{out}"
        );
    }
    // Only the torn record went: everything before it is byte for byte what it was (the
    // node has since appended again after it, so the length says nothing).
    let now = std::fs::read(&seg).unwrap();
    assert!(
        now.len() >= last_record && now[..last_record] == bytes[..last_record],
        "the records before the torn one changed"
    );

    assert_all_present(&c, victim, &acked);
    // The node is level with the others again.
    c.wait_caught_up();

    // Still running a while after its start: the truncation did not leave it to die later.
    let alive_for = Duration::from_secs(2);
    if let Some(left) = alive_for.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    assert!(
        c.is_alive(victim),
        "node {victim} exited after starting:\n{}",
        c.output(victim)
    );
    println!(
        "node {victim} cut its torn tail, serves all {} keys; test took {:?}",
        acked.len(),
        t0.elapsed()
    );
}

#[test]
fn bit_flip_mid_segment_refuses_to_start_naming_file_and_offset() {
    let _serial = serial();
    let t0 = Instant::now();
    let (mut c, acked) = cluster_with_replicated_writes(200);

    // Flip one bit in a record in the middle of node 3's newest segment: valid records
    // follow it, so it cannot be a torn write and recovery must refuse.
    let victim = 3;
    let seg = newest_segment(&c.log_dir(victim));
    let mut bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    assert!(offsets.len() >= 10, "only {} records", offsets.len());
    let bad_record = offsets[offsets.len() / 2];
    // A payload byte (the entry's index field), not the length: the record stays framed
    // and its checksum fails.
    bytes[bad_record + RECORD_HEADER + 1] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    println!(
        "flipped a bit in the record at offset {bad_record} of {} ({} records)",
        seg.display(),
        offsets.len()
    );

    c.start(victim);
    let status = c.wait_exit(victim, Duration::from_secs(5));
    let out = c.output(victim);
    let status = status.unwrap_or_else(|| panic!("node {victim} kept running:\n{out}"));
    assert!(!status.success(), "node {victim} exited with {status}");
    for needle in [
        seg.display().to_string(),
        format!("at byte offset {bad_record}"),
        "record checksum mismatch".to_string(),
    ] {
        assert!(
            out.contains(&needle),
            "node {victim}'s output lacks {needle:?}:\n{out}"
        );
    }
    // Refusing means not repairing: the segment is exactly as we left it.
    assert!(
        std::fs::read(&seg).unwrap() == bytes,
        "the refused segment was modified"
    );
    println!(
        "node {victim} exited with {status}: {}",
        out.lines()
            .find(|l| l.contains("corruption"))
            .unwrap_or("")
            .trim()
    );

    // The other two are a quorum and hold every acknowledged write.
    c.start(1);
    c.start(2);
    let leader = c.wait_leader();
    assert_all_present(&c, leader, &acked);
    println!(
        "nodes 1 and 2 serve all {} keys without node {victim}; test took {:?}",
        acked.len(),
        t0.elapsed()
    );
}

/// The bug (issue 10): a write forwarded by a follower to a leader that is then paused
/// (SIGSTOP) waited out the whole request timeout, although a new leader is elected in
/// about one election timeout. Now the follower's router resends it to the new leader as
/// soon as it is known (its session makes the copy harmless).
#[test]
fn a_write_through_a_follower_survives_a_paused_leader_within_two_elections() {
    let _serial = serial();
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader();
    write_keys(&c, "k", 20);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let mut client =
        RespClient::connect(&c.client_addr(follower), Duration::from_secs(2)).expect("connect");
    assert!(set_ok(&mut client, "before-pause").unwrap());
    let pid = c.procs[leader as usize - 1].as_ref().unwrap().id() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = Instant::now();
    let ok = set_ok(&mut client, "during-pause");
    let took = started.elapsed();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(ok.unwrap(), "the write through the follower failed");
    // One election timeout is 300-600 ms here; the request timeout is 3 s.
    assert!(
        took < Duration::from_millis(4 * ELECTION_MS),
        "the write took {took:?} (request timeout {REQUEST_TIMEOUT_MS} ms)"
    );
    for id in c.ids() {
        assert!(c.is_alive(id), "node {id} exited:\n{}", c.output(id));
    }
}
