//! Peer-to-peer transport over TCP: the frame codec, outbound queues with their writer
//! tasks, and the inbound accept loop.

pub mod codec;
pub mod framing;
pub mod inbound;
pub mod peer;
