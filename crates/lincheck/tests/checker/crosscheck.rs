//! `check` against the brute-force reference on thousands of small random
//! histories. Every history has its own seed; a failure prints it, and
//! `LINCHECK_SEED=<seed> cargo test -p lincheck --test checker crosscheck`
//! replays just that history.

use std::time::{Duration, Instant};

use lincheck::{check, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::generate::{self, Shape, Values};
use crate::support::{assert_valid_witness, brute};

const HISTORIES: u64 = 6_000;
const FIRST_SEED: u64 = 0x114c_4ec4;

#[test]
fn check_agrees_with_brute_force_on_small_random_histories() {
    let seeds: Vec<u64> = match std::env::var("LINCHECK_SEED") {
        Ok(seed) => vec![seed.parse().expect("LINCHECK_SEED must be a u64")],
        Err(_) => (FIRST_SEED..FIRST_SEED + HISTORIES).collect(),
    };
    let (mut linearizable, mut violations) = (0u64, 0u64);
    let start = Instant::now();
    for &seed in &seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            clients: rng.gen_range(2..=3),
            keys: rng.gen_range(1..=2),
            ops: rng.gen_range(1..=7),
            values: Values::Tiny,
            indeterminate: [0.1, 0.3, 0.5][rng.gen_range(0..3)],
            max_gap: 3,
            max_duration: 8,
        };
        let mut h = generate::linearizable(&mut rng, &shape);
        // A third each: untouched, lightly and heavily falsified.
        let falsify = [0.0, 0.4, 0.8][rng.gen_range(0..3)];
        generate::corrupt(&mut rng, &mut h, falsify);

        let expected = brute::linearizable(&h);
        match (expected, check(&h, Duration::from_secs(10))) {
            (true, Verdict::Linearizable) => linearizable += 1,
            (false, Verdict::NotLinearizable(v)) => {
                assert_valid_witness(&h, &v);
                violations += 1;
            }
            (_, verdict) => panic!(
                "seed {seed}: reference says linearizable={expected}, check says {verdict:?}\n\
                 history: {h:#?}"
            ),
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "crosscheck: {} histories ({linearizable} linearizable, {violations} not) \
         agree with brute force; {:.1} us per history incl. reference",
        seeds.len(),
        elapsed.as_secs_f64() * 1e6 / seeds.len() as f64
    );
    if seeds.len() as u64 == HISTORIES {
        // Both verdicts must be well represented or the agreement means little.
        assert!(
            linearizable >= HISTORIES / 5,
            "too few linearizable: {linearizable}"
        );
        assert!(
            violations >= HISTORIES / 5,
            "too few violations: {violations}"
        );
    }
}
