//! What the clients did, and its translation into a [`lincheck`] history.
//!
//! lincheck models each key as a register with `Get`, `Put`, `Delete` and `Cas`. INCR is
//! not one of them, so it is translated (the nemesis uses *counter keys* that are only
//! ever INCRed and read, never SET, so a counter holds "1", "2", ... in turn):
//!
//! * an acknowledged `INCR → n` is the compare-and-set that made it happen:
//!   `Cas { expected: n-1 (absent for n = 1), new: n } → swapped`;
//! * an INCR with an unknown outcome may have produced *some* value `k+1`. A counter
//!   goes up by one from absent, so if the history observes `v` (a GET returned it, or
//!   an acknowledged INCR started from it or returned it), every value `1..=v` was its
//!   state at some point; those that no acknowledged INCR produced are *gaps*; gaps are
//!   handed, in increasing
//!   order, to the unknown INCRs in order of invocation, each becoming an indeterminate
//!   `Cas { expected: g-1, new: g }`. Unknown INCRs left over never took effect.
//!
//! The translation loses nothing: a counter's values are produced in increasing order,
//! so if any assignment of unknown INCRs to gaps is consistent with real time (each
//! producer invoked before its gap is produced), the one pairing the j-th smallest gap
//! with the j-th earliest invocation is too: among the producers of the first j gaps, all
//! were invoked before the j-th gap was produced, so the j-th earliest invocation was as
//! well. More gaps than unknown INCRs means a value appeared from nowhere (or an
//! increment was applied twice), which lincheck then reports as a read of a value nobody
//! wrote.

use std::collections::{BTreeMap, BTreeSet};

use lincheck::{Call, Operation, Ret};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get,
    Set(String),
    Cas { expected: String, new: String },
    Incr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// GET's value.
    Value(Option<String>),
    /// SET's OK.
    Done,
    /// CAS's :1 / :0.
    Swapped(bool),
    /// INCR's new value.
    Int(i64),
    /// The server said it did not execute it (CLUSTERDOWN, TRYAGAIN).
    Failed(String),
    /// No answer, a TIMEOUT, or an error we cannot classify: it may have taken effect.
    Unknown(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub client: u64,
    /// The node (1-based) whose RESP port the client talked to.
    pub node: usize,
    pub key: String,
    pub op: Op,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

impl Record {
    pub fn is_write(&self) -> bool {
        !matches!(self.op, Op::Get)
    }

    /// An acknowledged write (the server executed it through the log).
    pub fn write_ok(&self) -> bool {
        self.is_write()
            && matches!(
                self.outcome,
                Outcome::Done | Outcome::Swapped(_) | Outcome::Int(_)
            )
    }
}

fn counter_value(n: i64) -> Option<Vec<u8>> {
    (n != 0).then(|| n.to_string().into_bytes())
}

/// The lincheck history of a run's records. Failed ops are left out (they claim not to
/// have run); unknown GETs constrain nothing and are left out too.
pub fn to_lincheck(records: &[Record]) -> Vec<Operation> {
    let mut out = Vec::new();
    let mut id = 0u64;
    let mut push = |out: &mut Vec<Operation>, r: &Record, call: Call, ret: Option<Ret>| {
        id += 1;
        let complete = ret.as_ref().map(|_| r.complete_ns);
        out.push(Operation {
            id,
            client: r.client,
            key: r.key.clone().into_bytes(),
            call,
            ret,
            invoke_ns: r.invoke_ns,
            complete_ns: complete,
        });
    };
    // Counter keys: values produced by acknowledged INCRs, values observed, unknown INCRs.
    let mut produced: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut observed: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut unknown_incrs: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let counters: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.op == Op::Incr)
        .map(|r| r.key.as_str())
        .collect();
    for r in records {
        match (&r.op, &r.outcome) {
            (Op::Get, Outcome::Value(v)) => {
                if counters.contains(r.key.as_str()) {
                    if let Some(n) = v.as_deref().and_then(|s| s.parse::<i64>().ok()) {
                        observed.entry(&r.key).or_default().insert(n);
                    }
                }
                let ret = Ret::Value(v.clone().map(String::into_bytes));
                push(&mut out, r, Call::Get, Some(ret));
            }
            (Op::Set(v), Outcome::Done) => push(
                &mut out,
                r,
                Call::Put(v.clone().into_bytes()),
                Some(Ret::Done),
            ),
            (Op::Set(v), Outcome::Unknown(_)) => {
                push(&mut out, r, Call::Put(v.clone().into_bytes()), None)
            }
            (Op::Cas { expected, new }, o @ (Outcome::Swapped(_) | Outcome::Unknown(_))) => {
                let call = Call::Cas {
                    expected: Some(expected.clone().into_bytes()),
                    new: new.clone().into_bytes(),
                };
                let ret = match o {
                    Outcome::Swapped(b) => Some(Ret::Cas(*b)),
                    _ => None,
                };
                push(&mut out, r, call, ret);
            }
            (Op::Incr, Outcome::Int(n)) => {
                produced.entry(&r.key).or_default().insert(*n);
                if *n > 1 {
                    observed.entry(&r.key).or_default().insert(n - 1);
                }
                let call = Call::Cas {
                    expected: counter_value(n - 1),
                    new: n.to_string().into_bytes(),
                };
                push(&mut out, r, call, Some(Ret::Cas(true)));
            }
            (Op::Incr, Outcome::Unknown(_)) => unknown_incrs.entry(&r.key).or_default().push(r),
            _ => {}
        }
    }
    for (key, mut unknown) in unknown_incrs {
        let none = BTreeSet::new();
        let made = produced.get(key).unwrap_or(&none);
        // Every value from 1 to the highest one seen was the counter's state at some point.
        let top = observed
            .get(key)
            .unwrap_or(&none)
            .iter()
            .chain(made.iter())
            .copied()
            .max()
            .unwrap_or(0);
        let gaps: Vec<i64> = (1..=top).filter(|g| !made.contains(g)).collect();
        unknown.sort_by_key(|r| r.invoke_ns);
        for (g, r) in gaps.into_iter().zip(unknown) {
            let call = Call::Cas {
                expected: counter_value(g - 1),
                new: g.to_string().into_bytes(),
            };
            push(&mut out, r, call, None);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lincheck::Verdict;
    use std::time::Duration;

    fn rec(client: u64, key: &str, op: Op, outcome: Outcome, t0: u64, t1: u64) -> Record {
        Record {
            client,
            node: 1,
            key: key.into(),
            op,
            outcome,
            invoke_ns: t0,
            complete_ns: t1,
        }
    }

    fn verdict(records: &[Record]) -> Verdict {
        lincheck::check(&to_lincheck(records), Duration::from_secs(5))
    }

    fn get(c: u64, v: Option<&str>, t0: u64, t1: u64) -> Record {
        rec(
            c,
            "c",
            Op::Get,
            Outcome::Value(v.map(str::to_string)),
            t0,
            t1,
        )
    }

    fn incr(c: u64, n: Option<i64>, t0: u64, t1: u64) -> Record {
        let o = n.map_or(Outcome::Unknown("timeout".into()), Outcome::Int);
        rec(c, "c", Op::Incr, o, t0, t1)
    }

    #[test]
    fn sequential_incrs_and_reads_are_linearizable() {
        let h = [
            incr(1, Some(1), 0, 10),
            incr(2, Some(2), 20, 30),
            get(3, Some("2"), 40, 50),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_incr_may_fill_a_gap() {
        let h = [
            incr(1, Some(1), 0, 10),
            incr(2, None, 20, 0),
            incr(3, Some(3), 40, 50),
            get(3, Some("3"), 60, 70),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn unknown_incrs_may_fill_consecutive_gaps_nobody_read() {
        // 2 and 3 were never read: only 4's INCR shows that 3 was there, hence 2 too.
        let h = [
            incr(1, Some(1), 0, 10),
            incr(2, None, 20, 0),
            incr(3, None, 21, 0),
            incr(4, Some(4), 40, 50),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // With one unknown INCR, one of the two values came from nowhere.
        let h = [
            incr(1, Some(1), 0, 10),
            incr(2, None, 20, 0),
            incr(4, Some(4), 40, 50),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn an_unknown_incr_may_never_happen() {
        let h = [
            incr(1, Some(1), 0, 10),
            incr(2, None, 20, 0),
            get(3, Some("1"), 60, 70),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn a_gap_without_an_unknown_incr_is_a_violation() {
        let h = [incr(1, Some(1), 0, 10), incr(3, Some(3), 40, 50)];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn two_incrs_returning_the_same_value_is_a_lost_update() {
        let h = [incr(1, Some(1), 0, 10), incr(2, Some(1), 20, 30)];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn an_unknown_incr_cannot_fill_a_gap_read_before_it_began() {
        let h = [
            incr(1, Some(1), 0, 10),
            get(3, Some("2"), 20, 30),
            incr(2, None, 40, 0),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_set_is_a_violation() {
        let h = [
            rec(1, "r", Op::Set("a".into()), Outcome::Done, 0, 10),
            rec(2, "r", Op::Get, Outcome::Value(None), 20, 30),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn failed_ops_are_left_out_and_unknown_sets_may_apply() {
        let h = [
            rec(
                1,
                "r",
                Op::Set("a".into()),
                Outcome::Failed("CLUSTERDOWN".into()),
                0,
                10,
            ),
            rec(
                1,
                "r",
                Op::Set("b".into()),
                Outcome::Unknown("TIMEOUT".into()),
                20,
                30,
            ),
            rec(2, "r", Op::Get, Outcome::Value(Some("b".into())), 40, 50),
        ];
        assert_eq!(to_lincheck(&h).len(), 2);
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // A value whose only write was refused as "not executed" must not be read.
        let h = [
            rec(
                1,
                "r",
                Op::Set("a".into()),
                Outcome::Failed("CLUSTERDOWN".into()),
                0,
                10,
            ),
            rec(2, "r", Op::Get, Outcome::Value(Some("a".into())), 40, 50),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable(_)));
    }
}
