//! Hand-written histories with known verdicts. Each is also checked against
//! the brute-force reference, which validates the corpus itself.

use std::time::Duration;

use lincheck::{check, Operation, Verdict};

use crate::support::build::{cas, del, get, history, on, pending, put};
use crate::support::{assert_valid_witness, brute};

const BUDGET: Duration = Duration::from_secs(10);

fn good() -> Vec<(&'static str, Vec<Operation>)> {
    vec![
        ("empty history", vec![]),
        ("a key starts absent", vec![get(1, None, 0, 10)]),
        (
            "sequential put then get",
            vec![put(1, "a", 0, 10), get(2, Some("a"), 20, 30)],
        ),
        (
            "concurrent writes, later reads see a then b",
            vec![
                put(1, "a", 0, 50),
                put(2, "b", 0, 50),
                get(3, Some("a"), 10, 20),
                get(3, Some("b"), 60, 70),
            ],
        ),
        (
            "concurrent writes, later reads see b then a",
            vec![
                put(1, "a", 0, 50),
                put(2, "b", 0, 50),
                get(3, Some("b"), 10, 20),
                get(3, Some("a"), 60, 70),
            ],
        ),
        (
            "a read may see a write that has not completed yet",
            vec![
                put(1, "a", 0, 100),
                get(2, Some("a"), 10, 20),
                get(3, Some("a"), 30, 40),
            ],
        ),
        (
            "intervals that touch are concurrent",
            vec![put(1, "a", 0, 10), get(2, None, 10, 20)],
        ),
        (
            "indeterminate write shows up later",
            vec![
                pending(put(1, "a", 0, 0)),
                get(2, None, 10, 20),
                get(2, Some("a"), 1_000, 1_010),
            ],
        ),
        (
            "indeterminate write that never took effect",
            vec![
                pending(put(1, "a", 0, 0)),
                get(2, None, 10, 20),
                get(2, None, 1_000, 1_010),
            ],
        ),
        (
            "indeterminate delete takes effect between two reads",
            vec![
                put(1, "a", 0, 10),
                pending(del(1, 20, 0)),
                get(2, Some("a"), 30, 40),
                get(2, None, 50, 60),
            ],
        ),
        (
            "cas swaps the expected value",
            vec![
                put(1, "a", 0, 10),
                cas(2, Some("a"), "b", true, 20, 30),
                get(1, Some("b"), 40, 50),
            ],
        ),
        (
            "cas fails on another value",
            vec![
                put(1, "a", 0, 10),
                cas(2, None, "b", false, 20, 30),
                get(1, Some("a"), 40, 50),
            ],
        ),
        (
            "cas from absent",
            vec![cas(1, None, "a", true, 0, 10), get(2, Some("a"), 20, 30)],
        ),
        (
            "indeterminate cas took effect",
            vec![
                put(1, "a", 0, 10),
                pending(cas(1, Some("a"), "b", true, 20, 0)),
                get(2, Some("b"), 100, 110),
            ],
        ),
        (
            "delete makes the key absent",
            vec![put(1, "a", 0, 10), del(1, 20, 30), get(2, None, 40, 50)],
        ),
        (
            "an empty value is present",
            vec![put(1, "", 0, 10), get(2, Some(""), 20, 30)],
        ),
        (
            "a retried put whose first attempt is indeterminate may land late",
            vec![
                pending(put(1, "v1", 0, 0)),
                put(1, "v1", 5, 15),
                put(2, "v2", 20, 30),
                get(3, Some("v1"), 40, 50),
            ],
        ),
        (
            "keys are independent",
            vec![
                on("x", put(1, "a", 0, 10)),
                on("y", put(2, "b", 0, 10)),
                on("x", get(3, Some("a"), 20, 30)),
                on("y", get(3, Some("b"), 40, 50)),
            ],
        ),
    ]
}

fn bad() -> Vec<(&'static str, Vec<Operation>)> {
    vec![
        (
            "stale read after a completed write",
            vec![put(1, "a", 0, 10), get(2, None, 20, 30)],
        ),
        (
            "read of a value never written",
            vec![get(1, Some("z"), 0, 10)],
        ),
        (
            "stale read of an overwritten value",
            vec![
                put(1, "a", 0, 10),
                put(1, "b", 20, 30),
                get(2, Some("a"), 40, 50),
            ],
        ),
        (
            "indeterminate write read, then un-read",
            vec![
                pending(put(1, "a", 0, 0)),
                get(2, Some("a"), 10, 20),
                get(2, None, 30, 40),
            ],
        ),
        (
            "a retried put applied twice: v1, v2 completes, v1 again",
            vec![
                put(1, "v1", 0, 15),
                put(2, "v2", 20, 30),
                get(3, Some("v1"), 40, 50),
            ],
        ),
        (
            "value flips back during a long write",
            vec![
                put(1, "a", 0, 10),
                put(2, "b", 20, 100),
                get(3, Some("b"), 30, 40),
                get(3, Some("a"), 50, 60),
            ],
        ),
        (
            "concurrent writes seen in opposite orders",
            vec![
                put(1, "a", 0, 100),
                put(2, "b", 0, 100),
                get(3, Some("a"), 10, 20),
                get(3, Some("b"), 30, 40),
                get(4, Some("b"), 10, 20),
                get(4, Some("a"), 30, 40),
            ],
        ),
        (
            "cas swapped a value that was not there",
            vec![put(1, "a", 0, 10), cas(2, Some("b"), "c", true, 20, 30)],
        ),
        (
            "cas failed although the expected value was there",
            vec![put(1, "a", 0, 10), cas(2, Some("a"), "c", false, 20, 30)],
        ),
        (
            "a swap that later reads do not see",
            vec![
                put(1, "a", 0, 10),
                cas(2, Some("a"), "b", true, 20, 30),
                get(1, Some("a"), 40, 50),
            ],
        ),
        (
            "delete not seen",
            vec![
                put(1, "a", 0, 10),
                del(1, 20, 30),
                get(2, Some("a"), 40, 50),
            ],
        ),
        (
            "read of a deleted value after an indeterminate delete was seen",
            vec![
                put(1, "a", 0, 10),
                pending(del(1, 20, 0)),
                get(2, None, 30, 40),
                get(2, Some("a"), 50, 60),
            ],
        ),
        (
            "an empty value is not absent",
            vec![put(1, "", 0, 10), get(2, None, 20, 30)],
        ),
        (
            "absent is not an empty value",
            vec![get(1, Some(""), 0, 10)],
        ),
        (
            "a fine key does not hide a broken one",
            vec![
                on("x", put(1, "a", 0, 10)),
                on("x", get(2, Some("a"), 20, 30)),
                on("y", put(1, "b", 0, 10)),
                on("y", get(2, None, 20, 30)),
            ],
        ),
    ]
}

#[test]
fn known_good_histories_are_linearizable() {
    for (name, ops) in good() {
        let h = history(ops);
        assert!(
            brute::linearizable(&h),
            "reference disagrees with the corpus: {name}"
        );
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable, "{name}");
    }
}

#[test]
fn known_bad_histories_are_not_linearizable() {
    for (name, ops) in bad() {
        let h = history(ops);
        assert!(
            !brute::linearizable(&h),
            "reference disagrees with the corpus: {name}"
        );
        match check(&h, BUDGET) {
            Verdict::NotLinearizable(v) => assert_valid_witness(&h, &v),
            other => panic!("{name}: expected a violation, got {other:?}"),
        }
    }
}
