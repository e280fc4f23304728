//! Cluster membership on the server side: what a member's metadata holds (its peer
//! address), and where a node's first configuration comes from.
//!
//! The configuration itself lives in the Raft log and in snapshots (raft's
//! `reconfig.rs`); every configuration carries each member's peer address as its opaque
//! metadata, so a node learns where new members listen from the log, and the `[peers]`
//! table is only a hint for finding them.
//!
//! # The first configuration (`file.rs`)
//!
//! A node's configuration before any configuration entry of its log (or at its snapshot
//! point, if it has no snapshot) is its *bootstrap membership*, kept in
//! `data_dir/membership` and written once:
//! - a node started on an empty data directory **without `--join`** bootstraps a new
//!   cluster: the voters are `[peers]` plus itself, with their addresses;
//! - a node started with `--join` learns the cluster from the member it asked
//!   (`join.rs`): its bootstrap membership is *unknown* (no voters) — it is a learner
//!   the leader adds, and takes its configuration from the leader's snapshot or log;
//! - a data directory from before this file existed (its log holds entries) records
//!   `[peers]` as its bootstrap membership, as it was started with it.
//!
//! After that `[peers]` is never used for the membership again: the file, the snapshots
//! and the log rule. For *addresses* it still counts: a member `[peers]` lists is dialled
//! at the address given there (the operator's word on where it listens now, e.g. after
//! a restart on other ports), every other member at the address its configuration
//! entry carries.

pub mod file;

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{Membership, NodeId};

use crate::config::Config;

/// A learner is promoted once it is at most this many entries behind the leader
/// (`raftkv member add`, `raftkv serve --join`).
pub const PROMOTE_LAG: u64 = 1_000;

/// A member's metadata: its peer address, as UTF-8.
pub fn metadata_of(peer_addr: &str) -> Bytes {
    Bytes::copy_from_slice(peer_addr.as_bytes())
}

/// The peer address in a member's metadata, if it holds one.
pub fn address_in(metadata: &[u8]) -> Option<String> {
    std::str::from_utf8(metadata)
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Every member's peer address that `m` carries.
pub fn addresses(m: &Membership) -> BTreeMap<NodeId, String> {
    m.metadata
        .iter()
        .filter_map(|(&id, meta)| address_in(meta).map(|a| (id, a)))
        .collect()
}

/// The configuration a new cluster is bootstrapped with: `[peers]` and this node, all
/// voters, each with its peer address.
pub fn from_peer_table(cfg: &Config) -> Membership {
    let mut m = Membership::new(cfg.voters());
    for (&id, addr) in &cfg.peers {
        m.metadata.insert(id, metadata_of(addr));
    }
    m.metadata.insert(cfg.id, metadata_of(&cfg.peer_addr));
    m
}

/// The bootstrap membership of `cfg`'s data directory (module docs): read from its file
/// (a node that joined has it from the join), or decided from `[peers]` and recorded now.
pub fn bootstrap_membership(cfg: &Config) -> Result<Membership, String> {
    if let Some(f) = file::read(&cfg.data_dir)? {
        return Ok(f.membership);
    }
    let from_before = has_data(&cfg.data_dir);
    let m = from_peer_table(cfg);
    file::write(
        &cfg.data_dir,
        &file::MembershipFile {
            membership: m.clone(),
            hints: BTreeMap::new(),
        },
    )?;
    if from_before {
        tracing::info!(
            voters = ?m.voters,
            "recorded [peers] as this data directory's bootstrap membership (a data directory \
             from before membership was persisted); from now on the log rules"
        );
    } else {
        tracing::info!(
            voters = ?m.voters,
            "bootstrapping a new cluster from [peers]; from now on the log rules"
        );
    }
    Ok(m)
}

/// Whether the data directory holds a log or snapshots (a node that ran before).
pub fn has_data(data_dir: &std::path::Path) -> bool {
    let nonempty =
        |p: std::path::PathBuf| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
    nonempty(data_dir.join("log")) || nonempty(data_dir.join("snap"))
}
