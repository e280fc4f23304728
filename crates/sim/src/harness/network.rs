//! The simulated network between replicas: address checks, partitions and
//! the per-delivery fault decisions (drop, and the duplicate/reorder
//! extensions). Pure logic, driven by the harness's one seeded RNG.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;

/// The broadcast / unknown-leader address.
pub const BROADCAST: &str = "FFFF";

/// `src`, `dst` and `leader` must be exactly four hex characters.
pub fn valid_addr(v: &serde_json::Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A partition: the majority side; every other replica is on the minority
/// side. Addresses that are not replicas count as outside the majority, as
/// in the reference's set arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub majority: BTreeSet<String>,
}

impl Partition {
    /// Whether `a` and `b` are on the same side.
    pub fn connects(&self, a: &str, b: &str) -> bool {
        self.majority.contains(a) == self.majority.contains(b)
    }
}

/// Whether the (optional) partition lets `a` reach `b`.
pub fn connected(p: Option<&Partition>, a: &str, b: &str) -> bool {
    p.is_none_or(|p| p.connects(a, b))
}

/// Chooses a majority side of N//2+1 replicas among all replica IDs (living
/// or not, as the reference did). With `leader` given (`part_easy` with a
/// known leader) the side contains it; otherwise it is random.
pub fn choose_majority(rids: &[String], leader: Option<&str>, rng: &mut impl Rng) -> Partition {
    let mut size = rids.len() / 2 + 1;
    let mut majority = BTreeSet::new();
    let mut rest: Vec<&String> = rids.iter().collect();
    if let Some(l) = leader {
        if let Some(pos) = rest.iter().position(|r| r.as_str() == l) {
            majority.insert(rest.remove(pos).clone());
            size -= 1;
        }
    }
    for r in rest.choose_multiple(rng, size) {
        majority.insert((*r).clone());
    }
    Partition { majority }
}

/// Fault settings for replica→replica deliveries.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub drops: f64,
    pub duplicate: f64,
    /// (probability, max delay in seconds)
    pub reorder: Option<(f64, f64)>,
}

/// What happens to one replica→replica delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Dropped by a partition.
    Partitioned,
    /// Dropped at random (`drops`).
    Dropped,
    /// Delivered `copies` times (2 with `duplicate`), after `delay_s`
    /// seconds (non-zero with `reorder`).
    Deliver { copies: u8, delay_s: f64 },
}

impl Faults {
    /// Decides one delivery. The partition check comes first and draws no
    /// random number; then the drop; the extensions draw only when enabled,
    /// so scenarios without them consume the RNG as before.
    pub fn decide(&self, partitioned: bool, rng: &mut impl Rng) -> Fate {
        if partitioned {
            return Fate::Partitioned;
        }
        if rng.gen::<f64>() < self.drops {
            return Fate::Dropped;
        }
        let copies = if self.duplicate > 0.0 && rng.gen::<f64>() < self.duplicate {
            2
        } else {
            1
        };
        let delay_s = match self.reorder {
            Some((p, max)) if p > 0.0 && max > 0.0 && rng.gen::<f64>() < p => {
                rng.gen_range(0.0..max)
            }
            _ => 0.0,
        };
        Fate::Deliver { copies, delay_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:04X}")).collect()
    }

    #[test]
    fn addresses_are_exactly_four_hex_chars() {
        assert!(valid_addr(&json!("FFFF")));
        assert!(valid_addr(&json!("00a1")));
        for bad in [
            json!("FFF"),
            json!("FFFFF"),
            json!("0x1A"),
            json!(" 1A "),
            json!(12),
        ] {
            assert!(!valid_addr(&bad), "{bad}");
        }
    }

    #[test]
    fn easy_partition_keeps_the_leader_in_the_majority() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let p = choose_majority(&ids(5), Some("0003"), &mut rng);
            assert_eq!(p.majority.len(), 3);
            assert!(p.majority.contains("0003"));
        }
        // An unknown leader (not a replica ID) changes nothing.
        let p = choose_majority(&ids(4), Some("00AB"), &mut rng);
        assert_eq!(p.majority.len(), 3);
    }

    #[test]
    fn hard_partition_is_a_random_majority() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut seen_without_0 = false;
        for _ in 0..100 {
            let p = choose_majority(&ids(7), None, &mut rng);
            assert_eq!(p.majority.len(), 4);
            seen_without_0 |= !p.majority.contains("0000");
        }
        assert!(seen_without_0);
    }

    #[test]
    fn partition_separates_sides_only() {
        let p = Partition {
            majority: ["0000", "0001", "0002"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        assert!(p.connects("0000", "0002"));
        assert!(p.connects("0003", "0004"));
        assert!(!p.connects("0000", "0004"));
        assert!(!p.connects("0000", "00AB"));
        assert!(connected(None, "0000", "0004"));
    }

    #[test]
    fn fault_decisions_follow_probabilities() {
        let mut rng = StdRng::seed_from_u64(3);
        let f = Faults {
            drops: 0.25,
            ..Faults::default()
        };
        assert_eq!(f.decide(true, &mut rng), Fate::Partitioned);
        let dropped = (0..4000)
            .filter(|_| f.decide(false, &mut rng) == Fate::Dropped)
            .count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        let f = Faults {
            drops: 0.0,
            duplicate: 1.0,
            reorder: Some((1.0, 0.05)),
        };
        match f.decide(false, &mut rng) {
            Fate::Deliver { copies, delay_s } => {
                assert_eq!(copies, 2);
                assert!(delay_s > 0.0 && delay_s < 0.05);
            }
            other => panic!("{other:?}"),
        }
    }
}
