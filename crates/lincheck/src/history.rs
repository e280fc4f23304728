//! The input: a concurrent history of key-value operations as a client saw it.

use serde::{Deserialize, Serialize};

/// What a client asked for. Every call addresses exactly one key
/// (`Operation::key`); keys are independent registers whose initial value is
/// "absent".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Read the key.
    Get,
    /// Set the key to the value.
    Put(Vec<u8>),
    /// Make the key absent.
    Delete,
    /// Set the key to `new` if it currently holds `expected`
    /// (`None` = "only if absent").
    Cas {
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

/// What the client was told. Must match the kind of the call:
/// `Get` → `Value`, `Put`/`Delete` → `Done`, `Cas` → `Cas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// Result of a `Get`; `None` = key absent. `Some(vec![])` is a present,
    /// empty value and is distinct from `None`.
    Value(Option<Vec<u8>>),
    /// A `Put` or `Delete` was acknowledged.
    Done,
    /// Whether a `Cas` swapped.
    Cas(bool),
}

/// One call with its response (if any) and its real-time interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique within a history.
    pub id: u64,
    pub client: u64,
    pub key: Vec<u8>,
    pub call: Call,
    /// `None` = indeterminate: never acknowledged (timed out, failed, client
    /// crashed). It may have taken effect at any time after `invoke_ns`, or
    /// never.
    pub ret: Option<Ret>,
    pub invoke_ns: u64,
    /// `None` iff `ret` is `None` (then treated as +infinity).
    pub complete_ns: Option<u64>,
}
