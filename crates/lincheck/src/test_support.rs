//! Helpers shared by the crate's unit tests.

use crate::history::{Call, Operation, Ret};

/// Gives every completed operation of `ops` the answer a single register would give if
/// each took effect at `effect_at[i]` (`None`: never), in that order (ties by index).
/// The histories so built are linearizable by construction.
pub(crate) fn answer_in_effect_order(ops: &mut [Operation], effect_at: &[Option<u64>]) {
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| effect_at[i].is_some()).collect();
    order.sort_by_key(|&i| (effect_at[i], i));
    let mut state: Option<Vec<u8>> = None;
    for i in order {
        let ret = match &ops[i].call {
            Call::Get => Ret::Value(state.clone()),
            Call::Put(v) => {
                state = Some(v.clone());
                Ret::Done
            }
            Call::Delete => {
                state = None;
                Ret::Done
            }
            Call::Cas { expected, new } => {
                let swaps = state == *expected;
                if swaps {
                    state = Some(new.clone());
                }
                Ret::Cas(swaps)
            }
        };
        if ops[i].complete_ns.is_some() {
            ops[i].ret = Some(ret);
        }
    }
}
