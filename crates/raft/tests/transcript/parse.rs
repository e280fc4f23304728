//! Parsing of transcript arguments and of messages written the way `Display` prints them
//! (`1->2 t3 Append prev=0@0 commit=1 stamp=7 entries=[1@1 2@1]`), so a transcript can
//! inject any message, forged ones included, in the form it reads elsewhere.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{Entry, EntryKind, Membership, Message, MessageBody, NodeId, SnapshotMeta};

/// Splits a line into words; `[...]` is one word even with spaces inside.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in line.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `key=value` words as a map; other words in order.
pub struct Args {
    pub positional: Vec<String>,
    pub named: BTreeMap<String, String>,
}

impl Args {
    pub fn new(words: &[String]) -> Args {
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    named.insert(k.to_string(), v.to_string());
                }
                None => positional.push(w.clone()),
            }
        }
        Args { positional, named }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.named.get(key).map(|v| num(v)).transpose()
    }

    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, String> {
        Ok(self.u64(key)?.unwrap_or(default))
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.named.get(key).map(String::as_str) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(format!("{key}={v}: expected true or false")),
        }
    }

    pub fn ids(&self, key: &str) -> Result<Option<Vec<NodeId>>, String> {
        self.named.get(key).map(|v| id_list(v)).transpose()
    }

    /// Positional words as node IDs (`all` or nothing: every node).
    pub fn positional_ids(&self, all: &[NodeId]) -> Result<Vec<NodeId>, String> {
        if self.positional.is_empty() || self.positional == ["all"] {
            return Ok(all.to_vec());
        }
        self.positional.iter().map(|w| num(w)).collect()
    }
}

/// A number; `max` is `u64::MAX` (for forged terms and indexes).
pub fn num(s: &str) -> Result<u64, String> {
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn pair(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once('@')
        .ok_or_else(|| format!("expected index@term, got {s:?}"))?;
    Ok((num(a)?, num(b)?))
}

fn bracketed(s: &str) -> Result<Vec<&str>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("expected [..], got {s:?}"))?;
    Ok(inner.split_whitespace().collect())
}

fn id_list(s: &str) -> Result<Vec<NodeId>, String> {
    bracketed(s)?.into_iter().map(num).collect()
}

/// `[1@1 2@1(noop) 3@2:data]`: entries, with an optional kind tag and payload.
pub fn entries(s: &str) -> Result<Vec<Entry>, String> {
    bracketed(s)?
        .into_iter()
        .map(|w| {
            let (w, data) = w.split_once(':').unwrap_or((w, ""));
            let (w, kind) = if let Some(w) = w.strip_suffix("(noop)") {
                (w, EntryKind::Noop)
            } else if let Some(w) = w.strip_suffix("(conf)") {
                (w, EntryKind::ConfChange)
            } else {
                (w, EntryKind::Normal)
            };
            let (index, term) = pair(w)?;
            Ok(Entry {
                term,
                index,
                kind,
                data: Bytes::copy_from_slice(data.as_bytes()),
            })
        })
        .collect()
}

/// A message as `Display` prints it: `FROM->TO tTERM Kind fields…`. Fields left out take
/// their zero value; an `Append`'s `leader` defaults to its sender.
pub fn message(words: &[String]) -> Result<Message, String> {
    let [route, term, kind, rest @ ..] = words else {
        return Err("expected FROM->TO tTERM Kind fields…".into());
    };
    let (from, to) = route
        .split_once("->")
        .ok_or_else(|| format!("expected FROM->TO, got {route:?}"))?;
    let (from, to) = (num(from)?, num(to)?);
    let term = num(term.strip_prefix('t').ok_or("expected tTERM")?)?;
    let flags: Vec<&str> = rest
        .iter()
        .filter(|w| !w.contains('='))
        .map(String::as_str)
        .collect();
    let a = Args::new(rest);
    let last = |a: &Args| -> Result<(u64, u64), String> {
        a.named.get("last").map_or(Ok((0, 0)), |v| pair(v))
    };
    let body = match kind.as_str() {
        "PreVote" => {
            let (last_index, last_term) = last(&a)?;
            MessageBody::PreVote {
                last_index,
                last_term,
            }
        }
        "PreVoteResp" => MessageBody::PreVoteResp {
            granted: a.bool_or("granted", false)?,
            leader: match a.named.get("leader").map(String::as_str) {
                None | Some("None") => None,
                Some(v) => Some(num(v.trim_start_matches("Some(").trim_end_matches(')'))?),
            },
        },
        "Vote" => {
            let (last_index, last_term) = last(&a)?;
            MessageBody::Vote {
                last_index,
                last_term,
                transfer: flags.contains(&"transfer"),
            }
        }
        "VoteResp" => MessageBody::VoteResp {
            granted: a.bool_or("granted", false)?,
        },
        "Append" => {
            let (prev_index, prev_term) = a.named.get("prev").map_or(Ok((0, 0)), |v| pair(v))?;
            MessageBody::Append {
                prev_index,
                prev_term,
                entries: a.named.get("entries").map_or(Ok(vec![]), |v| entries(v))?,
                commit: a.u64_or("commit", 0)?,
                stamp: a.u64_or("stamp", 0)?,
                leader: match a.ids("leader")? {
                    Some(ids) => *ids.first().ok_or("leader=[] is empty")?,
                    None => from,
                },
                relay: a.ids("relay")?.unwrap_or_default(),
                relayed_by: a.ids("relayed_by")?.unwrap_or_default(),
            }
        }
        "AppendResp" => MessageBody::AppendResp {
            success: a.bool_or("ok", false)?,
            index: a.u64_or("index", 0)?,
            hint_term: a.u64_or("hint", 0)?,
            rejected: a.u64_or("rejected", 0)?,
            stamp: a.u64_or("stamp", 0)?,
            vouch: a.ids("vouch")?.unwrap_or_default(),
            vouch_index: a.u64_or("vouch_index", 0)?,
        },
        "Snapshot" => {
            let at = rest.first().ok_or("Snapshot needs INDEX@TERM first")?;
            let (index, term) = pair(at)?;
            let data = a.named.get("data").cloned().unwrap_or_default();
            MessageBody::Snapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    membership: Membership::new(a.ids("voters")?.unwrap_or_default()),
                },
                offset: a.u64_or("offset", 0)?,
                data: Bytes::from(data.into_bytes()),
                done: a.bool_or("done", true)?,
                stamp: a.u64_or("stamp", 0)?,
            }
        }
        "SnapshotResp" => MessageBody::SnapshotResp {
            index: a.u64_or("index", 0)?,
            next_offset: a.u64_or("next_offset", 0)?,
            success: a.bool_or("ok", false)?,
            stamp: a.u64_or("stamp", 0)?,
        },
        "TimeoutNow" => MessageBody::TimeoutNow,
        other => return Err(format!("unknown message kind {other:?}")),
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}
