//! kv — the replicated state machine of raftkv: typed values (strings and hashes) with
//! deadlines and versions, the commands that change them, the queries that read them,
//! and the encodings that carry all three through the log, the transport and snapshots.
//!
//! The path from a client to the state machine is general: the RESP layer parses a
//! command into a [`Command`] (a write) or a [`Query`] (a read); the driver proposes a
//! write's bytes ([`Command::encode`]) or answers a read from the applied state; the
//! answer is a [`Reply`]. Adding a command touches this crate and the RESP parser only.
//! See `expiry.rs` for time and deadlines, `apply.rs` and `read.rs` for the semantics.

pub mod acl;
pub mod apply;
pub mod command;
pub mod expiry;
pub mod query;
pub mod read;
pub mod reply;
pub mod session;
pub mod snapshot;
mod snapshot_acl;
pub mod store;
pub mod varint;
mod wire;

pub use acl::{Acl, AclOp};
pub use command::{Command, DecodeError, ExpireCond, GetExTtl, Op, SetCond, SetTtl, When};
pub use query::{Query, TtlKind};
pub use reply::Reply;
pub use session::{encode_session_write, SessionTag, MAX_SESSIONS, SESSION_WINDOW};
pub use snapshot::{SnapshotError, SnapshotErrorKind};
pub use store::{Entry, KvStore, Outcome, Value};

#[cfg(test)]
mod apply_tests;
