//! Shrinking a non-linearizable key history to a small witness.
//!
//! Rule: an op is removed only if (a) the remainder is still not
//! linearizable, and (b) the removal is *sound*: every linearization of the
//! larger history, restricted to the remainder, is still a linearization of
//! it. Then "remainder not linearizable" implies "original not
//! linearizable", so the witness proves the original violation and is not an
//! artefact of the cut. (Dropping an arbitrary op is not sound: dropping the
//! `put a` before a `get -> a` manufactures a "read of a value never
//! written" that the original never had. Greedy shrinking with unrestricted
//! removal converges on exactly such fake witnesses.)
//!
//! Sound removals, with the reason they are sound:
//! 1. A completed op that cannot change the state (`Get`, or `Cas` that
//!    returned false): deleting it from a linearization changes no state
//!    seen by the others.
//! 2. An op invoked after the completion of every other remaining completed
//!    op: real-time order places it after all of them in any linearization,
//!    so it cannot influence what they observed; the indeterminate ops left
//!    unconstrained stay unconstrained.
//! 3. A completed op `w` that writes (`Put`, `Delete`, `Cas` that swapped)
//!    and that real time forces to be overwritten before anyone looks: some
//!    completed blind write `w2` (`Put`/`Delete`) starts after `w`
//!    completes, and every other op that observes the state (`Get`, `Cas`)
//!    completes before `w` starts or starts after `w2` completes. In any
//!    linearization only blind writes can then sit between `w` and `w2`;
//!    they ignore the state and `w2` overwrites it, so no op can tell
//!    whether `w` happened (and dropping `w`'s own CAS check only removes a
//!    constraint). Not applied while a remaining op reads or CAS-expects the
//!    value `w` writes: soundness does not need this, but it keeps the write
//!    behind a stale value, so a stale read shows as a stale read and not as
//!    a read of a value that no op in the witness wrote.
//!
//! Other ops are kept, notably writes whose value some remaining op may
//! observe; so a witness keeps the writes that lead up to the violation.
//! Every candidate costs one full search, so shrinking stops when the shared
//! budget runs out; the witness is valid (if less small) at every step.

use crate::budget::Budget;
use crate::model::{Effect, KeyOp, Val};
use crate::search::{self, Outcome, Trace};
use crate::split::{self, anchor, Decision, First};

/// Above this many ops a witness is first shrunk in chunks, each candidate
/// decided segment by segment; one op at a time with a whole-key search per
/// candidate is quadratic or worse on a long key.
const ONE_BY_ONE_MAX_OPS: usize = 64;

/// How many anchors (latest first) `by_chunks` tries to cut at.
const ANCHORS_TRIED: usize = 8;

/// A witness and the search trace that proved it non-linearizable.
pub(crate) struct Shrunk<'a> {
    pub ops: Vec<KeyOp<'a>>,
    /// `None` if the whole-key search could not decide the final witness
    /// (it was proved by the segment search only).
    pub trace: Option<Trace>,
    /// False if a search gave up (time or memory) before no removal was
    /// possible.
    pub finished: bool,
}

/// Shrinks `ops` (sorted by invoke, not linearizable; `trace` is the
/// whole-key search's proof, if it ran).
pub(crate) fn shrink<'a>(
    ops: Vec<KeyOp<'a>>,
    trace: Option<Trace>,
    budget: &mut Budget,
) -> Shrunk<'a> {
    let trace = trace.or_else(|| {
        if ops.len() > ONE_BY_ONE_MAX_OPS {
            return None;
        }
        match search::run(&ops, budget) {
            Outcome::NotLinearizable(trace) => Some(trace),
            Outcome::Linearizable | Outcome::GaveUp(_) => None,
        }
    });
    match trace {
        Some(trace) if ops.len() <= ONE_BY_ONE_MAX_OPS => one_by_one(ops, trace, budget),
        _ => {
            let (ops, finished) = by_chunks(ops, budget);
            let trace = match search::run(&ops, budget) {
                Outcome::NotLinearizable(trace) => Some(trace),
                Outcome::Linearizable | Outcome::GaveUp(_) => None,
            };
            Shrunk {
                finished: finished && trace.is_some(),
                ops,
                trace,
            }
        }
    }
}

/// Delta debugging over the removable ops: tries to remove whole chunks of
/// them at once (latest chunk first), halving the chunk size when none can
/// go, down to single ops; so the result is as minimal as `one_by_one`'s
/// after O(k log n) decisions for a k-op witness.
///
/// Removing a chunk at once is sound: every op in it is removable from the
/// current ops, and stays removable while the others go, one at a time in
/// invocation order. Rule 1 needs nothing of the other ops. Rule 2 needs
/// the other completed ops to complete before the op's invocation, which
/// removing ops keeps true. Rule 3 needs fewer observers (removals only
/// help) and the overwrite, which is invoked after the op completes, so is
/// removed after it, if at all. Each candidate is also cut to the prefix
/// that the segment search proved not linearizable, which is sound too
/// (`split::Decision`). Returns the witness and whether shrinking ran to
/// its end.
fn by_chunks<'a>(mut ops: Vec<KeyOp<'a>>, budget: &mut Budget) -> (Vec<KeyOp<'a>>, bool) {
    // The stretch before an anchor (`split/anchor.rs`) goes first: the
    // rules below cannot remove it when it holds chains of successful CAS
    // (each observes the last). Retried after each round of removals,
    // which can free more anchors.
    loop {
        let before = ops.len();
        for candidate in anchor::after_anchors(&ops, ANCHORS_TRIED) {
            match split::decide(&candidate, budget, First::Segments) {
                Decision::NotLinearizable { prefix, .. } => {
                    ops = candidate;
                    ops.truncate(prefix);
                    break;
                }
                Decision::Linearizable => {}
                Decision::GaveUp(_) => return (ops, false),
            }
        }
        let finished;
        (ops, finished) = by_chunks_round(ops, budget);
        if !finished || ops.len() == before {
            return (ops, finished);
        }
    }
}

/// One round of `by_chunks` without anchors.
fn by_chunks_round<'a>(mut ops: Vec<KeyOp<'a>>, budget: &mut Budget) -> (Vec<KeyOp<'a>>, bool) {
    let mut chunk = usize::MAX;
    loop {
        let candidates: Vec<usize> = (0..ops.len()).filter(|&i| removable(&ops, i)).collect();
        if candidates.is_empty() {
            return (ops, true);
        }
        chunk = chunk.min(candidates.len().div_ceil(2));
        let mut removed_any = false;
        for group in candidates.chunks(chunk).rev() {
            let mut keep = vec![true; ops.len()];
            for &i in group {
                keep[i] = false;
            }
            let mut candidate: Vec<KeyOp> = (0..ops.len())
                .filter(|&i| keep[i])
                .map(|i| ops[i].clone())
                .collect();
            match split::decide(&candidate, budget, First::Segments) {
                Decision::NotLinearizable { prefix, .. } => {
                    candidate.truncate(prefix);
                    ops = candidate;
                    removed_any = true;
                    break;
                }
                Decision::Linearizable => {}
                Decision::GaveUp(_) => return (ops, false),
            }
        }
        // After a removal the removable set changes: recompute it and try
        // the same chunk size again.
        if !removed_any {
            if chunk == 1 {
                return (ops, true);
            }
            chunk = chunk.div_ceil(2);
        }
    }
}

/// Removes one removable op at a time, latest invocation first, deciding
/// each candidate with the whole-key search (whose trace explains the
/// witness), until none can go.
fn one_by_one<'a>(ops: Vec<KeyOp<'a>>, trace: Trace, budget: &mut Budget) -> Shrunk<'a> {
    let mut best = Shrunk {
        ops,
        trace: Some(trace),
        finished: false,
    };
    loop {
        let mut removed_any = false;
        // Latest invocation first: removing late ops lowers the last
        // completion time, which lets rule 2 reach further back in the
        // same pass.
        for i in (0..best.ops.len()).rev() {
            if !removable(&best.ops, i) {
                continue;
            }
            let mut candidate = best.ops.clone();
            candidate.remove(i);
            match search::run(&candidate, budget) {
                Outcome::NotLinearizable(trace) => {
                    best.ops = candidate;
                    best.trace = Some(trace);
                    removed_any = true;
                }
                Outcome::Linearizable => {}
                Outcome::GaveUp(_) => return best,
            }
        }
        if !removed_any {
            best.finished = true;
            return best;
        }
    }
}

/// Whether removing `ops[i]` is sound (rules 1 to 3 above).
fn removable(ops: &[KeyOp], i: usize) -> bool {
    preserves_state(&ops[i].effect) || invoked_after_all(ops, i) || overwritten_unseen(ops, i)
}

/// Rule 2: `ops[i]` starts after every other completed op has completed.
fn invoked_after_all(ops: &[KeyOp], i: usize) -> bool {
    let last_other_completion = (0..ops.len())
        .filter(|&j| j != i)
        .filter_map(|j| ops[j].completed_at())
        .max();
    last_other_completion.is_none_or(|t| ops[i].invoke > t)
}

/// Rule 3, exemption included.
fn overwritten_unseen(ops: &[KeyOp], i: usize) -> bool {
    let others = || (0..ops.len()).filter(move |&j| j != i);
    let (Some(done), Some(value)) = (ops[i].completed_at(), written(&ops[i].effect)) else {
        return false;
    };
    if others().any(|k| ops[k].effect.observed() == Some(value)) {
        return false;
    }
    // The overwrite that completes first leaves the least room for an
    // observer, so it is the only one worth testing (keeps this O(n)).
    let Some(overwritten_by) = others()
        .filter(|&j| ops[j].invoke > done)
        .filter_map(|j| blind_write_completion(&ops[j]))
        .min()
    else {
        return false;
    };
    // Blind writes are not observers, so this never looks at the overwrite.
    others()
        .filter(|&k| ops[k].effect.observed().is_some())
        .all(|k| {
            ops[k].completed_at().is_some_and(|c| c < ops[i].invoke)
                || ops[k].invoke > overwritten_by
        })
}

/// Rule 1: true if linearizing this op can never change the state: a read,
/// or a CAS that failed (such effects exist only for completed ops).
fn preserves_state(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::Read(_)
            | Effect::Cas {
                outcome: Some(false),
                ..
            }
    )
}

/// The value the op may store; `None` for a read.
fn written(effect: &Effect) -> Option<Val> {
    match *effect {
        Effect::Read(_) => None,
        Effect::Write(v) | Effect::Cas { new: v, .. } => Some(v),
    }
}

/// The completion time of a completed `Put`/`Delete`; `None` for any other op.
fn blind_write_completion(op: &KeyOp) -> Option<u64> {
    match op.effect {
        Effect::Write(_) => op.completed_at(),
        Effect::Read(_) | Effect::Cas { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    //! The rules' soundness claim, tested directly: removing a removable op
    //! from a linearizable history must leave it linearizable.

    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::{invoked_after_all, preserves_state, removable};
    use crate::budget::Budget;
    use crate::history::{Call, Operation};
    use crate::model::KeyHistory;
    use crate::search::{self, Outcome};

    /// A random single-key history that is linearizable by construction:
    /// each op takes effect at a random instant of its interval (an
    /// unacknowledged one possibly never), responses follow from replaying
    /// those instants in order.
    fn linearizable_history(rng: &mut StdRng) -> Vec<Operation> {
        let values: [&[u8]; 3] = [b"", b"a", b"b"];
        let pick = |rng: &mut StdRng| values[rng.gen_range(0..3)].to_vec();
        let mut ops = Vec::new();
        let mut effect_at = Vec::new();
        for id in 0..rng.gen_range(1..=9) {
            let invoke = rng.gen_range(0..30);
            let complete = invoke + rng.gen_range(0..10);
            let call = match rng.gen_range(0..4) {
                0 => Call::Get,
                1 => Call::Put(pick(rng)),
                2 => Call::Delete,
                _ => Call::Cas {
                    expected: rng.gen_bool(0.7).then(|| pick(rng)),
                    new: pick(rng),
                },
            };
            let acknowledged = rng.gen_bool(0.7);
            effect_at.push(match (acknowledged, rng.gen_bool(0.5)) {
                (true, _) => Some(rng.gen_range(invoke..=complete)),
                (false, true) => Some(rng.gen_range(invoke..=complete + 20)),
                (false, false) => None,
            });
            ops.push(Operation {
                id,
                client: id,
                key: b"k".to_vec(),
                call,
                ret: None,
                invoke_ns: invoke,
                complete_ns: acknowledged.then_some(complete),
            });
        }
        crate::test_support::answer_in_effect_order(&mut ops, &effect_at);
        ops
    }

    #[test]
    fn removable_ops_keep_a_linearizable_history_linearizable() {
        let mut budget = Budget::new(Duration::from_secs(60));
        let mut removed_by_rule = [0; 3];
        for seed in 0..20_000 {
            let mut rng = StdRng::seed_from_u64(seed);
            let history = linearizable_history(&mut rng);
            let refs: Vec<&Operation> = history.iter().collect();
            let mut ops = KeyHistory::prepare(b"k", &refs).unwrap().ops;
            assert!(matches!(
                search::run(&ops, &mut budget),
                Outcome::Linearizable
            ));
            // Remove removable ops in random order until none is left.
            loop {
                let candidates: Vec<usize> =
                    (0..ops.len()).filter(|&i| removable(&ops, i)).collect();
                if candidates.is_empty() {
                    break;
                }
                let i = candidates[rng.gen_range(0..candidates.len())];
                let rule = if preserves_state(&ops[i].effect) {
                    0
                } else if invoked_after_all(&ops, i) {
                    1
                } else {
                    2
                };
                removed_by_rule[rule] += 1;
                ops.remove(i);
                assert!(
                    matches!(search::run(&ops, &mut budget), Outcome::Linearizable),
                    "seed {seed}: a rule {} removal broke linearizability",
                    rule + 1
                );
            }
        }
        assert!(
            removed_by_rule.iter().all(|&n| n >= 2_000),
            "a rule is barely exercised: {removed_by_rule:?}"
        );
    }
}
