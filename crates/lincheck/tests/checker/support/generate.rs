//! Random histories. `linearizable` simulates an atomic store: every op takes
//! effect at a random instant inside its interval (an indeterminate op: at a
//! random instant after its invocation, possibly after the client gave up, or
//! never) and its response is computed by replaying those instants in order,
//! so the result is linearizable by construction. `corrupt` then falsifies
//! responses to produce (mostly) non-linearizable histories.

use std::collections::HashMap;

use lincheck::{Call, Operation, Ret};
use rand::rngs::StdRng;
use rand::Rng;

pub enum Values {
    /// "", "a", "b": collisions are frequent, so both verdicts are common.
    Tiny,
    /// A fresh value per write, like a real test workload.
    Unique,
}

pub struct Shape {
    pub clients: u64,
    pub keys: u64,
    pub ops: usize,
    pub values: Values,
    /// Probability that an op is never acknowledged.
    pub indeterminate: f64,
    /// Idle time between a client's ops is drawn from `0..=max_gap`.
    pub max_gap: u64,
    /// Op durations are drawn from `0..=max_duration`.
    pub max_duration: u64,
}

const TINY: [&str; 3] = ["", "a", "b"];

pub fn linearizable(rng: &mut StdRng, shape: &Shape) -> Vec<Operation> {
    let mut free_at = vec![0u64; shape.clients as usize];
    let mut written: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    let mut ops = Vec::with_capacity(shape.ops);
    // When each op takes effect; `None` = never (indeterminate only).
    let mut effect_at = Vec::with_capacity(shape.ops);
    for id in 1..=shape.ops as u64 {
        // Whoever is idle first goes next: clients interleave naturally.
        let client = (0..free_at.len()).min_by_key(|&c| free_at[c]).unwrap();
        let invoke = free_at[client] + rng.gen_range(0..=shape.max_gap);
        let complete = invoke + rng.gen_range(0..=shape.max_duration);
        free_at[client] = complete;
        let key = format!("k{}", rng.gen_range(0..shape.keys)).into_bytes();
        let call = random_call(rng, shape, id, written.entry(key.clone()).or_default());
        let indeterminate = rng.gen_bool(shape.indeterminate);
        effect_at.push(if !indeterminate {
            Some(rng.gen_range(invoke..=complete))
        } else if rng.gen_bool(0.5) {
            Some(rng.gen_range(invoke..=complete + 4 * shape.max_duration))
        } else {
            None
        });
        ops.push(Operation {
            id,
            client: client as u64,
            key,
            call,
            ret: None,
            invoke_ns: invoke,
            complete_ns: (!indeterminate).then_some(complete),
        });
    }
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| effect_at[i].is_some()).collect();
    order.sort_by_key(|&i| (effect_at[i], i));
    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for i in order {
        let ret = apply(&mut store, &ops[i]);
        if ops[i].complete_ns.is_some() {
            ops[i].ret = Some(ret);
        }
    }
    ops
}

fn random_call(rng: &mut StdRng, shape: &Shape, id: u64, written: &mut Vec<Vec<u8>>) -> Call {
    let call = match rng.gen_range(0..10) {
        0..=3 => Call::Get,
        4..=6 => Call::Put(fresh(rng, shape, id)),
        7 => Call::Delete,
        _ => {
            // Expect absent, the latest or an older value: CAS both
            // succeeds and fails often.
            let back = rng.gen_range(0..=2usize);
            let expected = written
                .len()
                .checked_sub(back + 1)
                .map(|i| written[i].clone());
            Call::Cas {
                expected,
                new: fresh(rng, shape, id),
            }
        }
    };
    if let Call::Put(v) | Call::Cas { new: v, .. } = &call {
        written.push(v.clone());
    }
    call
}

fn fresh(rng: &mut StdRng, shape: &Shape, id: u64) -> Vec<u8> {
    match shape.values {
        Values::Tiny => TINY[rng.gen_range(0..TINY.len())].as_bytes().to_vec(),
        Values::Unique => format!("v{id}").into_bytes(),
    }
}

fn apply(store: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Operation) -> Ret {
    match &op.call {
        Call::Get => Ret::Value(store.get(&op.key).cloned()),
        Call::Put(v) => {
            store.insert(op.key.clone(), v.clone());
            Ret::Done
        }
        Call::Delete => {
            store.remove(&op.key);
            Ret::Done
        }
        Call::Cas { expected, new } => {
            let swaps = store.get(&op.key) == expected.as_ref();
            if swaps {
                store.insert(op.key.clone(), new.clone());
            }
            Ret::Cas(swaps)
        }
    }
}

/// Falsifies the response of each completed `Get`/`Cas` with probability
/// `p`: a `Get` reports another tiny value (or absent), a `Cas` the opposite
/// outcome.
pub fn corrupt(rng: &mut StdRng, history: &mut [Operation], p: f64) {
    for op in history.iter_mut() {
        if !rng.gen_bool(p) {
            continue;
        }
        match &mut op.ret {
            Some(Ret::Value(v)) => {
                let choices: Vec<Option<Vec<u8>>> = TINY
                    .iter()
                    .map(|t| Some(t.as_bytes().to_vec()))
                    .chain([None])
                    .filter(|c| c != v)
                    .collect();
                *v = choices[rng.gen_range(0..choices.len())].clone();
            }
            Some(Ret::Cas(swapped)) => *swapped = !*swapped,
            Some(Ret::Done) | None => {}
        }
    }
}
