//! The entry point: split by key, decide each key, shrink the first failure.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::budget::Budget;
use crate::explain::explain;
use crate::history::Operation;
use crate::model::KeyHistory;
use crate::search::{Limit, MEMO_LIMIT_BYTES};
use crate::shrink::shrink;
use crate::split::{self, Decision, First};
use crate::verdict::{Verdict, Violation};

/// Decides whether `history` is linearizable, key by key.
///
/// Keys are independent registers, so the history is linearizable iff every
/// key's sub-history is (P-compositionality). A key with quiet points is
/// decided segment by segment when the plain search does not answer at
/// once (`split::decide`). Keys are checked smallest
/// first, so a violation in a cheap key is found even if a large key would
/// exhaust the budget. The budget covers the whole call, shrinking
/// included; when it runs out before every key is decided the verdict is
/// `Unknown` (a proved violation found in time is still reported, with a
/// possibly less shrunk witness). So is a key whose search memo would
/// outgrow `MEMO_LIMIT_BYTES` (1 GiB), whatever the budget.
///
/// The whole history is validated first; breaking the input contract
/// (duplicate ids, `ret`/`complete_ns` not both present or both absent,
/// completion before invocation, a response that does not fit its call)
/// yields `Unknown` with a reason starting "malformed history".
pub fn check(history: &[Operation], budget: Duration) -> Verdict {
    let mut budget = Budget::new(budget);
    let keys = match prepare(history) {
        Ok(keys) => keys,
        Err((key, reason)) => {
            return Verdict::Unknown {
                key,
                reason: format!("malformed history: {reason}"),
            }
        }
    };
    for (decided, kh) in keys.iter().enumerate() {
        match split::decide(&kh.ops, &mut budget, First::Greedy) {
            Decision::Linearizable => {}
            Decision::NotLinearizable { prefix, trace } => {
                let shrunk = shrink(kh.ops[..prefix].to_vec(), trace, &mut budget);
                let t0 = shrunk.ops.first().map_or(0, |o| o.invoke);
                let mut explanation = match &shrunk.trace {
                    Some(trace) => explain(&shrunk.ops, &kh.values, trace, t0),
                    None => format!(
                        "No order of these {} ops takes effect for every completed op \
                         (proved segment by segment; the whole-key search could not \
                         decide them in time, so no single blocked op is named).",
                        shrunk.ops.len()
                    ),
                };
                if !shrunk.finished {
                    explanation.push_str(" (Shrinking stopped early at the time or memory limit.)");
                }
                return Verdict::NotLinearizable(Violation {
                    key: kh.key.to_vec(),
                    ops: shrunk.ops.iter().map(|o| o.source.clone()).collect(),
                    explanation,
                });
            }
            Decision::GaveUp(limit) => {
                let what = match limit {
                    Limit::Time => format!("time budget of {:?} exhausted", budget.total()),
                    Limit::Memory => {
                        format!("search memo reached its {MEMO_LIMIT_BYTES}-byte limit")
                    }
                };
                return Verdict::Unknown {
                    key: kh.key.to_vec(),
                    reason: format!(
                        "{what} on a key with {} ops ({decided} of {} keys decided, \
                         all linearizable)",
                        kh.ops.len(),
                        keys.len()
                    ),
                };
            }
        }
    }
    Verdict::Linearizable
}

/// Validates `history` and splits it into per-key search inputs, smallest
/// first (ties by key, so the order is deterministic). Errors name the
/// offending key.
fn prepare(history: &[Operation]) -> Result<Vec<KeyHistory<'_>>, (Vec<u8>, String)> {
    let mut ids = HashSet::with_capacity(history.len());
    let mut by_key: BTreeMap<&[u8], Vec<&Operation>> = BTreeMap::new();
    for op in history {
        if !ids.insert(op.id) {
            return Err((op.key.clone(), format!("op id {} is used twice", op.id)));
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut keys = by_key
        .into_iter()
        .map(|(key, ops)| KeyHistory::prepare(key, &ops).map_err(|e| (key.to_vec(), e)))
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_by_key(|k| k.ops.len());
    Ok(keys)
}
