//! The harness's own latency floor (`kvsim harness --floor`).
//!
//! A replica's median latency mixes what the replica costs with what the
//! harness costs: every datagram crosses the single-threaded forwarding loop
//! and two process wake-ups. To tell them apart, the same scenario schedule is
//! run once more against a stand-in replica (`floorreplica`, built beside
//! `kvsim`) that answers every request at once from its own map, with no
//! replication. Its median is the floor: no replica can answer faster under
//! this harness on this machine, so a bonus threshold below it is out of reach.

use super::config::Scenario;
use super::run::{run_scenario, HarnessError, HarnessOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the stand-in replica measured on the scenario's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyFloor {
    pub median_latency: f64,
    pub mean_latency: f64,
    pub latency_samples: usize,
}

/// The stand-in's scenario: the same replicas, requests, mix, timing and
/// clients, but no events and no drops. Events would only disturb it (a killed
/// "leader" sends its clients to replicas that never saw their writes) and
/// drops never touch client traffic, which is all the stand-in has.
pub fn floor_scenario(sc: &Scenario) -> Scenario {
    let mut f = sc.clone();
    f.name = format!("{}-floor", sc.name);
    f.events.clear();
    f.drops = 0.0;
    f.duplicate = 0.0;
    f.reorder = None;
    f
}

/// `floorreplica` next to the running executable (cargo builds both into the
/// same directory).
pub fn default_standin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("floorreplica");
    p.is_file().then_some(p)
}

/// Runs the floor scenario against `standin` with the harness seed of the real
/// run, so the request schedule and client choices are the same.
pub fn measure(
    sc: &Scenario,
    opts: &HarnessOptions,
    seed: u64,
    standin: &Path,
) -> Result<LatencyFloor, HarnessError> {
    let floor_opts = HarnessOptions {
        replica: standin.to_path_buf(),
        silence: true,
        seed: Some(seed),
        trace: None,
        echo: false,
        floor: None,
        ..opts.clone()
    };
    let r = run_scenario(&floor_scenario(sc), &floor_opts)?;
    Ok(LatencyFloor {
        median_latency: r.stats.median_latency,
        mean_latency: r.stats.mean_latency,
        latency_samples: r.stats.latency_samples,
    })
}
