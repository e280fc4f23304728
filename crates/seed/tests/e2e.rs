//! End-to-end: the real `3700kvstore` binary under our rebuilt course harness.
//! Short scenarios (a few seconds each), including a leader kill and a partition, with
//! the harness's correctness checks and the linearizability verdict asserted.

use sim::harness::{run_scenario, Event, EventKind, HarnessOptions, Scenario};

fn options(seed: u64) -> HarnessOptions {
    HarnessOptions {
        replica: env!("CARGO_BIN_EXE_3700kvstore").into(),
        silence: true,
        seed: Some(seed),
        echo: false,
        ..HarnessOptions::default()
    }
}

fn scenario(
    name: &str,
    requests: u64,
    mix: f64,
    drops: f64,
    events: Vec<(EventKind, f64)>,
) -> Scenario {
    let mut sc = Scenario::new(name, 6, 5, requests);
    sc.start_wait = 2.0;
    sc.end_wait = 2.0;
    sc.mix = mix;
    sc.drops = drops;
    sc.events = events
        .into_iter()
        .map(|(kind, time)| Event { kind, time })
        .collect();
    sc
}

fn assert_passes(sc: &Scenario, seed: u64) {
    let report = run_scenario(sc, &options(seed)).expect("harness runs");
    assert!(report.passed, "{}", report.render());
}

#[test]
fn writes_and_reads_through_a_healthy_cluster() {
    assert_passes(&scenario("e2e-simple", 120, 0.5, 0.0, vec![]), 11);
}

#[test]
fn survives_a_leader_kill_and_a_hard_partition_with_drops() {
    let events = vec![
        (EventKind::PartHard, 1.0),
        (EventKind::PartEnd, 3.0),
        (EventKind::KillLeader, 4.0),
    ];
    assert_passes(&scenario("e2e-faults", 120, 0.3, 0.1, events), 12);
}
