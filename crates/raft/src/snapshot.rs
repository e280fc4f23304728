//! InstallSnapshot (§7 of the paper): how a leader brings a follower up to date when the
//! entries it lacks were compacted away.
//!
//! The leader streams its latest snapshot in chunks of `snapshot_chunk_bytes`, keeping at
//! most 8 (or `max_inflight_msgs`, if lower) of them in flight; the follower acknowledges
//! every chunk with the number of bytes it now holds, and the leader resumes from that
//! point after a loss (retransmission timer, as for appends).
//!
//! The follower does not buffer the chunks: it hands each in-order chunk to its driver
//! ([`crate::Ready::snapshot_chunks`]), which writes it to a sink (a temporary file in the
//! server, memory in the simulator), and acknowledges it only once the driver has done so
//! (a persisted message). So a transfer costs the follower one chunk of memory, not the
//! snapshot's size (up to `max_snapshot_bytes`, 8 GiB by default). On the last chunk it
//! asks the driver to install the snapshot from the sink ([`crate::Ready::snapshot`]) and
//! acknowledges the install only after the driver made it durable, with the snapshot's
//! index as its new match point. The driver then hands the installed snapshot back with
//! [`Raft::set_snapshot`], for the day this node leads and must stream it in turn.
//!
//! Invariants:
//! - a follower never installs a snapshot at or below its commit index (it already has
//!   all of it, identically); it answers such a transfer at once with its commit index;
//! - chunks go to the driver only in order: what the driver's sink holds for a `meta` is
//!   always a prefix of the leader's snapshot data for it, and a chunk at offset 0 starts
//!   a new transfer (the sink drops what it held).

use bytes::Bytes;

use crate::hostile;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::raft::{Raft, Role};
use crate::types::{Index, NodeId, SnapshotMeta};

/// Chunks in flight to one follower at most (fewer if `max_inflight_msgs` says so):
/// enough to fill a LAN round trip with 1 MiB chunks, few enough that a transfer does not
/// flood the bounded peer queues.
const MAX_CHUNKS_IN_FLIGHT: usize = 8;

/// One chunk of a snapshot arriving from the leader, for the driver to write to its sink
/// in order ([`crate::Ready::snapshot_chunks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot it belongs to; its membership is always known (ours at its index
    /// if the leader's meta carried none), and the same for every chunk of a transfer.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot's bytes: 0 starts a new transfer; otherwise
    /// exactly the bytes the sink holds for `meta`.
    pub offset: u64,
    /// The chunk's bytes.
    pub data: Bytes,
    /// The last chunk: `Ready::snapshot` asks to install it in the same Ready.
    pub done: bool,
}

/// A snapshot being received: which one, and how many bytes went to the driver.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    /// The meta as the leader sends it: the chunks of this transfer carry it.
    meta: SnapshotMeta,
    /// The same meta with a known membership: a snapshot that carries no configuration
    /// (its sender did not know the one at that index) keeps ours there, fixed when the
    /// transfer starts. The driver's sink, the installed snapshot and the one saved to
    /// disk all carry this one, so a restart from it knows the configuration.
    local: SnapshotMeta,
    received: u64,
}

impl Raft {
    /// Follower: one chunk of the leader's snapshot (same term: `handle_term` ran).
    pub(crate) fn handle_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
        stamp: u64,
    ) {
        if self.role() != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.last_leader_contact = Some(self.now);
        self.known_commit = self.known_commit.max(meta.index);
        self.reset_election_timer();
        let term = self.term;

        if meta.index <= self.log.committed {
            // Everything it covers is committed here already, hence identical: our commit
            // index is a match point. Durable once this Ready is persisted.
            self.incoming_snapshot = None;
            let index = self.log.committed;
            let body = snapshot_resp(index, 0, true, stamp);
            self.send_after_persist(from, term, body);
            return;
        }

        if !hostile::acceptable_membership(self.cfg.id, self.configs.iter(), &meta.membership) {
            // Installing it would make us the sole voter (split brain), or its
            // membership is not even well formed. Refuse, and forget any transfer in
            // progress.
            self.stats.snapshots_refused += 1;
            self.incoming_snapshot = None;
            self.send(from, snapshot_resp(0, 0, false, stamp));
            return;
        }

        if offset == 0 {
            let mut local = meta.clone();
            if local.membership.is_unknown() {
                local.membership = self.configs.at(meta.index).clone();
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: meta.clone(),
                local,
                received: 0,
            });
        }
        let held = match &self.incoming_snapshot {
            Some(inc) if inc.meta == meta => inc.received,
            // A chunk of a transfer we did not see start (or of an older snapshot).
            _ => {
                self.send(from, snapshot_resp(0, 0, false, stamp));
                return;
            }
        };
        if offset != held {
            // A duplicate is acknowledged; a gap (lost chunk) asks for a resend from what
            // we hold.
            let duplicate = offset < held;
            self.send(from, snapshot_resp(0, held, duplicate, stamp));
            return;
        }
        if held + data.len() as u64 > self.cfg.max_snapshot_bytes {
            self.incoming_snapshot = None;
            self.send(from, snapshot_resp(0, 0, false, stamp));
            return;
        }
        let inc = self.incoming_snapshot.as_mut().expect("matched above");
        inc.received += data.len() as u64;
        let held = inc.received;
        let local = inc.local.clone();
        self.snapshot_chunks.push(SnapshotChunk {
            meta: local.clone(),
            offset,
            data,
            done,
        });
        if !done {
            // Acknowledged once the driver wrote it to its sink (nothing durable is
            // promised: a restart starts the transfer over).
            self.send_after_persist(from, term, snapshot_resp(0, held, true, stamp));
            return;
        }
        self.incoming_snapshot = None;
        self.install_received_snapshot(local);
        self.send_after_persist(from, term, snapshot_resp(meta.index, held, true, stamp));
    }

    /// Replaces our log prefix and state with the snapshot the driver received whole
    /// (the driver installs it from its sink in this Ready). Its configuration becomes
    /// the one at its index; configurations of a log suffix we keep stay in force after
    /// it. `meta` is the local meta of the transfer (see [`IncomingSnapshot::local`]), so
    /// its membership is known.
    fn install_received_snapshot(&mut self, meta: SnapshotMeta) {
        // Held appends were checked against nothing yet, but the match point they rely
        // on may no longer be in our log: forget them and where we matched.
        self.inbox.clear();
        let kept = self.log.install_snapshot(meta.index, meta.term);
        self.configs
            .install(meta.index, meta.membership.clone(), kept);
        self.on_config_changed();
        self.snapshot_to_install = Some(meta);
    }

    /// Leader: sends `peer` the next chunks of our snapshot, as many as the window allows,
    /// starting a transfer if it is not in one (or is in one of an older snapshot).
    /// Returns whether a chunk went out.
    pub(crate) fn send_snapshot_chunks(&mut self, peer: NodeId) -> bool {
        let Some(snapshot) = self.snapshot.clone() else {
            // Cannot happen: the log is compacted only up to a snapshot we hold.
            return false;
        };
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        let chunks_in_flight = self.cfg.max_inflight_msgs.min(MAX_CHUNKS_IN_FLIGHT) as u64;
        let window = chunk.saturating_mul(chunks_in_flight);
        let total = snapshot.data.len() as u64;
        let now = self.now;
        let Some(pr) = self.progress_mut(peer) else {
            return false;
        };
        let same = pr.state
            == ProgressState::Snapshot {
                index: snapshot.meta.index,
            };
        // Answers carry no snapshot identity: a late one from a transfer of an older
        // (longer) snapshot can point past the end of this one. Start over then; any
        // other mix-up is corrected by the follower, which reports what it holds.
        if !same || pr.snapshot_sent > total {
            pr.become_snapshot(snapshot.meta.index);
        }
        let mut sent_any = false;
        while let Some(lead) = self.leadership.as_mut() {
            let Some(pr) = lead.progress.get_mut(&peer) else {
                break;
            };
            let offset = pr.snapshot_sent;
            let all_sent = offset >= total && (sent_any || pr.snapshot_last_sent);
            if all_sent || offset.saturating_sub(pr.snapshot_acked) >= window {
                break;
            }
            let end = (offset + chunk).min(total);
            let done = end == total;
            pr.snapshot_sent = end;
            pr.snapshot_last_sent = done;
            pr.note_sent(snapshot.meta.index);
            pr.last_sent_tick = now;
            if pr.unacked_since.is_none() {
                pr.unacked_since = Some(now);
            }
            let stamp = lead.stamps.issue(now);
            let data = snapshot.data.slice(offset as usize..end as usize);
            let body = MessageBody::Snapshot {
                meta: snapshot.meta.clone(),
                offset,
                data,
                done,
                stamp,
            };
            self.send(peer, body);
            sent_any = true;
            if done {
                break;
            }
        }
        sent_any
    }

    /// Leader: a follower answered a snapshot chunk.
    pub(crate) fn handle_snapshot_resp(
        &mut self,
        from: NodeId,
        index: Index,
        next_offset: u64,
        success: bool,
        stamp: u64,
    ) {
        if !self.is_leader() || (success && index > 0 && !self.sent_at_least(from, index)) {
            return;
        }
        if !self.note_answer(from, stamp) {
            return;
        }
        let now = self.now;
        let newest_stamp = self.leadership.as_ref().map_or(0, |l| l.stamps.last());
        let Some(pr) = self.progress_mut(from) else {
            return;
        };
        if !matches!(pr.state, ProgressState::Snapshot { .. }) {
            // A late answer from a transfer that already ended.
            return;
        }
        if success && index > 0 {
            // Installed (or it already held everything the snapshot covers): its log now
            // matches ours up to `index`.
            let advanced = pr.maybe_update(index);
            pr.become_replicate();
            pr.unacked_since = None;
            if advanced {
                self.maybe_commit();
            }
            self.send_append(from);
            self.check_pending_reads();
            return;
        }
        if success {
            pr.snapshot_acked = pr.snapshot_acked.max(next_offset);
            pr.snapshot_sent = pr.snapshot_sent.max(pr.snapshot_acked);
            pr.unacked_since = (pr.snapshot_acked < pr.snapshot_sent).then_some(now);
        } else {
            if stamp <= pr.snapshot_rewound_at_stamp {
                // A refusal of a chunk sent before our last rewind: the rewind already
                // answered it. Rewinding again for each of a window's out-of-order
                // chunks resent the window once per chunk, a storm that never finished
                // a transfer (kvsim seeds 20001617, 20003628, 20004349).
                return;
            }
            // It holds exactly `next_offset` bytes of the transfer: resume there.
            pr.rewind_snapshot(next_offset);
            pr.snapshot_rewound_at_stamp = newest_stamp;
            pr.unacked_since = None;
        }
        self.send_snapshot_chunks(from);
        self.check_pending_reads();
    }
}

fn snapshot_resp(index: Index, next_offset: u64, success: bool, stamp: u64) -> MessageBody {
    MessageBody::SnapshotResp {
        index,
        next_offset,
        success,
        stamp,
    }
}
