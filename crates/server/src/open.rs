//! Opening a node from its config: the core's settings, the log and snapshots recovered
//! from `data_dir`, the driver and its routing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driver::{Node, NodeOptions, RoutedNode, RoutingOptions, SnapshotPolicy};
use raft::NodeId;
use storage::FileSnapshotStore;
use tokio::sync::mpsc;

use crate::config::{Config, ReadMode};
use crate::handle::Event;
use crate::metrics::LoopMetrics;
use crate::snapshots::BackgroundSnapshots;
use crate::store::TimedStore;
use crate::transport::peer::PeerRouter;

/// A cluster node: peers over TCP, log in files, requests routed to the leader.
pub type ClusterNode = RoutedNode<PeerRouter, TimedStore>;

/// The single place a node is built from the config: opens the log under
/// `data_dir/log` (recovering it: a torn tail is cut with a warning, corruption refuses
/// to start with an error naming file and offset) and restores the node from it.
pub fn open_node(
    cfg: &Config,
    router: PeerRouter,
    metrics: Arc<LoopMetrics>,
    events: mpsc::Sender<Event>,
) -> Result<ClusterNode, String> {
    let ms = |d: Duration| (d.as_millis() as u64).max(1);
    let election = ms(cfg.raft.election_timeout);
    let mut rc = raft::Config::new(cfg.id);
    rc.seed = election_seed(cfg.id);
    rc.election_timeout_ticks = election;
    rc.heartbeat_interval_ticks = ms(cfg.raft.heartbeat);
    rc.retransmit_ticks = ms(cfg.raft.retransmit);
    // Lease reads only in lease mode: linearizable mode takes a ReadIndex round for
    // every read, so it does not depend on bounded clock drift. 10% of the election
    // timeout is the drift margin.
    rc.lease_ticks = match cfg.read_mode {
        ReadMode::Lease => election * 9 / 10,
        ReadMode::Linearizable | ReadMode::Stale => 0,
    };
    rc.max_msg_bytes = cfg.raft_max_msg_bytes();
    rc.max_uncommitted_bytes = (64 << 20).max(4 * rc.max_msg_bytes);
    // Appends in flight to one follower: a follower catching up gets a window that
    // doubles each round trip up to this, so keep it within what the peer queue holds
    // (64 MiB or four frames) rather than 256 full messages.
    rc.max_inflight_msgs = ((64 << 20) / rc.max_msg_bytes).clamp(4, 256);
    rc.fanout = raft::Fanout::All;
    rc.snapshot_chunk_bytes = cfg.snapshot.chunk_bytes;
    rc.max_snapshot_bytes = cfg.snapshot.max_bytes;
    rc.validate().map_err(|e| format!("raft settings: {e}"))?;
    let dir = cfg.data_dir.join("log");
    let (store, report) = TimedStore::open(&dir, metrics)
        .map_err(|e| format!("cannot open the log in {}: {e}", dir.display()))?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            file = %torn.file.display(),
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            "recovery cut a torn final record: {}",
            torn.reason
        );
    }
    tracing::info!(
        dir = %dir.display(),
        created = report.created,
        first_index = report.first_index,
        last_index = report.last_index,
        term = report.hard_state.term,
        commit = report.hard_state.commit,
        segments = report.segments,
        bytes = report.bytes,
        "log recovered in {:?}",
        report.elapsed
    );
    let hold = (2 * election).min(cfg.limits.request_timeout.as_millis() as u64 / 2);
    let opts = NodeOptions {
        hold_ticks: hold.max(1),
        fresh_leader_ticks: (3 * ms(cfg.raft.heartbeat)).max(election / 2),
        snapshot: SnapshotPolicy {
            every_entries: cfg.snapshot.every_entries,
            keep_entries: cfg.snapshot.keep_entries,
        },
        ..NodeOptions::default()
    };
    let snap_dir = cfg.data_dir.join("snap");
    let snapshots = FileSnapshotStore::open(&snap_dir)
        .map_err(|e| format!("cannot open snapshots in {}: {e}", snap_dir.display()))?;
    let started = Instant::now();
    // The configuration at the log's start: recorded at the first start (`members/`);
    // a snapshot's replaces it, and the log's configuration entries apply after it.
    let bootstrap = crate::members::bootstrap_membership(cfg)?;
    let mut node = Node::open_with_snapshots(
        rc,
        bootstrap,
        router,
        store,
        Box::new(BackgroundSnapshots::new(snapshots, events)),
        opts,
    )
    .map_err(|e| {
        format!(
            "cannot restore the node from {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    // Keyspace notifications and the watch (`events/`): from the snapshot restored on,
    // the replay of the log after it included.
    node.record_events();
    tracing::info!(
        snapshot_index = node.raft().snapshot().map_or(0, |s| s.meta.index),
        keys = node.kv().len(),
        voters = ?node.raft().membership().voters,
        learners = ?node.raft().membership().learners,
        "state machine restored in {:?}",
        started.elapsed()
    );
    let routing = RoutingOptions {
        // A lost frame (a reset connection, a full queue) costs this much; a leader
        // change moves every forward at once.
        retry_ticks: 2 * election,
        timeout_ticks: cfg.limits.request_timeout.as_millis() as u64,
        ..RoutingOptions::default()
    };
    Ok(RoutedNode::new(
        node,
        routing,
        election_seed(cfg.id).rotate_left(17),
    ))
}

/// Election timeouts must differ between nodes and between restarts.
fn election_seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
