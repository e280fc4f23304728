//! What the rest of a key's history can still tell apart, after a segment:
//! which pending indeterminate ops may still take effect, and which values
//! no later op can distinguish from one another.
//!
//! An indeterminate op that takes effect in a canonical linearization
//! (`canonical.rs`, rule 1) is followed at once by an op that fits the value
//! it writes but not the value before; that op is a completed op of the same
//! segment, or indeterminate. A value `v` is fitted by a `Get` of `v`, a
//! `Cas` expecting `v` (for an indeterminate one: by swapping), and a `Cas`
//! that *failed* expecting anything but `v`. Hence:
//!
//! - **Dead ops.** A pending op whose value no completed op of a later
//!   segment and no indeterminate op fits can no longer take effect: it
//!   "never happened", and the frontier forgets it.
//! - **Unnamed values.** A value that no completed op of a later segment and
//!   no indeterminate op names (reads, or expects in a `Cas`) behaves like
//!   every other such value for the rest of the history: every later op
//!   fits, swaps, or fails on it alike. The frontier replaces such a state
//!   by `UNNAMED`, and treats pending `Put`s and `Cas`es that write such
//!   values as *anonymous*: those with the same effect once the value is
//!   replaced by `UNNAMED` (all `Put`s; `Cas`es expecting the same value)
//!   are interchangeable, being carried, so unconstrained by real time; only
//!   how many of each class are pending matters. `ABSENT` counts as named
//!   throughout.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use crate::model::{Effect, KeyOp, Val, ABSENT};

/// The state standing for any unnamed value. Never interned (a key would
/// need 2³² values), so no op reads it, expects it or writes it.
pub(crate) const UNNAMED: Val = Val::MAX;

pub(crate) struct Future {
    /// Per op index: its segment.
    segment_of: Vec<usize>,
    /// Per op index: for an indeterminate op, the value it leaves when it
    /// takes effect and changes the state (the only way rule 1 lets it);
    /// `None` for completed ops, which are never carried.
    writes: Vec<Option<Val>>,
    /// Per value: the last segment with a completed op that fits it (a
    /// `Get` of it, a successful `Cas` expecting it).
    last_fitted: HashMap<Val, usize>,
    /// Per value: the last segment with a completed op that names it
    /// (a `Get` of it, any `Cas` expecting it).
    last_named: HashMap<Val, usize>,
    /// Values an indeterminate `Cas` expects: fitted and named for good.
    named_indeterminately: HashSet<Val>,
    /// The last segment with a completed failed `Cas`, with its expected
    /// value, and the last one with a failed `Cas` expecting another value:
    /// together they give the last failed `Cas` that fits any `v`.
    last_failed_cas: Option<(usize, Val)>,
    last_failed_cas_other: Option<usize>,
    /// Per op index: the first segment after which the op is anonymous (an
    /// indeterminate `Put` or `Cas` of a value unnamed from then on);
    /// `usize::MAX` if never.
    anonymous_from: Vec<usize>,
    /// Per op index: its effect with the value it writes replaced by
    /// `UNNAMED`; for anonymous ops, which are interchangeable within a
    /// class.
    class: Vec<Effect>,
}

impl Future {
    pub(crate) fn new(ops: &[KeyOp], segments: &[Range<usize>]) -> Self {
        let mut segment_of = vec![0; ops.len()];
        for (k, segment) in segments.iter().enumerate() {
            segment_of[segment.clone()].fill(k);
        }
        let mut last_fitted = HashMap::new();
        let mut last_named = HashMap::new();
        let mut named_indeterminately = HashSet::new();
        let mut last_failed_cas: Option<(usize, Val)> = None;
        let mut last_failed_cas_other = None;
        // Ops ascend by segment, so each op is the latest of its kind so far.
        for (i, op) in ops.iter().enumerate() {
            let k = segment_of[i];
            let Some(v) = op.effect.observed() else {
                continue;
            };
            if !op.is_completed() {
                named_indeterminately.insert(v);
                continue;
            }
            last_named.insert(v, k);
            if let Effect::Cas {
                outcome: Some(false),
                ..
            } = op.effect
            {
                if let Some((last, e)) = last_failed_cas {
                    if e != v {
                        last_failed_cas_other = Some(last);
                    }
                }
                last_failed_cas = Some((k, v));
            } else {
                last_fitted.insert(v, k);
            }
        }
        let writes = ops
            .iter()
            .map(|op| match op.effect {
                _ if op.is_completed() => None,
                Effect::Write(v) | Effect::Cas { new: v, .. } => Some(v),
                Effect::Read(_) => None,
            })
            .collect();
        let mut future = Future {
            segment_of,
            writes,
            last_fitted,
            last_named,
            named_indeterminately,
            last_failed_cas,
            last_failed_cas_other,
            anonymous_from: Vec::new(),
            class: Vec::new(),
        };
        future.anonymous_from = (0..ops.len())
            .map(|i| match future.writes[i] {
                Some(v) if v != ABSENT && !future.named_indeterminately.contains(&v) => {
                    let named_until = future.last_named.get(&v).copied().unwrap_or(0);
                    named_until.max(future.segment_of[i])
                }
                _ => usize::MAX,
            })
            .collect();
        future.class = ops
            .iter()
            .map(|op| match op.effect {
                Effect::Cas {
                    expected, outcome, ..
                } => Effect::Cas {
                    expected,
                    new: UNNAMED,
                    outcome,
                },
                _ => Effect::Write(UNNAMED),
            })
            .collect();
        future
    }

    /// Whether pending op `i` (not linearized by the end of segment `k`)
    /// may still take effect later.
    pub(crate) fn alive_after(&self, i: usize, k: usize) -> bool {
        debug_assert!(self.segment_of[i] <= k);
        let Some(v) = self.writes[i] else {
            return false;
        };
        let last_failed_cas = match self.last_failed_cas {
            Some((last, expected)) if expected != v => Some(last),
            _ => self.last_failed_cas_other,
        };
        self.named_indeterminately.contains(&v)
            || self.last_fitted.get(&v).is_some_and(|&last| last > k)
            || last_failed_cas.is_some_and(|last| last > k)
    }

    /// The value pending op `i` writes (it is indeterminate).
    pub(crate) fn writes(&self, i: usize) -> Val {
        self.writes[i].expect("only indeterminate ops are pending")
    }

    /// Whether anonymous ops stay alive after segment `k`: a completed failed
    /// `Cas` follows, the only op that can fit their unnamed values.
    pub(crate) fn failed_cas_after(&self, k: usize) -> bool {
        self.last_failed_cas.is_some_and(|(last, _)| last > k)
    }

    /// Whether an indeterminate `Cas` expects `v`.
    pub(crate) fn named_indeterminately(&self, v: Val) -> bool {
        self.named_indeterminately.contains(&v)
    }

    /// Whether some op after segment `k` can tell `v` from other values.
    pub(crate) fn named_after(&self, v: Val, k: usize) -> bool {
        v == ABSENT
            || self.named_indeterminately.contains(&v)
            || self.last_named.get(&v).is_some_and(|&last| last > k)
    }

    /// Op `i`'s class if it is anonymous after segment `k`: the effect
    /// every later op sees it have.
    pub(crate) fn anonymous_after(&self, i: usize, k: usize) -> Option<Effect> {
        (self.anonymous_from[i] <= k).then_some(self.class[i])
    }

    /// The ops that are anonymous after segment `k`, added as `k` grows
    /// (anonymity is for good: fewer ops lie ahead to name a value).
    pub(crate) fn anonymous_pool(&self) -> AnonymousPool {
        let mut by_start: Vec<(usize, usize)> = (0..self.anonymous_from.len())
            .filter(|&i| self.anonymous_from[i] != usize::MAX)
            .map(|i| (self.anonymous_from[i], i))
            .collect();
        by_start.sort_unstable();
        AnonymousPool {
            by_start,
            next: 0,
            pool: HashMap::new(),
            class: self.class.clone(),
        }
    }
}

/// The anonymous ops after the current segment, lowest index first: the
/// canonical stand-ins for however many anonymous ops an entry has pending.
pub(crate) struct AnonymousPool {
    /// (first segment after which it is anonymous, op), ascending.
    by_start: Vec<(usize, usize)>,
    /// `by_start[..next]` are in `pool`, by class.
    next: usize,
    pool: HashMap<Effect, BTreeSet<usize>>,
    class: Vec<Effect>,
}

impl AnonymousPool {
    /// Moves the pool to after segment `k` (non-decreasing `k`).
    pub(crate) fn advance_to(&mut self, k: usize) {
        while let Some(&(start, i)) = self.by_start.get(self.next) {
            if start > k {
                break;
            }
            self.pool.entry(self.class[i]).or_default().insert(i);
            self.next += 1;
        }
    }

    /// The `m` stand-ins for `m` pending anonymous ops of `class`.
    pub(crate) fn first(&self, class: &Effect, m: usize) -> impl Iterator<Item = usize> + '_ {
        let members = &self.pool[class];
        debug_assert!(m <= members.len());
        members.iter().copied().take(m)
    }
}
