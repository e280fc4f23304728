//! raftkv-nemesis: a real `raftkv` cluster, one node per network namespace, under real
//! faults (nftables partitions, kill -9, SIGSTOP, libfaketime clocks, a full disk),
//! with RESP clients whose history is checked by lincheck. See README.md.

pub mod admin;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod membership;
pub mod net;
pub mod report;
pub mod run;
pub mod workload;
