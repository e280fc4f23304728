//! node — the driver shared by the seed replica, the cluster server and the simulator.

mod node;
mod request;
mod snapshots;

pub use node::{Node, NodeOptions, NodeStats, PlantedDriverBugs, SnapshotPolicy, Transport};
pub use request::{ReqId, Request, Response, MAX_SCAN_LIMIT};
