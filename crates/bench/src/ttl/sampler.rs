//! Once a second, every node's `INFO`: keys, keys with a TTL, the state machine's bytes,
//! the process's resident memory, and its role.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::churn::unix_ms;
use crate::drivers::resp::{Reply, RespConn};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeSample {
    pub node: usize,
    pub leader: bool,
    pub keys: u64,
    pub expires: u64,
    /// `used_memory_dataset`: keys and values held.
    pub dataset_bytes: u64,
    /// `used_memory`: the process's resident set.
    pub rss_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    pub nodes: Vec<NodeSample>,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

fn field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// `db0:keys=N,expires=M,...`
fn keyspace(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("db0:"))
        .and_then(|l| {
            l.split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn node_sample(conn: &mut RespConn, node: usize) -> Result<NodeSample, String> {
    let info = match conn.call(&[b"INFO"]).await.map_err(|e| e.to_string())? {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => return Err(format!("INFO answered {other:?}")),
    };
    Ok(NodeSample {
        node,
        leader: info.lines().any(|l| l.trim() == "role:leader"),
        keys: keyspace(&info, "keys"),
        expires: keyspace(&info, "expires"),
        dataset_bytes: field(&info, "used_memory_dataset").unwrap_or(0),
        rss_bytes: field(&info, "used_memory").unwrap_or(0),
    })
}

impl Sampler {
    pub async fn start(endpoints: &[String]) -> Result<Sampler, String> {
        let mut conns = Vec::new();
        for ep in endpoints {
            conns.push(
                RespConn::connect(ep)
                    .await
                    .map_err(|e| format!("sampler: {ep}: {e}"))?,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let at_ms = unix_ms();
                let mut nodes = Vec::new();
                for (i, c) in conns.iter_mut().enumerate() {
                    if let Ok(n) = node_sample(c, i + 1).await {
                        nodes.push(n);
                    }
                }
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Sample { at_ms, nodes });
            }
        });
        Ok(Sampler {
            stop,
            task,
            samples,
        })
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields() {
        let info = "# Server\r\nrole:leader\r\nused_memory:123\r\nused_memory_dataset:45\r\n# Keyspace\r\ndb0:keys=10,expires=7,avg_ttl=100\r\n";
        assert_eq!(field(info, "used_memory"), Some(123));
        assert_eq!(field(info, "used_memory_dataset"), Some(45));
        assert_eq!(keyspace(info, "keys"), 10);
        assert_eq!(keyspace(info, "expires"), 7);
    }
}
