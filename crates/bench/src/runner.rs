//! The closed loop: N clients, each sending its next request only when the previous
//! reply has arrived, for a warm-up and then a measured window.
//!
//! Closed-loop on purpose: it is how the people comparing these systems use them (a
//! request handler waiting on its write), and it makes throughput and latency two views
//! of one number (throughput ≈ clients / mean latency), so neither can be gamed alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::drivers::{Conn, Found, Target};
use crate::report::Sample;
use crate::workload::{DataShape, Op, OpStream, Workload};

/// Everything one measured cell needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub target: Target,
    pub endpoints: Vec<String>,
    pub workload: Workload,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub shape: DataShape,
    pub seed: u64,
}

/// Latencies are recorded in nanoseconds, from 1 µs to 60 s at 3 significant digits:
/// a loopback round trip is tens of microseconds, an election stall is seconds.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("static bounds are valid")
}

/// What one client measured.
struct ClientResult {
    hist: Histogram<u64>,
    errors: u64,
    misses: u64,
    first_error: Option<String>,
}

/// Opens one connection per client, spread round-robin over the endpoints, all at once.
pub async fn connect_all(
    target: Target,
    endpoints: &[String],
    n: usize,
) -> Result<Vec<Conn>, String> {
    if endpoints.is_empty() {
        return Err("no endpoints".into());
    }
    let mut set = JoinSet::new();
    for i in 0..n {
        let ep = endpoints[i % endpoints.len()].clone();
        set.spawn(async move { (i, Conn::connect(target, &ep).await) });
    }
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let deadline = Duration::from_secs(30);
    while let Some(joined) = tokio::time::timeout(deadline, set.join_next())
        .await
        .map_err(|_| format!("{target}: connecting {n} clients took over 30 s"))?
    {
        let (i, c) = joined.map_err(|e| e.to_string())?;
        conns[i] = Some(c?);
    }
    Ok(conns
        .into_iter()
        .map(|c| c.expect("every index joined"))
        .collect())
}

/// A bar that shows the phase and the live rate; hidden when stderr is not a terminal.
pub fn progress_bar(label: &str, total: Duration) -> ProgressBar {
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {elapsed:>4} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Runs one cell and summarises it.
pub async fn run(spec: &RunSpec, bar: &ProgressBar) -> Result<Sample, String> {
    let conns = connect_all(spec.target, &spec.endpoints, spec.clients).await?;

    // One common start so every client's warm-up and window line up exactly.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let measured = Arc::new(AtomicU64::new(0));
    let value: Arc<[u8]> = spec.shape.value().into();

    let mut set = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let ops = OpStream::new(spec.workload, spec.shape.keyspace, spec.seed, i);
        let (shape, value, measured) = (spec.shape, value.clone(), measured.clone());
        set.spawn(client_loop(
            conn,
            ops,
            shape,
            value,
            (start, measure_from, end),
            measured,
        ));
    }

    let ticker = tokio::spawn(tick(bar.clone(), start, measure_from, end, measured));

    let mut hist = new_histogram();
    let (mut errors, mut misses, mut first_error) = (0, 0, None);
    while let Some(joined) = set.join_next().await {
        let r = joined.map_err(|e| format!("client task failed: {e}"))?;
        hist.add(&r.hist).map_err(|e| e.to_string())?;
        errors += r.errors;
        misses += r.misses;
        first_error = first_error.or(r.first_error);
    }
    ticker.abort();
    bar.finish_and_clear();

    Ok(Sample::from_histogram(
        spec.target,
        spec.workload,
        spec.clients,
        spec.duration,
        &hist,
        errors,
        misses,
        first_error,
    ))
}

async fn client_loop(
    mut conn: Conn,
    mut ops: OpStream,
    shape: DataShape,
    value: Arc<[u8]>,
    (start, measure_from, end): (Instant, Instant, Instant),
    measured: Arc<AtomicU64>,
) -> ClientResult {
    let mut r = ClientResult {
        hist: new_histogram(),
        errors: 0,
        misses: 0,
        first_error: None,
    };
    tokio::time::sleep_until(start.into()).await;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let op = ops.next_op();
        let outcome = match op {
            Op::Get(k) => conn.get(&shape.key(k)).await,
            Op::Set(k) => conn.set(&shape.key(k), &value).await.map(|()| Found::Hit),
        };
        let t1 = Instant::now();
        // Only operations wholly inside the window count: one that straddles its start
        // carries warm-up effects, one that straddles its end is not in its throughput.
        let counted = t0 >= measure_from && t1 <= end;
        match outcome {
            Ok(found) => {
                if counted {
                    let ns = (t1 - t0).as_nanos().min(u64::MAX as u128) as u64;
                    r.hist.saturating_record(ns.max(1_000));
                    measured.fetch_add(1, Ordering::Relaxed);
                    if found == Found::Miss {
                        r.misses += 1;
                    }
                }
            }
            Err(e) => {
                if counted {
                    r.errors += 1;
                }
                r.first_error.get_or_insert(e);
                // A failing server answers instantly; pausing keeps a broken run from
                // turning into a busy loop that starves the healthy systems' CPU.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    r
}

async fn tick(
    bar: ProgressBar,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    measured: Arc<AtomicU64>,
) {
    let mut iv = tokio::time::interval(Duration::from_millis(250));
    loop {
        iv.tick().await;
        let now = Instant::now();
        bar.set_position(now.saturating_duration_since(start).as_millis() as u64);
        if now < measure_from {
            bar.set_message("warm-up");
        } else {
            let secs = (now.min(end) - measure_from).as_secs_f64().max(1e-3);
            let rate = measured.load(Ordering::Relaxed) as f64 / secs;
            bar.set_message(format!("{rate:>9.0} ops/s"));
        }
    }
}

/// Writes every key of the key space once, so reads find values. Batched (MSET, or one
/// etcd transaction per batch) and a few connections wide: it is setup, not measurement.
pub async fn preload(
    target: Target,
    endpoints: &[String],
    shape: DataShape,
    bar: &ProgressBar,
) -> Result<(), String> {
    const BATCH: u64 = 100;
    const WORKERS: usize = 8;
    let conns = connect_all(target, endpoints, WORKERS).await?;
    let batches = shape.keyspace.div_ceil(BATCH);
    bar.set_length(batches);
    let next = Arc::new(AtomicU64::new(0));
    let value: Arc<[u8]> = shape.value().into();
    let mut set = JoinSet::new();
    for mut conn in conns {
        let (next, value, bar) = (next.clone(), value.clone(), bar.clone());
        set.spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), String>(());
                }
                let hi = ((b + 1) * BATCH).min(shape.keyspace);
                let keys: Vec<Vec<u8>> = (b * BATCH..hi).map(|i| shape.key(i)).collect();
                let mut tries = 0;
                while let Err(e) = conn.set_many(&keys, &value).await {
                    tries += 1;
                    if tries >= 5 {
                        return Err(format!("{target}: preload failed: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                bar.inc(1);
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    bar.finish_and_clear();
    Ok(())
}
