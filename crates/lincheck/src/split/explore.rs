//! One segment's search: every way to linearize its completed ops from one
//! frontier entry, reported as the configurations it can end in.
//!
//! This is `search::run` (Wing & Gong with Lowe's memo and the canonical
//! rules of `canonical.rs`) with a different goal: instead of stopping at the
//! first linearization of every completed op, it records the (state, set of
//! linearized ops) at each such point and keeps backtracking, until the
//! memo'd search space is exhausted. A segment's linearization is cut just
//! after its last completed op; indeterminate ops that would go after that
//! are left pending for the next segment, which may place them first.

use std::collections::HashSet;

use crate::budget::Budget;
use crate::canonical::Canonical;
use crate::events::{Events, HEAD};
use crate::model::{KeyOp, Val};
use crate::search::{fingerprint, Limit, MEMO_LIMIT_BYTES};

/// Calls `end(state, linearized)` for every end configuration reachable from
/// `start`, until it returns true (stop: the caller needs no more), where `linearized` is a bitset over `ops` (64 ops a word) with
/// every completed op set. `ops` must be sorted by invocation and hold at
/// least one completed op; indeterminate ops before the segment's own
/// (carried ones) are unconstrained, as their calls precede every event of
/// the segment. The same configuration may be reported more than once.
pub(crate) fn ends(
    ops: &[KeyOp],
    start: Val,
    budget: &mut Budget,
    mut end: impl FnMut(Val, &[u64]) -> bool,
) -> Result<(), Limit> {
    let mut pending_completed = ops.iter().filter(|o| o.is_completed()).count();
    debug_assert!(pending_completed > 0, "a segment holds a completed op");
    let mut events = Events::new(ops);
    let mut canonical = Canonical::new(ops);
    // Memo key as in `search::run`: linearized bitset, state, constraint.
    let words = ops.len().div_ceil(64);
    let mut memo_key = vec![0u64; words + 2];
    let mut seen: HashSet<u128> = HashSet::new();
    let max_entries = MEMO_LIMIT_BYTES / 40;
    // Per linearized op: (op, state before it, constraint before it).
    let mut stack: Vec<(usize, Val, Option<Val>)> = Vec::new();
    let mut state = start;
    // The op before a segment's first is completed (or there is none), so
    // rule 1 of `canonical.rs` constrains nothing yet.
    let mut must_not_fit: Option<Val> = None;
    let mut node = events.next[HEAD];
    // Invariant: pending_completed > 0 while walking, so a completed op's
    // return event is still listed and the walk reaches it before the end
    // (every real return precedes every `Never` one).
    loop {
        if budget.exhausted() {
            return Err(Limit::Time);
        }
        let (op, is_call) = events.event[node];
        if !is_call {
            let Some((op, before, constraint)) = stack.pop() else {
                return Ok(());
            };
            events.unlift(op);
            canonical.pop(op);
            memo_key[op / 64] &= !(1 << (op % 64));
            state = before;
            must_not_fit = constraint;
            pending_completed += usize::from(ops[op].is_completed());
            node = events.next[events.call_node[op]];
            continue;
        }
        if let Some((after, next_must_not_fit)) = canonical.advance(ops, op, state, must_not_fit) {
            memo_key[op / 64] |= 1 << (op % 64);
            if ops[op].is_completed() && pending_completed == 1 {
                // The segment's last completed op: an end configuration.
                // Nothing below it is worth exploring (later indeterminate
                // ops are the next segment's business), so do not push.
                if end(after, &memo_key[..words]) {
                    return Ok(());
                }
                memo_key[op / 64] &= !(1 << (op % 64));
                node = events.next[node];
                continue;
            }
            memo_key[words] = u64::from(after);
            memo_key[words + 1] = next_must_not_fit.map_or(0, |v| u64::from(v) + 1);
            let print = fingerprint(&memo_key);
            if !seen.contains(&print) {
                if seen.len() >= max_entries {
                    return Err(Limit::Memory);
                }
                seen.insert(print);
                stack.push((op, state, must_not_fit));
                state = after;
                must_not_fit = next_must_not_fit;
                events.lift(op);
                canonical.push(op);
                pending_completed -= usize::from(ops[op].is_completed());
                node = events.next[HEAD];
                continue;
            }
            memo_key[op / 64] &= !(1 << (op % 64));
        }
        node = events.next[node];
    }
}
