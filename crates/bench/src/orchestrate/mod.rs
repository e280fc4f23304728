//! Starting, checking and stopping the servers `kvbench compare` measures.

pub mod etcd;
pub mod install;
pub mod process;
pub mod raftkv;
pub mod redis;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::drivers::{Conn, Target};
use process::Proc;

/// Waits until every endpoint answers a real request through the driver (for etcd a
/// linearizable read, which needs an elected leader; for RESP a PING then a SET, which
/// for raftkv needs one too). Fails early, with the server's log, if a process exits.
pub fn wait_ready(
    rt: &Runtime,
    target: Target,
    endpoints: &[String],
    procs: &mut [&mut Proc],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        let attempt = rt.block_on(async {
            for ep in endpoints {
                let mut c = tokio::time::timeout(Duration::from_secs(2), Conn::connect(target, ep))
                    .await
                    .map_err(|_| format!("{ep}: no answer within 2 s"))??;
                tokio::time::timeout(Duration::from_secs(2), c.set(b"kvbench-ready", b"1"))
                    .await
                    .map_err(|_| format!("{ep}: write not acknowledged within 2 s"))??;
            }
            Ok::<(), String>(())
        });
        let last = match attempt {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{target} not ready after {} s: {last}",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// On Ctrl-C or SIGTERM: stop every server, then exit 130. Runs on the runtime's worker
/// threads, so it fires whatever the main thread is blocked on.
pub fn install_signal_handler(rt: &Runtime) {
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kvbench: cannot watch SIGTERM: {e}");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("\nkvbench: interrupted, stopping the servers it started");
        process::stop_all();
        std::process::exit(130);
    });
}

/// What every measuring command sets up before it starts servers: the report directory
/// (`--out`, or `results/<label><UTC time>`) with its `logs/`, a runtime whose Ctrl-C
/// handler stops the servers, and a scratch directory for their data — on disk, not
/// tmpfs, so fsync means what it says; removed when this is dropped, and on Ctrl-C.
pub struct Workspace {
    pub out: PathBuf,
    pub logs: PathBuf,
    pub rt: Runtime,
    pub scratch: tempfile::TempDir,
}

impl Workspace {
    pub fn create(out: Option<PathBuf>, label: &str, started_unix: u64) -> Result<Self, String> {
        let out = out.unwrap_or_else(|| {
            let time = crate::report::utc_string(started_unix).replace([' ', ':'], "-");
            PathBuf::from("results").join(format!("{label}{time}"))
        });
        let logs = out.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        install_signal_handler(&rt);
        let scratch = tempfile::Builder::new()
            .prefix("kvbench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        process::remove_on_interrupt(scratch.path());
        Ok(Self {
            out,
            logs,
            rt,
            scratch,
        })
    }
}
