//! kv — the replicated state machine of raftkv.

pub mod command;
pub mod store;

pub use command::{Command, DecodeError};
pub use store::{KvStore, Outcome};
