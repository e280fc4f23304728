//! A three-node raftkv cluster on loopback, started with `raftkv serve` per node.
//!
//! The server is being written alongside kvbench (issue 5); the flags used here are the
//! ones its config overrides name (`--id`, `--data-dir`, `--peers`, `--peer-addr`,
//! `--client-addr`, `--admin-addr`). If they change, this file is the one place to follow.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::install::which;
use super::process::{free_port, version_of, Proc};

pub struct RaftkvCluster {
    pub nodes: Vec<Proc>,
    /// RESP client endpoints, `127.0.0.1:port`.
    pub endpoints: Vec<String>,
    pub version: String,
}

/// Where the `raftkv` binary is: the explicit path, else next to `kvbench` (both build into
/// the same `target/<profile>/`), else `target/release/raftkv` under the current directory,
/// else PATH.
pub fn find_binary(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.exists().then(|| p.to_path_buf());
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("raftkv")));
    sibling
        .filter(|p| p.exists())
        .or_else(|| Some(PathBuf::from("target/release/raftkv")).filter(|p| p.exists()))
        .or_else(|| which("raftkv"))
}

impl RaftkvCluster {
    pub fn start(bin: &Path, data: &Path, logs: &Path) -> Result<RaftkvCluster, String> {
        RaftkvCluster::start_with(bin, data, logs, None)
    }

    /// With `tls`, TLS on every surface: certificates made by `raftkv certs` in
    /// `data/raftkv-certs` (clients must trust its `ca.pem`, see
    /// [`RaftkvCluster::tls_ca`]), nodes named `raftkv-tls<id>`.
    pub fn start_tls(bin: &Path, data: &Path, logs: &Path) -> Result<RaftkvCluster, String> {
        let certs = RaftkvCluster::tls_dir(data);
        let out = Command::new(bin)
            .arg("certs")
            .arg("--dir")
            .arg(&certs)
            .args(["--nodes", "3"])
            .output()
            .map_err(|e| format!("{} certs: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} certs failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        RaftkvCluster::start_with(bin, data, logs, Some(&certs))
    }

    fn tls_dir(data: &Path) -> PathBuf {
        data.join("raftkv-certs")
    }

    /// The CA of a cluster started with [`RaftkvCluster::start_tls`].
    pub fn tls_ca(data: &Path) -> PathBuf {
        RaftkvCluster::tls_dir(data).join("ca.pem")
    }

    fn start_with(
        bin: &Path,
        data: &Path,
        logs: &Path,
        tls: Option<&Path>,
    ) -> Result<RaftkvCluster, String> {
        let prefix = if tls.is_some() {
            "raftkv-tls"
        } else {
            "raftkv"
        };
        let ids = [1u64, 2, 3];
        let mut peer = Vec::new();
        let mut client = Vec::new();
        let mut admin = Vec::new();
        for _ in ids {
            peer.push(free_port()?);
            client.push(free_port()?);
            admin.push(free_port()?);
        }
        let peers: Vec<String> = ids
            .iter()
            .zip(&peer)
            .map(|(id, p)| format!("{id}=127.0.0.1:{p}"))
            .collect();
        let peers = peers.join(",");
        let mut nodes = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let dir = data.join(format!("{prefix}{id}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut cmd = Command::new(bin);
            // fsync is always on in raftkv (no flag turns it off); defaults otherwise.
            cmd.arg("serve")
                .args(["--id", &id.to_string()])
                .args(["--data-dir", &dir.display().to_string()])
                .args(["--peers", &peers])
                .args(["--peer-addr", &format!("127.0.0.1:{}", peer[i])])
                .args(["--client-addr", &format!("127.0.0.1:{}", client[i])])
                .args(["--admin-addr", &format!("127.0.0.1:{}", admin[i])]);
            if let Some(certs) = tls {
                cmd.arg("--tls-dir").arg(certs);
            }
            let name = format!("{prefix}{id}");
            nodes.push(Proc::spawn(&name, cmd, &logs.join(format!("{name}.log")))?);
        }
        Ok(RaftkvCluster {
            nodes,
            endpoints: client.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            version: version_of(bin, &["--version"]),
        })
    }

    pub fn setup() -> &'static str {
        "3 nodes on loopback, fsync on, linearizable (ReadIndex) reads, any node forwards to the leader"
    }

    pub fn setup_tls() -> &'static str {
        "as raftkv, with TLS on every surface: mutual TLS between nodes, TLS to clients (rustls, ring)"
    }
}
