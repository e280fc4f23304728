//! driver — the loop shared by the seed replica, the cluster server and the simulator: it
//! feeds the core, runs each `Ready` (persist → send → apply → answer) and routes requests.

mod deadlines;
mod events;
mod membership;
mod node;
mod request;
mod routing;
mod snapshots;

pub use events::AppliedEvents;
pub use node::{Node, NodeOptions, NodeStats, PlantedDriverBugs, SnapshotPolicy, Transport};
pub use request::{scan_entry_bytes, scan_page_is_full, ReqId, Request, Response, MAX_SCAN_LIMIT};
pub use routing::{Forward, PlantedRoutingBugs, RoutedNode, RoutingOptions, RoutingStats};
