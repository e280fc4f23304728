//! Deciding a key segment by segment, carrying the possible register states
//! across each cut (see `cuts.rs` for where cuts are).
//!
//! Any linearization of a key takes effect for the completed ops segment by
//! segment (a cut's real-time order forces it), so it splits, just after each
//! segment's last completed op, into pieces `L1 L2 … Lm`. An indeterminate op
//! never completes, so no op has to follow it; it must only follow the ops
//! that completed before its invocation. It therefore lies in the piece of
//! the segment it was invoked in or in any later one, unconstrained there.
//! The search carries a *frontier*: the set of (state, pending) pairs in
//! which some valid `L1 … Lk` can leave the key, where `pending` lists the
//! indeterminate ops invoked so far that have not taken effect. Segment
//! `k + 1` is searched from every entry with the pending ops available from
//! its start (`explore.rs`); the key is linearizable iff the last segment can
//! be completed from some entry. Both directions are exact, so the verdict
//! equals the whole-key search's.
//!
//! The canonical rules of `canonical.rs` hold piece by piece: rule 1 pairs an
//! indeterminate op with the op right after it, which lies in the same piece
//! since a piece ends with a completed op; rule 2 (twins take effect earliest
//! invoked first) makes each pending twin class a suffix, as the local
//! search expects.
//!
//! Three reductions keep the frontier and the searches small, each exact:
//! dead pending ops are forgotten and unnamed values merged (`future.rs`),
//! pending ops that a segment cannot use are held out of its search
//! (`needs.rs`), and an entry whose pending ops are all pending in another
//! with the same state is dropped (`frontier.rs`).
//!
//! The frontier is capped at `FRONTIER_LIMIT` entries; beyond it the caller
//! falls back to the whole-key search.

pub(crate) mod anchor;
mod cuts;
mod explore;
mod frontier;
mod future;
mod needs;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use crate::budget::Budget;
use crate::model::{Effect, KeyOp, Val, ABSENT};
use crate::search::{self, Limit, Outcome, Trace};
use frontier::Entry;
use future::{Future, UNNAMED};
use needs::Needs;

/// At most this many (state, pending) pairs are carried across a cut. Each
/// costs a segment search, so a wider frontier means the split is not
/// paying off; the whole-key search is tried instead.
pub(crate) const FRONTIER_LIMIT: usize = 1024;

pub(crate) enum Decision {
    Linearizable,
    /// `ops[..prefix]` is not linearizable on its own, and neither is the
    /// key: `prefix` ends at a cut (or at the end), and any linearization of
    /// the key restricted to the ops before a cut is one of them once the
    /// indeterminate ops it places after the cut are dropped. `trace` is
    /// the whole-key search's proof when that search decided.
    NotLinearizable {
        prefix: usize,
        trace: Option<Trace>,
    },
    GaveUp(Limit),
}

/// Memo entries the whole-key search may fill before `decide` turns to the
/// segments (a few MB, a fraction of a second). On a linearizable key the
/// depth-first search usually walks straight to a linearization, faster
/// than the segment search, which must find every way each segment can end.
const GREEDY_MEMO_ENTRIES: usize = 1 << 16;

/// How `decide` should start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// A capped whole-key search first: for keys likely linearizable.
    Greedy,
    /// Straight to the segments: for shrinking, where most candidates are
    /// not linearizable and the capped search would only waste time.
    Segments,
}

/// Decides `ops` (one key, sorted by invocation). With cuts: a capped
/// whole-key search (if `first` says so), then the segment search; then,
/// or without cuts, the whole-key search up to its full memo limit (the
/// segment search's frontier outgrew `FRONTIER_LIMIT`, or there is a single
/// segment). All three decide the same question exactly, so the verdict
/// does not depend on which one answered.
pub(crate) fn decide(ops: &[KeyOp], budget: &mut Budget, first: First) -> Decision {
    let segments = cuts::segments(ops);
    if segments.len() > 1 {
        if first == First::Greedy {
            match search::run_capped(ops, budget, GREEDY_MEMO_ENTRIES) {
                Outcome::GaveUp(Limit::Memory) => {}
                outcome => return whole(ops, outcome),
            }
        }
        if let Some(decision) = by_segments(ops, &segments, budget) {
            return decision;
        }
    }
    whole(ops, search::run(ops, budget))
}

fn whole(ops: &[KeyOp], outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Linearizable => Decision::Linearizable,
        Outcome::NotLinearizable(trace) => Decision::NotLinearizable {
            prefix: ops.len(),
            trace: Some(trace),
        },
        Outcome::GaveUp(limit) => Decision::GaveUp(limit),
    }
}

/// `None` when the frontier outgrew `FRONTIER_LIMIT`.
fn by_segments(ops: &[KeyOp], segments: &[Range<usize>], budget: &mut Budget) -> Option<Decision> {
    let future = Future::new(ops, segments);
    let mut pool = future.anonymous_pool();
    let mut frontier = vec![Entry {
        state: ABSENT,
        named: Vec::new(),
        anonymous: Vec::new(),
    }];
    for (k, segment) in segments.iter().enumerate() {
        let last = k + 1 == segments.len();
        let needs = Needs::new(&ops[segment.clone()]);
        let mut next: HashSet<Entry> = HashSet::new();
        for start in &frontier {
            // Local ops: the carried pending ops the segment may need (all
            // invoked before it), then the segment's own; sorted by
            // invocation. Carried anonymous ops are the pool's stand-ins,
            // with the effect of their class: twins, of which the search
            // only ever tries the first (rule 2 of `canonical.rs`).
            let (mut carried, held) = needs.split(&future, &start.named);
            let mut held_anonymous = Vec::new();
            for &(class, n) in &start.anonymous {
                let searched = n.min(needs.anonymous());
                carried.extend(pool.first(&class, searched));
                held_anonymous.push((class, n - searched));
            }
            carried.sort_unstable();
            let global: Vec<usize> = carried.into_iter().chain(segment.clone()).collect();
            let local: Vec<KeyOp> = global
                .iter()
                .map(|&g| {
                    let mut op = ops[g].clone();
                    if let Some(class) = k.checked_sub(1).and_then(|p| future.anonymous_after(g, p))
                    {
                        op.effect = class;
                    }
                    op
                })
                .collect();
            let mut completed = false;
            let explored = explore::ends(&local, start.state, budget, |after, linearized| {
                if last {
                    completed = true;
                    return true;
                }
                let unlinearized = (0..local.len())
                    .filter(|&i| linearized[i / 64] & (1 << (i % 64)) == 0)
                    .map(|i| global[i])
                    .chain(held.iter().copied());
                next.insert(entry(&future, k, after, unlinearized, &held_anonymous));
                false
            });
            if let Err(limit) = explored {
                return Some(Decision::GaveUp(limit));
            }
            if completed {
                return Some(Decision::Linearizable);
            }
            if next.len() > FRONTIER_LIMIT {
                next = frontier::maximal(next).into_iter().collect();
                if next.len() > FRONTIER_LIMIT {
                    return None;
                }
            }
        }
        if next.is_empty() {
            return Some(Decision::NotLinearizable {
                prefix: segment.end,
                trace: None,
            });
        }
        frontier = frontier::maximal(next);
        pool.advance_to(k);
    }
    unreachable!("the last segment returns")
}

/// The frontier entry for a segment `k` search that ended in `state` with
/// `unlinearized` ops not taken effect, besides `held_anonymous` counts
/// per anonymous class (the segment's completed ops are all linearized, so
/// these are indeterminate): dead ops dropped, an unnamed state made
/// `UNNAMED`, ops that became anonymous counted in their class.
fn entry(
    future: &Future,
    k: usize,
    state: Val,
    unlinearized: impl Iterator<Item = usize>,
    held_anonymous: &[(Effect, usize)],
) -> Entry {
    let state = if future.named_after(state, k) {
        state
    } else {
        UNNAMED
    };
    let mut anonymous: BTreeMap<Effect, usize> = BTreeMap::new();
    if future.failed_cas_after(k) {
        for &(class, n) in held_anonymous {
            *anonymous.entry(class).or_default() += n;
        }
    }
    let named: Vec<usize> = unlinearized
        .filter(|&i| future.alive_after(i, k))
        .filter(|&i| match future.anonymous_after(i, k) {
            Some(class) => {
                *anonymous.entry(class).or_default() += 1;
                false
            }
            None => true,
        })
        .collect();
    let mut named = named;
    named.sort_unstable();
    Entry {
        state,
        named,
        anonymous: anonymous.into_iter().filter(|&(_, n)| n > 0).collect(),
    }
}
