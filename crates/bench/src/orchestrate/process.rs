//! Child servers that cannot outlive kvbench.
//!
//! Three layers, because each covers a way out the others miss:
//! - every child runs in its own process group, and `Proc` kills the group when dropped
//!   (normal return, error, panic), which also catches anything the server forked
//!   (Redis forks to rewrite its AOF);
//! - every group is in a global registry, which the Ctrl-C / SIGTERM handler empties
//!   before exiting, since `std::process::exit` runs no destructors;
//! - every child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`),
//!   the backstop for a kvbench killed with SIGKILL.
//!
//! Own process groups also mean a terminal's Ctrl-C reaches only kvbench, so servers are
//! stopped in order by us rather than all at once by the terminal.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Process group IDs of every live child.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Set once the interrupt handler starts tearing down, so the main thread stops reporting
/// cells whose servers are being killed under them.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Scratch directories (server data) to delete if kvbench is interrupted.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers a directory for deletion by [`stop_all`]; normal runs delete it themselves.
pub fn remove_on_interrupt(dir: &Path) {
    SCRATCH
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.to_path_buf());
}

pub struct Proc {
    pub name: String,
    child: Child,
    pgid: i32,
    pub log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    ///
    /// Must be called from a thread that lives as long as the child should: the kernel
    /// sends the death signal when the *thread* that forked exits. kvbench starts servers
    /// only from its main thread.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
        let child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {:?}: {e}", cmd.get_program()))?;
        let pgid = child.id() as i32;
        groups.push(pgid);
        Ok(Proc {
            name: name.to_string(),
            child,
            pgid,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the end of its log if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 2000)
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM to the group, up to 5 s to go, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        stop_group(self.pgid, Duration::from_secs(5));
        let _ = self.child.wait();
        GROUPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|g| *g != self.pgid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether any process of the group is still running. Read from /proc rather than with
/// `kill(-pgid, 0)`, which also succeeds for zombies: in a container whose PID 1 does not
/// reap, an orphaned grandchild stays a zombie forever, and that is not a live server.
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // SAFETY: kill with signal 0 only checks for existence.
        return unsafe { libc::kill(-pgid, 0) == 0 };
    };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // Fields after the parenthesised command name: state, ppid, pgrp, ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|s| s.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

fn stop_group(pgid: i32, grace: Duration) {
    // SAFETY: signalling a process group we created; no memory involved.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Stops every registered group: the signal handler's path out, where no destructor runs.
/// Zombies left behind are reaped by init once kvbench exits.
pub fn stop_all() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let groups: Vec<i32> = GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .collect();
    for &g in &groups {
        // SAFETY: see stop_group.
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in &groups {
        // SAFETY: see stop_group.
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
    for dir in SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A TCP port free on loopback right now. Another process could take it before the
/// server binds; on a loopback-only benchmark machine that race is remote, and a server
/// that fails to bind shows up as "exited" with its log.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The last `max` bytes of a log, for error messages.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// First line of `prog --version`-style output, for the report.
pub fn version_of(prog: &Path, args: &[&str]) -> String {
    match Command::new(prog).args(args).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("unknown ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_proc_kills_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        // The shell forks a grandchild, as Redis does: it must die too.
        cmd.args(["-c", "sleep 300 & echo $! ; wait"]);
        let log = dir.path().join("log");
        let p = Proc::spawn("sleeper", cmd, &log).unwrap();
        let pgid = p.pid() as i32;
        std::thread::sleep(Duration::from_millis(200));
        assert!(group_alive(pgid));
        drop(p);
        assert!(!group_alive(pgid));
        assert!(GROUPS.lock().unwrap().iter().all(|g| *g != pgid));
    }
}
