//! JSON encoding of Raft messages for the seed's UDP network.
//!
//! Every datagram carries the harness's envelope (`src`, `dst`, `leader`, `type`); Raft
//! fields use short names to keep datagrams small, since the harness forwards every byte:
//! `t` term, `li`/`lt` last log index/term, `pi`/`pt` previous index/term, `c` commit,
//! `s` stamp, `e` entries, `ok` success, `i` index, `ht` hint term, `rj` rejected index.
//! An entry is `[term]` (no-op), `[term, "utf8"]`, or `[term, "base64", kind]`.

use base64::Engine;
use bytes::Bytes;
use raft::{Entry, EntryKind, Index, Message, MessageBody, NodeId};
use serde_json::{json, Map, Value};

use crate::answers::Designation;
use crate::ids::{format_id, format_leader, parse_id};

/// Largest UDP payload on IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

pub fn encode(msg: &Message, leader: Option<NodeId>) -> Vec<u8> {
    serde_json::to_vec(&encode_value(msg, leader)).expect("json encodes")
}

/// An append with the designated answerers of its writes (see `answers.rs`) in `q`:
/// a list of `[index, term, answerer, client, MID]`.
/// `report`, if given, goes in `aq`: every designation up to it was resolved by the
/// sender (on append answers to the leader, see `answers.rs`).
pub fn encode_with_designations(
    msg: &Message,
    leader: Option<NodeId>,
    ds: &[(Index, Designation)],
    report: Option<Index>,
) -> Vec<u8> {
    let mut v = encode_value(msg, leader);
    if let Some(r) = report {
        v.as_object_mut()
            .expect("object")
            .insert("aq".into(), json!(r));
    }
    if !ds.is_empty() {
        let q: Vec<Value> = ds
            .iter()
            .map(|(i, d)| json!([i, d.term, format_id(d.answerer), d.client, d.mid]))
            .collect();
        v.as_object_mut()
            .expect("object")
            .insert("q".into(), Value::Array(q));
    }
    serde_json::to_vec(&v).expect("json encodes")
}

/// The longest client ID and MID a designation carries; a write whose asker is longer is
/// answered by its leader (no designation), so a designation never bloats an append.
pub const MAX_DESIGNATED_NAME: usize = 64;

/// The designations of an append whose entries span `first..=last`; absent = none.
pub fn decode_designations(
    o: &Map<String, Value>,
    first: Index,
    last: Index,
) -> Result<Vec<(Index, Designation)>, DecodeError> {
    let Some(q) = o.get("q") else {
        return Ok(Vec::new());
    };
    let items = q.as_array().ok_or("field q is not an array")?;
    if items.len() as u64 > last.saturating_sub(first) + 1 {
        return Err("field q has more designations than entries".into());
    }
    items
        .iter()
        .map(|item| {
            let bad = || "a designation is not [index, term, answerer, client, MID]".to_string();
            let a = item.as_array().filter(|a| a.len() == 5).ok_or_else(bad)?;
            let index = a[0].as_u64().ok_or_else(bad)?;
            if index < first || index > last {
                return Err("a designation outside the append's entries".into());
            }
            let name = |v: &Value| {
                v.as_str()
                    .filter(|s| !s.is_empty() && s.len() <= MAX_DESIGNATED_NAME)
                    .map(str::to_string)
                    .ok_or_else(bad)
            };
            Ok((
                index,
                Designation {
                    term: a[1].as_u64().ok_or_else(bad)?,
                    answerer: a[2].as_str().and_then(parse_id).ok_or_else(bad)?,
                    client: name(&a[3])?,
                    mid: name(&a[4])?,
                },
            ))
        })
        .collect()
}

fn encode_value(msg: &Message, leader: Option<NodeId>) -> Value {
    let mut v = json!({
        "src": format_id(msg.from),
        "dst": format_id(msg.to),
        "leader": format_leader(leader),
        "t": msg.term,
    });
    let o = v.as_object_mut().expect("object");
    let ty = match &msg.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => {
            o.insert("li".into(), json!(last_index));
            o.insert("lt".into(), json!(last_term));
            "pv"
        }
        MessageBody::PreVoteResp { granted, leader } => {
            o.insert("g".into(), json!(u8::from(*granted)));
            if let Some(l) = leader {
                o.insert("l".into(), json!(format_id(*l)));
            }
            "pvr"
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            o.insert("li".into(), json!(last_index));
            o.insert("lt".into(), json!(last_term));
            if *transfer {
                o.insert("tr".into(), json!(1));
            }
            "rv"
        }
        MessageBody::VoteResp { granted } => {
            o.insert("g".into(), json!(u8::from(*granted)));
            "rvr"
        }
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay,
            relayed_by,
        } => {
            o.insert("pi".into(), json!(prev_index));
            o.insert("pt".into(), json!(prev_term));
            o.insert("c".into(), json!(commit));
            o.insert("s".into(), json!(stamp));
            if *leader != msg.from {
                o.insert("ld".into(), json!(format_id(*leader)));
            }
            if !relay.is_empty() {
                o.insert("rl".into(), id_list(relay));
            }
            if !relayed_by.is_empty() {
                o.insert("rb".into(), id_list(relayed_by));
            }
            if !entries.is_empty() {
                o.insert(
                    "e".into(),
                    Value::Array(entries.iter().map(encode_entry).collect()),
                );
            }
            "ae"
        }
        MessageBody::AppendResp {
            success,
            index,
            hint_term,
            rejected,
            stamp,
            vouch,
            vouch_index,
        } => {
            o.insert("ok".into(), json!(u8::from(*success)));
            o.insert("i".into(), json!(index));
            if !success {
                o.insert("ht".into(), json!(hint_term));
                o.insert("rj".into(), json!(rejected));
            }
            if !vouch.is_empty() {
                o.insert("v".into(), id_list(vouch));
                o.insert("vi".into(), json!(vouch_index));
            }
            o.insert("s".into(), json!(stamp));
            "ar"
        }
        MessageBody::TimeoutNow => "tn",
        // Snapshots are not used by the in-memory seed replica.
        MessageBody::Snapshot { .. } | MessageBody::SnapshotResp { .. } => "snap",
    };
    o.insert("type".into(), json!(ty));
    v
}

fn encode_entry(e: &Entry) -> Value {
    match e.kind {
        EntryKind::Noop => json!([e.term]),
        EntryKind::Normal => match std::str::from_utf8(&e.data) {
            Ok(s) => json!([e.term, s]),
            Err(_) => json!([e.term, b64(&e.data), 0]),
        },
        EntryKind::ConfChange => json!([e.term, b64(&e.data), 2]),
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Why a datagram was not a valid Raft message.
pub type DecodeError = String;

pub fn decode(
    o: &Map<String, Value>,
    ty: &str,
    from: NodeId,
    to: NodeId,
) -> Result<Message, DecodeError> {
    let term = num(o, "t")?;
    let body = match ty {
        "pv" => MessageBody::PreVote {
            last_index: num(o, "li")?,
            last_term: num(o, "lt")?,
        },
        "pvr" => MessageBody::PreVoteResp {
            granted: num(o, "g")? == 1,
            leader: o.get("l").and_then(Value::as_str).and_then(parse_id),
        },
        "rv" => MessageBody::Vote {
            last_index: num(o, "li")?,
            last_term: num(o, "lt")?,
            transfer: o.get("tr").and_then(Value::as_u64) == Some(1),
        },
        "rvr" => MessageBody::VoteResp {
            granted: num(o, "g")? == 1,
        },
        "ae" => {
            let prev_index = num(o, "pi")?;
            let entries = match o.get("e") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let index = prev_index
                            .checked_add(1 + i as u64)
                            .ok_or("entry index past the largest index")?;
                        decode_entry(item, index)
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("field e is not an array".into()),
            };
            let leader = match o.get("ld") {
                None => from,
                Some(v) => v
                    .as_str()
                    .and_then(parse_id)
                    .ok_or("field ld is not an ID")?,
            };
            MessageBody::Append {
                prev_index,
                prev_term: num(o, "pt")?,
                entries,
                commit: num(o, "c")?,
                stamp: num(o, "s")?,
                leader,
                relay: ids(o, "rl")?,
                relayed_by: ids(o, "rb")?,
            }
        }
        "ar" => {
            let success = num(o, "ok")? == 1;
            let vouch = ids(o, "v")?;
            MessageBody::AppendResp {
                success,
                index: num(o, "i")?,
                hint_term: if success { 0 } else { num(o, "ht")? },
                rejected: if success { 0 } else { num(o, "rj")? },
                stamp: num(o, "s")?,
                vouch_index: if vouch.is_empty() { 0 } else { num(o, "vi")? },
                vouch,
            }
        }
        "tn" => MessageBody::TimeoutNow,
        other => return Err(format!("unknown message type {other:?}")),
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn decode_entry(item: &Value, index: u64) -> Result<Entry, DecodeError> {
    let arr = item.as_array().ok_or("entry is not an array")?;
    let term = arr
        .first()
        .and_then(Value::as_u64)
        .ok_or("entry term missing")?;
    let (kind, data) = match arr.len() {
        1 => (EntryKind::Noop, Bytes::new()),
        2 => {
            let s = arr[1].as_str().ok_or("entry data is not a string")?;
            (EntryKind::Normal, Bytes::copy_from_slice(s.as_bytes()))
        }
        3 => {
            let s = arr[1].as_str().ok_or("entry data is not a string")?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("entry base64: {e}"))?;
            let kind = match arr[2].as_u64() {
                Some(0) => EntryKind::Normal,
                Some(2) => EntryKind::ConfChange,
                _ => return Err("unknown entry kind".into()),
            };
            (kind, Bytes::from(data))
        }
        _ => return Err("entry has too many fields".into()),
    };
    Ok(Entry {
        term,
        index,
        kind,
        data,
    })
}

fn id_list(ids: &[NodeId]) -> Value {
    Value::Array(ids.iter().map(|&id| json!(format_id(id))).collect())
}

/// An optional list of replica IDs (absent = empty).
fn ids(o: &Map<String, Value>, key: &str) -> Result<Vec<NodeId>, DecodeError> {
    match o.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_RELAY => items
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(parse_id)
                    .ok_or_else(|| format!("field {key} holds a non-ID"))
            })
            .collect(),
        Some(_) => Err(format!("field {key} is not a short list of IDs")),
    }
}

/// No chain is longer than a cluster (the harness allows 21 replicas).
const MAX_RELAY: usize = 32;

fn num(o: &Map<String, Value>, key: &str) -> Result<u64, DecodeError> {
    o.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("field {key} missing or not a number"))
}

/// Whether a put of `key` = `value` encodes as an entry that fits, with room for the
/// envelope, in one append datagram.
pub fn put_fits_in_datagram(key: &Bytes, value: &Bytes) -> bool {
    let cmd = kv::Command::Put {
        key: key.clone(),
        value: value.clone(),
    };
    let entry = Entry {
        term: u64::MAX,
        index: u64::MAX,
        kind: EntryKind::Normal,
        data: cmd.encode(),
    };
    let encoded = serde_json::to_vec(&encode_entry(&entry)).map_or(usize::MAX, |v| v.len());
    encoded + ENVELOPE_BYTES <= MAX_DATAGRAM
}

/// Generous bound on an append's bytes besides its entries.
const ENVELOPE_BYTES: usize = 300;

/// Splits an append whose encoding would not fit in one datagram into several valid
/// appends for consecutive slices of its entries.
pub fn split_append(msg: Message) -> Vec<Message> {
    let MessageBody::Append {
        prev_index,
        prev_term,
        mut entries,
        commit,
        stamp,
        leader,
        relay,
        relayed_by,
    } = msg.body
    else {
        return vec![msg];
    };
    let part = |prev_index, prev_term, entries| Message {
        body: MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay: relay.clone(),
            relayed_by: relayed_by.clone(),
        },
        ..msg
    };
    if entries.len() < 2 {
        return vec![part(prev_index, prev_term, entries)];
    }
    let tail = entries.split_off(entries.len() / 2);
    let (mid_index, mid_term) = {
        let last = entries.last().expect("non-empty half");
        (last.index, last.term)
    };
    vec![
        part(prev_index, prev_term, entries),
        part(mid_index, mid_term, tail),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(body: MessageBody) {
        let msg = Message {
            from: 1,
            to: 2,
            term: 7,
            body,
        };
        let raw = encode(&msg, Some(1));
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o["src"], "0001");
        assert_eq!(o["leader"], "0001");
        let back = decode(o, o["type"].as_str().unwrap(), 1, 2).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn designations_roundtrip_and_bad_ones_are_refused() {
        let msg = Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::Append {
                prev_index: 4,
                prev_term: 3,
                entries: vec![Entry {
                    term: 3,
                    index: 5,
                    kind: EntryKind::Normal,
                    data: Bytes::from_static(b"put"),
                }],
                commit: 4,
                stamp: 9,
                leader: 1,
                relay: vec![3],
                relayed_by: vec![],
            },
        };
        let d = Designation {
            term: 3,
            answerer: 3,
            client: "0015".into(),
            mid: "ABCD".into(),
        };
        let raw = encode_with_designations(&msg, Some(1), &[(5, d.clone())], None);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(decode_designations(o, 5, 5).unwrap(), vec![(5, d)]);
        assert_eq!(
            decode(o, "ae", 1, 2).unwrap(),
            msg,
            "the append itself is unchanged"
        );
        // Outside the entries it came with, too many, or malformed: refused.
        assert!(decode_designations(o, 6, 6).is_err());
        let bad = |q: Value| {
            let mut o = o.clone();
            o.insert("q".into(), q);
            decode_designations(&o, 5, 5)
        };
        assert!(bad(json!([
            [5, 3, "0003", "0015", "m"],
            [5, 3, "0003", "0015", "m"]
        ]))
        .is_err());
        assert!(bad(json!([[5, 3, "XYZ", "0015", "m"]])).is_err());
        assert!(bad(json!([[5, 3, "0003", "0015", "m".repeat(65)]])).is_err());
        assert!(bad(json!([[5, 3, "0003", "0015"]])).is_err());
        assert!(bad(json!("q")).is_err());
        assert!(bad(json!([])).unwrap().is_empty());
    }

    #[test]
    fn every_message_roundtrips() {
        roundtrip(MessageBody::PreVote {
            last_index: 3,
            last_term: 2,
        });
        roundtrip(MessageBody::PreVoteResp {
            granted: false,
            leader: Some(4),
        });
        roundtrip(MessageBody::Vote {
            last_index: 3,
            last_term: 2,
            transfer: true,
        });
        roundtrip(MessageBody::VoteResp { granted: true });
        roundtrip(MessageBody::AppendResp {
            success: false,
            index: 5,
            hint_term: 1,
            rejected: 9,
            stamp: 11,
            vouch: vec![],
            vouch_index: 0,
        });
        roundtrip(MessageBody::AppendResp {
            success: true,
            index: 5,
            hint_term: 0,
            rejected: 0,
            stamp: 11,
            vouch: vec![3, 4],
            vouch_index: 5,
        });
        roundtrip(MessageBody::TimeoutNow);
        let entries = vec![
            Entry {
                term: 7,
                index: 5,
                kind: EntryKind::Noop,
                data: Bytes::new(),
            },
            Entry {
                term: 7,
                index: 6,
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"P\x03keyvalue"),
            },
            Entry {
                term: 7,
                index: 7,
                kind: EntryKind::Normal,
                data: Bytes::from_static(&[0xff, 0x00]),
            },
        ];
        roundtrip(MessageBody::Append {
            prev_index: 4,
            prev_term: 6,
            entries: entries.clone(),
            commit: 3,
            stamp: 9,
            leader: 1,
            relay: vec![],
            relayed_by: vec![],
        });
        // A relayed append: sent by 1 on behalf of leader 3, to be passed on to 4.
        roundtrip(MessageBody::Append {
            prev_index: 4,
            prev_term: 6,
            entries,
            commit: 3,
            stamp: 9,
            leader: 3,
            relay: vec![4],
            relayed_by: vec![1],
        });
    }

    #[test]
    fn oversized_puts_are_detected() {
        assert!(put_fits_in_datagram(
            &Bytes::from("k"),
            &Bytes::from("v".repeat(1000))
        ));
        assert!(!put_fits_in_datagram(
            &Bytes::from("k"),
            &Bytes::from("v".repeat(65_400))
        ));
        // Control characters are escaped six-fold in JSON.
        assert!(!put_fits_in_datagram(
            &Bytes::from("k"),
            &Bytes::from("\u{1}".repeat(20_000))
        ));
    }

    #[test]
    fn split_append_keeps_both_halves_valid() {
        let entries: Vec<Entry> = (1..=5)
            .map(|i| Entry {
                term: 2,
                index: i,
                kind: EntryKind::Normal,
                data: Bytes::new(),
            })
            .collect();
        let msg = Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::Append {
                prev_index: 0,
                prev_term: 0,
                entries,
                commit: 0,
                stamp: 1,
                leader: 1,
                relay: vec![],
                relayed_by: vec![],
            },
        };
        let parts = split_append(msg);
        assert_eq!(parts.len(), 2);
        match &parts[1].body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                ..
            } => {
                assert_eq!((*prev_index, *prev_term), (2, 2));
                assert_eq!(entries[0].index, 3);
            }
            _ => panic!("not an append"),
        }
    }
}
