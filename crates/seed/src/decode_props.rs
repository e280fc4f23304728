//! Property tests of the seed replica's datagram decoding (JSON → envelope → `get`/`put`
//! request or Raft message), as `Server::try_handle` takes a datagram apart: seeded
//! random bytes and mutations of valid datagrams (bit flips, truncations, splices, number
//! edits). No input may panic; a decoded message re-encodes to a datagram that decodes
//! equal. The coverage-guided version is the `seed_json` target in `fuzz/`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use raft::{Entry, EntryKind, Message, MessageBody};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::client::parse_request;
use crate::codec::{decode, encode, put_fits_in_datagram, split_append};
use crate::ids::parse_id;
use mutate::{check, Format};

/// What `seed_json` in fuzz/ checks.
/// Mutations for JSON datagrams: a run of digits replaced by an extreme number; JSON
/// tokens as junk.
struct Json;

impl Format for Json {
    fn extreme_field(&self, rng: &mut StdRng, v: &mut Vec<u8>) {
        let len = v.len();
        let digits: Vec<usize> = (0..len).filter(|&i| v[i].is_ascii_digit()).collect();
        if let Some(&at) = digits.get(rng.gen_range(0..digits.len().max(1))) {
            let end = (at..len).find(|&i| !v[i].is_ascii_digit()).unwrap_or(len);
            let n = [
                "0",
                "18446744073709551615",
                "18446744073709551616",
                "-1",
                "1.5",
            ][rng.gen_range(0..5)];
            v.splice(at..end, n.bytes());
        }
    }

    fn junk(&self, rng: &mut StdRng) -> Vec<u8> {
        [&b"\""[..], b",", b"[", b"]", b"{}", b"null", b"\\u0000"][rng.gen_range(0..7)].to_vec()
    }
}

fn mutate(rng: &mut StdRng, valid: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    mutate::mutate(rng, valid, others, &Json)
}

fn check_datagram(raw: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return;
    };
    let Some(o) = v.as_object() else {
        return;
    };
    let (Some(ty), Some(src)) = (
        o.get("type").and_then(Value::as_str),
        o.get("src").and_then(Value::as_str),
    ) else {
        return;
    };
    if ty == "get" || ty == "put" {
        if let Ok((_, driver::Request::Put { key, value })) = parse_request(o, ty) {
            let _ = put_fits_in_datagram(&key, &value);
        }
        return;
    }
    let Some(from) = parse_id(src) else {
        return;
    };
    let Ok(msg) = decode(o, ty, from, 1) else {
        return;
    };
    let raw2 = encode(&msg, None);
    let v2: Value = serde_json::from_slice(&raw2).expect("encoded datagram is JSON");
    let o2 = v2.as_object().expect("an object");
    let back = decode(o2, o2["type"].as_str().expect("type"), from, 1).expect("decodes");
    assert_eq!(back, msg, "message does not round-trip");
    for part in split_append(msg) {
        let _ = encode(&part, None);
    }
}

fn entry(index: u64, kind: EntryKind, data: &[u8]) -> Entry {
    Entry {
        term: 7,
        index,
        kind,
        data: Bytes::copy_from_slice(data),
    }
}

fn valid_datagrams() -> Vec<Vec<u8>> {
    let m = |body| Message {
        from: 1,
        to: 2,
        term: 7,
        body,
    };
    let mut out: Vec<Vec<u8>> = [
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
        m(MessageBody::VoteResp { granted: true }),
        m(MessageBody::Append {
            prev_index: 4,
            prev_term: 6,
            entries: vec![
                entry(5, EntryKind::Noop, b""),
                entry(6, EntryKind::Normal, b"P\x01kv"),
                entry(7, EntryKind::Normal, &[0xff, 0]),
                entry(8, EntryKind::ConfChange, b"\x01"),
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
            hint_term: 1,
            rejected: 9,
            stamp: 11,
            vouch: vec![3, 4],
            vouch_index: 5,
        }),
        m(MessageBody::TimeoutNow),
    ]
    .iter()
    .map(|msg| encode(msg, Some(1)))
    .collect();
    out.push(
        br#"{"src":"C0DE","dst":"0001","leader":"FFFF","type":"get","MID":"m","key":"k"}"#.to_vec(),
    );
    out.push(
        br#"{"src":"C0DE","dst":"0001","leader":"FFFF","type":"put","MID":"m","key":"k","value":"v"}"#
            .to_vec(),
    );
    out
}

#[test]
fn datagrams_survive_random_and_mutated_input() {
    let valid = valid_datagrams();
    for v in &valid {
        check_datagram(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0201);
    for _ in 0..20_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let input = mutate(&mut rng, base, &valid);
        check("datagram", &input, || check_datagram(&input));
    }
}

/// An append whose `pi` (previous index) is `u64::MAX` and that carries entries: the
/// decoder computed the entries' indexes as `pi + 1 + i` and overflowed (a panic in debug
/// builds; in release the indexes wrapped to 0). It is now an error, like any other bad
/// field; an append with `pi` at the maximum and no entries still decodes.
#[test]
fn append_with_prev_index_u64_max_and_entries_is_an_error_not_overflow() {
    let datagram = |entries: &str| {
        format!(
            r#"{{"src":"0001","dst":"0002","leader":"0001","type":"ae","t":7,"pi":18446744073709551615,"pt":6,"c":3,"s":9{entries}}}"#
        )
    };
    let decode_str = |s: &str| {
        let v: Value = serde_json::from_str(s).unwrap();
        let o = v.as_object().unwrap().clone();
        catch_unwind(AssertUnwindSafe(|| decode(&o, "ae", 1, 2))).expect("decode panicked")
    };
    let err = decode_str(&datagram(r#","e":[[7]]"#)).expect_err("indexes past u64::MAX");
    assert!(err.contains("index"), "{err}");
    let ok = decode_str(&datagram("")).expect("no entries: fine");
    assert!(matches!(
        ok.body,
        MessageBody::Append {
            prev_index: u64::MAX,
            ..
        }
    ));
}
