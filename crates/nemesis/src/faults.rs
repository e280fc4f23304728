//! The kinds of fault and how a fault is chosen.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A symmetric split into a majority and a minority.
    Partition,
    /// One node stops hearing the others, or the others stop hearing it (one direction).
    OneWay,
    /// Two sides that cannot talk, and one node that talks to both.
    Bridge,
    /// The leader cut off from every other node.
    IsolateLeader,
    /// `kill -9`, then a restart after a while.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Restarted under libfaketime with its clock running fast or slow.
    Clock,
    /// The node's data dir (a small tmpfs) filled to ENOSPC, then freed.
    DiskFull,
    /// Leadership handed to another voter through the admin API (`POST /transfer-leader`).
    Transfer,
    /// A follower replaced as an operator would: removed, stopped, its data dir wiped,
    /// started again with `--join`, promoted back to voter. Exclusive while it runs.
    Member,
}

pub const ALL: [FaultKind; 10] = [
    FaultKind::Partition,
    FaultKind::OneWay,
    FaultKind::Bridge,
    FaultKind::IsolateLeader,
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Clock,
    FaultKind::DiskFull,
    FaultKind::Transfer,
    FaultKind::Member,
];

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Clock => "clock",
            FaultKind::DiskFull => "disk-full",
            FaultKind::Transfer => "transfer",
            FaultKind::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<FaultKind, String> {
        ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown fault {s:?} (known: all, none, {})",
                names.join(", ")
            )
        })
    }

    /// `all`, `none`, or a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        match s.trim() {
            "all" => Ok(ALL.to_vec()),
            "none" | "" => Ok(Vec::new()),
            list => list
                .split(',')
                .map(|p| FaultKind::parse(p.trim()))
                .collect(),
        }
    }
}

/// Drop rules: node → the nodes whose packets it drops.
pub type Drops = BTreeMap<usize, BTreeSet<usize>>;

fn cut(drops: &mut Drops, a: &[usize], b: &[usize]) {
    for &x in a {
        for &y in b {
            drops.entry(x).or_default().insert(y);
            drops.entry(y).or_default().insert(x);
        }
    }
}

/// The drop rules of a network fault of `kind` on nodes `1..=n`, and a description.
/// `leader` is the current leader, if known.
pub fn network_fault(
    kind: FaultKind,
    n: usize,
    leader: Option<usize>,
    rng: &mut impl Rng,
) -> (Drops, String) {
    let mut nodes: Vec<usize> = (1..=n).collect();
    nodes.shuffle(rng);
    let mut drops = Drops::new();
    let desc = match kind {
        FaultKind::Partition => {
            let minority = rng.gen_range(1..=(n - 1) / 2);
            let (a, b) = nodes.split_at(minority);
            cut(&mut drops, a, b);
            let mut a = a.to_vec();
            let mut b = b.to_vec();
            a.sort();
            b.sort();
            format!("{a:?} | {b:?}")
        }
        FaultKind::OneWay => {
            let x = match leader {
                Some(l) if rng.gen_bool(0.5) => l,
                _ => nodes[0],
            };
            let others: Vec<usize> = (1..=n).filter(|&j| j != x).collect();
            let role = if Some(x) == leader { " (leader)" } else { "" };
            if rng.gen_bool(0.5) {
                drops.insert(x, others.iter().copied().collect());
                format!("node {x}{role} hears nobody (its own packets still go out)")
            } else {
                for &o in &others {
                    drops.entry(o).or_default().insert(x);
                }
                format!("nobody hears node {x}{role} (it still hears them)")
            }
        }
        FaultKind::Bridge => {
            let bridge = nodes[0];
            let rest = &nodes[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            cut(&mut drops, a, b);
            let role = if Some(bridge) == leader {
                " (leader)"
            } else {
                ""
            };
            let mut a = a.to_vec();
            let mut b = b.to_vec();
            a.sort();
            b.sort();
            format!("{a:?} | {b:?}, node {bridge}{role} bridges both")
        }
        FaultKind::IsolateLeader => {
            let l = leader.unwrap_or(nodes[0]);
            let others: Vec<usize> = (1..=n).filter(|&j| j != l).collect();
            cut(&mut drops, &[l], &others);
            if leader.is_some() {
                format!("leader {l} isolated")
            } else {
                format!("no leader known: node {l} isolated")
            }
        }
        _ => unreachable!("not a network fault"),
    };
    (drops, desc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn connected(d: &Drops, a: usize, b: usize) -> bool {
        !d.get(&b).is_some_and(|s| s.contains(&a))
    }

    #[test]
    fn parse_lists() {
        assert_eq!(FaultKind::parse_list("all").unwrap().len(), ALL.len());
        assert_eq!(
            FaultKind::parse_list("kill, pause").unwrap(),
            vec![FaultKind::Kill, FaultKind::Pause]
        );
        assert_eq!(
            FaultKind::parse_list("transfer,member").unwrap(),
            vec![FaultKind::Transfer, FaultKind::Member]
        );
        assert!(FaultKind::parse_list("kil").is_err());
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
    }

    #[test]
    fn partitions_leave_a_majority_and_bridges_connect_both_sides() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [3, 5] {
            for _ in 0..50 {
                let (d, _) = network_fault(FaultKind::Partition, n, Some(1), &mut rng);
                // Some side of size > n/2 is fully connected within itself.
                let sides: BTreeSet<Vec<usize>> = (1..=n)
                    .map(|a| (1..=n).filter(|&b| connected(&d, a, b)).collect())
                    .collect();
                assert_eq!(sides.len(), 2);
                assert!(sides.iter().any(|s| s.len() > n / 2));
                let (d, _) = network_fault(FaultKind::Bridge, n, None, &mut rng);
                let bridge = (1..=n)
                    .find(|&b| (1..=n).all(|a| connected(&d, a, b) && connected(&d, b, a)))
                    .expect("a bridge node");
                assert!((1..=n).any(|a| a != bridge && (1..=n).any(|b| !connected(&d, a, b))));
                let (d, _) = network_fault(FaultKind::IsolateLeader, n, Some(2), &mut rng);
                assert!((1..=n)
                    .filter(|&a| a != 2)
                    .all(|a| !connected(&d, a, 2) && !connected(&d, 2, a)));
                let (d, _) = network_fault(FaultKind::OneWay, n, Some(2), &mut rng);
                let cut: usize = d.values().map(|s| s.len()).sum();
                assert_eq!(cut, n - 1, "one direction between one node and the rest");
            }
        }
    }
}
