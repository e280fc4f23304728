//! Writes the seed corpus: valid encodings of each format, made by the project's own
//! encoders (and, for files, by the stores themselves), into `CORPUS_DIR/<target>/`.
//!
//! `gen_corpus CORPUS_DIR` (scripts/fuzz.sh runs it before minimising with afl-cmin).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use driver::Request;
use kv::{Command, KvStore, SessionTag};
use raft::{Entry, EntryKind, HardState, Membership, Message, MessageBody, SnapshotMeta};
use server::cluster_id::ClusterId;
use server::reply::Reply;
use server::transport::codec::{encode_frame, Frame};
use storage::LogStore;

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        Out { dir, n: 0 }
    }
    fn put(&mut self, data: &[u8]) {
        fs::write(self.dir.join(format!("seed-{:03}", self.n)), data).expect("write");
        self.n += 1;
    }
    /// A checksummed input: the flags byte asks for no fix-up, the bytes are valid.
    fn put_flagged(&mut self, flags: u8, data: &[u8]) {
        let mut v = vec![flags];
        v.extend_from_slice(data);
        self.put(&v);
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn entry(index: u64, term: u64, kind: EntryKind, data: &[u8]) -> Entry {
    Entry {
        term,
        index,
        kind,
        data: Bytes::copy_from_slice(data),
    }
}

fn messages() -> Vec<Message> {
    let m = |body| Message {
        from: 1,
        to: 2,
        term: 7,
        body,
    };
    let entries = vec![
        entry(5, 7, EntryKind::Noop, b""),
        entry(6, 7, EntryKind::Normal, b"P\x03keyvalue"),
        entry(7, 7, EntryKind::Normal, &[0xff, 0]),
        entry(8, 7, EntryKind::ConfChange, b"\x01\x02"),
    ];
    vec![
        m(MessageBody::PreVote {
            last_index: 3,
            last_term: 2,
        }),
        m(MessageBody::PreVoteResp {
            granted: true,
            leader: Some(3),
        }),
        m(MessageBody::Vote {
            last_index: 3,
            last_term: 2,
            transfer: true,
        }),
        m(MessageBody::VoteResp { granted: false }),
        m(MessageBody::Append {
            prev_index: 4,
            prev_term: 6,
            entries,
            commit: 3,
            stamp: 9,
            leader: 3,
            relay: vec![4, 5],
            relayed_by: vec![1],
        }),
        m(MessageBody::AppendResp {
            success: false,
            index: 5,
            hint_term: 2,
            rejected: 9,
            stamp: 11,
            vouch: vec![3],
            vouch_index: 4,
        }),
        m(MessageBody::Snapshot {
            meta: SnapshotMeta {
                index: 10,
                term: 3,
                membership: Membership {
                    voters: [1, 2, 3].into(),
                    voters_outgoing: [4].into(),
                    learners: [5].into(),
                    metadata: [(5, b("127.0.0.1:7105"))].into(),
                },
            },
            offset: 0,
            data: b("RKVS\x01"),
            done: true,
            stamp: 2,
        }),
        m(MessageBody::SnapshotResp {
            index: 10,
            next_offset: 5,
            success: true,
            stamp: 2,
        }),
        m(MessageBody::TimeoutNow),
    ]
}

fn resp(root: &Path) {
    let mut o = Out::new(root, "resp");
    for args in [
        &["GET", "k"][..],
        &["SET", "key", "value"],
        &["MGET", "a", "b", "c"],
        &["CAS", "k", "old", "new"],
        &["SCAN", "0", "MATCH", "p*", "COUNT", "10"],
        &["PING"],
    ] {
        let mut buf = BytesMut::new();
        server::resp::codec::encode_command(args, &mut buf);
        o.put(&buf);
    }
    o.put(b"PING\r\nset k \"a b\"\n");
    o.put(b"*0\r\n*-1\r\n");
    use server::resp::codec::Value;
    let v = Value::Array(Some(vec![
        Value::ok(),
        Value::err("boom"),
        Value::Int(-3),
        Value::nil(),
        Value::bulk("x\r\ny"),
        Value::Array(None),
        Value::Array(Some(vec![Value::Int(1)])),
    ]));
    let mut buf = BytesMut::new();
    v.encode(&mut buf);
    o.put(&buf);
}

fn peer_frame(root: &Path) {
    let mut o = Out::new(root, "peer_frame");
    let mut frames = vec![
        Frame::Hello {
            from: 1,
            to: 300,
            cluster: None,
            bootstrap: 0x0123_4567_89ab_cdef,
            seen_you: false,
        },
        Frame::Hello {
            from: 2,
            to: 1,
            cluster: Some(ClusterId(0xfeed_0000_0000_0000_0000_0000_0000_beef)),
            bootstrap: u64::MAX,
            seen_you: true,
        },
    ];
    frames.extend(messages().into_iter().map(Frame::Raft));
    let reqs = [
        Request::Get { key: b("k") },
        Request::Put {
            key: b("k"),
            value: b("v"),
        },
        Request::Delete { key: b("k") },
        Request::Cas {
            key: b("k"),
            expected: Some(b("a")),
            new: b("b"),
        },
        Request::Scan {
            prefix: b("p"),
            after: Some(b("p1")),
            limit: 10,
            max_bytes: 1 << 18,
            keys_only: true,
        },
    ];
    for (i, req) in reqs.into_iter().enumerate() {
        frames.push(Frame::ForwardReq {
            id: i as u64,
            req,
            session: (i % 2 == 0).then_some(SessionTag {
                client: 9,
                seq: 4,
                first_outstanding: 2,
            }),
        });
    }
    for reply in [
        Reply::Value(Some(b("v"))),
        Reply::Done,
        Reply::Deleted(true),
        Reply::Cas {
            swapped: false,
            current: Some(b("c")),
        },
        Reply::Redirect(Some(2)),
        Reply::Fail("no leader".into()),
        Reply::Entries(vec![(b("a"), b("1")), (b("b"), b("2"))]),
    ] {
        frames.push(Frame::ForwardResp { id: 77, reply });
    }
    for f in frames {
        let mut buf = BytesMut::new();
        encode_frame(&f, 1 << 20, &mut buf).expect("encode");
        o.put(&buf);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raftkv-gen-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn wal(root: &Path) {
    let mut rec = Out::new(root, "wal_record");
    let mut seg = Out::new(root, "wal_segment");
    let mut hs = Out::new(root, "hard_state");
    let cases: Vec<Vec<Entry>> = vec![
        vec![],
        vec![entry(1, 1, EntryKind::Noop, b"")],
        vec![
            entry(1, 1, EntryKind::Noop, b""),
            entry(2, 1, EntryKind::Normal, b"P\x01kv"),
            entry(3, 2, EntryKind::ConfChange, b"\x01"),
            entry(4, 2, EntryKind::Normal, b"S\x01\x02\x01Dk"),
        ],
    ];
    for (i, entries) in cases.iter().enumerate() {
        let dir = scratch("wal");
        let (mut store, _) =
            storage::FileLogStore::open(&dir, Default::default()).expect("open log");
        if !entries.is_empty() {
            store.append(entries).expect("append");
        }
        let state = HardState {
            term: 2 + i as u64,
            vote: (i % 2 == 0).then_some(3),
            commit: entries.len() as u64,
            // Half the states from a node told of more than it holds (slot extension 2).
            known_commit: if i % 2 == 0 { 0 } else { 40 + i as u64 },
        };
        store.save_hard_state(&state).expect("save hs");
        store.sync().expect("sync");
        let path = store.segment_paths()[0].clone();
        drop(store);
        let bytes = fs::read(&path).expect("read segment");
        seg.put_flagged(0, &bytes);
        // Records alone (after the 32-byte header), for the record target.
        if bytes.len() > 32 {
            rec.put_flagged(0, &bytes[32..]);
        }
        // A torn tail: the last record cut short (flags ask for CRC fix-ups).
        if bytes.len() > 40 {
            seg.put_flagged(3, &bytes[..bytes.len() - 5]);
        }
        hs.put_flagged(0, &fs::read(dir.join("hardstate")).expect("read hs"));
        let _ = fs::remove_dir_all(&dir);
    }
}

fn snapshot_file(root: &Path) {
    let mut o = Out::new(root, "snapshot_file");
    let dir = scratch("snap");
    let store = storage::FileSnapshotStore::open(&dir)
        .expect("open")
        .with_retain(10);
    let metas = [
        (5, 1, Membership::default(), &b""[..]),
        (
            10,
            2,
            Membership {
                voters: [1, 2, 3].into(),
                voters_outgoing: Default::default(),
                learners: [4].into(),
                metadata: Default::default(),
            },
            &b"RKVS\x01\x00\x00\x00"[..],
        ),
        (
            20,
            3,
            Membership {
                voters: [1, 2].into(),
                voters_outgoing: [1, 2, 3].into(),
                learners: Default::default(),
                metadata: Default::default(),
            },
            &[7u8; 100][..],
        ),
    ];
    for (index, term, membership, data) in metas {
        let meta = SnapshotMeta {
            index,
            term,
            membership,
        };
        let info = store.save(&meta, data).expect("save");
        o.put_flagged(0, &fs::read(&info.path).expect("read"));
    }
    drop(store);
    let _ = fs::remove_dir_all(&dir);
}

fn kv_targets(root: &Path) {
    let mut snap = Out::new(root, "kv_snapshot");
    let mut ent = Out::new(root, "kv_entry");
    let cmds = [
        Command::Put {
            key: b("k"),
            value: b("v"),
        },
        Command::Put {
            key: b("k2"),
            value: Bytes::from(vec![0u8; 200]),
        },
        Command::Delete { key: b("k") },
        Command::Cas {
            key: b("k2"),
            expected: None,
            new: b("n"),
        },
        Command::Cas {
            key: b("k3"),
            expected: Some(b("o")),
            new: b("n"),
        },
    ];
    let mut store = KvStore::new();
    snap.put(&store.encode_snapshot());
    for (i, cmd) in cmds.iter().enumerate() {
        ent.put(&cmd.encode());
        let tag = SessionTag {
            client: 1 + (i as u64 % 2),
            seq: 1 + i as u64,
            first_outstanding: 1,
        };
        let data = kv::encode_session_write(tag, cmd);
        ent.put(&data);
        store.apply_entry(&data).expect("apply");
        store.apply(cmd.clone());
    }
    snap.put(&store.encode_snapshot());
}

fn seed_json(root: &Path) {
    let mut o = Out::new(root, "seed_json");
    for msg in messages() {
        if matches!(
            msg.body,
            MessageBody::Snapshot { .. } | MessageBody::SnapshotResp { .. }
        ) {
            continue;
        }
        o.put(&raftkv_fuzz::seed_codec::encode(&msg, Some(1)));
    }
    o.put(br#"{"src":"C0DE","dst":"0001","leader":"FFFF","type":"get","MID":"m1","key":"k"}"#);
    o.put(br#"{"src":"C0DE","dst":"0001","leader":"FFFF","type":"put","MID":"m2","key":"k","value":"v"}"#);
}

fn config(root: &Path) {
    let mut o = Out::new(root, "config");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/server/example.toml");
    if let Ok(text) = fs::read(example) {
        o.put(&text);
    }
    o.put(b"id = 1\npeer_addr = \"127.0.0.1:7001\"\n");
    o.put(
        b"id = 2\nread_mode = \"lease\"\n[peers]\n1 = \"127.0.0.1:7001\"\n2 = \"127.0.0.1:7002\"\n\
          [raft]\nelection_timeout_ms = 500\nheartbeat_ms = 50\n\
          [limits]\nmax_pipeline = 10\n[snapshot]\nevery_entries = 10\nchunk_bytes = 4096\n",
    );
    o.put(b"1=127.0.0.1:7001,2=[::1]:7002");
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: gen_corpus CORPUS_DIR");
        std::process::exit(2)
    }));
    resp(&root);
    peer_frame(&root);
    wal(&root);
    snapshot_file(&root);
    kv_targets(&root);
    seed_json(&root);
    config(&root);
    for (name, f) in raftkv_fuzz::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for e in fs::read_dir(&dir).expect("corpus dir") {
            f(&fs::read(e.expect("entry").path()).expect("read"));
            n += 1;
        }
        println!("{name}: {n} seeds");
    }
}
