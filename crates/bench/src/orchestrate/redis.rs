//! One Redis with an append-only file fsynced on every write: the durable single-node
//! reference (what you would run if you gave up replication, not durability).

use std::path::Path;
use std::process::Command;

use super::process::{free_port, version_of, Proc};

pub struct RedisServer {
    pub proc: Proc,
    pub endpoint: String,
    pub version: String,
}

impl RedisServer {
    pub fn start(bin: &Path, data: &Path, logs: &Path) -> Result<RedisServer, String> {
        let port = free_port()?;
        let dir = data.join("redis");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--dir", &dir.display().to_string()])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            // No RDB snapshots: the AOF is the durability being compared, and a background
            // save forking mid-cell would add noise that is not part of it.
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .args(["--logfile", ""]);
        Ok(RedisServer {
            proc: Proc::spawn("redis", cmd, &logs.join("redis.log"))?,
            endpoint: format!("127.0.0.1:{port}"),
            version: version_of(bin, &["--version"]),
        })
    }

    pub fn setup() -> &'static str {
        "single node, appendonly yes, appendfsync always, RDB snapshots off"
    }
}
