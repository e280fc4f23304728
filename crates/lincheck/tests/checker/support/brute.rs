//! Reference checker: exhaustive enumeration, no memoisation, no per-key
//! split, values compared as raw bytes. Exponential; for ≤ ~10 ops only.
//!
//! A history is linearizable iff some sequence holds every completed op and
//! any subset of the indeterminate ops (the others "never happened"), each
//! op placed only after every completed op that finished before it was
//! invoked, and the sequence is legal for a map of registers starting empty.
//! The enumeration builds such sequences one op at a time and stops as soon
//! as every completed op is placed: whatever indeterminate ops are left over
//! are the ones that never took effect.

use std::collections::BTreeMap;

use lincheck::{Call, Operation, Ret};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

pub fn linearizable(history: &[Operation]) -> bool {
    assert!(history.len() <= 32, "brute force is for tiny histories");
    let bit = |i: usize| 1u32 << i;
    // must_follow[i]: completed ops that finished before op i was invoked.
    let must_follow: Vec<u32> = history
        .iter()
        .map(|b| {
            (0..history.len())
                .filter(|&a| history[a].complete_ns.is_some_and(|c| c < b.invoke_ns))
                .fold(0, |m, a| m | bit(a))
        })
        .collect();
    let completed = (0..history.len())
        .filter(|&i| history[i].ret.is_some())
        .fold(0, |m, i| m | bit(i));
    search(history, &must_follow, completed, 0, &State::new())
}

fn search(
    history: &[Operation],
    must_follow: &[u32],
    completed: u32,
    placed: u32,
    state: &State,
) -> bool {
    if placed & completed == completed {
        return true;
    }
    (0..history.len()).any(|i| {
        let bit = 1u32 << i;
        placed & bit == 0
            && must_follow[i] & !placed == 0
            && apply(&history[i], state)
                .is_some_and(|next| search(history, must_follow, completed, placed | bit, &next))
    })
}

/// The state after `op`, or `None` if its recorded response is impossible.
/// An indeterminate op accepts any response.
fn apply(op: &Operation, state: &State) -> Option<State> {
    let current = state.get(&op.key);
    let mut next = state.clone();
    let response = match &op.call {
        Call::Get => Ret::Value(current.cloned()),
        Call::Put(v) => {
            next.insert(op.key.clone(), v.clone());
            Ret::Done
        }
        Call::Delete => {
            next.remove(&op.key);
            Ret::Done
        }
        Call::Cas { expected, new } => {
            let swaps = current == expected.as_ref();
            if swaps {
                next.insert(op.key.clone(), new.clone());
            }
            Ret::Cas(swaps)
        }
    };
    match &op.ret {
        Some(recorded) if *recorded != response => None,
        _ => Some(next),
    }
}
