//! kv — the replicated state machine of raftkv.

pub mod command;
pub mod session;
pub mod snapshot;
pub mod store;

pub use command::{Command, DecodeError};
pub use session::{encode_session_write, SessionTag, MAX_SESSIONS, SESSION_WINDOW};
pub use snapshot::{SnapshotError, SnapshotErrorKind};
pub use store::{KvStore, Outcome};
