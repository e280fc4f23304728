//! The output of [`crate::check`].

use serde::{Deserialize, Serialize};

use crate::history::Operation;

/// Whether a history is linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Violation),
    /// `key` could not be decided: the time budget ran out, or its search
    /// memo hit the memory limit, or the history breaks the input contract
    /// (then `reason` starts with "malformed history"). Callers treat this
    /// as a failure.
    Unknown {
        key: Vec<u8>,
        reason: String,
    },
}

/// Proof that one key's sub-history is not linearizable.
///
/// `ops` is a subset of that key's operations that is not linearizable on its
/// own and that any linearization of the full history would have to
/// linearize too (see the shrinking rule in `shrink.rs`), so it is a genuine
/// witness, not an artefact of cutting the history. Sorted by `invoke_ns`.
/// `Display` renders it as a timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub key: Vec<u8>,
    pub ops: Vec<Operation>,
    pub explanation: String,
}
