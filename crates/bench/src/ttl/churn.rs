//! The background writes of the TTL benchmark: `SET` at a fixed rate (open loop), each a
//! log entry of its own, as a cache's clients write.
//!
//! With TTLs every key is new (`ttl:<seq>`, `PX ttl`), so the live keys settle at
//! rate × TTL and every key written is, one TTL later, a key active expiry must remove.
//! Without TTLs the same writes cycle over a fixed key space of the same size, so both
//! runs hold the same number of keys and write at the same rate: the only difference is
//! the TTLs, and the expiry they cause.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::drivers::resp::{Reply, RespConn};

/// Pipelines are sent every this often, each catching up with the target rate.
const SLOT: Duration = Duration::from_millis(20);
/// At most this many commands in one pipeline (a worker far behind catches up in steps).
const MAX_PIPELINE: u64 = 2_000;
/// Connections writing.
pub const WORKERS: usize = 8;

#[derive(Clone, Debug)]
pub struct ChurnSpec {
    pub endpoints: Vec<String>,
    /// Writes per second, all workers together.
    pub rate: f64,
    /// `Some(ms)`: every key new, with this TTL; `None`: keys cycle over `keys`.
    pub ttl_ms: Option<u64>,
    pub keys: u64,
    pub value_size: usize,
}

/// One pipeline's outcome: when it was sent (Unix ms) and how many writes were
/// acknowledged `+OK`.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    pub sent_ms: u64,
    pub acked: u64,
}

pub struct Churn {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<Result<(), String>>,
    pub batches: Arc<Mutex<Vec<Batch>>>,
    pub sent: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    started: Instant,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Churn {
    /// Starts the writers (call inside the runtime).
    pub async fn start(spec: ChurnSpec) -> Result<Churn, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let next_seq = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for w in 0..WORKERS {
            let ep = &spec.endpoints[w % spec.endpoints.len()];
            let conn = RespConn::connect(ep)
                .await
                .map_err(|e| format!("churn: {ep}: {e}"))?;
            let (spec, stop, batches, sent, errors, next_seq) = (
                spec.clone(),
                stop.clone(),
                batches.clone(),
                sent.clone(),
                errors.clone(),
                next_seq.clone(),
            );
            tasks.spawn(async move {
                worker(conn, spec, started, stop, batches, sent, errors, next_seq).await
            });
        }
        Ok(Churn {
            stop,
            tasks,
            batches,
            sent,
            errors,
            started,
        })
    }

    /// Writes per second actually sent so far.
    pub fn achieved_rate(&self) -> f64 {
        self.sent.load(Ordering::Relaxed) as f64 / self.started.elapsed().as_secs_f64()
    }

    pub async fn stop(mut self) -> Result<Vec<Batch>, String> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(r) = self.tasks.join_next().await {
            r.map_err(|e| e.to_string())??;
        }
        let b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        Ok(b.clone())
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    mut conn: RespConn,
    spec: ChurnSpec,
    started: Instant,
    stop: Arc<AtomicBool>,
    batches: Arc<Mutex<Vec<Batch>>>,
    sent: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    next_seq: Arc<AtomicU64>,
) -> Result<(), String> {
    let value = vec![b'v'; spec.value_size];
    let ttl = spec.ttl_ms.map(|ms| ms.to_string().into_bytes());
    let share = spec.rate / WORKERS as f64;
    let mut mine: u64 = 0;
    let mut tick = tokio::time::interval(SLOT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * share) as u64;
        let n = due.saturating_sub(mine).min(MAX_PIPELINE);
        if n == 0 {
            continue;
        }
        let first = next_seq.fetch_add(n, Ordering::Relaxed);
        let cmds: Vec<Vec<Vec<u8>>> = (first..first + n)
            .map(|seq| {
                let id = if ttl.is_some() { seq } else { seq % spec.keys };
                let mut c = vec![
                    b"SET".to_vec(),
                    format!("ttl:{id:012}").into_bytes(),
                    value.clone(),
                ];
                if let Some(ttl) = &ttl {
                    c.push(b"PX".to_vec());
                    c.push(ttl.clone());
                }
                c
            })
            .collect();
        let sent_ms = unix_ms();
        let replies = conn
            .call_many(&cmds)
            .await
            .map_err(|e| format!("churn: {}: {e}", conn.addr()))?;
        mine += n;
        sent.fetch_add(n, Ordering::Relaxed);
        let acked = replies
            .iter()
            .filter(|r| matches!(r, Reply::Simple(s) if s == "OK"))
            .count() as u64;
        errors.fetch_add(n - acked, Ordering::Relaxed);
        batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Batch { sent_ms, acked });
    }
    Ok(())
}
