//! One node's events, shared by the node loop (which feeds them in after each batch) and
//! every subscribed connection (which reads them at its own pace): the ring of recent
//! entries' events, a signal when the applied index moves, the subscriptions (for
//! `PUBSUB` and `PUBLISH`'s count) and the `notify-keyspace-events` setting.
//!
//! Connections pull: nothing is copied per subscriber while it is idle or slow, and the
//! node loop does one lock and one signal per batch, whatever the number of subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use driver::AppliedEvents;
use tokio::sync::watch;

use super::notify::NotifyFlags;
use super::ring::{EntryEvents, EventRing, Trimmed};
use crate::glob::glob_match;
use crate::metrics::LoopMetrics;

/// Redis's `client-output-buffer-limit pubsub <hard> <soft> <seconds>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Over this many bytes waiting to be sent: disconnected at once.
    pub hard_bytes: usize,
    /// Over this many for `soft_for` without a break: disconnected.
    pub soft_bytes: usize,
    pub soft_for: Duration,
}

impl Default for OutputLimits {
    /// Redis's defaults: `pubsub 32mb 8mb 60`.
    fn default() -> Self {
        OutputLimits {
            hard_bytes: 32 << 20,
            soft_bytes: 8 << 20,
            soft_for: Duration::from_secs(60),
        }
    }
}

/// Who is subscribed to what on this node: subscriber counts per channel and pattern.
#[derive(Debug, Default)]
struct Registry {
    channels: HashMap<Bytes, usize>,
    patterns: HashMap<Bytes, usize>,
}

fn add(map: &mut HashMap<Bytes, usize>, k: &Bytes) {
    *map.entry(k.clone()).or_default() += 1;
}

fn remove(map: &mut HashMap<Bytes, usize>, k: &Bytes) {
    if let Some(n) = map.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            map.remove(k);
        }
    }
}

pub struct Hub {
    ring: Mutex<EventRing>,
    /// The applied index, sent after every batch that moved it.
    applied: watch::Sender<u64>,
    registry: Mutex<Registry>,
    flags: AtomicU32,
    pub limits: OutputLimits,
    pub metrics: Arc<LoopMetrics>,
}

impl Hub {
    pub fn new(
        ring_bytes: usize,
        flags: NotifyFlags,
        limits: OutputLimits,
        metrics: Arc<LoopMetrics>,
    ) -> Hub {
        Hub {
            ring: Mutex::new(EventRing::new(ring_bytes)),
            applied: watch::channel(0).0,
            registry: Mutex::default(),
            flags: AtomicU32::new(flags.0),
            limits,
            metrics,
        }
    }

    fn ring(&self) -> MutexGuard<'_, EventRing> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node loop, after each batch: what the state machine applied, and where it is.
    pub fn feed(&self, batch: Vec<AppliedEvents>, applied: u64) {
        let mut ring = self.ring();
        for a in batch {
            match a {
                AppliedEvents::Entry { index, events } => ring.push(index, events),
                AppliedEvents::Reset { index } => ring.reset(index),
            }
        }
        ring.advance(applied);
        self.metrics.events_ring_bytes.set(ring.bytes() as u64);
        self.metrics.events_oldest_index.set(ring.oldest());
        drop(ring);
        self.applied.send_if_modified(|a| {
            let moved = *a != applied;
            *a = applied;
            moved
        });
    }

    /// Up to `max` entries' events from index `from`, and where to read next.
    pub fn read(&self, from: u64, max: usize) -> Result<(Vec<Arc<EntryEvents>>, u64), Trimmed> {
        self.ring().read(from, max)
    }

    /// Where a subscriber that wants only what comes next starts.
    pub fn next_index(&self) -> u64 {
        self.ring().next_index()
    }

    /// The oldest index a watch may resume from, and the next to apply.
    pub fn span(&self) -> (u64, u64) {
        let ring = self.ring();
        (ring.oldest(), ring.next_index())
    }

    /// Wakes when the applied index moves.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    pub fn flags(&self) -> NotifyFlags {
        NotifyFlags(self.flags.load(Ordering::Relaxed))
    }

    pub fn set_flags(&self, f: NotifyFlags) {
        self.flags.store(f.0, Ordering::Relaxed);
    }

    pub fn subscribed(&self, channel: &Bytes, pattern: bool) {
        let mut r = self.registry();
        add(
            if pattern {
                &mut r.patterns
            } else {
                &mut r.channels
            },
            channel,
        );
    }

    pub fn unsubscribed(&self, channel: &Bytes, pattern: bool) {
        let mut r = self.registry();
        remove(
            if pattern {
                &mut r.patterns
            } else {
                &mut r.channels
            },
            channel,
        );
    }

    /// Subscribers on this node that a message on `channel` reaches: one per channel
    /// subscription, one per matching pattern subscription (Redis's `PUBLISH` count).
    pub fn receivers(&self, channel: &[u8]) -> usize {
        let r = self.registry();
        let exact = r.channels.get(channel).copied().unwrap_or(0);
        let by_pattern: usize = r
            .patterns
            .iter()
            .filter(|(p, _)| glob_match(p, channel))
            .map(|(_, n)| n)
            .sum();
        exact + by_pattern
    }

    /// `PUBSUB CHANNELS [pattern]`: channels with at least one subscriber here.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self
            .registry()
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// `PUBSUB NUMSUB`: subscribers of `channel` here.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.registry().channels.get(channel).copied().unwrap_or(0)
    }

    /// `PUBSUB NUMPAT`: distinct patterns subscribed to here (Redis counts patterns,
    /// not subscriptions).
    pub fn numpat(&self) -> usize {
        self.registry().patterns.len()
    }
}
