//! raft — the consensus core of raftkv.
//!
//! A sans-IO state machine: it takes ticks, messages and proposals, and hands back a
//! [`Ready`] batch of effects. It reads no clock, does no I/O and draws randomness only
//! from the seeded generator it is given, so a run is a function of its inputs.
//!
//! Files follow the paper: `election.rs` (§5.2, Pre-Vote), `replication.rs` (§5.3–5.4),
//! `read.rs` (§6.4 of the thesis), `snapshot.rs` (§7, InstallSnapshot), `log.rs`, `progress.rs`, `quorum.rs`.

pub mod config;
mod election;
pub mod log;
pub mod membership;
pub mod message;
pub mod progress;
pub mod quorum;
mod raft;
mod read;
mod replication;
pub mod rng;
mod snapshot;
pub mod stamp;
pub mod types;

pub use config::{Config, Fanout, PlantedBugs};
pub use log::RaftLog;
pub use membership::Membership;
pub use message::{Message, MessageBody};
pub use raft::{ProposeError, Raft, ReadState, Ready, Role};
pub use types::{Entry, EntryKind, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term};
