//! Where a key's history may be cut into independently searchable segments.
//!
//! A cut sits just before completed op `ops[i]` (ops sorted by invocation)
//! when every completed op before it, `ops[..i]`, completed strictly before
//! `ops[i].invoke` — and so, since later ops are invoked no earlier, strictly
//! before every op from `i` on. With the crate's convention (`a` precedes
//! `b` iff `a.complete < b.invoke`), every completed op before the cut then
//! precedes every op after it, so any linearization takes effect for the
//! completed ops segment by segment. Indeterminate ops never complete and
//! never block a cut; `split::run` carries them across.

use std::ops::Range;

use crate::model::KeyOp;

/// Splits `ops` (one key, sorted by invocation) into segments at every cut.
///
/// Invariants of the result: the ranges are contiguous and cover `ops`, and
/// each holds at least one completed op (cuts are placed only before a
/// completed op, and only after one). Indeterminate ops invoked after the
/// last completion of a segment stay in that segment: its search cannot
/// place them (its last return comes first), so they are simply carried.
/// Empty iff no op completed.
pub(crate) fn segments(ops: &[KeyOp]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    // Latest completion among the completed ops of `ops[..i]`.
    let mut reach: Option<u64> = None;
    for (i, op) in ops.iter().enumerate() {
        let Some(done) = op.completed_at() else {
            continue;
        };
        if reach.is_some_and(|r| r < op.invoke) {
            out.push(start..i);
            start = i;
        }
        reach = Some(reach.map_or(done, |r| r.max(done)));
    }
    if reach.is_some() {
        out.push(start..ops.len());
    }
    out
}
