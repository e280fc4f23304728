//! `kvsim simulate`: deterministic simulation of whole raftkv clusters.
//!
//! The real consensus core (`raft`), the real driver (`node`) and the real in-memory
//! store with its durability model (`storage::MemLogStore`) run in one thread under
//! virtual time, with a fake network, fake disks and fake clocks. One seeded RNG draws
//! every fault, delay and client choice, so a seed replays bit for bit. See
//! `crates/sim/SIMULATE.md`.
//!
//! - [`world`]: the cluster, the event loop, node inputs and outputs;
//! - [`network`], [`clock`], [`faults`], [`client`]: the fakes and the load;
//! - [`invariants`]: Raft's safety properties, checked after every step;
//! - [`check`]: end-of-run checks (convergence, acknowledged writes, linearizability);
//! - [`run`], [`runner`]: one seed, and many in parallel;
//! - [`lab`]: scripted control for the classic Raft lab scenarios (tests).

pub mod check;
pub mod client;
pub mod clock;
pub mod events;
pub mod faults;
pub mod invariants;
pub mod lab;
pub mod membership;
pub mod network;
pub mod params;
pub mod rng;
pub mod run;
pub mod runner;
pub mod trace;
pub mod world;

pub use params::{Bugs, Params, BUG_NAMES};
pub use run::{default_nodes, run_seed, RunOptions, RunReport};
pub use runner::{run_batch, BatchOptions, BatchReport};
pub use world::World;
