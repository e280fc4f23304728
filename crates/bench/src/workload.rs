//! What the clients do: the operation mix, and the keys and values they use.
//!
//! Keys and values are generated, never stored: every client draws a key index uniformly
//! from the key space and formats it, so 256 clients cost no memory and every system sees
//! the same distribution of keys for the same seed.

use std::fmt;
use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The operation mix of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Every operation is a SET / put of a random key.
    Write,
    /// Every operation is a linearizable GET / range of a random (preloaded) key.
    Read,
    /// Each operation is a write or a read with probability one half.
    Mixed,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Write, Workload::Read, Workload::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Mixed => "mixed",
        }
    }

    /// The heading used in tables and charts.
    pub fn title(self) -> &'static str {
        match self {
            Workload::Write => "write-only",
            Workload::Read => "read-only (linearizable)",
            Workload::Mixed => "50/50 read/write",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "write" => Ok(Workload::Write),
            "read" => Ok(Workload::Read),
            "mixed" => Ok(Workload::Mixed),
            other => Err(format!("unknown workload {other:?} (write|read|mixed)")),
        }
    }
}

/// One operation a client is about to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get(u64),
    Set(u64),
}

/// Shape of the data: how many keys, how long keys and values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataShape {
    pub keyspace: u64,
    pub key_size: usize,
    pub value_size: usize,
}

impl DataShape {
    /// The key for index `i`: `k` then the zero-padded index, padded to `key_size`.
    /// Fixed width keeps every request the same size, whatever the index.
    pub fn key(&self, i: u64) -> Vec<u8> {
        let digits = self.key_size.saturating_sub(1).max(1);
        let mut k = format!("k{i:0digits$}").into_bytes();
        k.truncate(self.key_size.max(1));
        k
    }

    /// The value every write sends. Printable bytes, so `redis-cli` output stays readable,
    /// and not all the same byte, so no layer can compress it to nothing.
    pub fn value(&self) -> Vec<u8> {
        (0..self.value_size)
            .map(|i| b'a' + ((i * 7 + i / 26) % 26) as u8)
            .collect()
    }
}

/// Draws the operations of one client: an independent, seeded stream per client.
pub struct OpStream {
    rng: SmallRng,
    workload: Workload,
    keyspace: u64,
}

impl OpStream {
    pub fn new(workload: Workload, keyspace: u64, seed: u64, client: usize) -> Self {
        // Spread client seeds far apart so two clients never walk the same key sequence.
        let s = seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        OpStream {
            rng: SmallRng::seed_from_u64(s),
            workload,
            keyspace: keyspace.max(1),
        }
    }

    pub fn next_op(&mut self) -> Op {
        let k = self.rng.gen_range(0..self.keyspace);
        let write = match self.workload {
            Workload::Write => true,
            Workload::Read => false,
            Workload::Mixed => self.rng.gen_bool(0.5),
        };
        if write {
            Op::Set(k)
        } else {
            Op::Get(k)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size() {
        let shape = DataShape {
            keyspace: 100_000,
            key_size: 16,
            value_size: 256,
        };
        assert_eq!(shape.key(0), b"k000000000000000");
        assert_eq!(shape.key(99_999).len(), 16);
        assert_eq!(shape.value().len(), 256);
    }

    #[test]
    fn mixed_is_roughly_half_writes() {
        let mut s = OpStream::new(Workload::Mixed, 10, 1, 0);
        let writes = (0..10_000)
            .filter(|_| matches!(s.next_op(), Op::Set(_)))
            .count();
        assert!((4_500..5_500).contains(&writes), "{writes}");
    }
}
