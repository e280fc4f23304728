//! raft — the consensus core of raftkv.
//!
//! A sans-IO state machine: it takes ticks, messages and proposals, and hands back a
//! [`Ready`] batch of effects. It reads no clock, does no I/O and draws randomness only
//! from the seeded generator it is given, so a run is a function of its inputs.
//!
//! Files follow the paper: `election.rs` (§5.2, Pre-Vote), `replication.rs` (§5.3–5.4,
//! leader side) and `append.rs` (follower side), `leader_timer.rs` (heartbeats,
//! retransmission, CheckQuorum), `read.rs` (§6.4 of the thesis), `snapshot.rs` (§7,
//! InstallSnapshot), `reconfig.rs` and `confchange.rs` (§4 of the thesis, membership
//! changes by joint consensus) with `config_history.rs`. Smaller pieces: `leadership.rs` (the state a node holds only while
//! leading or campaigning), `relay.rs` (chain replication), `rtt.rs` (RFC 6298),
//! `log.rs`, `progress.rs`, `quorum.rs`, `stamp.rs`, `rng.rs`, `hostile.rs` (what a
//! misbehaving peer may not do: absurd terms, forged acknowledgements, malformed
//! appends, foreign memberships) and `invariants.rs` (checked after every input in
//! debug builds).
//!
//! # No I/O, by construction
//!
//! The crate is `#![no_std]`: it links only `core` and `alloc` (and `bytes` without its
//! `std` feature). A clock (`std::time::Instant`), a file, a socket, a thread or the
//! global RNG therefore cannot be imported here — `use std::time::Instant;` anywhere in
//! `src/` makes `cargo build -p raft` fail ("cannot find module or crate `std`"). That failing
//! compile *is* the check CI runs; nothing needs to grep for it. Unit tests alone may use
//! `std` (`extern crate std` under `#[cfg(test)]`).

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod append;
mod confchange;
mod config;
mod config_history;
mod election;
mod hostile;
mod inbox;
mod invariants;
mod leader_timer;
mod leadership;
mod log;
mod membership;
mod message;
mod progress;
mod quorum;
mod raft;
mod read;
mod reconfig;
mod relay;
mod replication;
mod rng;
mod rtt;
mod snapshot;
mod stamp;
mod transfer;
mod types;

pub use confchange::{ConfChange, ConfChangeError};
pub use config::{Config, Fanout, PlantedBugs};
pub use log::RaftLog;
pub use membership::{is_valid_transition, majorities_intersect, Membership};
pub use message::{Message, MessageBody};
pub use raft::{CoreStats, ProposeError, Raft, ReadState, Ready, Role};
pub use snapshot::SnapshotChunk;
pub use transfer::TransferError;
pub use types::{Entry, EntryKind, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};
