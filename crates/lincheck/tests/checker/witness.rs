//! What a violation reports: shrunk witness, explanation, timeline, and the
//! `Unknown` verdicts (budget, malformed input).

use std::time::{Duration, Instant};

use lincheck::{check, Call, Operation, Ret, Verdict, Violation};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::support::assert_valid_witness;
use crate::support::build::{cas, get, history, on, pending, put};
use crate::support::generate::{self, Shape, Values};

const BUDGET: Duration = Duration::from_secs(10);

fn violation(h: &[Operation]) -> Violation {
    match check(h, BUDGET) {
        Verdict::NotLinearizable(v) => {
            assert_valid_witness(h, &v);
            v
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

fn ids(v: &Violation) -> Vec<u64> {
    v.ops.iter().map(|o| o.id).collect()
}

#[test]
fn double_applied_put_shrinks_to_its_three_ops() {
    let h = history(vec![
        put(1, "v0", 0, 10),
        get(2, Some("v0"), 12, 14),
        cas(3, Some("zz"), "x", false, 11, 13),
        put(1, "v1", 20, 35), // #4: the put whose retry lands twice
        get(3, Some("v1"), 36, 38),
        put(2, "v2", 40, 50),       // #6
        get(3, Some("v1"), 60, 70), // #7: v1 again
        get(1, Some("v2"), 80, 90),
        pending(put(2, "v3", 95, 0)),
        get(3, Some("v3"), 100, 110),
    ]);
    let v = violation(&h);
    assert_eq!(ids(&v), [4, 6, 7], "witness:\n{v}");
    assert!(v.explanation.contains("#7"), "{}", v.explanation);
    eprintln!("{v}");
}

#[test]
fn the_broken_key_is_reported() {
    let h = history(vec![
        on("x", put(1, "a", 0, 10)),
        on("y", put(1, "b", 0, 10)),
        on("y", get(2, None, 20, 30)),
        on("x", get(2, Some("a"), 20, 30)),
    ]);
    let v = violation(&h);
    assert_eq!(v.key, b"y");
    assert_eq!(ids(&v), [2, 3]);
}

#[test]
fn timeline_lists_every_witness_op() {
    let h = history(vec![
        pending(put(7, "a", 1_000, 0)),
        get(8, Some("a"), 2_000, 3_000),
        get(8, None, 4_000, 5_500),
    ]);
    let text = violation(&h).to_string();
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("key \"k\" is not linearizable (3 ops)"),
        "{text}"
    );
    // Title, explanation, header, then one line per op in invoke order.
    assert_eq!(lines.len(), 6, "{text}");
    for (line, expect) in lines[3..].iter().zip([
        ["#1", "c7", "+0ns", "?", "put \"a\"", "?"],
        ["#2", "c8", "+1.000us", "+2.000us", "get", "\"a\""],
        ["#3", "c8", "+3.000us", "+4.500us", "get", "absent"],
    ]) {
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(&cells[..6], expect, "{text}");
    }
    assert!(lines[3].trim_end().ends_with('>'), "pending op bar: {text}");
}

#[test]
fn histories_and_verdicts_round_trip_through_json() {
    let h = history(vec![
        put(1, "a", 0, 10),
        pending(cas(2, None, "b", true, 5, 0)),
        get(3, Some("c"), 20, 30),
    ]);
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(serde_json::from_str::<Vec<Operation>>(&json).unwrap(), h);
    let verdict = check(&h, BUDGET);
    let json = serde_json::to_string(&verdict).unwrap();
    assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), verdict);
}

#[test]
fn exhausted_budget_is_unknown_not_a_verdict() {
    let h = history(vec![put(1, "a", 0, 10), get(2, Some("a"), 20, 30)]);
    match check(&h, Duration::ZERO) {
        Verdict::Unknown { key, reason } => {
            assert_eq!(key, b"k");
            assert!(reason.contains("budget"), "{reason}");
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
}

#[test]
fn a_hopeless_search_stops_at_the_budget() {
    // 40 concurrent puts and a read of a value none wrote: the search must
    // try every subset of the puts before it can say no.
    let mut ops: Vec<Operation> = (0..40)
        .map(|i| put(i, &format!("v{i}"), 0, 1_000))
        .collect();
    ops.push(get(99, Some("never"), 0, 1_000));
    let h = history(ops);
    let budget = Duration::from_millis(200);
    let start = Instant::now();
    let verdict = check(&h, budget);
    let took = start.elapsed();
    match verdict {
        Verdict::Unknown { reason, .. } => assert!(reason.contains("time budget"), "{reason}"),
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert!(took < budget + Duration::from_secs(2), "overran: {took:?}");
}

#[test]
fn malformed_histories_are_unknown() {
    let mut get_done = get(1, None, 0, 10);
    get_done.ret = Some(Ret::Done);
    let mut no_completion = put(1, "a", 0, 10);
    no_completion.complete_ns = None;
    let mut completion_without_ret = put(1, "a", 0, 10);
    completion_without_ret.ret = None;
    let cases = [
        ("response does not fit", history(vec![get_done])),
        (
            "completes before it starts",
            history(vec![put(1, "a", 10, 5)]),
        ),
        (
            "acknowledged, never completed",
            history(vec![no_completion]),
        ),
        (
            "completed, never acknowledged",
            history(vec![completion_without_ret]),
        ),
        (
            "duplicate id",
            vec![put(1, "a", 0, 10), get(2, None, 20, 30)],
        ),
    ];
    for (name, h) in cases {
        match check(&h, BUDGET) {
            Verdict::Unknown { reason, .. } => {
                assert!(reason.starts_with("malformed history"), "{name}: {reason}")
            }
            other => panic!("{name}: expected Unknown, got {other:?}"),
        }
    }
}

#[test]
fn stale_read_in_a_large_history_is_found_and_shrunk() {
    let shape = Shape {
        clients: 8,
        keys: 100,
        ops: 10_000,
        values: Values::Unique,
        indeterminate: 0.02,
        max_gap: 50,
        max_duration: 200,
    };
    let mut h = generate::linearizable(&mut StdRng::seed_from_u64(7), &shape);
    // Plant a read of a key's first value late in the history; that value
    // was overwritten long before.
    let late_get = (h.len() / 2..h.len())
        .rev()
        .find(|&i| h[i].call == Call::Get && h[i].ret.is_some())
        .unwrap();
    let key = h[late_get].key.clone();
    let first_value = h
        .iter()
        .find_map(|o| match &o.call {
            Call::Put(v) if o.key == key => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    h[late_get].ret = Some(Ret::Value(Some(first_value)));

    let start = Instant::now();
    let v = violation(&h);
    let took = start.elapsed();
    eprintln!(
        "large violation: found and shrunk to {} of {} ops on the key in {took:?}\n{v}",
        v.ops.len(),
        h.iter().filter(|o| o.key == key).count()
    );
    assert_eq!(v.key, key);
    assert!(v.ops.iter().any(|o| o.id == h[late_get].id), "{v}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
