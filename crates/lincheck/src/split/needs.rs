//! Which carried ops a segment's search needs to see at all.
//!
//! A carried op that takes effect in segment `k`'s piece is, by rule 1 of
//! `canonical.rs`, followed at once by an op that fits the value `v` it
//! writes: a completed op of segment `k` (a `Get` of `v`, a successful `Cas`
//! expecting `v`, a failed `Cas` expecting anything else) or an
//! indeterminate `Cas` expecting `v`. A carried op with no such follower
//! cannot take effect in the piece and is *held*: left out of the search and
//! passed on still pending. An anonymous op's value is unnamed, so only a
//! failed `Cas` of the segment can follow it, and each follows one op: of
//! each anonymous class at most that many members are searched, the rest
//! held (they are interchangeable, so which ones does not matter).
//! Leaving held ops out matters because every carried op costs the search
//! a step at each node, and a long history can carry hundreds.

use std::collections::HashSet;

use super::future::Future;
use crate::model::{Effect, KeyOp, Val};

pub(crate) struct Needs {
    /// Values a `Get` or a successful `Cas` of the segment fits.
    fitted: HashSet<Val>,
    /// Up to two distinct values failed `Cas`es of the segment expected
    /// (two are enough to know whether one expected something other than
    /// a given value).
    failed_expected: Vec<Val>,
    failed: usize,
}

impl Needs {
    pub(crate) fn new(segment: &[KeyOp]) -> Self {
        let mut needs = Needs {
            fitted: HashSet::new(),
            failed_expected: Vec::new(),
            failed: 0,
        };
        for op in segment.iter().filter(|o| o.is_completed()) {
            match op.effect {
                Effect::Cas {
                    expected,
                    outcome: Some(false),
                    ..
                } => {
                    needs.failed += 1;
                    if needs.failed_expected.len() < 2 && !needs.failed_expected.contains(&expected)
                    {
                        needs.failed_expected.push(expected);
                    }
                }
                Effect::Read(v) | Effect::Cas { expected: v, .. } => {
                    needs.fitted.insert(v);
                }
                Effect::Write(_) => {}
            }
        }
        needs
    }

    /// Splits the named pending ops of an entry from the cut before
    /// segment `k` into those the segment's search must see and those it
    /// holds.
    pub(crate) fn split(&self, future: &Future, named: &[usize]) -> (Vec<usize>, Vec<usize>) {
        named.iter().partition(|&&i| {
            let v = future.writes(i);
            self.failed_expected.iter().any(|&e| e != v)
                || self.fitted.contains(&v)
                || future.named_indeterminately(v)
        })
    }

    /// How many members of each anonymous class the search must see.
    pub(crate) fn anonymous(&self) -> usize {
        self.failed
    }
}
