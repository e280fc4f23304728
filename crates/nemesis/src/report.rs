//! Availability figures, the verdict, and how they are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::faults::FaultKind;
use crate::history::{Outcome, Record};
use crate::run::Options;

#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub desc: String,
    pub healed: String,
    pub start_ms: u64,
    pub heal_ms: u64,
    /// Longest stretch with no acknowledged write anywhere, from this fault's start to
    /// the next fault's start (or the end of the load).
    pub longest_gap_ms: u64,
    /// From the heal until an acknowledged write had completed through *every* node
    /// (`None`: some node had none before the next fault began).
    pub recovery_ms: Option<u64>,
    /// The same per node (index 0 = node 1).
    pub recovery_by_node: Vec<Option<u64>>,
    /// `recovery_ms` over the limit, or missing.
    pub slow: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeExit {
    pub node: usize,
    pub at_ms: u64,
    pub status: String,
    pub during: String,
    pub log_tail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Availability {
    /// Longest stretch of the load phase with no acknowledged write anywhere.
    pub longest_gap_ms: u64,
    pub longest_gap_at_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KindRow {
    pub kind: String,
    pub count: usize,
    pub longest_gap_ms: u64,
    /// The slowest recovery of writes through every node after a heal.
    pub worst_recovery_ms: Option<u64>,
    pub slow: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OpCounts {
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub pass: bool,
    pub problems: Vec<String>,
    pub nodes: usize,
    pub seed: u64,
    pub read_mode: String,
    pub duration_s: u64,
    pub election_timeout_ms: u64,
    pub recovery_limit_ms: u64,
    pub linearizability: String,
    pub violation: Option<String>,
    pub check_ms: u64,
    pub ops: BTreeMap<String, OpCounts>,
    pub errors: BTreeMap<String, usize>,
    pub kinds: Vec<KindRow>,
    pub availability: Availability,
    pub faults: Vec<FaultRecord>,
    pub exits: Vec<NodeExit>,
    pub final_write_ms: BTreeMap<usize, u64>,
    pub data_dir: String,
}

/// The longest stretch in `[from, to)` with no time in `times` (sorted).
fn longest_gap(times: &[u64], from: u64, to: u64) -> (u64, u64) {
    let lo = times.partition_point(|&t| t < from);
    let hi = times.partition_point(|&t| t < to);
    let mut prev = from;
    let mut best = (0, from);
    for &t in times[lo..hi].iter().chain(std::iter::once(&to)) {
        if t - prev > best.0 {
            best = (t - prev, prev);
        }
        prev = t;
    }
    best
}

/// Fills in each fault's gap and recovery and returns the run's overall figures.
pub fn availability(
    records: &[Record],
    faults: &mut [FaultRecord],
    nodes: usize,
    load_start_ns: u64,
    load_end_ns: u64,
    limit_ms: u64,
) -> Availability {
    let ms = |ns: u64| ns / 1_000_000;
    let mut all: Vec<u64> = Vec::new();
    let mut per_node: Vec<Vec<u64>> = vec![Vec::new(); nodes + 1];
    for r in records.iter().filter(|r| r.write_ok()) {
        if r.complete_ns <= load_end_ns {
            all.push(ms(r.complete_ns));
            per_node[r.node].push(ms(r.complete_ns));
        }
    }
    all.sort_unstable();
    for p in &mut per_node {
        p.sort_unstable();
    }
    let end = ms(load_end_ns);
    let starts: Vec<u64> = faults.iter().map(|f| f.start_ms).collect();
    for (k, f) in faults.iter_mut().enumerate() {
        let next = starts.get(k + 1).copied().unwrap_or(end);
        f.longest_gap_ms = longest_gap(&all, f.start_ms, next.max(f.start_ms)).0;
        f.recovery_by_node = per_node
            .iter()
            .skip(1)
            .map(|p| {
                let i = p.partition_point(|&t| t < f.heal_ms);
                p.get(i).filter(|&&t| t <= next).map(|&t| t - f.heal_ms)
            })
            .collect();
        let worst = f
            .recovery_by_node
            .iter()
            .try_fold(0u64, |w, r| r.map(|r| w.max(r)));
        f.recovery_ms = worst;
        f.slow = limit_ms > 0 && worst.is_none_or(|w| w > limit_ms);
    }
    let (gap, at) = longest_gap(&all, ms(load_start_ns), end);
    Availability {
        longest_gap_ms: gap,
        longest_gap_at_ms: at,
    }
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        o: &Options,
        records: &[Record],
        faults: Vec<FaultRecord>,
        availability: Availability,
        linearizability: String,
        violation: Option<String>,
        problems: Vec<String>,
        exits: Vec<NodeExit>,
        final_write_ms: BTreeMap<usize, u64>,
        check_ms: u64,
        data_dir: String,
    ) -> Report {
        let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for r in records {
            let name = match r.op {
                crate::history::Op::Get => "get",
                crate::history::Op::Set(_) => "set",
                crate::history::Op::Cas { .. } => "cas",
                crate::history::Op::Incr => "incr",
            };
            for k in [name, "all"] {
                let c = ops.entry(k.to_string()).or_default();
                match &r.outcome {
                    Outcome::Failed(_) => c.failed += 1,
                    Outcome::Unknown(_) => c.unknown += 1,
                    _ => c.ok += 1,
                }
            }
            if let Outcome::Failed(e) | Outcome::Unknown(e) = &r.outcome {
                let mut e: String = e.chars().take(70).collect();
                if let Some(p) = e.find(" (os error") {
                    e.truncate(p);
                }
                *errors.entry(e).or_default() += 1;
            }
        }
        let mut rows: BTreeMap<FaultKind, KindRow> = BTreeMap::new();
        for f in &faults {
            let row = rows.entry(f.kind).or_insert_with(|| KindRow {
                kind: f.kind.name().to_string(),
                worst_recovery_ms: Some(0),
                ..Default::default()
            });
            row.count += 1;
            row.longest_gap_ms = row.longest_gap_ms.max(f.longest_gap_ms);
            row.worst_recovery_ms = match (row.worst_recovery_ms, f.recovery_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            row.slow += usize::from(f.slow);
        }
        Report {
            pass: problems.is_empty(),
            problems,
            nodes: o.nodes,
            seed: o.seed,
            read_mode: o.read_mode.clone(),
            duration_s: o.duration.as_secs(),
            election_timeout_ms: o.election_ms,
            recovery_limit_ms: o.recovery_limit_ms,
            linearizability,
            violation,
            check_ms,
            ops,
            errors,
            kinds: rows.into_values().collect(),
            availability,
            faults,
            exits,
            final_write_ms,
            data_dir,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== raftkv-nemesis: {} nodes, {} s, seed {}, read_mode {}, election timeout {} ms",
            self.nodes, self.duration_s, self.seed, self.read_mode, self.election_timeout_ms
        );
        let _ = writeln!(s, "\nfaults by kind (gap: longest stretch with no acknowledged write from the fault's start to the next; recovery: heal -> a write acknowledged through every node)");
        let _ = writeln!(
            s,
            "  {:<16} {:>5} {:>14} {:>18} {:>6}",
            "kind", "count", "longest gap ms", "worst recovery ms", "slow"
        );
        for r in &self.kinds {
            let _ = writeln!(
                s,
                "  {:<16} {:>5} {:>14} {:>18} {:>6}",
                r.kind,
                r.count,
                r.longest_gap_ms,
                r.worst_recovery_ms
                    .map_or("never".to_string(), |m| m.to_string()),
                r.slow
            );
        }
        let total: usize = self.kinds.iter().map(|r| r.count).sum();
        let _ = writeln!(s, "  {:<16} {:>5}", "total", total);
        let _ = writeln!(
            s,
            "\nops (failed = refused as not executed; unknown = no answer or TIMEOUT)"
        );
        let _ = writeln!(
            s,
            "  {:<6} {:>9} {:>9} {:>9}",
            "op", "ok", "failed", "unknown"
        );
        for (k, c) in &self.ops {
            let _ = writeln!(s, "  {:<6} {:>9} {:>9} {:>9}", k, c.ok, c.failed, c.unknown);
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nerror replies and client errors");
            let mut e: Vec<_> = self.errors.iter().collect();
            e.sort_by(|a, b| b.1.cmp(a.1));
            for (msg, n) in e.iter().take(10) {
                let _ = writeln!(s, "  {n:>7}  {msg}");
            }
        }
        let _ = writeln!(
            s,
            "\navailability: longest stretch with no acknowledged write: {} ms (from {:.1}s); recovery limit {} ms",
            self.availability.longest_gap_ms,
            self.availability.longest_gap_at_ms as f64 / 1000.0,
            self.recovery_limit_ms
        );
        let _ = writeln!(
            s,
            "final write through each node took (ms): {:?}",
            self.final_write_ms
        );
        let _ = writeln!(
            s,
            "lincheck: {} ({} ms)",
            self.linearizability, self.check_ms
        );
        if let Some(v) = &self.violation {
            let lines: Vec<&str> = v.lines().collect();
            for l in lines.iter().take(60) {
                let _ = writeln!(s, "  {l}");
            }
            if lines.len() > 60 {
                let _ = writeln!(s, "  ... ({} more lines)", lines.len() - 60);
            }
        }
        for e in &self.exits {
            let _ = writeln!(
                s,
                "\nnode {} exited on its own at {:.1}s ({}) during {}; its last log lines:\n{}",
                e.node,
                e.at_ms as f64 / 1000.0,
                e.status,
                e.during,
                e.log_tail
            );
        }
        if self.pass {
            let _ = writeln!(s, "\nVERDICT: PASS");
        } else {
            let _ = writeln!(s, "\nVERDICT: FAIL (logs kept in {})", self.data_dir);
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_include_the_edges() {
        assert_eq!(longest_gap(&[10, 20, 50], 0, 60), (30, 20));
        assert_eq!(longest_gap(&[], 5, 60), (55, 5));
        assert_eq!(longest_gap(&[10, 20], 12, 100), (80, 20));
    }
}
