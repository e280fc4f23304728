//! A pipelined connection's writes reach the log in the order the client sent them.
//!
//! Redis executes a connection's commands one after the other; raftkv runs a group of
//! pipelined writes to distinct keys concurrently (for throughput), but must still
//! *propose* them in order. The log is the witness: after the pipeline, the node is
//! stopped and its log read back from disk.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::{ok, Cluster};
use raft::EntryKind;
use server::resp::codec::Value;
use storage::{FileLogOptions, FileLogStore, LogStore};

const SETTLE: Duration = Duration::from_secs(10);
/// Commands per connection: several groups of the connection's largest (256).
const COMMANDS: usize = 600;

/// The commands connection `conn` pipelines, and the keys they write, in order. A mix of
/// SET, SET NX and MSET (two keys, proposed in argument order), all to distinct keys so
/// that the connection may run them concurrently.
fn pipeline(conn: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut cmds = Vec::new();
    let mut keys = Vec::new();
    for i in 0..COMMANDS {
        let k = |n: &str| format!("{conn}-{i:04}-{n}");
        match i % 3 {
            0 => {
                cmds.push(vec!["SET".into(), k("a"), format!("{i}")]);
                keys.push(k("a"));
            }
            1 => {
                cmds.push(vec!["SET".into(), k("b"), format!("{i}"), "NX".into()]);
                keys.push(k("b"));
            }
            _ => {
                cmds.push(vec![
                    "MSET".into(),
                    k("c"),
                    format!("{i}"),
                    k("d"),
                    format!("{i}"),
                ]);
                keys.push(k("c"));
                keys.push(k("d"));
            }
        }
    }
    (cmds, keys)
}

/// The keys an entry writes, in order (an MSET is one entry for all its keys).
fn entry_keys(data: &Bytes) -> Vec<String> {
    let Ok((_, mut cmd)) = kv::session::decode_entry(data) else {
        return Vec::new();
    };
    if let kv::Command::Timed { cmd: inner, .. } = cmd {
        cmd = *inner;
    }
    let text = |k: &Bytes| String::from_utf8_lossy(k).into_owned();
    match &cmd {
        kv::Command::MSet { pairs } => pairs.iter().map(|(k, _)| text(k)).collect(),
        other => vec![text(other.key())],
    }
}

#[test]
fn pipelined_writes_are_proposed_in_order() {
    let mut c = Cluster::start(1, |_| {});
    c.wait_leader(SETTLE);

    // Two connections at once, each pipelining its whole batch in one write: each
    // connection's order must hold in the log whatever the interleaving between them.
    let conns = ["x", "y"];
    let workers: Vec<_> = conns
        .iter()
        .map(|&conn| {
            let mut cl = c.client(1);
            std::thread::spawn(move || {
                let (cmds, _) = pipeline(conn);
                let mut raw = bytes::BytesMut::new();
                for cmd in &cmds {
                    server::resp::codec::encode_command(cmd, &mut raw);
                }
                cl.send_raw(&raw).unwrap();
                for (i, cmd) in cmds.iter().enumerate() {
                    let r = cl.read().unwrap();
                    assert_eq!(r, ok(), "reply {i} to {cmd:?}: {r:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // A read through the log: everything before it is committed and applied.
    assert_eq!(
        c.client(1).call(&["GET", "x-0000-a"]).unwrap(),
        Value::Bulk(Some(Bytes::from_static(b"0")))
    );

    let log_dir = c.configs[0].data_dir.join("log");
    c.stop_all();
    let (log, _) = FileLogStore::open(&log_dir, FileLogOptions::default()).unwrap();
    let entries = log
        .entries(log.first_index(), log.last_index() + 1, u64::MAX)
        .unwrap();
    let mut by_conn: HashMap<String, Vec<String>> = HashMap::new();
    for e in entries.iter().filter(|e| e.kind == EntryKind::Normal) {
        for key in entry_keys(&e.data) {
            let conn = key.split('-').next().unwrap_or_default().to_string();
            by_conn.entry(conn).or_default().push(key);
        }
    }
    for conn in conns {
        let (_, expected) = pipeline(conn);
        let got = by_conn.remove(conn).unwrap_or_default();
        assert_eq!(got.len(), expected.len(), "connection {conn}: entry count");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
            panic!(
                "connection {conn}: log order differs from the pipeline's from position {i}: \
                 log has {:?}, sent {:?}",
                &got[i..(i + 5).min(got.len())],
                &expected[i..(i + 5).min(expected.len())]
            );
        }
    }
}
