//! Users and permissions on RESP, in Redis's ACL model: who a connection is
//! (`AUTH`, `HELLO AUTH`), and what it may run and touch.
//!
//! - `users.rs`: the users this node's connections see (the replicated ones, or the
//!   configured bootstrap), published by the node loop; closing connections of deleted
//!   users;
//! - `permissions.rs`: a user's rules decided for the command table, and the keys a
//!   command touches;
//! - `gate.rs`: the check before every command (`NOAUTH`, `NOPERM`), and `AUTH` itself.
//!
//! The commands (`AUTH`, `ACL ...`) are in `commands/acl.rs`; the replicated state and
//! its rules in `kv::acl`.

pub mod gate;
pub mod permissions;
pub mod users;
