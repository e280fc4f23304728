//! The `raftkv serve` processes: one per node namespace, started with `ip netns exec`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{node_ip, run, Net};

pub const RESP_PORT: u16 = 6379;
pub const PEER_PORT: u16 = 7000;
pub const ADMIN_PORT: u16 = 9000;
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// One node's process (if running) and what the nemesis did to it.
pub struct NodeProc {
    pub child: Option<Child>,
    pub paused: bool,
    /// The libfaketime rate it runs with, if any.
    pub clock_rate: Option<f64>,
    /// Set while its data dir was wiped and it must (re)start with `--join` this admin
    /// address (the `member` fault); cleared once it is a voter again.
    pub join_via: Option<String>,
}

pub struct Cluster {
    pub n: usize,
    pub raftkv: PathBuf,
    pub dir: PathBuf,
    pub read_mode: String,
    pub election_ms: u64,
    pub nodes: Vec<NodeProc>,
    /// Namespace names, index 0 = node 1.
    ns: Vec<String>,
    /// Where a tmpfs was mounted (a node's data dir).
    pub mounts: Vec<PathBuf>,
    /// The cluster's admin token (random per run), given to every node as
    /// `RAFTKV_ADMIN_TOKEN`: the admin write routes (`/members`, `/transfer-leader`) serve
    /// non-loopback clients only with it, and `--join` sends it.
    pub admin_token: String,
}

/// A node's `/status` JSON, the fields the nemesis reads.
#[derive(Clone, Debug, Default)]
pub struct NodeStatus {
    pub role: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub keys: u64,
    pub kv_bytes: u64,
    pub storage_failure: Option<String>,
}

impl Cluster {
    pub fn new(
        net: &Net,
        raftkv: PathBuf,
        dir: PathBuf,
        read_mode: &str,
        election_ms: u64,
    ) -> Result<Cluster, String> {
        let n = net.nodes;
        let mut peers = String::new();
        for j in 1..=n {
            peers.push_str(&format!("{j} = \"{}:{PEER_PORT}\"\n", node_ip(j)));
        }
        for i in 1..=n {
            let data = dir.join(format!("node{i}"));
            fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            let ip = node_ip(i);
            let text = format!(
                "id = {i}\ndata_dir = \"{}\"\nclient_addr = \"{ip}:{RESP_PORT}\"\n\
                 admin_addr = \"{ip}:{ADMIN_PORT}\"\nread_mode = \"{read_mode}\"\n\
                 # a private test network in namespaces: protected mode would refuse it\n\
                 insecure = true\ninsecure_peers = true\n\n\
                 [peers]\n{peers}\n[raft]\nelection_timeout_ms = {election_ms}\n\n\
                 [snapshot]\nevery_entries = 20000\nkeep_entries = 1000\n",
                data.display()
            );
            fs::write(dir.join(format!("node{i}.toml")), text).map_err(|e| e.to_string())?;
        }
        Ok(Cluster {
            n,
            raftkv,
            dir,
            read_mode: read_mode.to_string(),
            election_ms,
            nodes: (0..n)
                .map(|_| NodeProc {
                    child: None,
                    paused: false,
                    clock_rate: None,
                    join_via: None,
                })
                .collect(),
            ns: (1..=n).map(|i| net.node_ns(i)).collect(),
            mounts: Vec::new(),
            admin_token: format!("{:032x}", rand::random::<u128>()),
        })
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}.log"))
    }

    /// Mounts a tmpfs of `mib` MiB at node `i`'s data dir (before it first starts).
    pub fn mount_small_disk(&mut self, i: usize, mib: u64, tag: &str) -> Result<(), String> {
        let at = self.data_dir(i);
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m"),
            tag,
            &at.to_string_lossy(),
        ])?;
        self.mounts.push(at);
        Ok(())
    }

    /// Starts node `i` (1-based), optionally under libfaketime at `clock_rate`.
    pub fn start(&mut self, i: usize, clock_rate: Option<f64>) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|e| e.to_string())?;
        let mut header = log.try_clone().map_err(|e| e.to_string())?;
        let _ = writeln!(
            header,
            "==== nemesis: starting node {i}{}{}",
            clock_rate.map_or(String::new(), |r| format!(" with its clock at x{r}")),
            self.nodes[i - 1]
                .join_via
                .as_ref()
                .map_or(String::new(), |v| format!(" with --join {v}"))
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i - 1]]);
        if let Some(rate) = clock_rate {
            cmd.arg("env")
                .arg(format!("LD_PRELOAD={LIBFAKETIME}"))
                .arg(format!("FAKETIME=+0 x{rate}"));
        }
        cmd.arg(&self.raftkv)
            .arg("serve")
            .arg("--config")
            .arg(self.dir.join(format!("node{i}.toml")))
            .env("RAFTKV_ADMIN_TOKEN", &self.admin_token);
        if let Some(via) = &self.nodes[i - 1].join_via {
            cmd.arg("--join").arg(via);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        isolate_node_process(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("start node {i}: {e}"))?;
        let node = &mut self.nodes[i - 1];
        node.child = Some(child);
        node.paused = false;
        node.clock_rate = clock_rate;
        Ok(())
    }

    pub fn running(&self, i: usize) -> bool {
        self.nodes[i - 1].child.is_some()
    }

    fn signal(&self, i: usize, sig: i32) {
        if let Some(c) = &self.nodes[i - 1].child {
            // SAFETY: plain kill(2) on our own child, which we have not reaped.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, libc::SIGKILL);
        if let Some(mut c) = self.nodes[i - 1].child.take() {
            let _ = c.wait();
        }
        self.nodes[i - 1].paused = false;
    }

    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.nodes[i - 1].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.nodes[i - 1].paused = false;
    }

    /// Nodes that exited without being killed by us: (node, exit status, last log lines).
    pub fn reap_exited(&mut self) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        for i in 1..=self.n {
            let exited = match &mut self.nodes[i - 1].child {
                Some(c) => match c.try_wait() {
                    Ok(Some(st)) => Some(st.to_string()),
                    _ => None,
                },
                None => None,
            };
            if let Some(st) = exited {
                self.nodes[i - 1].child = None;
                out.push((i, st, exit_summary(&self.log_path(i))));
            }
        }
        out
    }

    pub fn kill_all(&mut self) {
        for i in 1..=self.n {
            self.kill(i);
        }
    }

    /// Node `i`'s admin address.
    pub fn admin_addr(&self, i: usize) -> String {
        format!("{}:{ADMIN_PORT}", node_ip(i))
    }

    /// Empties node `i`'s data dir (it must be down). The directory itself stays: it may
    /// be a tmpfs mount point.
    pub fn wipe_data(&self, i: usize) -> Result<(), String> {
        let dir = self.data_dir(i);
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries {
            let p = e.map_err(|e| e.to_string())?.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// If node `i`'s process has exited (without us reaping it): its exit status.
    pub fn exited(&mut self, i: usize) -> Option<String> {
        let st = self.nodes[i - 1].child.as_mut()?.try_wait().ok()??;
        self.nodes[i - 1].child = None;
        Some(st.to_string())
    }

    /// Node `i`'s `/status`, or `None` if it does not answer within 500 ms.
    pub fn status(&self, i: usize) -> Option<NodeStatus> {
        let v = crate::admin::get_json(&self.admin_addr(i), "/status", Duration::from_millis(500))?;
        Some(NodeStatus {
            role: v["role"].as_str().unwrap_or("").to_string(),
            leader: v["leader"].as_u64(),
            term: v["term"].as_u64().unwrap_or(0),
            commit_index: v["commit_index"].as_u64().unwrap_or(0),
            applied_index: v["applied_index"].as_u64().unwrap_or(0),
            last_index: v["last_index"].as_u64().unwrap_or(0),
            keys: v["keys"].as_u64().unwrap_or(0),
            kv_bytes: v["kv_bytes"].as_u64().unwrap_or(0),
            storage_failure: v["storage_failure"].as_str().map(str::to_string),
        })
    }

    /// The node that says it leads with the highest term, if any answers so.
    pub fn leader(&self) -> Option<usize> {
        (1..=self.n)
            .filter(|&i| self.running(i) && !self.nodes[i - 1].paused)
            .filter_map(|i| self.status(i).map(|s| (i, s)))
            .filter(|(_, s)| s.role == "leader")
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| i)
    }

    /// Waits up to `timeout` for a leader that every running node agrees on.
    pub fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(l) = self.leader() {
                let agree = (1..=self.n)
                    .filter(|&i| self.running(i))
                    .all(|i| self.status(i).is_some_and(|s| s.leader == Some(l as u64)));
                if agree {
                    return Some(l);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Unmounts the tmpfs mounts.
    pub fn unmount_all(&mut self) {
        for at in self.mounts.drain(..) {
            let _ = run(&["umount", "-l", &at.to_string_lossy()]);
        }
    }
}

/// What a node's log says about its last exit: the panic message (if any) and the last
/// lines, without terminal colours or backtrace frames.
pub fn exit_summary(path: &Path) -> String {
    let text = String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let last_run = text
        .rfind("==== nemesis: starting")
        .map_or(&text[..], |p| &text[p..]);
    let clean: Vec<String> = last_run.lines().map(strip_ansi).collect();
    let mut out: Vec<String> = Vec::new();
    if let Some(p) = clean.iter().position(|l| l.contains("panicked at")) {
        out.extend(clean[p..(p + 2).min(clean.len())].iter().cloned());
    }
    let plain: Vec<&String> = clean
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("at ")
                || t.split(':')
                    .next()
                    .is_some_and(|n| n.parse::<u32>().is_ok()))
        })
        .collect();
    out.extend(
        plain[plain.len().saturating_sub(4)..]
            .iter()
            .map(|s| s.to_string()),
    );
    out.join("\n")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How a node process is started:
/// - in a process group of its own. A node we paused (SIGSTOP) in *our* group would be
///   sent SIGHUP and SIGCONT by the kernel the moment that group became orphaned (the
///   shell that started us exits: seen when the nemesis was started in the background,
///   a paused leader died of SIGHUP 1.5 s into its pause). Its own group always has its
///   parent, us, in another group of the session, so it is never orphaned while we live;
/// - dying with us, even if we are SIGKILLed (the namespaces are then removed by the
///   next run's stale cleanup).
fn isolate_node_process(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;

    /// Failed before (the node shared our process group).
    #[test]
    fn a_node_process_leads_its_own_process_group() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        isolate_node_process(&mut cmd);
        let mut child = cmd.spawn().expect("spawn sleep");
        let pid = child.id() as i32;
        // SAFETY: getpgid/getpgrp only read process attributes.
        let (its, ours) = unsafe { (libc::getpgid(pid), libc::getpgrp()) };
        child.kill().ok();
        child.wait().ok();
        assert_eq!(its, pid);
        assert_ne!(its, ours);
    }
}
