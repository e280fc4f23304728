//! A three-member etcd cluster on loopback, default settings (fsync on every commit).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{free_port, version_of, Proc};

pub struct EtcdCluster {
    pub members: Vec<Proc>,
    /// Client endpoints, `127.0.0.1:port`.
    pub endpoints: Vec<String>,
    pub version: String,
}

impl EtcdCluster {
    /// Starts the members; readiness is checked by the caller with a real client.
    pub fn start(bin: &Path, data: &Path, logs: &Path) -> Result<EtcdCluster, String> {
        let names = ["etcd1", "etcd2", "etcd3"];
        let mut client = Vec::new();
        let mut peer = Vec::new();
        for _ in names {
            client.push(free_port()?);
            peer.push(free_port()?);
        }
        let initial: Vec<String> = names
            .iter()
            .zip(&peer)
            .map(|(n, p)| format!("{n}=http://127.0.0.1:{p}"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let dir: PathBuf = data.join(name);
            let c = format!("http://127.0.0.1:{}", client[i]);
            let p = format!("http://127.0.0.1:{}", peer[i]);
            let mut cmd = Command::new(bin);
            // Only what a cluster needs to find itself; everything else (snapshot count,
            // heartbeat, election timeout, quota, fsync) stays at etcd's defaults.
            cmd.arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", dir.display()))
                .arg(format!("--listen-client-urls={c}"))
                .arg(format!("--advertise-client-urls={c}"))
                .arg(format!("--listen-peer-urls={p}"))
                .arg(format!("--initial-advertise-peer-urls={p}"))
                .arg(format!("--initial-cluster={initial}"))
                .arg("--initial-cluster-token=kvbench")
                .arg("--initial-cluster-state=new");
            members.push(Proc::spawn(name, cmd, &logs.join(format!("{name}.log")))?);
        }
        Ok(EtcdCluster {
            members,
            endpoints: client.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            version: version_of(bin, &["--version"]),
        })
    }

    pub fn setup() -> &'static str {
        "3 members on loopback, etcd's default settings (fsync on), linearizable reads"
    }
}
