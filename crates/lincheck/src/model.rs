//! One key as a sequential register: the compact form the search runs on.
//!
//! Values are interned per key into small integers so that a model state is a
//! `u32` and the memo key (linearized set, state) hashes cheaply.

use std::collections::HashMap;

use crate::history::{Call, Operation, Ret};

/// An interned value of one key. `ABSENT` is the initial state.
pub(crate) type Val = u32;
pub(crate) const ABSENT: Val = 0;

/// A point in time; `Never` (the return of an indeterminate op) sorts after
/// every `At`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Time {
    At(u64),
    Never,
}

/// An operation reduced to what the register model needs. Only
/// representable (call, ret) pairs exist: a mismatched pair is rejected by
/// [`KeyHistory::prepare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Effect {
    /// A completed `Get` that returned this value.
    Read(Val),
    /// `Put` (the value) or `Delete` (`ABSENT`), completed or not: the
    /// acknowledgement carries no information about the state.
    Write(Val),
    /// `outcome` is `None` when indeterminate: then the swap happens iff the
    /// state matches, like any sequential CAS.
    Cas {
        expected: Val,
        new: Val,
        outcome: Option<bool>,
    },
}

impl Effect {
    /// The value this op's outcome depends on; `None` for a blind write,
    /// whose outcome is the same in every state.
    pub(crate) fn observed(&self) -> Option<Val> {
        match *self {
            Effect::Read(v) | Effect::Cas { expected: v, .. } => Some(v),
            Effect::Write(_) => None,
        }
    }
}

/// The sequential specification: the state after applying `effect` to
/// `state`, or `None` if the recorded response is impossible in `state`.
pub(crate) fn step(effect: &Effect, state: Val) -> Option<Val> {
    match *effect {
        Effect::Read(seen) => (seen == state).then_some(state),
        Effect::Write(v) => Some(v),
        Effect::Cas {
            expected,
            new,
            outcome,
        } => {
            let swaps = state == expected;
            match outcome {
                Some(claimed) if claimed != swaps => None,
                _ => Some(if swaps { new } else { state }),
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct KeyOp<'a> {
    pub effect: Effect,
    pub invoke: u64,
    /// `Time::Never` iff indeterminate.
    pub ret: Time,
    pub source: &'a Operation,
}

impl KeyOp<'_> {
    pub(crate) fn completed_at(&self) -> Option<u64> {
        match self.ret {
            Time::At(t) => Some(t),
            Time::Never => None,
        }
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.ret != Time::Never
    }
}

/// All operations on one key, sorted by (invoke, id), plus the value table.
pub(crate) struct KeyHistory<'a> {
    pub key: &'a [u8],
    pub ops: Vec<KeyOp<'a>>,
    pub values: Values<'a>,
}

/// Interned value id → bytes; id `ABSENT` decodes to `None`.
pub(crate) struct Values<'a>(Vec<Option<&'a [u8]>>);

impl<'a> Values<'a> {
    pub(crate) fn get(&self, v: Val) -> Option<&'a [u8]> {
        self.0[v as usize]
    }
}

impl<'a> KeyHistory<'a> {
    /// Builds the search form of `ops` (all on `key`). Indeterminate `Get`s
    /// are dropped: they constrain nothing and can always be linearized last.
    /// Errors describe the first operation that breaks the input contract.
    pub(crate) fn prepare(key: &'a [u8], ops: &[&'a Operation]) -> Result<Self, String> {
        let mut table = vec![None];
        let mut ids: HashMap<&'a [u8], Val> = HashMap::new();
        let mut intern = |bytes: Option<&'a [u8]>| -> Val {
            let Some(bytes) = bytes else { return ABSENT };
            *ids.entry(bytes).or_insert_with(|| {
                table.push(Some(bytes));
                (table.len() - 1) as Val
            })
        };
        let mut out = Vec::with_capacity(ops.len());
        for &op in ops {
            let ret = match (op.ret.is_some(), op.complete_ns) {
                (true, Some(t)) if t >= op.invoke_ns => Time::At(t),
                (false, None) => Time::Never,
                _ => {
                    return Err(format!(
                        "op {}: complete_ns must be present iff ret is, and not before invoke_ns",
                        op.id
                    ))
                }
            };
            let effect = match (&op.call, &op.ret) {
                (Call::Get, None) => continue,
                (Call::Get, Some(Ret::Value(v))) => Effect::Read(intern(v.as_deref())),
                (Call::Put(v), None | Some(Ret::Done)) => Effect::Write(intern(Some(v))),
                (Call::Delete, None | Some(Ret::Done)) => Effect::Write(ABSENT),
                (Call::Cas { expected, new }, None) => Effect::Cas {
                    expected: intern(expected.as_deref()),
                    new: intern(Some(new)),
                    outcome: None,
                },
                (Call::Cas { expected, new }, Some(Ret::Cas(swapped))) => Effect::Cas {
                    expected: intern(expected.as_deref()),
                    new: intern(Some(new)),
                    outcome: Some(*swapped),
                },
                (call, ret) => {
                    return Err(format!(
                        "op {}: response {ret:?} does not fit call {call:?}",
                        op.id
                    ))
                }
            };
            out.push(KeyOp {
                effect,
                invoke: op.invoke_ns,
                ret,
                source: op,
            });
        }
        out.sort_by_key(|o| (o.invoke, o.source.id));
        Ok(KeyHistory {
            key,
            ops: out,
            values: Values(table),
        })
    }
}
