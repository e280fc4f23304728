//! server — raftkv in cluster mode: the `raftkv` binary's library.
//!
//! One node = a node loop thread owning the Raft driver ([`node_loop`]), peers over TCP
//! ([`transport`]), Redis-protocol clients ([`resp`]), an HTTP admin endpoint
//! ([`admin`]). [`server::start`] wires them; [`cli`] and [`up`] are the client and the
//! local-cluster launcher. See README.md in this crate for ports, formats and guarantees.

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod node_loop;
pub mod reply;
pub mod resp;
pub mod server;
pub mod snapshots;
pub mod store;
pub mod transport;
pub mod up;
