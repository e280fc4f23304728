//! Property tests of the server's decoders of outside input: RESP (client commands, and
//! replies as the CLI reads them), peer frames, and the TOML config. Seeded random bytes
//! and mutations of valid encodings (bit flips, truncations, splices, length-field
//! edits). No input may panic; what decodes re-encodes to something that decodes equal.
//! The coverage-guided versions are the `resp`, `peer_frame` and `config` targets in
//! `fuzz/`.

use bytes::{Bytes, BytesMut};
use driver::Request;
use mutate::{check, Format};
use raft::{Entry, EntryKind, Membership, Message, MessageBody, SnapshotMeta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::cluster_id::ClusterId;
use server::config::{parse_peer_list, parse_str, Config, Overrides};
use server::reply::Reply;
use server::resp::codec::{
    encode_command, parse_command, parse_reply, CommandParser, ProtoError, Protocol, Value,
};
use server::transport::codec::{decode_body, decode_frame, encode_frame, Frame};

/// Mutations for the server's outside formats: a frame's big-endian u32 length prefix,
/// varints inside frames, decimal lengths in RESP and numbers in TOML; RESP's framing
/// as junk.
struct OutsideFormats;

impl Format for OutsideFormats {
    fn extreme_field(&self, rng: &mut StdRng, v: &mut Vec<u8>) {
        let field: &[u8] = match rng.gen_range(0..7) {
            0 => &[0xff, 0xff, 0xff, 0xff],
            1 => &[0x00, 0x00, 0x00, 0x02],
            2 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            3 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            4 => b"9223372036854775807",
            5 => b"-1",
            _ => b"18446744073709551616",
        };
        mutate::splice_at_random(rng, v, field.len().min(4), field);
    }

    fn junk(&self, rng: &mut StdRng) -> Vec<u8> {
        match rng.gen_range(0..3) {
            0 => b"\r\n".to_vec(),
            1 => b"*2\r\n$".to_vec(),
            _ => mutate::random_bytes(rng, 1..16),
        }
    }
}

fn mutate(rng: &mut StdRng, valid: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    mutate::mutate(rng, valid, others, &OutsideFormats)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

// ---- RESP ----

/// What the `resp` target in fuzz/ checks.
fn check_resp(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match parse_command(&mut buf, 64 << 10) {
            Ok(Some(args)) => {
                assert!(buf.len() < before, "a parsed command consumed nothing");
                let mut enc = BytesMut::new();
                encode_command(&args, &mut enc);
                assert_eq!(parse_command(&mut enc, usize::MAX >> 1), Ok(Some(args)));
                assert!(enc.is_empty());
            }
            Ok(None) => break,
            Err(ProtoError::Recoverable { skip, .. }) => {
                assert!(skip > 0 && skip <= buf.len());
                let _ = buf.split_to(skip);
            }
            Err(ProtoError::Fatal(_)) => break,
        }
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(v)) = parse_reply(&mut buf) {
        let mut enc = BytesMut::new();
        v.encode(&mut enc);
        let mut copy = enc.clone();
        let v2 = parse_reply(&mut copy).unwrap().expect("complete");
        assert!(copy.is_empty());
        let mut enc2 = BytesMut::new();
        v2.encode(&mut enc2);
        assert_eq!(enc, enc2, "reply encoding is not a fixpoint");
    }
}

#[test]
fn resp_survives_random_and_mutated_input() {
    let mut valid = Vec::new();
    for args in [
        &["GET", "k"][..],
        &["SET", "key", "value"],
        &["MGET", "a", "b", "c"],
        &["PING"],
    ] {
        let mut buf = BytesMut::new();
        encode_command(args, &mut buf);
        valid.push(buf.to_vec());
    }
    valid.push(b"PING\r\nset k \"a b\"\n".to_vec());
    let mut buf = BytesMut::new();
    Value::Array(Some(vec![
        Value::ok(),
        Value::err("boom"),
        Value::Int(-3),
        Value::nil(),
        Value::bulk("x\r\ny"),
        Value::Array(None),
    ]))
    .encode(&mut buf);
    valid.push(buf.to_vec());
    let mut buf = BytesMut::new();
    Value::Array(Some(vec![
        Value::Map(vec![(Value::bulk("k"), Value::Double(-2.5))]),
        Value::Set(vec![Value::Boolean(false)]),
        Value::Push(vec![Value::nil()]),
        Value::Verbatim(b("line\r\n")),
    ]))
    .encode_as(Protocol::Resp3, &mut buf);
    valid.push(buf.to_vec());
    let mut rng = StdRng::seed_from_u64(0x5eed_0301);
    for _ in 0..20_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("resp", &input, || check_resp(&input));
    }
}

/// A connection's parser resumes a command split across reads; it must answer exactly
/// what parsing from the start of the buffer answers, for every input cut anywhere.
#[test]
fn resumed_parse_answers_as_parsing_from_the_start() {
    let mut valid = Vec::new();
    for args in [
        &["SET", "key", "value"][..],
        &["MGET", "a", "b", "c", "d"],
        &["PING"],
        &[""],
    ] {
        let mut buf = BytesMut::new();
        encode_command(args, &mut buf);
        valid.push(buf.to_vec());
    }
    valid.push(b"PING\r\nset k \"a b\"\n*0\r\n\n".to_vec());
    let mut rng = StdRng::seed_from_u64(0x5eed_0302);
    for _ in 0..5_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let mut input = mutate(&mut rng, base, &valid);
        input.extend_from_slice(&valid[rng.gen_range(0..valid.len())]);
        let max_request = rng.gen_range(8..64);
        let mut parser = CommandParser::default();
        let (mut resumed, mut fresh) = (BytesMut::new(), BytesMut::new());
        let mut rest = &input[..];
        'feed: while !rest.is_empty() {
            let n = rng.gen_range(1..=rest.len().min(7));
            resumed.extend_from_slice(&rest[..n]);
            fresh.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                let a = parser.parse(&mut resumed, max_request);
                let b = parse_command(&mut fresh, max_request);
                assert_eq!(a, b, "input {input:02x?}");
                assert_eq!(resumed, fresh);
                match a {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(ProtoError::Recoverable { skip, .. }) => {
                        let _ = resumed.split_to(skip);
                        let _ = fresh.split_to(skip);
                    }
                    Err(ProtoError::Fatal(_)) => break 'feed,
                }
            }
        }
    }
}

// ---- peer frames ----

fn frames() -> Vec<Frame> {
    let m = |body| {
        Frame::Raft(Message {
            from: 1,
            to: 2,
            term: 7,
            body,
        })
    };
    vec![
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
        m(MessageBody::Vote {
            last_index: 3,
            last_term: 2,
            transfer: true,
        }),
        m(MessageBody::Append {
            prev_index: 4,
            prev_term: 6,
            entries: vec![
                Entry {
                    term: 7,
                    index: 5,
                    kind: EntryKind::Normal,
                    data: b("P\x01kv"),
                },
                Entry {
                    term: 7,
                    index: 6,
                    kind: EntryKind::ConfChange,
                    data: b("\x01"),
                },
            ],
            commit: 3,
            stamp: 9,
            leader: 3,
            relay: vec![4],
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
                    metadata: [(5, Bytes::from_static(b"127.0.0.1:7105"))].into(),
                },
            },
            offset: 0,
            data: b("RKVS\x01"),
            done: true,
            stamp: 2,
        }),
        Frame::ForwardReq {
            id: 3,
            req: Request::Cas {
                key: b("k"),
                expected: Some(b("a")),
                new: b("b"),
            },
            session: Some(kv::SessionTag {
                client: 9,
                seq: 4,
                first_outstanding: 2,
            }),
        },
        Frame::ForwardReq {
            id: 4,
            req: Request::Scan {
                prefix: b("p"),
                after: None,
                limit: 10,
                max_bytes: 1 << 18,
                keys_only: true,
            },
            session: None,
        },
        Frame::ForwardResp {
            id: 77,
            reply: Reply::Entries(vec![(b("a"), b("1")), (b("b"), b("2"))]),
        },
        Frame::ForwardResp {
            id: 78,
            reply: Reply::Unknown("TIMEOUT the outcome is unknown".into()),
        },
        Frame::ForwardResp {
            id: 78,
            reply: Reply::Fail("no leader".into()),
        },
    ]
}

/// What the `peer_frame` target in fuzz/ checks.
fn check_frame(data: &[u8]) {
    let round_trip = |frame: Frame| {
        let mut out = BytesMut::new();
        encode_frame(&frame, usize::MAX >> 1, &mut out).expect("re-encodes");
        assert_eq!(decode_frame(&out, usize::MAX >> 1), Ok(frame));
    };
    if let Ok(frame) = decode_frame(data, 1 << 20) {
        round_trip(frame);
    }
    if let Ok(frame) = decode_body(Bytes::copy_from_slice(data)) {
        round_trip(frame);
    }
}

#[test]
fn peer_frames_survive_random_and_mutated_input() {
    let mut valid = Vec::new();
    for f in frames() {
        let mut buf = BytesMut::new();
        encode_frame(&f, 1 << 20, &mut buf).unwrap();
        assert_eq!(decode_frame(&buf, 1 << 20).as_ref(), Ok(&f));
        valid.push(buf.to_vec());
        valid.push(buf[4..].to_vec()); // the body alone, as the inbound reader passes it
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0302);
    for _ in 0..30_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("peer frame", &input, || check_frame(&input));
    }
}

// ---- config ----

/// What the `config` target in fuzz/ checks.
fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = parse_str(text) {
        if let Ok(cfg) = Config::resolve(file, &Overrides::default()) {
            assert!(cfg.id > 0);
            assert!(!cfg.peers.contains_key(&cfg.id));
            let _ = cfg.max_peer_frame_bytes();
        }
    }
    let _ = parse_peer_list(text);
}

#[test]
fn config_survives_random_and_mutated_input() {
    let example = include_bytes!("../example.toml").to_vec();
    // The largest values each key takes (max_client_memory_bytes must be at least twice
    // max_request_bytes: with max_request_bytes = i64::MAX no config was valid, and this
    // test failed from the commit that added that rule; max_request_bytes is at most
    // 1 GiB and request_timeout_ms at most an hour since session 9).
    let valid = vec![
        example,
        b"id = 1\npeer_addr = \"127.0.0.1:7001\"\n".to_vec(),
        b"id = 2\nread_mode = \"lease\"\nmax_value_bytes = 268435456\n[peers]\n\
          1 = \"127.0.0.1:7001\"\n2 = \"127.0.0.1:7002\"\n[raft]\nelection_timeout_ms = 60000\n\
          [limits]\nmax_request_bytes = 1073741824\nmax_client_memory_bytes = 9223372036854775807\n\
          request_timeout_ms = 3600000\n[snapshot]\nchunk_bytes = 1\n"
            .to_vec(),
        b"1=127.0.0.1:7001,2=[::1]:7002".to_vec(),
    ];
    for v in &valid[1..3] {
        let cfg = Config::resolve(
            parse_str(std::str::from_utf8(v).unwrap()).unwrap(),
            &Overrides::default(),
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0303);
    for _ in 0..3_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("config", &input, || check_config(&input));
    }
}
