//! server — raftkv in cluster mode: the `raftkv` binary's library.
//!
//! One node = a node loop thread owning the Raft driver ([`node_loop`]), peers over TCP
//! ([`transport`]), Redis-protocol clients ([`resp`]), an HTTP admin endpoint
//! ([`admin`]). [`server::start`] wires them; [`cli`] and [`up`] are the client and the
//! local-cluster launcher. See README.md in this crate for ports, formats and guarantees.
//!
//! Layers, lowest first; a module imports only from those before it (checked by
//! `tests/layers.rs`): [`metrics`], [`password`], [`reply`], [`status`], [`clock`],
//! [`glob`], [`state_file`] → [`events`] (the applied log's events, for subscribers) → [`config`] → [`protected`], [`tls`], [`cluster_id`], [`members`] → [`handle`] (the loop's events and the async
//! side's handle) → [`store`], [`snapshots`], [`transport`], [`resp`], [`admin`],
//! [`admin_client`] → [`open`] (building a node from its config) → [`node_loop`] →
//! [`server`] (wiring), [`cli`] → [`member_cli`], [`join`] → [`up`].

pub mod admin;
pub mod admin_client;
pub mod cli;
pub mod clock;
pub mod cluster_id;
pub mod config;
pub mod events;
pub mod glob;
pub mod handle;
pub mod join;
pub mod member_cli;
pub mod members;
pub mod metrics;
pub mod node_loop;
pub mod open;
pub mod password;
pub mod protected;
pub mod reply;
pub mod resp;
pub mod server;
pub mod snapshots;
pub mod state_file;
pub mod status;
pub mod store;
pub mod tls;
pub mod transport;
pub mod up;
