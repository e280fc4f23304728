//! Test-only helpers: a terse history builder, a brute-force reference
//! checker and random history generators.

pub mod brute;
pub mod build;
pub mod generate;

use lincheck::{Operation, Violation};

/// A witness must be ops of the history, all on the reported key, and not
/// linearizable on its own.
pub fn assert_valid_witness(history: &[Operation], violation: &Violation) {
    assert!(!violation.ops.is_empty(), "empty witness");
    for op in &violation.ops {
        assert_eq!(op.key, violation.key, "witness op on another key: {op:?}");
        assert!(
            history.contains(op),
            "witness op not in the history: {op:?}"
        );
    }
    assert!(
        !brute::linearizable(&violation.ops),
        "witness is linearizable on its own:\n{violation}"
    );
}
