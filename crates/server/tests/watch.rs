//! The watch across a leader kill, with every node a real process: a client follows a
//! prefix (`RAFTKV.WATCH w: FROM i`) on the leader while writers keep writing through a
//! follower; the leader is SIGKILLed; the client reconnects to another node and resumes
//! from the index after the last entry it handled. It must miss no event, see none twice,
//! and see them all in commit order: its stream must equal, entry for entry, the stream a
//! fresh watch from the first index reads on a surviving node, and hold every write the
//! writers had acknowledged.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::cli::RespClient;
use server::resp::codec::Value;

use common::procs::{serial, Cluster};

/// One message of a watch: the entry's index and its events as (name, key).
type Entry = (u64, Vec<(String, String)>);

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// A watch on one node: `RAFTKV.WATCH prefix FROM from`, then its messages.
struct Watch {
    c: RespClient,
}

impl Watch {
    /// Starts it; the index it delivers from.
    fn start(addr: &str, prefix: &str, from: Option<u64>) -> std::io::Result<(Watch, u64)> {
        let mut c = RespClient::connect(addr, Duration::from_secs(2))?;
        let from_s = from.map(|f| f.to_string());
        let mut args = vec!["RAFTKV.WATCH", prefix];
        if let Some(f) = &from_s {
            args.extend(["FROM", f]);
        }
        match c.call(&args)? {
            Value::Array(Some(v)) | Value::Push(v) if text(&v[0]) == "watch" => {
                let Value::Int(start) = v[2] else {
                    panic!("watch reply {v:?}")
                };
                Ok((Watch { c }, start as u64))
            }
            other => Err(std::io::Error::other(format!("RAFTKV.WATCH: {other:?}"))),
        }
    }

    /// The next message.
    fn next(&mut self) -> std::io::Result<Entry> {
        match self.c.read()? {
            Value::Array(Some(v)) | Value::Push(v) if text(&v[0]) == "event" => {
                let Value::Int(index) = v[2] else {
                    panic!("event {v:?}")
                };
                let Value::Array(Some(items)) = &v[3] else {
                    panic!("event {v:?}")
                };
                let events = items
                    .chunks(2)
                    .map(|p| (text(&p[0]), text(&p[1])))
                    .collect();
                Ok((index as u64, events))
            }
            other => Err(std::io::Error::other(format!("not an event: {other:?}"))),
        }
    }
}

/// Writes `w:<n>` (and a key outside the prefix) through `addr` until stopped; records
/// every write answered `+OK`.
fn writer(
    addr: String,
    tag: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    attempts: Arc<AtomicUsize>,
) {
    let mut c: Option<RespClient> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let conn = match &mut c {
            Some(c) => c,
            None => match RespClient::connect(&addr, Duration::from_secs(1)) {
                Ok(x) => c.insert(x),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        n += 1;
        attempts.fetch_add(1, Ordering::Relaxed);
        let key = format!("w:{tag}:{n}");
        // Every third write in one MSET with a key outside the prefix: an entry whose
        // events the watch sees only in part.
        let reply = if n % 3 == 0 {
            conn.call(&["MSET", &key, "v", &format!("other:{tag}:{n}"), "v"])
        } else {
            conn.call(&["SET", &key, "v"])
        };
        match reply {
            Ok(Value::Simple(s)) if s == "OK" => acked.lock().unwrap().push(key),
            Ok(_) => std::thread::sleep(Duration::from_millis(10)), // CLUSTERDOWN, TIMEOUT
            Err(_) => c = None,
        }
    }
}

#[test]
fn a_watch_resumed_on_another_node_after_a_leader_kill_misses_nothing_and_repeats_nothing() {
    let _serial = serial();
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let leader = cluster.wait_leader();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let (via, resume_on) = (followers[0], followers[1]);

    // Follow the prefix on the leader, from the next entry on.
    let (mut watch, first) =
        Watch::start(&cluster.client_addr(leader), "w:", None).expect("watch on the leader");

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|tag| {
            let (addr, stop, acked, attempts) = (
                cluster.client_addr(via),
                stop.clone(),
                acked.clone(),
                attempts.clone(),
            );
            std::thread::spawn(move || writer(addr, tag, stop, acked, attempts))
        })
        .collect();

    // Follow until well into the writes, then kill the leader under the watch.
    let mut seen: Vec<Entry> = Vec::new();
    while seen.len() < 150 {
        seen.push(watch.next().expect("events from the leader"));
    }
    let leader_proc = cluster.procs[leader as usize - 1]
        .as_mut()
        .expect("leader runs");
    leader_proc.kill().expect("SIGKILL the leader");
    leader_proc.wait().expect("reap");
    cluster.procs[leader as usize - 1] = None;
    // Drain what was already on the way; the connection then breaks.
    while let Ok(e) = watch.next() {
        seen.push(e);
    }
    let before_kill = seen.len();
    let last = seen.last().expect("events").0;

    // Resume on another node, from the entry after the last one handled.
    let resume = Instant::now();
    let (mut watch, from) = loop {
        match Watch::start(&cluster.client_addr(resume_on), "w:", Some(last + 1)) {
            Ok(w) => break w,
            Err(e) => {
                assert!(resume.elapsed() < Duration::from_secs(10), "resume: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(from, last + 1);
    let new_leader = cluster.wait_leader();
    assert_ne!(new_leader, leader);
    // Writes go on under the new leader for a while, then stop; a last marker closes the
    // stream.
    let acked_at_kill = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < acked_at_kill + 100 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let mut marker =
        RespClient::connect(&cluster.client_addr(via), Duration::from_secs(2)).expect("connect");
    assert_eq!(
        marker.call(&["SET", "w:end", "1"]).expect("marker"),
        Value::Simple("OK".into())
    );
    loop {
        let e = watch.next().expect("events after the resume");
        let end = e.1.iter().any(|(_, k)| k == "w:end");
        seen.push(e);
        if end {
            break;
        }
    }

    // The same stream, read in one go from a node that never went away.
    let (mut reference, start) =
        Watch::start(&cluster.client_addr(via), "w:", Some(first)).expect("reference watch");
    assert_eq!(start, first);
    let mut truth: Vec<Entry> = Vec::new();
    while truth
        .last()
        .is_none_or(|e| !e.1.iter().any(|(_, k)| k == "w:end"))
    {
        truth.push(reference.next().expect("reference events"));
    }

    let indexes: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert!(
        indexes.windows(2).all(|w| w[0] < w[1]),
        "indexes not strictly increasing (a duplicate or out of order)"
    );
    assert!(
        seen == truth,
        "the resumed stream differs from the log's: {} entries seen, {} in the log; first \
         difference at position {:?}",
        seen.len(),
        truth.len(),
        seen.iter().zip(&truth).position(|(a, b)| a != b)
    );
    let keys: BTreeSet<&str> = seen
        .iter()
        .flat_map(|e| e.1.iter().map(|(_, k)| k.as_str()))
        .collect();
    assert!(keys.iter().all(|k| k.starts_with("w:")), "only the prefix");
    let acked = acked.lock().unwrap();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !keys.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes with no event: {missing:?}"
    );
    eprintln!(
        "watch: {} entries before the kill (up to index {last}), {} after resuming on node \
         {resume_on}; {} writes acknowledged of {} sent",
        before_kill,
        seen.len() - before_kill,
        acked.len(),
        attempts.load(Ordering::Relaxed)
    );
}
