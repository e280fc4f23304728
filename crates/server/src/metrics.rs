//! Counters and latency histograms, shared lock-free between the node loop, the client
//! connections and the admin endpoint, and rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds: 50 µs to 10 s, roughly ×2.5 apart.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// A fixed-bucket histogram. Observations are independent atomic adds: a scrape may see
/// one observation in `count` but not yet in its bucket, which Prometheus tolerates.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Approximate quantile (the upper bound of the bucket holding it), in seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter split by a `reason` label (refusals: rare, so a mutex is cheap enough).
#[derive(Default)]
pub struct ByReason {
    total: AtomicU64,
    by: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl ByReason {
    pub fn inc(&self, reason: &'static str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        *by.entry(reason).or_insert(0) += 1;
    }
    /// All reasons together.
    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    pub fn reason(&self, reason: &str) -> u64 {
        let by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        by.get(reason).copied().unwrap_or(0)
    }
    pub fn by_reason(&self) -> Vec<(&'static str, u64)> {
        let by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        by.iter().map(|(&r, &n)| (r, n)).collect()
    }
}

/// RESP refusals since start, by kind (Redis's `INFO stats` names them
/// `acl_access_denied_*`; `/metrics` exports them as `raftkv_client_access_denied_total`).
#[derive(Debug, Default)]
pub struct ClientAccessDenied {
    /// Failed `AUTH` / `HELLO AUTH`.
    pub auth: AtomicU64,
    /// `NOAUTH`: a command before authenticating, where a password is required.
    pub noauth: AtomicU64,
    /// `NOPERM` for the command.
    pub command: AtomicU64,
    /// `NOPERM` for a key.
    pub key: AtomicU64,
}

impl ClientAccessDenied {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, set by its owner.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

pub fn gauge(out: &mut String, name: &str, help: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// Counters and histograms the loop and the network tasks update.
#[derive(Default)]
pub struct LoopMetrics {
    pub client_requests: Counter,
    pub forwarded_out: Counter,
    pub forwarded_in: Counter,
    pub forward_timeouts: Counter,
    /// Forwards sent again (the leader moved, or no answer within the retry time).
    pub forward_resends: Counter,
    /// Forward answers from a node the request was not sent to (or to an unknown id).
    pub stray_forward_answers: Counter,
    pub elections: Counter,
    pub leader_changes: Counter,
    pub dropped_inbound: Counter,
    /// Inbound peer connections closed at once: the connection limit was reached.
    pub peer_connections_refused: Counter,
    /// Inbound peer connections whose handshake failed, by reason: `tls`, `certificate`,
    /// `hello` (malformed, unknown node, another node's), `deadline`, and the cluster
    /// identity's `cluster_id`, `bootstrap_list`, `forgot_state`, `storage` (`cluster_id/`).
    pub peer_handshakes_refused: ByReason,
    /// Outbound peer connections this node closed at the handshake because of the
    /// answer: the peer's identity (`cluster_id`, `bootstrap_list`, `forgot_state`, `storage`) or a
    /// malformed answer (`hello`).
    pub peer_dials_refused: ByReason,
    /// Admin write requests refused (`admin/auth.rs`): `no_credential`,
    /// `bad_credential`, `not_loopback`.
    pub admin_refused: ByReason,
    /// Frames from an authenticated peer that did not decode or broke the protocol (an
    /// append that is not a log slice, a message not from the sender): the connection
    /// is dropped.
    pub peer_frames_rejected: Counter,
    /// RESP and admin connections whose TLS handshake failed (plaintext to a TLS port,
    /// an untrusted certificate, the deadline).
    pub client_tls_refused: Counter,
    /// RESP commands refused by authentication or permissions (`resp/acl/gate.rs`).
    pub client_access_denied: ClientAccessDenied,
    /// Client connections closed because all clients together held
    /// `limits.max_client_memory_bytes` for a second (`resp/memory.rs`).
    pub client_memory_refused: Counter,
    pub stale_reads: Counter,
    /// Subscribers closed because their output buffer passed the pub/sub limits
    /// (Redis's `client-output-buffer-limit pubsub`).
    pub pubsub_output_limit_disconnects: Counter,
    /// Watches closed because they fell behind the events this node keeps.
    pub watch_trimmed_disconnects: Counter,
    /// Messages sent to subscribers (pub/sub, keyspace notifications, watch events).
    pub pubsub_messages_sent: Counter,
    /// Bytes of events the ring holds, and the oldest index a watch may resume from.
    pub events_ring_bytes: Gauge,
    pub events_oldest_index: Gauge,
    /// Submit to answer, for writes answered here (forwarding included).
    pub commit_latency: Histogram,
    pub read_latency: Histogram,
    /// Time in `fdatasync`; stays empty until the node persists to a file store.
    pub fsync_latency: Histogram,
}

impl LoopMetrics {
    pub fn inc_dropped_inbound(&self) {
        self.dropped_inbound.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(100));
        let mut out = String::new();
        h.render("x", "test", &mut out);
        assert!(out.contains("x_bucket{le=\"0.00005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert_eq!(h.quantile(0.5), Some(0.005));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
    }
}
