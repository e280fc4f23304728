//! One connection's subscriptions: Redis's channels and patterns (`SUBSCRIBE`,
//! `PSUBSCRIBE`, `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `RESET`) and raftkv's watches
//! (`RAFTKV.WATCH prefix [FROM index]`, `RAFTKV.UNWATCH [prefix ...]`).
//!
//! Messages are not pushed to a connection: it reads the node's events (`events/`) from
//! a cursor, a log index, and formats what concerns it (`pump.rs`). Channels and patterns
//! share one cursor that starts at the next entry to apply when the first of them is
//! subscribed (Redis: a subscriber gets what is published after it subscribed); each
//! watch has its own, which may start in the past (`FROM`) and is the resume point.
//!
//! # The watch (ours)
//!
//! `RAFTKV.WATCH prefix [FROM index]` answers `[watch, prefix, from, subscriptions]`
//! (a push in RESP3), then, for every applied entry with events on keys starting with
//! `prefix`, one message `[event, prefix, index, [name, key, name, key, ...]]`: Redis's
//! event names (`set`, `del`, `expired`, ...; `flushall` with an empty key for a flush),
//! every event of the entry in order, whatever `notify-keyspace-events` says. A client
//! that has handled every message up to index `i` resumes, on any node, with
//! `FROM i+1`: it misses nothing and sees nothing twice, as long as this node still holds
//! the events from `i+1` (its ring, `events.ring_bytes`); otherwise the answer is
//! `-TRIMMED ...`, and the client re-reads the keys and watches from a newer index.

mod pump;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

pub use pump::{Stop, WATCH_CHUNK};

use super::client::Client;
use super::codec::Value;
use super::commands::table;
use crate::events::Hub;

/// Subscriptions (channels, patterns and watches together) one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 100_000;

/// Whether the connection's subscriptions answer this command.
pub fn takes(args: &[Bytes]) -> bool {
    args.first()
        .and_then(|n| table::command_spec(&String::from_utf8_lossy(n).to_ascii_uppercase()))
        .is_some_and(|s| s.group == table::Group::Subscription)
}

pub struct Subscriptions {
    hub: Arc<Hub>,
    client: Arc<Client>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    /// Prefix → the next index to deliver.
    watches: BTreeMap<Bytes, u64>,
    /// The next index the channels and patterns read.
    live: u64,
}

impl Subscriptions {
    pub fn new(hub: Arc<Hub>, client: Arc<Client>) -> Subscriptions {
        Subscriptions {
            hub,
            client,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            watches: BTreeMap::new(),
            live: 0,
        }
    }

    /// Channels, patterns and watches: the count Redis's replies carry.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.watches.len()
    }

    /// Whether the connection is in subscribed mode.
    pub fn active(&self) -> bool {
        self.count() > 0
    }

    /// Runs one command [`takes`] said is ours; its replies (several for `SUBSCRIBE a
    /// b`), in order. `RESET`'s other effects are the connection's.
    pub fn handle(&mut self, args: &[Bytes]) -> Vec<Value> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let a = &args[1..];
        if let Some(spec) = table::command_spec(&name) {
            if !spec.arity_ok(args.len()) {
                return vec![super::commands::wrong_args(&name)];
            }
        }
        match name.as_str() {
            "SUBSCRIBE" => self.subscribe(a, false),
            "PSUBSCRIBE" => self.subscribe(a, true),
            "UNSUBSCRIBE" => self.unsubscribe(a, false),
            "PUNSUBSCRIBE" => self.unsubscribe(a, true),
            "RAFTKV.WATCH" => vec![self.watch(a)],
            "RAFTKV.UNWATCH" => self.unwatch(a),
            "RESET" => {
                self.clear();
                vec![Value::Simple("RESET".into())]
            }
            _ => vec![Value::err(format!(
                "internal error: '{name}' is not a subscription command"
            ))],
        }
    }

    fn full(&self) -> Option<Value> {
        (self.count() >= MAX_SUBSCRIPTIONS).then(|| {
            Value::err(format!(
                "too many subscriptions on this connection (the limit is {MAX_SUBSCRIPTIONS})"
            ))
        })
    }

    fn reply(&self, kind: &'static str, what: Option<Bytes>) -> Value {
        Value::Push(vec![
            Value::bulk(kind),
            Value::Bulk(what),
            Value::Int(self.count() as i64),
        ])
    }

    fn subscribe(&mut self, names: &[Bytes], pattern: bool) -> Vec<Value> {
        if self.channels.is_empty() && self.patterns.is_empty() {
            self.live = self.hub.next_index();
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let set = if pattern {
                &mut self.patterns
            } else {
                &mut self.channels
            };
            if !set.contains(n) {
                if let Some(e) = self.full() {
                    out.push(e);
                    continue;
                }
                let set = if pattern {
                    &mut self.patterns
                } else {
                    &mut self.channels
                };
                set.insert(n.clone());
                self.hub.subscribed(n, pattern);
            }
            let kind = if pattern { "psubscribe" } else { "subscribe" };
            out.push(self.reply(kind, Some(n.clone())));
        }
        self.show();
        out
    }

    fn unsubscribe(&mut self, names: &[Bytes], pattern: bool) -> Vec<Value> {
        let kind = if pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let set = if pattern {
            &self.patterns
        } else {
            &self.channels
        };
        let names: Vec<Bytes> = if names.is_empty() {
            set.iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return vec![self.reply(kind, None)];
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let set = if pattern {
                &mut self.patterns
            } else {
                &mut self.channels
            };
            if set.remove(&n) {
                self.hub.unsubscribed(&n, pattern);
            }
            out.push(self.reply(kind, Some(n)));
        }
        self.show();
        out
    }

    /// `RAFTKV.WATCH prefix [FROM index]`.
    fn watch(&mut self, a: &[Bytes]) -> Value {
        let prefix = a[0].clone();
        let from = match &a[1..] {
            [] => None,
            [kw, index] if kw.eq_ignore_ascii_case(b"FROM") => {
                match std::str::from_utf8(index)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(i) if i >= 1 => Some(i),
                    _ => return Value::err("the index after FROM must be a positive integer"),
                }
            }
            _ => return Value::err("syntax error"),
        };
        if !self.watches.contains_key(&prefix) {
            if let Some(e) = self.full() {
                return e;
            }
        }
        let (oldest, next) = self.hub.span();
        let from = from.unwrap_or(next);
        if from < oldest {
            return trimmed(&prefix, from, oldest);
        }
        self.watches.insert(prefix.clone(), from);
        self.show();
        Value::Push(vec![
            Value::bulk("watch"),
            Value::Bulk(Some(prefix)),
            Value::Int(from as i64),
            Value::Int(self.count() as i64),
        ])
    }

    fn unwatch(&mut self, prefixes: &[Bytes]) -> Vec<Value> {
        let prefixes: Vec<Bytes> = if prefixes.is_empty() {
            self.watches.keys().cloned().collect()
        } else {
            prefixes.to_vec()
        };
        if prefixes.is_empty() {
            return vec![self.reply("unwatch", None)];
        }
        let out = prefixes
            .into_iter()
            .map(|p| {
                self.watches.remove(&p);
                self.reply("unwatch", Some(p))
            })
            .collect();
        self.show();
        out
    }

    /// Drops every subscription (RESET, or the connection closing).
    pub fn clear(&mut self) {
        for c in std::mem::take(&mut self.channels) {
            self.hub.unsubscribed(&c, false);
        }
        for p in std::mem::take(&mut self.patterns) {
            self.hub.unsubscribed(&p, true);
        }
        self.watches.clear();
        self.show();
    }

    /// What `CLIENT LIST` shows of them.
    fn show(&self) {
        let mut s = self.client.state();
        s.subscriptions = (self.channels.len(), self.patterns.len(), self.watches.len());
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The answer to a watch from an index this node no longer holds events for.
pub fn trimmed(prefix: &[u8], from: u64, oldest: u64) -> Value {
    Value::err(format!(
        "TRIMMED the events from index {from} are no longer held on this node (the oldest is \
         {oldest}); re-read the keys under '{}' and watch from a newer index",
        String::from_utf8_lossy(prefix)
    ))
}
