//! Cutting a long failing prefix down to the ops after an *anchor*, before
//! shrinking it op by op.
//!
//! An anchor is a segment whose only completed op is a blind write `w`
//! (`Put`/`Delete`): every later op is invoked after `w` completes, and the
//! key holds `w`'s value right after it, whatever came before. The witness
//! keeps `w` and every op invoked after the cut before it, the
//! indeterminate ops invoked before the cut that may still take effect
//! after it (`Future::alive_after`), and for readability the last `Put` of
//! each value a kept op observes but none writes; it drops the rest.
//!
//! Sound: take a canonical linearization of the larger history. Dead
//! indeterminate ops do not take effect after `w` in it. Restrict it to the
//! kept ops: the kept ops before `w` are `Put`s and indeterminate ops, whose
//! responses hold in any state, and `w` then overwrites the state, so every
//! kept op after `w` sees what it saw before. So if the kept ops are not
//! linearizable, neither is the larger history: a genuine witness.

use super::cuts;
use super::future::Future;
use crate::model::{Effect, KeyOp};

/// Candidate witnesses after each anchor of `ops` (sorted by invocation),
/// latest anchor (smallest witness) first, at most `max` of them.
pub(crate) fn after_anchors<'a>(ops: &[KeyOp<'a>], max: usize) -> Vec<Vec<KeyOp<'a>>> {
    let segments = cuts::segments(ops);
    let future = Future::new(ops, &segments);
    let mut out = Vec::new();
    for (k, segment) in segments.iter().enumerate().skip(1).rev() {
        if out.len() == max {
            break;
        }
        let mut completed = ops[segment.clone()].iter().filter(|o| o.is_completed());
        let (Some(w), None) = (completed.next(), completed.next()) else {
            continue;
        };
        if !matches!(w.effect, Effect::Write(_)) {
            continue;
        }
        let before = &ops[..segment.start];
        let kept = &ops[segment.start..];
        let written = |v| {
            kept.iter().any(|o| match o.effect {
                Effect::Write(x) | Effect::Cas { new: x, .. } => x == v,
                Effect::Read(_) => false,
            })
        };
        let mut earlier: Vec<usize> = (0..segment.start)
            .filter(|&i| !before[i].is_completed() && future.alive_after(i, k))
            .collect();
        for v in kept
            .iter()
            .filter(|o| o.is_completed())
            .filter_map(|o| o.effect.observed())
        {
            if written(v) {
                continue;
            }
            let last = (0..segment.start)
                .rev()
                .find(|&i| before[i].is_completed() && before[i].effect == Effect::Write(v));
            if let Some(i) = last {
                if !earlier.contains(&i) {
                    earlier.push(i);
                }
            }
        }
        earlier.sort_unstable();
        let witness = earlier
            .iter()
            .map(|&i| before[i].clone())
            .chain(kept.iter().cloned())
            .collect();
        out.push(witness);
    }
    out
}
