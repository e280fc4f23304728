//! raft — the consensus core of raftkv.
//!
//! A sans-IO state machine: it takes ticks, messages and proposals, and hands back a
//! [`Ready`] batch of effects. It reads no clock, does no I/O and draws randomness only
//! from the seeded generator it is given, so a run is a function of its inputs.

pub mod membership;
pub mod types;

pub use membership::Membership;
pub use types::{Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term};
