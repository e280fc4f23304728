//! `raftkv up`: a local cluster of three `raftkv serve` processes (separate processes,
//! as in production, so `kill -9` of one node is a real crash), data under `./data`.
//!
//! Ports, with the default `--base-port 7001`: node `i` (1-based) serves RESP on
//! `7000 + i`, peers on `7100 + i`, HTTP admin on `7200 + i`. Each node's log goes to
//! `data/node<i>.log`. Ctrl-C (or SIGTERM) stops the children and waits for them; the
//! children also get SIGTERM if this process dies (`PR_SET_PDEATHSIG`), so none outlive it.
//!
//! `--tls`: every surface speaks TLS (peers mutual), with the certificates in
//! `data/certs` (made by `raftkv certs` on the first run).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::{ClientTls, RespClient};
use crate::config::TlsFiles;
use crate::resp::codec::Value;

pub struct UpOptions {
    pub data: PathBuf,
    pub base_port: u16,
    pub nodes: u16,
    pub read_mode: Option<String>,
    pub tls: bool,
}

fn certs_dir(data: &Path) -> PathBuf {
    data.join("certs")
}

/// With `--tls`: makes the certificates if there are none yet; checks every node has
/// its files. Returns the client side's TLS (trusting the CA).
fn prepare_tls(opts: &UpOptions) -> Result<Option<ClientTls>, String> {
    if !opts.tls {
        return Ok(None);
    }
    let dir = certs_dir(&opts.data);
    if !TlsFiles::in_dir(&dir, 1).ca.exists() {
        crate::tls::certs::generate(&dir, u64::from(opts.nodes), &[])?;
        eprintln!(
            "raftkv up: made a CA and node certificates in {}",
            dir.display()
        );
    }
    for i in 1..=u64::from(opts.nodes) {
        let f = TlsFiles::in_dir(&dir, i);
        if !f.cert.exists() || !f.key.exists() {
            return Err(format!(
                "{} has no certificate for node {i}: remove the directory to make new ones",
                dir.display()
            ));
        }
    }
    ClientTls::from_ca_file(&TlsFiles::in_dir(&dir, 1).ca)
        .map(Some)
        .map_err(|e| e.to_string())
}

pub struct Ports {
    pub client: u16,
    pub peer: u16,
    pub admin: u16,
}

pub fn ports(base: u16, i: u16) -> Ports {
    Ports {
        client: base + i - 1,
        peer: base + 100 + i - 1,
        admin: base + 200 + i - 1,
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst); // async-signal-safe: one atomic store
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

pub fn run(opts: UpOptions) -> ExitCode {
    if opts.nodes == 0 || opts.nodes > 9 {
        eprintln!("raftkv up: --nodes must be in 1..=9");
        return ExitCode::from(2);
    }
    if u32::from(opts.base_port) + 200 + u32::from(opts.nodes) > 65_535 {
        eprintln!("raftkv up: --base-port too high");
        return ExitCode::from(2);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("raftkv up: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&opts.data) {
        eprintln!("raftkv up: cannot create {}: {e}", opts.data.display());
        return ExitCode::FAILURE;
    }
    for i in 1..=opts.nodes {
        let p = ports(opts.base_port, i);
        for port in [p.client, p.peer, p.admin] {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                eprintln!(
                    "raftkv up: port {port} is in use (another `raftkv up`?); \
                     pick other ports with --base-port"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let client_tls = match prepare_tls(&opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("raftkv up: {e}");
            return ExitCode::FAILURE;
        }
    };
    install_signal_handlers();

    let peers: Vec<String> = (1..=opts.nodes)
        .map(|i| format!("{i}=127.0.0.1:{}", ports(opts.base_port, i).peer))
        .collect();
    let peers = peers.join(",");
    let mut children: Vec<(u16, Option<Child>)> = Vec::new();
    for i in 1..=opts.nodes {
        match spawn_node(&exe, &opts, i, &peers) {
            Ok(c) => children.push((i, Some(c))),
            Err(e) => {
                eprintln!("raftkv up: cannot start node {i}: {e}");
                stop_all(&mut children);
                return ExitCode::FAILURE;
            }
        }
    }

    let ready = wait_ready(&opts, &mut children, client_tls.as_ref());
    print_banner(&opts, ready.as_deref());

    loop {
        std::thread::sleep(Duration::from_millis(200));
        // Checked before the children: a Ctrl-C in the terminal reaches them too, and
        // their exit is then expected, not news.
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        for (i, slot) in children.iter_mut() {
            if let Some(c) = slot {
                if let Ok(Some(status)) = c.try_wait() {
                    eprintln!(
                        "raftkv up: node {i} exited ({status}); see {}. The others keep running.",
                        log_path(&opts.data, *i).display()
                    );
                    *slot = None;
                }
            }
        }
        if children.iter().all(|(_, c)| c.is_none()) {
            eprintln!("raftkv up: every node has exited");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("\nraftkv up: stopping the cluster...");
    stop_all(&mut children);
    eprintln!("raftkv up: stopped; data stays in {}", opts.data.display());
    ExitCode::SUCCESS
}

fn log_path(data: &Path, i: u16) -> PathBuf {
    data.join(format!("node{i}.log"))
}

fn spawn_node(exe: &Path, opts: &UpOptions, i: u16, peers: &str) -> std::io::Result<Child> {
    let p = ports(opts.base_port, i);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(&opts.data, i))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(["--id", &i.to_string()])
        .arg("--data-dir")
        .arg(opts.data.join(format!("node{i}")))
        .args(["--peers", peers])
        .args(["--client-addr", &format!("127.0.0.1:{}", p.client)])
        .args(["--admin-addr", &format!("127.0.0.1:{}", p.admin)]);
    if let Some(m) = &opts.read_mode {
        cmd.args(["--read-mode", m]);
    }
    if opts.tls {
        cmd.arg("--tls-dir").arg(certs_dir(&opts.data));
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM to each child by PID, then up to 5 s for them to exit, then SIGKILL.
fn stop_all(children: &mut [(u16, Option<Child>)]) {
    for (_, c) in children.iter() {
        if let Some(c) = c {
            // SAFETY: plain kill(2) of a child we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, slot) in children.iter_mut() {
        let Some(c) = slot else { continue };
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("raftkv up: node {i} did not stop in time; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
        *slot = None;
    }
}

/// Waits until every node answers PING and one of them names a leader (10 s at most).
/// Returns the leader's line for the banner.
fn wait_ready(
    opts: &UpOptions,
    children: &mut [(u16, Option<Child>)],
    tls: Option<&ClientTls>,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !STOP.load(Ordering::SeqCst) {
        if children
            .iter_mut()
            .any(|(_, c)| c.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None))))
        {
            return None;
        }
        let infos: Vec<Option<String>> = (1..=opts.nodes)
            .map(|i| {
                let addr = format!("127.0.0.1:{}", ports(opts.base_port, i).client);
                let mut c =
                    RespClient::connect_with(&addr, Duration::from_millis(200), tls).ok()?;
                match c.call(&["INFO"]).ok()? {
                    Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                }
            })
            .collect();
        if infos.iter().all(Option::is_some) {
            for info in infos.iter().flatten() {
                let field = |k: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                        .map(str::trim)
                };
                if field("role") == Some("leader") {
                    return Some(format!(
                        "node {} (term {})",
                        field("node_id").unwrap_or("?"),
                        field("term").unwrap_or("?")
                    ));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn print_banner(opts: &UpOptions, leader: Option<&str>) {
    let mut out = String::new();
    out.push_str(&format!(
        "raftkv: local cluster of {} nodes (data in {}, logs in {}/node<i>.log)\n",
        opts.nodes,
        opts.data.display(),
        opts.data.display()
    ));
    // With TLS, every client command needs the CA.
    let (cli_tls, scheme, cacert) = if opts.tls {
        let ca = TlsFiles::in_dir(&certs_dir(&opts.data), 1).ca;
        let ca = ca.display().to_string();
        (
            format!("--tls --cacert {ca} "),
            "https",
            format!(" --cacert {ca}"),
        )
    } else {
        (String::new(), "http", String::new())
    };
    for i in 1..=opts.nodes {
        let p = ports(opts.base_port, i);
        out.push_str(&format!(
            "  node {i}: redis-cli {cli_tls}-p {:<5}  status {scheme}://127.0.0.1:{}/status  metrics {scheme}://127.0.0.1:{}/metrics\n",
            p.client, p.admin, p.admin
        ));
    }
    match leader {
        Some(l) => out.push_str(&format!("  leader: {l}\n")),
        None => out.push_str("  no leader yet (check the node logs)\n"),
    }
    let p1 = ports(opts.base_port, 1).client;
    let p2 = ports(opts.base_port, 2.min(opts.nodes)).client;
    let cluster: Vec<String> = (1..=opts.nodes)
        .map(|i| format!("127.0.0.1:{}", ports(opts.base_port, i).client))
        .collect();
    out.push_str(&format!(
        "Try:  redis-cli {cli_tls}-p {p1} set hello world && redis-cli {cli_tls}-p {p2} get hello\n      \
         raftkv status --cluster {}{cacert}\n",
        cluster.join(",")
    ));
    out.push_str("Ctrl-C stops the cluster.\n");
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
