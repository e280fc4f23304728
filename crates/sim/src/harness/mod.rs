//! The course harness rebuilt: launches real replica processes, plays the
//! clients and the faulty network between them over UDP, and grades the run
//! exactly as the reference harness did (see /shared/spec/SIMULATOR.md and
//! crates/sim/HARNESS.md), plus a linearizability check of every client
//! operation.
//!
//! Library use (e.g. an end-to-end test against a built `3700kvstore`):
//!
//! ```no_run
//! use sim::harness::{run_scenario, HarnessOptions, Scenario};
//! let mut sc = Scenario::new("smoke", 5, 3, 50);
//! sc.start_wait = 1.0;
//! let opts = HarnessOptions {
//!     replica: "target/release/3700kvstore".into(),
//!     silence: true,
//!     seed: Some(1),
//!     ..HarnessOptions::default()
//! };
//! let report = run_scenario(&sc, &opts).unwrap();
//! assert!(report.passed, "{}", report.render());
//! ```

mod client;
mod config;
mod floor;
mod history;
mod network;
mod pyconv;
mod replica;
mod report;
mod run;
mod suite;
mod trace;

pub use client::ClientStats;
pub use config::{
    hex_id, Benchmark, Benchmarks, ConfigError, Event, EventKind, PauseTarget, Reorder,
    ResumeTarget, Scenario, Tests, Threshold,
};
pub use floor::{default_standin, floor_scenario, LatencyFloor};
pub use history::{History, LinResult, OpCall, OpRecord, OpRet};
pub use report::{tier, ScenarioReport, Stats, Tiers};
pub use run::{run_scenario, HarnessError, HarnessOptions, INTERRUPTED};
pub use suite::{
    describe, list_suite, per_scenario_path, resolve_config, resolve_config_dir, run_suite,
    Outcome, SuiteEntry, CONFIG_DIR_ENV, GROUPS,
};
