//! Network namespaces, veth pairs, a bridge, and nftables partitions.
//!
//! Layout for a run with prefix `rkn<pid>` and `n` nodes:
//!
//! * `rkn<pid>-br`: the bridge namespace. It holds bridge `br0` with address
//!   `10.213.0.1/24`; the nemesis's own threads (clients, status polling) enter it with
//!   `setns(2)`, so client traffic comes from `10.213.0.1`.
//! * `rkn<pid>-n<i>`: node `i`'s namespace, with `eth0` (address `10.213.0.<10+i>/24`),
//!   whose veth peer `v<i>` sits in the bridge namespace, enslaved to `br0`.
//!
//! Both ends of every veth are created directly inside these namespaces, so nothing is
//! ever added to the host's own namespace, and the private addresses exist only inside
//! namespaces this process made. Partitions are nftables rules in the node namespaces
//! (table `inet rkn`, chain `input`) that drop packets whose source is another *node's*
//! address: traffic from the bridge address (the clients) is never cut.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

/// The /24 every address of a run lives in (inside its namespaces only).
pub const SUBNET: &str = "10.213.0";
/// The bridge namespace's address: where client traffic comes from.
pub const BRIDGE_IP: &str = "10.213.0.1";

/// Node `i`'s (1-based) address inside its namespace.
pub fn node_ip(i: usize) -> String {
    format!("{SUBNET}.{}", 10 + i)
}

/// Runs a command, returning its stderr (and stdout) as the error on failure.
pub fn run(args: &[&str]) -> Result<String, String> {
    run_input(args, None)
}

/// Runs a command with `input` on its stdin.
pub fn run_input(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let Some(text) = input {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(text.as_bytes());
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// The namespaces of one run. Dropping it deletes them.
pub struct Net {
    pub prefix: String,
    pub nodes: usize,
    made: Vec<String>,
}

impl Net {
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    pub fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// Creates the bridge and node namespaces, wires them, and installs an empty
    /// `inet rkn` table in each node namespace.
    pub fn create(prefix: &str, nodes: usize) -> Result<Net, String> {
        let mut net = Net {
            prefix: prefix.to_string(),
            nodes,
            made: Vec::new(),
        };
        let br = net.bridge_ns();
        run(&["ip", "netns", "add", &br])?;
        net.made.push(br.clone());
        run(&["ip", "-n", &br, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run(&[
            "ip",
            "-n",
            &br,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/24"),
            "dev",
            "br0",
        ])?;
        run(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for i in 1..=nodes {
            let ns = net.node_ns(i);
            run(&["ip", "netns", "add", &ns])?;
            net.made.push(ns.clone());
            let peer = format!("v{i}");
            run(&[
                "ip", "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name",
                &peer, "netns", &br,
            ])?;
            run(&["ip", "-n", &br, "link", "set", &peer, "master", "br0"])?;
            run(&["ip", "-n", &br, "link", "set", &peer, "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", node_ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run_input(
                &["ip", "netns", "exec", &ns, "nft", "-f", "-"],
                Some(
                    "table inet rkn {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n",
                ),
            )?;
        }
        Ok(net)
    }

    /// Makes node `i` drop every packet whose source is one of the nodes in `from`
    /// (replacing its previous drops; an empty set heals it).
    pub fn set_drops(&self, i: usize, from: &BTreeSet<usize>) -> Result<(), String> {
        let mut script = String::from("flush chain inet rkn input\n");
        if !from.is_empty() {
            let addrs: Vec<String> = from.iter().map(|&j| node_ip(j)).collect();
            script.push_str(&format!(
                "add rule inet rkn input ip saddr {{ {} }} drop\n",
                addrs.join(", ")
            ));
        }
        run_input(
            &["ip", "netns", "exec", &self.node_ns(i), "nft", "-f", "-"],
            Some(&script),
        )
        .map(|_| ())
    }

    /// Removes every drop rule.
    pub fn heal(&self) -> Result<(), String> {
        for i in 1..=self.nodes {
            self.set_drops(i, &BTreeSet::new())?;
        }
        Ok(())
    }

    /// Moves the calling thread into the bridge namespace: sockets it (and threads it
    /// spawns afterwards) creates live there.
    pub fn enter_bridge(&self) -> Result<(), String> {
        enter_ns(&self.bridge_ns())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            kill_ns_pids(ns);
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// `setns(2)` the calling thread into the named network namespace.
pub fn enter_ns(name: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(format!("/run/netns/{name}")).map_err(|e| format!("{name}: {e}"))?;
    // SAFETY: a valid fd for a network namespace; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// SIGKILLs whatever still runs inside a namespace (but not this process, whose main
/// thread lives in the bridge namespace).
fn kill_ns_pids(ns: &str) {
    let me = std::process::id() as i32;
    if let Ok(out) = run(&["ip", "netns", "pids", ns]) {
        for pid in out
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .filter(|&p| p != me)
        {
            // SAFETY: plain kill(2).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The pid in a name `rkn<pid>-...`, if it is one of ours.
pub fn prefix_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("rkn")?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Whether `pid` is a live process (a zombie, killed but not yet reaped, is not).
fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Removes namespaces and mounts left by earlier runs whose process is gone
/// (killed with SIGKILL, so its cleanup never ran). Returns what it removed.
pub fn cleanup_stale() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(text) = fs::read_to_string("/proc/mounts") {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(dev), Some(at)) = (f.next(), f.next()) else {
                continue;
            };
            if let Some(pid) = prefix_pid(dev) {
                if !pid_alive(pid) && run(&["umount", "-l", at]).is_ok() {
                    removed.push(format!("mount {at}"));
                }
            }
        }
    }
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = prefix_pid(&name) {
                if !pid_alive(pid) {
                    kill_ns_pids(&name);
                    if run(&["ip", "netns", "del", &name]).is_ok() {
                        removed.push(format!("netns {name}"));
                    }
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_pid_parses_only_our_names() {
        assert_eq!(prefix_pid("rkn1234-n1"), Some(1234));
        assert_eq!(prefix_pid("rkn77-br"), Some(77));
        assert_eq!(prefix_pid("rknx-br"), None);
        assert_eq!(prefix_pid("other-n1"), None);
        assert_eq!(prefix_pid("rkn12"), None);
    }

    #[test]
    fn only_live_processes_are_alive() {
        assert!(pid_alive(std::process::id() as i32));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        // Exited but not reaped: a zombie, whose namespaces are fair game.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!pid_alive(pid));
        child.wait().expect("reap");
        assert!(!pid_alive(pid));
    }

    #[test]
    fn node_addresses_stay_in_the_subnet() {
        assert_eq!(node_ip(1), "10.213.0.11");
        assert_eq!(node_ip(5), "10.213.0.15");
    }
}
