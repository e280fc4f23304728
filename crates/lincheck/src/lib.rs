//! Linearizability checker for raftkv key-value histories.
//!
//! [`check`] decides whether a concurrent history of `Get`/`Put`/`Delete`/
//! `Cas` operations could have come from a single atomic register per key
//! (initially absent), honouring real-time order: op `a` precedes op `b`
//! iff `a.complete_ns < b.invoke_ns`; ops whose intervals touch or overlap
//! are concurrent.
//!
//! Each key is checked on its own (P-compositionality) with Wing & Gong's
//! search plus Lowe's memoisation of (linearized set, state), the approach
//! of Lowe 2017 and the porcupine checker. A key with quiet points is cut
//! there and searched segment by segment, carrying the set of possible
//! states across each cut (`split/`). Indeterminate ops (no response)
//! may take effect at any time after their invocation, or never. A
//! violation is shrunk to a small witness that still proves it; see
//! `README.md` for the details and the shrinking rule.

mod budget;
mod canonical;
mod check;
mod display;
mod events;
mod explain;
mod format;
mod history;
mod model;
mod search;
mod shrink;
mod split;
#[cfg(test)]
mod test_support;
mod verdict;

pub use check::check;
pub use history::{Call, Operation, Ret};
pub use verdict::{Verdict, Violation};
