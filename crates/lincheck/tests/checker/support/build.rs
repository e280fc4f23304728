//! Terse constructors for hand-written histories. Ops are built on key "k"
//! with id 0; `history` numbers them 1, 2, ... in the order given.

use lincheck::{Call, Operation, Ret};

fn op(client: u64, call: Call, ret: Ret, invoke: u64, complete: u64) -> Operation {
    Operation {
        id: 0,
        client,
        key: b"k".to_vec(),
        call,
        ret: Some(ret),
        invoke_ns: invoke,
        complete_ns: Some(complete),
    }
}

fn bytes(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// A `Get` that returned `seen` (`None` = absent).
pub fn get(client: u64, seen: Option<&str>, invoke: u64, complete: u64) -> Operation {
    op(
        client,
        Call::Get,
        Ret::Value(seen.map(bytes)),
        invoke,
        complete,
    )
}

pub fn put(client: u64, value: &str, invoke: u64, complete: u64) -> Operation {
    op(client, Call::Put(bytes(value)), Ret::Done, invoke, complete)
}

pub fn del(client: u64, invoke: u64, complete: u64) -> Operation {
    op(client, Call::Delete, Ret::Done, invoke, complete)
}

pub fn cas(
    client: u64,
    expected: Option<&str>,
    new: &str,
    swapped: bool,
    invoke: u64,
    complete: u64,
) -> Operation {
    let call = Call::Cas {
        expected: expected.map(bytes),
        new: bytes(new),
    };
    op(client, call, Ret::Cas(swapped), invoke, complete)
}

/// The same op, never acknowledged.
pub fn pending(mut op: Operation) -> Operation {
    op.ret = None;
    op.complete_ns = None;
    op
}

/// The same op, on another key.
pub fn on(key: &str, mut op: Operation) -> Operation {
    op.key = bytes(key);
    op
}

/// Numbers the ops 1, 2, ... in the order given.
pub fn history(ops: Vec<Operation>) -> Vec<Operation> {
    ops.into_iter()
        .zip(1..)
        .map(|(op, id)| Operation { id, ..op })
        .collect()
}
