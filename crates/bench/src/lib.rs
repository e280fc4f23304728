//! kvbench: a closed-loop load generator for raftkv, etcd and Redis, and `compare`, which
//! runs all three side by side on one machine and writes JSON, markdown and a chart; and
//! `tls`, what TLS costs raftkv.

pub mod compare;
pub mod drivers;
pub mod floor;
pub mod orchestrate;
pub mod report;
pub mod runner;
pub mod tls_cost;
pub mod workload;
