//! The commands: what each one asks of the node, and how its answer becomes a reply.
//!
//! One file per concern, each with one `run` that matches the command names it owns and
//! returns `None` for the others; `dispatch.rs` looks the name up in the command table
//! (`table.rs`) and asks the concern its row names. To add a command, add its row (in
//! `table.py`) and its arm in the concern's `run` (and, if it may be pipelined
//! concurrently, a line in `class.rs`).
//!
//! - `table.rs`: every command, the concern that runs it, and what `COMMAND` says of it
//!   (`table_data.rs`, written by `table.py` from a real Redis's `COMMAND INFO`);
//! - `dispatch.rs`: the entry point (`execute`) and the routing (by the table);
//! - `class.rs`: how a command orders against its neighbours in a pipeline;
//! - `node_calls.rs`: the requests to the node, the argument limits, `join_all`;
//! - `typed.rs`: the typed model's commands parsed into `kv::Command`/`kv::Query`
//!   (strings, keys, expiry, hashes), and `kv::Reply` as a RESP value;
//! - `data.rs`: runs them (one request, one log entry per write);
//! - `txn.rs`: MULTI/EXEC/DISCARD/WATCH/UNWATCH (one log entry per EXEC);
//! - `cas.rs`: CAS (ours);
//! - `keyspace.rs`: SCAN, KEYS;
//! - `connection.rs`: PING, ECHO, SELECT, HELLO, CLIENT;
//! - `acl.rs`: AUTH, ACL (the users; the check before every command is `resp/acl/`);
//! - `server_info.rs`: INFO, COMMAND, CONFIG.

mod acl;
mod cas;
mod class;
mod connection;
mod data;
mod dispatch;
mod keyspace;
mod node_calls;
mod server_info;
pub mod table;
mod table_data;
mod txn;
pub mod typed;

use std::time::Instant;

use raft::NodeId;

use super::codec::Value;
use crate::handle::NodeHandle;

pub use class::{classify, Class};
pub use dispatch::execute;
pub(crate) use node_calls::join_all;
pub use server_info::info;
pub use txn::Txn;

/// What every connection shares.
pub struct RespCtx {
    pub node: NodeHandle,
    pub me: NodeId,
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub max_request_bytes: usize,
    pub max_pipeline: usize,
    /// Connections accepted at once (`INFO clients`).
    pub max_clients: usize,
    pub client_port: u16,
    pub started: Instant,
    /// SCAN cursors in flight (see `scan.rs`).
    pub cursors: super::scan::Cursors,
    /// The connections open now.
    pub clients: std::sync::Arc<super::client::Clients>,
    /// The bound across every connection's buffered bytes (`memory.rs`).
    pub memory: super::memory::ClientMemory,
    /// The users, as the node loop last published them (`resp/acl/users.rs`).
    pub users: super::acl::users::UsersRx,
    /// This node's bootstrap rules for the `default` user (`requirepass`), carried by
    /// the ACL entries it proposes.
    pub bootstrap: Vec<bytes::Bytes>,
}

/// The reply, and whether to close the connection after sending it.
pub struct Outcome {
    pub value: Value,
    pub close: bool,
}

impl From<Value> for Outcome {
    fn from(value: Value) -> Self {
        Outcome {
            value,
            close: false,
        }
    }
}

/// A command's error reply: a failed call, a `Fail` answer, or bad arguments.
#[derive(Debug)]
struct Failed(Value);

type Res<T> = Result<T, Failed>;

/// A command's name (or a keyword), upper-cased for matching.
fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

fn wrong_args(name: &str) -> Value {
    Value::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// `Ok` if the argument count is right, else the wrong-arity error for `name`.
fn arity(name: &str, ok: bool) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(Failed(wrong_args(name)))
    }
}

/// An integer argument or stored value, read as Redis reads one (`string2ll`): an
/// optional `-`, then digits with no leading zero (`0` alone is fine), nothing else —
/// so `+1`, `01`, `-0` and ` 1` are not integers, though Rust's `parse` takes some.
fn parse_i64(b: &[u8]) -> Res<i64> {
    strict_i64(b).ok_or_else(|| Failed(Value::err("value is not an integer or out of range")))
}

fn strict_i64(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = b == b"0"
        || (matches!(digits.first(), Some(b'1'..=b'9')) && digits.iter().all(u8::is_ascii_digit));
    if !canonical {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn integers_are_read_as_redis_reads_them() {
        for (text, want) in [
            ("0", Some(0)),
            ("-12", Some(-12)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("+1", None),
            ("01", None),
            ("-0", None),
            (" 1", None),
            ("", None),
            ("-", None),
            ("1.5", None),
        ] {
            assert_eq!(super::strict_i64(text.as_bytes()), want, "{text:?}");
        }
    }
}
