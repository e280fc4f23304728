//! Wing & Gong's linearization search with Lowe's memoisation, for one key.
//!
//! The operations' call and return events sit in a doubly linked list sorted
//! by time (`events.rs`). The search walks the list from its head: at a call
//! event it tries to linearize that op next (the model must accept its
//! response, and the resulting (linearized set, state) must be new — Lowe's
//! cache: an equal configuration was already explored and failed); at a
//! return event it has met an op that must already have been linearized, so
//! it backtracks. Linearizing an op lifts both its events out of the list,
//! so the head always holds the earliest pending events.
//!
//! Indeterminate ops return at `Time::Never`, after every real return, so the
//! search may linearize them anywhere after their invocation. It succeeds as
//! soon as every *completed* op is linearized: the indeterminate ops left over
//! then never took effect, which no completed op can tell apart from taking
//! effect at the very end. Which indeterminate ops it tries, and where, is
//! narrowed without losing completeness in `canonical.rs`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::budget::Budget;
use crate::canonical::Canonical;
use crate::events::{Events, HEAD};
use crate::model::{KeyOp, Val, ABSENT};

pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable(Trace),
    GaveUp(Limit),
}

/// Why a search stopped undecided.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// The shared time budget ran out.
    Time,
    /// The memo reached `MEMO_LIMIT_BYTES`.
    Memory,
}

/// Estimated memo size at which a search gives up. A pathological key
/// (very wide concurrency) fills memory at a few hundred MB per second, so a
/// generous time budget alone could exhaust a shared machine.
pub(crate) const MEMO_LIMIT_BYTES: usize = 1 << 30;

/// The longest valid linearization prefix ending in a completed op that the
/// search found: op indices in order and the state they leave. At that point
/// the model rejects every completed op that could go next, and no chain of
/// indeterminate ops that could go next leads to a completed op the model
/// accepts (either would make a longer such prefix).
#[derive(Clone, Debug, Default)]
pub(crate) struct Trace {
    pub order: Vec<usize>,
    pub state: Val,
}

/// One linearized op and the search state from before it.
struct Frame {
    op: usize,
    state: Val,
    must_not_fit: Option<Val>,
}

/// Decides whether `ops` (one key, sorted by invocation) is linearizable
/// from the absent state.
pub(crate) fn run(ops: &[KeyOp], budget: &mut Budget) -> Outcome {
    run_capped(ops, budget, MEMO_LIMIT_BYTES / 40)
}

/// `run` with the memo capped at `max_entries` configurations (each about
/// 40 bytes, `run` allows `MEMO_LIMIT_BYTES`), giving up with
/// `Limit::Memory` beyond.
pub(crate) fn run_capped(ops: &[KeyOp], budget: &mut Budget, max_entries: usize) -> Outcome {
    let mut pending_completed = ops.iter().filter(|o| o.is_completed()).count();
    if pending_completed == 0 {
        return Outcome::Linearizable;
    }
    let mut events = Events::new(ops);
    let mut canonical = Canonical::new(ops);
    // Memo key: bitset of linearized ops, then the state, then the
    // canonical constraint on the next op (`Canonical::advance`).
    let words = ops.len().div_ceil(64);
    let mut memo_key = vec![0u64; words + 2];
    // The memo holds a 128-bit fingerprint of each key rather than the key:
    // 16 bytes instead of `8 × words + 48`, so four to eight times as many
    // configurations fit in the limit on long histories. Two different keys
    // share a fingerprint with probability about n²/2¹²⁹ — below 10⁻²² for
    // the ~30 million entries that fit — and a false match could only prune a
    // branch (a spurious "not linearizable"), never accept a bad history.
    // Per entry: 16 bytes, the table's control byte, and room for its load
    // factor and doubling: hence 40 bytes an entry in `run`.
    let mut seen: HashSet<u128> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = ABSENT;
    let mut must_not_fit: Option<Val> = None;
    let mut deepest = Deepest::default();
    let mut node = events.next[HEAD];
    // Invariant: pending_completed > 0, so the list still holds the return
    // event of a completed op; every real return precedes every `Never`
    // return, hence the walk meets a completed op's return before running
    // off the end of the list.
    loop {
        if budget.exhausted() {
            return Outcome::GaveUp(Limit::Time);
        }
        let (op, is_call) = events.event[node];
        if !is_call {
            // `op` must have taken effect by now and has not: undo the most
            // recent choice and try the next candidate after it.
            let Some(frame) = stack.pop() else {
                return Outcome::NotLinearizable(deepest.trace);
            };
            events.unlift(frame.op);
            canonical.pop(frame.op);
            memo_key[frame.op / 64] &= !(1 << (frame.op % 64));
            state = frame.state;
            must_not_fit = frame.must_not_fit;
            pending_completed += usize::from(ops[frame.op].is_completed());
            deepest.popped(stack.len());
            node = events.next[events.call_node[frame.op]];
            continue;
        }
        if let Some((after, next_must_not_fit)) = canonical.advance(ops, op, state, must_not_fit) {
            memo_key[op / 64] |= 1 << (op % 64);
            memo_key[words] = u64::from(after);
            memo_key[words + 1] = next_must_not_fit.map_or(0, |v| u64::from(v) + 1);
            let print = fingerprint(&memo_key);
            if !seen.contains(&print) {
                if seen.len() >= max_entries {
                    return Outcome::GaveUp(Limit::Memory);
                }
                seen.insert(print);
                stack.push(Frame {
                    op,
                    state,
                    must_not_fit,
                });
                state = after;
                must_not_fit = next_must_not_fit;
                events.lift(op);
                canonical.push(op);
                if ops[op].is_completed() {
                    pending_completed -= 1;
                    if pending_completed == 0 {
                        return Outcome::Linearizable;
                    }
                    deepest.pushed(&stack, state);
                }
                node = events.next[HEAD];
                continue;
            }
            memo_key[op / 64] &= !(1 << (op % 64));
        }
        node = events.next[node];
    }
}

/// Two independent 64-bit SipHash values of `words` (the std hasher with
/// fixed keys, so runs are reproducible).
pub(crate) fn fingerprint(words: &[u64]) -> u128 {
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        words.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f))
}

/// Tracks the longest stack that ends in a completed op, copying each stack
/// entry at most once per push (so the cost stays linear in the search).
#[derive(Default)]
struct Deepest {
    trace: Trace,
    /// `trace.order[..agree]` equals the ops of `stack[..agree]`.
    agree: usize,
}

impl Deepest {
    fn pushed(&mut self, stack: &[Frame], state: Val) {
        if stack.len() > self.trace.order.len() {
            self.trace.order.truncate(self.agree);
            self.trace
                .order
                .extend(stack[self.agree..].iter().map(|f| f.op));
            self.trace.state = state;
            self.agree = stack.len();
        }
    }

    fn popped(&mut self, stack_len: usize) {
        self.agree = self.agree.min(stack_len);
    }
}
