//! sim: testing tools that drive raftkv replicas.
//!
//! - [`harness`]: `kvsim harness`, the course harness rebuilt in Rust.

pub mod harness;
