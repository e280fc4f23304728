//! Random operation sequences run against the file store and the in-memory store side by
//! side: after every step both must hold the same log and hard state, and agree on which
//! operations fail. Deterministic (fixed seeds), small, and crossing tiny segments.

mod common;

use std::mem::discriminant;

use raft::{HardState, Membership, SnapshotMeta};
use storage::{FileLogOptions, FileLogStore, LogStore, MemLogStore};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn same_state(file: &FileLogStore, mem: &MemLogStore, step: usize) {
    assert_eq!(
        (file.first_index(), file.last_index(), file.last_term()),
        (mem.first_index(), mem.last_index(), mem.last_term()),
        "step {step}: bounds"
    );
    let lo = mem.first_index();
    let hi = mem.last_index() + 1;
    assert_eq!(
        file.entries(lo, hi, u64::MAX).unwrap(),
        mem.entries(lo, hi, u64::MAX).unwrap(),
        "step {step}: entries"
    );
    // `known_commit` survives a restart in the model only when it had to (beyond the
    // synced log); the file store may keep a later, unsynced value: never less.
    let (f, m) = (file.hard_state(), mem.hard_state());
    assert_eq!(
        HardState {
            known_commit: 0,
            ..f
        },
        HardState {
            known_commit: 0,
            ..m
        },
        "step {step}: hard state"
    );
    assert!(
        f.known_commit >= m.known_commit,
        "step {step}: {f:?} vs {m:?}"
    );
}

fn run(seed: u64, steps: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FileLogOptions {
        max_segment_bytes: 600,
        ..FileLogOptions::default()
    };
    let (mut file, _) = FileLogStore::open(tmp.path(), opts.clone()).unwrap();
    let mut mem = MemLogStore::with_durability_model();
    let mut rng = Rng(seed);
    let mut term = 1;
    let mut known = 0;

    for step in 0..steps {
        let op = rng.below(100);
        let (a, b) = if op < 55 {
            // Append at or before the end, sometimes in a new term (a conflict).
            if rng.below(6) == 0 {
                term += 1;
            }
            let last = mem.last_index();
            let back = rng.below(6).min(last + 1 - mem.first_index());
            let start = last + 1 - back;
            let len = 1 + rng.below(5);
            let batch = common::entries(start, start + len, term, rng.below(200) as usize);
            (file.append(&batch), mem.append(&batch))
        } else if op < 75 {
            (file.sync(), mem.sync())
        } else if op < 83 {
            let hs = HardState {
                term,
                vote: Some(1),
                commit: 0,
                known_commit: {
                    // Only ever rises, as the core's does.
                    known = known.max(rng.below(mem.last_index() + 20));
                    known
                },
            };
            (file.save_hard_state(&hs), mem.save_hard_state(&hs))
        } else if op < 91 {
            let span = mem.last_index() + 2 - mem.first_index();
            let upto = mem.first_index() - 1 + rng.below(span);
            (file.compact(upto), mem.compact(upto))
        } else if op < 93 {
            let meta = SnapshotMeta {
                index: mem.last_index() + rng.below(20),
                term,
                membership: Membership::new([1]),
            };
            (file.reset_to_snapshot(&meta), mem.reset_to_snapshot(&meta))
        } else {
            // Restart both after a sync; the file store may come back with a lower first
            // index (compaction persists per segment), which re-compacting fixes.
            file.sync().unwrap();
            mem.sync().unwrap();
            drop(file);
            file = FileLogStore::open(tmp.path(), opts.clone()).unwrap().0;
            mem.crash();
            assert!(file.first_index() <= mem.first_index(), "step {step}");
            file.compact(mem.first_index() - 1).unwrap();
            (Ok(()), Ok(()))
        };
        match (&a, &b) {
            (Ok(()), Ok(())) => {}
            (Err(x), Err(y)) => assert_eq!(discriminant(x), discriminant(y), "step {step}"),
            _ => panic!("step {step}: file {a:?} vs mem {b:?}"),
        }
        same_state(&file, &mem, step);
    }
}

#[test]
fn file_and_memory_stores_agree_on_random_histories() {
    for seed in 1..=12 {
        run(seed * 0x9e37_79b9, 300);
    }
}
