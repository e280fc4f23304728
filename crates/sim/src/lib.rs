//! sim: testing tools that drive raftkv replicas.
//!
//! - [`harness`]: `kvsim harness`, the course harness rebuilt in Rust.
//! - [`simulate`]: `kvsim simulate`, deterministic simulation of whole clusters running
//!   the real core and driver under virtual time.

pub mod harness;
pub mod simulate;
