//! Which indeterminate ops the search may linearize, and where.
//!
//! Unrestricted, indeterminate ops blow the search up: every subset of them,
//! in every order, is a distinct memo entry, so a key with dozens of
//! unacknowledged writes takes exponential time. The search therefore looks
//! only for *canonical* linearizations, which exist whenever any
//! linearization does:
//!
//! 1. Every indeterminate op that takes effect changes the state and is
//!    immediately followed by an op that needs it: an observer (`Get` or
//!    `Cas`) that fits the state it leaves but not the state before it. Take
//!    any linearization. An indeterminate op that is last, or is followed by
//!    a blind write (`Put`/`Delete`: overwrites its effect unseen), or does
//!    not change the state (a CAS that does not swap), can be dropped: no
//!    other op sees a difference and its own response is unconstrained. One
//!    followed by an observer that fits the state before it as well can only
//!    be followed by a state-preserving one (`Get` and `Cas` fit a single
//!    state unless it is a failed `Cas`), so the two can swap. Each step
//!    drops an op or moves an indeterminate one later, so repeating them
//!    terminates, in a linearization that obeys rule 1.
//! 2. Among indeterminate ops with the same effect ("twins", e.g. two
//!    unacknowledged deletes), the ones that take effect are the earliest
//!    invoked, in invocation order. Twins differ only in their invocation
//!    time, and an earlier-invoked twin may stand wherever a later one does
//!    (it is constrained by fewer completed ops), so swapping them yields
//!    rule 2.
//!
//! Rule 1 adds to the search state the state from before the last op when
//! that op was indeterminate (the next op must not fit it); rule 2 is a
//! function of the linearized set, so the memo needs nothing for it.

use std::collections::HashMap;

use crate::model::{step, Effect, KeyOp, Val};

/// Marks a completed op in `Canonical::class`: completed ops have no twins.
const NO_CLASS: usize = usize::MAX;

pub(crate) struct Canonical {
    /// Per op: index into `twins`, or `NO_CLASS`.
    class: Vec<usize>,
    /// Per class: its members in invocation order (= op index order).
    twins: Vec<Vec<usize>>,
    /// Per class: how many members are linearized. By rule 2 they are the
    /// first `used[c]` members of `twins[c]`.
    used: Vec<usize>,
}

impl Canonical {
    /// `ops` must be sorted by invocation, as `KeyHistory` keeps them.
    pub(crate) fn new(ops: &[KeyOp]) -> Self {
        let mut by_effect: HashMap<Effect, usize> = HashMap::new();
        let mut twins: Vec<Vec<usize>> = Vec::new();
        let class = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                if op.is_completed() {
                    return NO_CLASS;
                }
                let c = *by_effect.entry(op.effect).or_insert_with(|| {
                    twins.push(Vec::new());
                    twins.len() - 1
                });
                twins[c].push(i);
                c
            })
            .collect();
        let used = vec![0; twins.len()];
        Canonical { class, twins, used }
    }

    /// The state after linearizing `ops[op]` next, and the state the op
    /// after it must not fit (`Some` iff `ops[op]` is indeterminate); `None`
    /// if the model or a canonical rule forbids it. `must_not_fit` is that
    /// value as left by the previous op.
    pub(crate) fn advance(
        &self,
        ops: &[KeyOp],
        op: usize,
        state: Val,
        must_not_fit: Option<Val>,
    ) -> Option<(Val, Option<Val>)> {
        let after = self.fits(ops, op, state)?;
        if must_not_fit.is_some_and(|before| {
            ops[op].effect.observed().is_none() || self.fits(ops, op, before).is_some()
        }) {
            return None;
        }
        let indeterminate = self.class[op] != NO_CLASS;
        Some((after, indeterminate.then_some(state)))
    }

    /// The state after `ops[op]` if the model accepts it in `state` and, for
    /// an indeterminate op, it changes the state and is the next twin.
    fn fits(&self, ops: &[KeyOp], op: usize, state: Val) -> Option<Val> {
        let after = step(&ops[op].effect, state)?;
        let c = self.class[op];
        if c == NO_CLASS {
            return Some(after);
        }
        let next_twin = self.twins[c][self.used[c]];
        (after != state && next_twin == op).then_some(after)
    }

    /// Records that `op` was linearized (after `advance` allowed it).
    /// Completed ops have no class, so `get_mut(NO_CLASS)` skips them.
    pub(crate) fn push(&mut self, op: usize) {
        if let Some(used) = self.used.get_mut(self.class[op]) {
            *used += 1;
        }
    }

    /// Undoes the `push` of `op`; in stack order only.
    pub(crate) fn pop(&mut self, op: usize) {
        if let Some(used) = self.used.get_mut(self.class[op]) {
            *used -= 1;
        }
    }
}
