//! `GET /metrics`: the node's status and counters in the Prometheus text format.

use std::fmt::Write;

use crate::metrics::LoopMetrics;
use crate::metrics::{counter, gauge, ByReason};
use crate::status::Status;

/// A counter family split by `reason` (and `direction`, when given).
fn by_reason(o: &mut String, name: &str, help: &str, series: &[(Option<&str>, &ByReason)]) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
    for (direction, counts) in series {
        for (reason, n) in counts.by_reason() {
            match direction {
                Some(d) => {
                    let _ = writeln!(o, "{name}{{direction=\"{d}\",reason=\"{reason}\"}} {n}");
                }
                None => {
                    let _ = writeln!(o, "{name}{{reason=\"{reason}\"}} {n}");
                }
            }
        }
    }
}

pub fn render_metrics(s: &Status, m: &LoopMetrics) -> String {
    let mut o = String::with_capacity(8 << 10);
    gauge(&mut o, "raftkv_node_id", "This node's ID.", s.id);
    gauge(&mut o, "raftkv_term", "Current Raft term.", s.term);
    gauge(
        &mut o,
        "raftkv_is_leader",
        "1 if this node leads.",
        u8::from(s.role == "leader"),
    );
    gauge(
        &mut o,
        "raftkv_leader_id",
        "The leader this node knows (0: none).",
        s.leader.unwrap_or(0),
    );
    gauge(
        &mut o,
        "raftkv_commit_index",
        "Highest log index known committed.",
        s.commit_index,
    );
    gauge(
        &mut o,
        "raftkv_applied_index",
        "Highest log index applied.",
        s.applied_index,
    );
    gauge(
        &mut o,
        "raftkv_log_first_index",
        "First index held in the log.",
        s.first_index,
    );
    gauge(
        &mut o,
        "raftkv_log_last_index",
        "Last index in the log.",
        s.last_index,
    );
    gauge(
        &mut o,
        "raftkv_log_entries",
        "Entries held in the log.",
        s.log_entries,
    );
    gauge(
        &mut o,
        "raftkv_log_bytes",
        "Bytes of entries held in the log.",
        s.log_bytes,
    );
    gauge(
        &mut o,
        "raftkv_snapshot_index",
        "Log index covered by the latest snapshot (0: none).",
        s.snapshot_index,
    );
    counter(
        &mut o,
        "raftkv_snapshots_taken_total",
        "Snapshots of the state machine taken here.",
        s.snapshots_taken,
    );
    counter(
        &mut o,
        "raftkv_snapshots_installed_total",
        "Snapshots received from a leader and installed.",
        s.snapshots_installed,
    );
    counter(
        &mut o,
        "raftkv_followers_lost_log_total",
        "Followers found (while leading) to have lost log entries they had acknowledged.",
        s.followers_lost_log,
    );
    let name = "raftkv_core_refusals_total";
    let _ = writeln!(
        o,
        "# HELP {name} Peer messages the consensus core refused as impossible from an honest peer, by reason.\n# TYPE {name} counter"
    );
    for (reason, n) in s.refused_by_core.by_reason() {
        let _ = writeln!(o, "{name}{{reason=\"{reason}\"}} {n}");
    }
    gauge(&mut o, "raftkv_keys", "Keys in the state machine.", s.keys);
    gauge(
        &mut o,
        "raftkv_kv_bytes",
        "Bytes of keys and values in the state machine.",
        s.kv_bytes,
    );
    counter(
        &mut o,
        "raftkv_proposals_total",
        "Entries proposed by this node as leader.",
        s.proposals,
    );
    counter(
        &mut o,
        "raftkv_applied_entries_total",
        "Log entries applied.",
        s.applied_entries,
    );
    counter(
        &mut o,
        "raftkv_reads_served_total",
        "Linearizable reads served as leader.",
        s.reads_served,
    );
    counter(
        &mut o,
        "raftkv_client_requests_total",
        "Requests from this node's clients.",
        m.client_requests.get(),
    );
    counter(
        &mut o,
        "raftkv_stale_reads_total",
        "Reads served locally in stale mode.",
        m.stale_reads.get(),
    );
    counter(
        &mut o,
        "raftkv_forwarded_out_total",
        "Requests forwarded to the leader.",
        m.forwarded_out.get(),
    );
    counter(
        &mut o,
        "raftkv_forwarded_in_total",
        "Requests forwarded to us by followers.",
        m.forwarded_in.get(),
    );
    counter(
        &mut o,
        "raftkv_forward_timeouts_total",
        "Forwarded requests that got no answer in time.",
        m.forward_timeouts.get(),
    );
    counter(
        &mut o,
        "raftkv_elections_total",
        "Elections this node started (as candidate).",
        m.elections.get(),
    );
    counter(
        &mut o,
        "raftkv_leader_changes_total",
        "Times this node saw a new leader.",
        m.leader_changes.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_messages_dropped_inbound_total",
        "Peer messages dropped: node loop busy.",
        m.dropped_inbound.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_connections_refused_total",
        "Inbound peer connections closed at once: the connection limit was reached.",
        m.peer_connections_refused.get(),
    );
    by_reason(
        &mut o,
        "raftkv_peer_handshakes_refused_total",
        "Peer connections refused at the handshake, by direction (inbound: a peer dialled us; \
         outbound: we dialled it) and reason (tls, certificate, hello, deadline, cluster_id, \
         bootstrap_list, forgot_state, storage).",
        &[
            (Some("inbound"), &m.peer_handshakes_refused),
            (Some("outbound"), &m.peer_dials_refused),
        ],
    );
    by_reason(
        &mut o,
        "raftkv_admin_requests_refused_total",
        "Admin write requests refused, by reason (no_credential, bad_credential, not_loopback).",
        &[(None, &m.admin_refused)],
    );
    {
        use crate::metrics::ClientAccessDenied as D;
        let d = &m.client_access_denied;
        let name = "raftkv_client_access_denied_total";
        let _ = writeln!(
            o,
            "# HELP {name} RESP commands refused: failed AUTH (auth), a command before \
             authenticating (noauth), NOPERM for the command (command) or a key (key).\n\
             # TYPE {name} counter"
        );
        for (reason, c) in [
            ("auth", &d.auth),
            ("noauth", &d.noauth),
            ("command", &d.command),
            ("key", &d.key),
        ] {
            let _ = writeln!(o, "{name}{{reason=\"{reason}\"}} {}", D::get(c));
        }
    }
    counter(
        &mut o,
        "raftkv_peer_frames_rejected_total",
        "Peer frames refused after the handshake (bad encoding, protocol breach); the connection is dropped.",
        m.peer_frames_rejected.get(),
    );
    counter(
        &mut o,
        "raftkv_client_tls_handshakes_refused_total",
        "RESP and admin connections whose TLS handshake failed.",
        m.client_tls_refused.get(),
    );
    counter(
        &mut o,
        "raftkv_client_memory_refusals_total",
        "Client connections closed because all clients together reached limits.max_client_memory_bytes.",
        m.client_memory_refused.get(),
    );
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_connected 1 if the connection to the peer is up."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_connected gauge");
    for p in &s.peers {
        let _ = writeln!(
            o,
            "raftkv_peer_connected{{peer=\"{}\"}} {}",
            p.id,
            u8::from(p.connected)
        );
    }
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_frames_dropped_total Frames dropped from a full send queue."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_frames_dropped_total counter");
    for p in &s.peers {
        let _ = writeln!(
            o,
            "raftkv_peer_frames_dropped_total{{peer=\"{}\"}} {}",
            p.id, p.dropped_frames
        );
    }
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_lag Entries the peer is behind the leader's log (leader only)."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_lag gauge");
    for p in &s.peers {
        if let Some(lag) = p.lag {
            let _ = writeln!(o, "raftkv_peer_lag{{peer=\"{}\"}} {lag}", p.id);
        }
    }
    m.commit_latency.render(
        "raftkv_commit_latency_seconds",
        "Client write latency, from arrival here to the committed answer.",
        &mut o,
    );
    m.read_latency.render(
        "raftkv_read_latency_seconds",
        "Client read latency, from arrival here to the answer.",
        &mut o,
    );
    m.fsync_latency.render(
        "raftkv_fsync_latency_seconds",
        "Time spent in fdatasync of the log (empty until the log is on disk).",
        &mut o,
    );
    crate::events::render_metrics(m, &mut o);
    o
}
