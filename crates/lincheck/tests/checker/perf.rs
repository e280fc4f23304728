//! Throughput on realistic sizes. Limits are loose (a loaded 2-core machine,
//! debug build); the figures go to stderr: run with `--nocapture`.

use std::time::{Duration, Instant};

use lincheck::{check, Verdict};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::support::generate::{self, Shape, Values};

const LIMIT: Duration = Duration::from_secs(5);
const BUDGET: Duration = Duration::from_secs(60);

/// Checks `runs` generated histories of `shape`, asserting each is
/// linearizable within `LIMIT`, and prints the figures.
fn measure(name: &str, shape: &Shape, runs: u64) {
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for seed in 0..runs {
        let h = generate::linearizable(&mut StdRng::seed_from_u64(seed), shape);
        let start = Instant::now();
        let verdict = check(&h, BUDGET);
        let took = start.elapsed();
        assert_eq!(verdict, Verdict::Linearizable, "{name}, seed {seed}");
        assert!(took < LIMIT, "{name}, seed {seed}: took {took:?}");
        total += took;
        worst = worst.max(took);
    }
    eprintln!(
        "perf {name}: {runs} histories of {} ops ({} keys, {} clients) checked, \
         {:.1} ms per history (worst {:.1} ms)",
        shape.ops,
        shape.keys,
        shape.clients,
        total.as_secs_f64() * 1e3 / runs as f64,
        worst.as_secs_f64() * 1e3
    );
}

#[test]
fn ten_thousand_ops_over_a_hundred_keys() {
    let shape = Shape {
        clients: 8,
        keys: 100,
        ops: 10_000,
        values: Values::Unique,
        indeterminate: 0.02,
        max_gap: 50,
        max_duration: 200,
    };
    measure("10k ops / 100 keys", &shape, 5);
}

#[test]
fn hot_key_under_heavy_concurrency() {
    // Every op overlaps the other clients' ops and the many pending ones
    // (as during a partition, when most requests time out).
    let shape = Shape {
        clients: 8,
        keys: 1,
        ops: 200,
        values: Values::Unique,
        indeterminate: 0.3,
        max_gap: 5,
        max_duration: 500,
    };
    measure("hot key", &shape, 20);
}
