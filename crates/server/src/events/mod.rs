//! The events of the applied log, on this node: what subscribers (`SUBSCRIBE`,
//! `PSUBSCRIBE`, `RAFTKV.WATCH`) read.
//!
//! The state machine produces them at apply (`kv::events`), the driver tags each entry's
//! events with its index (`driver::AppliedEvents`), and the node loop feeds every batch
//! into the [`hub::Hub`], whose [`ring::EventRing`] keeps the recent ones; connections
//! read from it at their own pace (`resp/pubsub/`). Every node applies the same log, so
//! every node holds the same events at the same indexes: a watch can resume on any node
//! from the index it stopped at.

pub mod hub;
pub mod notify;
pub mod ring;

pub use hub::{Hub, OutputLimits};
pub use notify::NotifyFlags;

/// The events' lines of `/metrics`.
pub fn render_metrics(m: &crate::metrics::LoopMetrics, o: &mut String) {
    use crate::metrics::{counter, gauge};
    counter(
        o,
        "raftkv_pubsub_output_limit_disconnects_total",
        "Subscribers closed because their output buffer passed the pub/sub limits.",
        m.pubsub_output_limit_disconnects.get(),
    );
    counter(
        o,
        "raftkv_watch_trimmed_disconnects_total",
        "Watches closed because they fell behind the events this node keeps.",
        m.watch_trimmed_disconnects.get(),
    );
    counter(
        o,
        "raftkv_pubsub_messages_sent_total",
        "Messages sent to subscribers (pub/sub, keyspace notifications, watch events).",
        m.pubsub_messages_sent.get(),
    );
    gauge(
        o,
        "raftkv_events_ring_bytes",
        "Bytes of applied entries' events kept for subscribers and watches.",
        m.events_ring_bytes.get(),
    );
    gauge(
        o,
        "raftkv_events_oldest_index",
        "The oldest log index a watch may resume from on this node.",
        m.events_oldest_index.get(),
    );
}
