//! Reading a connection's messages from the node's events: what its channels, patterns
//! and watches get, formatted into its output buffer.
//!
//! Channels and patterns are read eagerly, everything available each time: their
//! backlog is the output buffer, bounded like Redis's (`client-output-buffer-limit
//! pubsub`, checked by the caller). Watches are paced: read only while the output buffer
//! holds less than [`WATCH_CHUNK`], so a watch catching up from an old index keeps its
//! backlog in the ring, not in memory of its own; it only has to stay within the ring.

use bytes::{Bytes, BytesMut};

use super::Subscriptions;
use crate::events::ring::EntryEvents;
use crate::events::NotifyFlags;
use crate::glob::glob_match;
use crate::resp::codec::{Protocol, Value};

/// A paced watch is read while the output buffer holds less than this.
pub const WATCH_CHUNK: usize = 256 << 10;
/// Entries read from the ring per lock, and per stream per pump (so one pump call has a
/// bounded cost; the caller pumps again if there is more).
const BATCH: usize = 1024;
const MAX_BATCHES: usize = 64;

const KEYSPACE: &[u8] = b"__keyspace@0__:";
const KEYEVENT: &[u8] = b"__keyevent@0__:";

/// Why a connection's reading stopped for good.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The channels' cursor fell behind what the node holds: messages were lost.
    ChannelsBehind,
    /// A watch's cursor fell behind: the client must re-read and watch again.
    WatchBehind {
        prefix: Bytes,
        from: u64,
        oldest: u64,
    },
}

impl Subscriptions {
    /// Appends the available messages to `out`. `Ok(true)`: there is more to read now
    /// (a paced watch behind, or a bounded pass that did not finish).
    pub fn pump(&mut self, proto: Protocol, out: &mut BytesMut) -> Result<bool, Stop> {
        let mut more = false;
        let mut sent = 0u64;
        if !self.channels.is_empty() || !self.patterns.is_empty() {
            let flags = self.hub.flags();
            // Keyspace notifications cost a channel name each: only if someone here may
            // want them.
            let keyspace = flags.any()
                && (!self.patterns.is_empty()
                    || self.channels.iter().any(|c| c.starts_with(b"__key")));
            let flags = keyspace.then_some(flags);
            let mut batches = 0;
            loop {
                let (entries, next) = self
                    .hub
                    .read(self.live, BATCH)
                    .map_err(|_| Stop::ChannelsBehind)?;
                for e in &entries {
                    sent += self.channel_messages(e, flags, proto, out);
                }
                self.live = next;
                batches += 1;
                if entries.len() < BATCH {
                    break;
                }
                if batches == MAX_BATCHES {
                    more = true;
                    break;
                }
            }
        }
        let prefixes: Vec<Bytes> = self.watches.keys().cloned().collect();
        for prefix in prefixes {
            let mut cursor = self.watches[&prefix];
            let mut batches = 0;
            while out.len() < WATCH_CHUNK {
                let (entries, next) =
                    self.hub
                        .read(cursor, BATCH)
                        .map_err(|t| Stop::WatchBehind {
                            prefix: prefix.clone(),
                            from: cursor,
                            oldest: t.oldest,
                        })?;
                for e in &entries {
                    sent += u64::from(watch_message(&prefix, e, proto, out));
                }
                cursor = next;
                batches += 1;
                if entries.len() < BATCH {
                    break;
                }
                if batches == MAX_BATCHES || out.len() >= WATCH_CHUNK {
                    more = true;
                    break;
                }
            }
            self.watches.insert(prefix, cursor);
        }
        self.hub.metrics.pubsub_messages_sent.add(sent);
        Ok(more)
    }

    /// One entry's messages for the channels and patterns (with keyspace notifications
    /// as `flags` say, if given); how many.
    fn channel_messages(
        &self,
        e: &EntryEvents,
        flags: Option<NotifyFlags>,
        proto: Protocol,
        out: &mut BytesMut,
    ) -> u64 {
        let mut n = 0;
        for ev in &e.events {
            match ev {
                kv::Event::Message { channel, message } => {
                    n += self.deliver(channel, message, proto, out);
                }
                kv::Event::Key { kind, key } => {
                    let Some(flags) = flags else { continue };
                    let (space, event) = flags.publishes(*kind);
                    if space {
                        let channel = [KEYSPACE, key].concat();
                        n += self.deliver(&channel, kind.name().as_bytes(), proto, out);
                    }
                    if event {
                        let channel = [KEYEVENT, kind.name().as_bytes()].concat();
                        n += self.deliver(&channel, key, proto, out);
                    }
                }
                kv::Event::Flush => {}
            }
        }
        n
    }

    /// A message on `channel`: to its subscription, then to each matching pattern (the
    /// order Redis sends them in).
    fn deliver(&self, channel: &[u8], payload: &[u8], proto: Protocol, out: &mut BytesMut) -> u64 {
        let mut n = 0;
        let bulk = |b: &[u8]| Value::bulk(Bytes::copy_from_slice(b));
        if self.channels.contains(channel) {
            Value::Push(vec![Value::bulk("message"), bulk(channel), bulk(payload)])
                .encode_as(proto, out);
            n += 1;
        }
        for p in &self.patterns {
            if glob_match(p, channel) {
                Value::Push(vec![
                    Value::bulk("pmessage"),
                    Value::Bulk(Some(p.clone())),
                    bulk(channel),
                    bulk(payload),
                ])
                .encode_as(proto, out);
                n += 1;
            }
        }
        n
    }
}

/// The entry's events on keys under `prefix`, as one message; whether there were any.
fn watch_message(prefix: &Bytes, e: &EntryEvents, proto: Protocol, out: &mut BytesMut) -> bool {
    let mut items = Vec::new();
    for ev in &e.events {
        match ev {
            kv::Event::Key { kind, key } if key.starts_with(prefix) => {
                items.push(Value::bulk(kind.name()));
                items.push(Value::Bulk(Some(key.clone())));
            }
            kv::Event::Flush => {
                items.push(Value::bulk("flushall"));
                items.push(Value::bulk(""));
            }
            _ => {}
        }
    }
    if items.is_empty() {
        return false;
    }
    Value::Push(vec![
        Value::bulk("event"),
        Value::Bulk(Some(prefix.clone())),
        Value::Int(e.index as i64),
        Value::Array(Some(items)),
    ])
    .encode_as(proto, out);
    true
}
