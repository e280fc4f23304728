//! Replica processes: launch in their own process group, signals (kill,
//! pause, resume), exit detection, prefixed output, and a guard that kills
//! every group when the run ends — normally, on error, on panic, or after
//! Ctrl-C (the loop stops and the guard drops).

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One replica's process and its output pipes (when shown).
pub struct ReplicaProc {
    child: Child,
    /// Process group ID (== the child's PID: it leads its own group).
    pgid: i32,
    /// How the process ended, once seen. It is left a zombie until the
    /// cluster shuts down, so that its PID — our process-group ID — cannot
    /// be reused while we may still signal the group.
    exited: Option<String>,
    signalled: bool,
    stdout: Option<OutputPipe<ChildStdout>>,
    stderr: Option<OutputPipe<ChildStderr>>,
}

/// A non-blocking pipe with the tail of an unfinished line.
struct OutputPipe<R> {
    pipe: R,
    partial: Vec<u8>,
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a file descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

impl<R: Read + AsRawFd> OutputPipe<R> {
    fn new(pipe: R) -> Self {
        set_nonblocking(pipe.as_raw_fd());
        OutputPipe {
            pipe,
            partial: Vec::new(),
        }
    }

    /// Reads what is there; returns complete lines and whether EOF was hit.
    fn drain(&mut self) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut buf = [0u8; 16384];
        let mut eof = false;
        // Bounded: a replica that floods its stdout must not starve routing.
        for _ in 0..4 {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if eof && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        (lines, eof)
    }
}

impl ReplicaProc {
    /// Starts `program <port> <id> <others…>` in a new process group, in the
    /// current directory. Output is piped (to be shown prefixed) or sent to
    /// /dev/null.
    pub fn spawn(
        program: &Path,
        port: u16,
        id: &str,
        others: &[String],
        silence: bool,
    ) -> io::Result<Self> {
        let mut cmd = Command::new(program);
        cmd.arg(port.to_string())
            .arg(id)
            .args(others)
            .stdin(Stdio::null())
            .process_group(0);
        if silence {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn()?;
        let pgid = child.id() as i32;
        let stdout = child.stdout.take().map(OutputPipe::new);
        let stderr = child.stderr.take().map(OutputPipe::new);
        Ok(ReplicaProc {
            child,
            pgid,
            exited: None,
            signalled: false,
            stdout,
            stderr,
        })
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a negative PID signals our child's process
        // group; it passes no memory.
        unsafe {
            libc::kill(-self.pgid, sig);
        }
    }

    /// SIGTERM to the process group (and SIGCONT, so that a paused replica
    /// receives it).
    pub fn kill(&mut self) {
        self.signalled = true;
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
    }

    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Whether the harness has signalled this replica to terminate.
    pub fn was_killed(&self) -> bool {
        self.signalled
    }

    /// Returns how the process ended the first time its exit is seen,
    /// without reaping it.
    pub fn poll_exit(&mut self) -> Option<String> {
        if self.exited.is_some() {
            return None;
        }
        // SAFETY: waitid on our own child with a zeroed, properly sized
        // siginfo_t; WNOWAIT leaves the zombie in place.
        let desc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pgid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 || info.si_pid() == 0 {
                return None;
            }
            match info.si_code {
                libc::CLD_EXITED => format!("exit status {}", info.si_status()),
                _ => format!("signal {}", info.si_status()),
            }
        };
        self.exited = Some(desc.clone());
        Some(desc)
    }

    /// File descriptors of the open output pipes (for the poll set).
    pub fn output_fds(&self) -> Vec<i32> {
        let mut v = Vec::new();
        if let Some(p) = &self.stdout {
            v.push(p.pipe.as_raw_fd());
        }
        if let Some(p) = &self.stderr {
            v.push(p.pipe.as_raw_fd());
        }
        v
    }

    /// Reads the pipe behind `fd` and returns complete lines. A pipe at EOF
    /// is closed and leaves the poll set.
    pub fn read_output(&mut self, fd: i32) -> Vec<String> {
        if let Some(p) = self.stdout.as_mut().filter(|p| p.pipe.as_raw_fd() == fd) {
            let (lines, eof) = p.drain();
            if eof {
                self.stdout = None;
            }
            return lines;
        }
        if let Some(p) = self.stderr.as_mut().filter(|p| p.pipe.as_raw_fd() == fd) {
            let (lines, eof) = p.drain();
            if eof {
                self.stderr = None;
            }
            return lines;
        }
        Vec::new()
    }
}

/// Owns every replica process of a run; dropping it terminates them all.
#[derive(Default)]
pub struct Cluster {
    pub procs: Vec<ReplicaProc>,
}

impl Cluster {
    /// SIGTERM to every group, then SIGKILL to whatever is still there after
    /// a grace period; reaps the children.
    pub fn shutdown(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut all_gone = true;
            for p in &mut self.procs {
                p.poll_exit();
                all_gone &= p.exited.is_some();
            }
            if all_gone || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in &mut self.procs {
            // The group leader is not reaped yet, so the group ID is still
            // ours: stragglers (and anything the replica forked) go too.
            p.signal(libc::SIGKILL);
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
