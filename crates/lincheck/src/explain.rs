//! Turning a failed search into a sentence a person can check by hand.

use crate::format;
use crate::model::{Effect, KeyOp, Values};
use crate::search::Trace;

/// Explains why `ops` is not linearizable, from the deepest prefix the search
/// reached (`trace`): which op could not be linearized in time and why each
/// op allowed to go next contradicts the state. Times are relative to `t0`.
pub(crate) fn explain(ops: &[KeyOp], values: &Values, trace: &Trace, t0: u64) -> String {
    let mut linearized = vec![false; ops.len()];
    for &i in &trace.order {
        linearized[i] = true;
    }
    let pending = || (0..ops.len()).filter(|&i| !linearized[i]);
    // The first return event left in the search's list (same tie-break:
    // time, then index). A failed search always leaves a completed op.
    let (due_at, due) = pending()
        .filter_map(|i| ops[i].completed_at().map(|t| (t, i)))
        .min()
        .expect("a failed search leaves a completed op pending");
    let state = format::value(values.get(trace.state));

    let completed = ops.iter().filter(|o| o.is_completed()).count();
    let done = trace
        .order
        .iter()
        .filter(|&&i| ops[i].is_completed())
        .count();
    let prefix = if trace.order.is_empty() {
        format!("No op can take effect first (the key starts {state}).")
    } else {
        let order: Vec<String> = trace
            .order
            .iter()
            .map(|&i| format!("#{}", ops[i].source.id))
            .collect();
        format!(
            "The longest valid order found, {}, takes effect for {done} of the \
             {completed} completed ops and leaves the value {state}.",
            order.join(", ")
        )
    };
    // Every op whose call precedes `due`'s return may go next. At the
    // deepest prefix the model rejects each completed one, and the
    // indeterminate ones lead nowhere (`Trace`).
    let (completed_next, unacknowledged_next): (Vec<usize>, Vec<usize>) = pending()
        .filter(|&i| ops[i].invoke <= due_at)
        .partition(|&i| ops[i].is_completed());
    let rejected: Vec<String> = completed_next
        .iter()
        .map(|&i| {
            let why = rejection(&ops[i].effect, values);
            format!("{} ({why})", format::label(ops[i].source))
        })
        .collect();
    let mut text = format!(
        "{prefix} Then {} must take effect by {}, but no completed op that may \
         take effect by then fits the value {state}: {}.",
        format::label(ops[due].source),
        format::offset(due_at - t0),
        rejected.join("; ")
    );
    if !unacknowledged_next.is_empty() {
        let labels: Vec<String> = unacknowledged_next
            .iter()
            .map(|&i| format::label(ops[i].source))
            .collect();
        text.push_str(&format!(
            " Unacknowledged ops that may take effect first do not help either: {}.",
            labels.join("; ")
        ));
    }
    text
}

/// Why `effect` cannot be applied to the current state, for a completed op
/// the model rejected.
fn rejection(effect: &Effect, values: &Values) -> String {
    match *effect {
        Effect::Read(seen) => format!("read {}", format::value(values.get(seen))),
        Effect::Cas {
            expected,
            outcome: Some(true),
            ..
        } => format!("swapped, so it saw {}", format::value(values.get(expected))),
        Effect::Cas {
            expected,
            outcome: Some(false),
            ..
        } => format!(
            "failed, yet {} would have swapped",
            format::value(values.get(expected))
        ),
        // Completed blind writes fit any state, so they are never rejected;
        // indeterminate CAS ops are never passed in.
        Effect::Write(_) | Effect::Cas { outcome: None, .. } => {
            unreachable!("an op that fits any state was left unlinearized")
        }
    }
}
