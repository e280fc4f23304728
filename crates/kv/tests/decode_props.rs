//! Property tests of the kv decoders reachable from disk and the network: state-machine
//! snapshots (`KvStore::decode_snapshot`) and log entries (`session::decode_entry`,
//! `Command::decode`). Seeded random bytes and mutations of valid encodings (bit flips,
//! truncations, splices, length-field edits); no input may panic, what decodes
//! re-encodes to something that decodes equal, and a restored store keeps working. The
//! coverage-guided version is in `fuzz/` (targets `kv_snapshot`, `kv_entry`).

use bytes::Bytes;
use kv::{
    encode_session_write, Command, ExpireCond, GetExTtl, KvStore, Op, Query, Reply, SessionTag,
    SetCond, SetTtl, When,
};
use mutate::{check, Varints};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutations for the kv encodings (varints throughout).
fn mutate(rng: &mut StdRng, valid: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    mutate::mutate(rng, valid, others, &Varints)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn tag(client: u64, seq: u64, first_outstanding: u64) -> SessionTag {
    SessionTag {
        client,
        seq,
        first_outstanding,
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command::Put {
            key: b("k"),
            value: b("v"),
        },
        Command::Put {
            key: Bytes::from(vec![7u8; 200]),
            value: Bytes::new(),
        },
        Command::Delete { key: b("k") },
        Command::Cas {
            key: b("c"),
            expected: None,
            new: b("n"),
        },
        Command::Cas {
            key: b("c"),
            expected: Some(b("n")),
            new: b("m"),
        },
        timed(
            5_000,
            Command::Set {
                key: b("t"),
                value: b("v"),
                cond: SetCond::Always,
                ttl: SetTtl::Expire(When::InMs(1_000)),
                get: true,
            },
        ),
        timed(
            5_500,
            Command::HSet {
                key: b("h"),
                pairs: vec![(b("f"), b("1")), (b("g"), b("2"))],
                hmset: false,
            },
        ),
        timed(
            6_000,
            Command::Multi {
                watched: vec![(b("h"), 3)],
                ops: vec![
                    Op::Write(Command::HIncrBy {
                        key: b("h"),
                        field: b("f"),
                        by: 2,
                    }),
                    Op::Read(Query::HGetAll { key: b("h") }),
                    Op::Write(Command::GetEx {
                        key: b("t"),
                        ttl: GetExTtl::Persist,
                    }),
                    Op::Const(Reply::Error("ERR syntax error".into())),
                ],
            },
        ),
        timed(
            6_500,
            Command::Expire {
                key: b("c"),
                when: When::AtMs(9_000),
                cond: ExpireCond::Nx,
            },
        ),
        timed(9_000, Command::ExpireKeys { keys: vec![b("c")] }),
    ]
}

fn timed(now_ms: u64, cmd: Command) -> Command {
    Command::Timed {
        now_ms,
        cmd: Box::new(cmd),
    }
}

/// What `kv_snapshot` in fuzz/ checks.
fn check_snapshot(data: &[u8]) {
    let Ok(mut store) = KvStore::decode_snapshot(data) else {
        return;
    };
    let enc = store.encode_snapshot();
    // Version 1 input re-encodes as version 2, with more fields.
    assert!(
        data[4] == 1 || enc.len() <= data.len(),
        "re-encoding is longer than the input"
    );
    let again = KvStore::decode_snapshot(&enc).expect("re-encoded snapshot decodes");
    assert_eq!(again.encode_snapshot(), enc, "encoding is not a fixpoint");
    assert_eq!(again.size_bytes(), store.size_bytes());
    // A restored store goes on applying writes, session writes included.
    for (i, cmd) in commands().into_iter().enumerate() {
        let entry = encode_session_write(tag(i as u64 % 3, 1 + i as u64, 1), &cmd);
        store.apply_entry(&entry).expect("a valid entry applies");
    }
    let _ = KvStore::decode_snapshot(&store.encode_snapshot()).expect("still encodes validly");
}

/// What `kv_entry` in fuzz/ checks.
fn check_entry(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok((t, cmd)) = kv::session::decode_entry(&bytes) {
        let enc = match t {
            Some(t) => encode_session_write(t, &cmd),
            None => cmd.encode(),
        };
        assert_eq!(kv::session::decode_entry(&enc), Ok((t, cmd)));
    }
    if let Ok(cmd) = Command::decode(&bytes) {
        assert_eq!(Command::decode(&cmd.encode()), Ok(cmd));
    }
    let _ = KvStore::new().apply_entry(&bytes);
}

fn valid_snapshots() -> Vec<Vec<u8>> {
    let mut out = vec![KvStore::new().encode_snapshot()];
    let mut store = KvStore::new();
    for (i, cmd) in commands().into_iter().enumerate() {
        store.apply(cmd.clone());
        let entry = encode_session_write(tag(7 + i as u64 % 2, 1 + i as u64, 1), &cmd);
        store.apply_entry(&entry).unwrap();
        out.push(store.encode_snapshot());
    }
    out
}

#[test]
fn kv_snapshots_survive_random_and_mutated_input() {
    let valid = valid_snapshots();
    for v in &valid {
        check_snapshot(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0101);
    for _ in 0..20_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("kv snapshot", &input, || check_snapshot(&input));
    }
}

#[test]
fn kv_entries_survive_random_and_mutated_input() {
    let mut valid: Vec<Vec<u8>> = Vec::new();
    for (i, cmd) in commands().into_iter().enumerate() {
        valid.push(cmd.encode().to_vec());
        valid.push(encode_session_write(tag(i as u64, u64::MAX - i as u64, 3), &cmd).to_vec());
    }
    for v in &valid {
        check_entry(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0102);
    for _ in 0..50_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("kv entry", &input, || check_entry(&input));
    }
}

/// Queries and replies cross the network (forwarded reads and answers) and replies sit
/// in snapshots (session outcomes): garbage is an error, never a panic, and what decodes
/// re-encodes to itself.
#[test]
fn queries_and_replies_survive_random_and_mutated_input() {
    let queries: Vec<Vec<u8>> = [
        Query::HScan {
            key: b("h"),
            cursor: 3,
            count: 10,
            novalues: false,
        },
        Query::MGet {
            keys: vec![b("a"), b("b")],
        },
        Query::GetRange {
            key: b("k"),
            start: -1,
            end: i64::MIN,
        },
    ]
    .iter()
    .map(|q| q.encode().to_vec())
    .collect();
    let replies: Vec<Vec<u8>> = [
        Reply::Array(vec![
            Reply::Int(-5),
            Reply::Map(vec![(b("f"), b("v"))]),
            Reply::Array(vec![Reply::Nil, Reply::Error("ERR x".into())]),
            Reply::Status("string".into()),
        ]),
        Reply::NilArray,
        Reply::Bulk(b("value")),
    ]
    .iter()
    .map(|r| r.encode().to_vec())
    .collect();
    let mut rng = StdRng::seed_from_u64(0x5eed_0103);
    for _ in 0..30_000 {
        let base = &queries[rng.gen_range(0..queries.len())];
        let q = mutate(&mut rng, base, &queries);
        check("query", &q, || {
            if let Ok(d) = Query::decode(&Bytes::copy_from_slice(&q)) {
                assert_eq!(Query::decode(&d.encode()), Ok(d.clone()));
                let _ = KvStore::new().query(&d, 0);
            }
        });
        let base = &replies[rng.gen_range(0..replies.len())];
        let r = mutate(&mut rng, base, &replies);
        check("reply", &r, || {
            if let Ok(d) = Reply::decode(&Bytes::copy_from_slice(&r)) {
                assert_eq!(Reply::decode(&d.encode()), Ok(d));
            }
        });
    }
    // Nesting beyond the bound is refused, not recursed into.
    let mut deep = Reply::Int(1);
    for _ in 0..10 {
        deep = Reply::Array(vec![deep]);
    }
    assert!(Reply::decode(&deep.encode()).is_err());
}

// ---- regressions (found by the tests above) ----

/// A snapshot whose session clock is `u64::MAX` decoded fine, and the restored store's
/// next session write overflowed the clock (a panic in debug builds, a wrapped clock that
/// breaks the LRU order in release). Such a snapshot is now refused.
#[test]
fn snapshot_with_session_clock_at_u64_max_is_refused() {
    let mut data = b"RKVS\x01\x00".to_vec(); // magic, version, no map entries
    data.extend_from_slice(&[0xff; 9]); // clock = u64::MAX
    data.push(0x01);
    data.push(0x00); // no sessions
    let err = KvStore::decode_snapshot(&data).expect_err("a clock that cannot advance");
    assert_eq!(err.offset, 6);
    assert!(err.to_string().contains("clock"), "{err}");
    // One below the maximum still decodes and still takes a session write.
    let mut below = b"RKVS\x01\x00".to_vec();
    below.extend_from_slice(&[
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
    ]);
    let mut store = KvStore::decode_snapshot(&below).expect("clock u64::MAX - 1");
    let cmd = Command::Delete { key: b("k") };
    store
        .apply_entry(&encode_session_write(tag(1, 1, 1), &cmd))
        .unwrap();
}

/// A snapshot whose version counter is `u64::MAX` decoded fine, and the restored store's
/// next apply overflowed it (found by `kv_snapshots_survive_random_and_mutated_input`
/// when the counter came in). Such a snapshot is now refused.
#[test]
fn snapshot_with_version_counter_at_u64_max_is_refused() {
    let mut data = b"RKVS\x02\x00".to_vec(); // magic, version 2, clock_ms 0
    data.extend_from_slice(&[0xff; 9]);
    data.push(0x01); // version counter = u64::MAX
    data.extend_from_slice(&[0, 0, 0]); // no entries, session clock 0, no sessions
    let err = KvStore::decode_snapshot(&data).expect_err("a counter that cannot advance");
    assert_eq!(err.offset, 6);
    assert!(err.to_string().contains("version counter"), "{err}");
}
