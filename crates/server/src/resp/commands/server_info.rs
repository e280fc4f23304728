//! The server commands that describe the node rather than the data: INFO, COMMAND
//! (its table is `table.rs`), CONFIG.

use std::fmt::Write;

use bytes::Bytes;

use super::connection::{unknown_sub, REDIS_VERSION};
use super::{upper, wrong_args, Failed, Res, RespCtx};
use crate::resp::client::Client;
use crate::resp::codec::Value;
use crate::resp::scan::glob_match;
use crate::status::Status;

pub(super) async fn run(
    ctx: &RespCtx,
    _client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "INFO" => info_command(ctx, a).await,
        "COMMAND" => super::table::command(a),
        "CONFIG" => config(a),
        _ => return None,
    })
}

/// INFO's sections, in the order they are shown; `raft` is ours.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "raft",
    "keyspace",
];

/// `INFO [section ...]`: the named sections (any case), or all of them for none,
/// `all`, `everything` or `default`. Unknown names select nothing, as in Redis.
async fn info_command(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    let wanted: Vec<String> = a
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let sections: Vec<&str> = SECTIONS
        .iter()
        .copied()
        .filter(|s| all || wanted.iter().any(|w| w == s))
        .collect();
    let status = ctx.status().await?;
    Ok(Value::Verbatim(
        info_sections(ctx, &status, &sections).into(),
    ))
}

/// Every section of `INFO`.
pub fn info(ctx: &RespCtx, s: &Status) -> String {
    info_sections(ctx, s, SECTIONS)
}

/// The given sections, Redis-style: `# Name` then `field:value` lines, CRLF-ended, a
/// blank line between sections.
fn info_sections(ctx: &RespCtx, s: &Status, sections: &[&str]) -> String {
    let mut o = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            o.push_str("\r\n");
        }
        match *section {
            "server" => server_section(&mut o, ctx),
            "clients" => clients_section(&mut o, ctx),
            "memory" => memory_section(&mut o, s),
            "persistence" => persistence_section(&mut o, s),
            "stats" => stats_section(&mut o, ctx),
            "raft" => raft_section(&mut o, s),
            _ => keyspace_section(&mut o, s),
        }
    }
    o
}

/// Refusals, by Redis's names (`acl_access_denied_*`), and raftkv's `NOAUTH` count.
fn stats_section(o: &mut String, ctx: &RespCtx) {
    use crate::metrics::ClientAccessDenied as Refusals;
    let r = &ctx.node.metrics.client_access_denied;
    let _ = write!(
        o,
        "# Stats\r\nacl_access_denied_auth:{}\r\nacl_access_denied_cmd:{}\r\n\
         acl_access_denied_key:{}\r\nacl_access_denied_channel:0\r\n\
         raftkv_access_denied_noauth:{}\r\n",
        Refusals::get(&r.auth),
        Refusals::get(&r.command),
        Refusals::get(&r.key),
        Refusals::get(&r.noauth),
    );
}

fn server_section(o: &mut String, ctx: &RespCtx) {
    let uptime = ctx.started.elapsed().as_secs();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = write!(
        o,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nraftkv_version:{}\r\n\
         redis_mode:standalone\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\n\
         tcp_port:{}\r\nserver_time_usec:{now_us}\r\nuptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\nexecutable:{exe}\r\n",
        env!("CARGO_PKG_VERSION"),
        os_name(),
        usize::BITS,
        std::process::id(),
        run_id(),
        ctx.client_port,
        uptime / 86_400,
    );
}

/// As Redis shows it (from uname): `Linux 6.1.0-18-amd64 x86_64`.
fn os_name() -> String {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Ok(t), Ok(r)) => format!("{t} {r} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// 40 random hex digits, fixed for the life of the process (as Redis's `run_id`: tools
/// use it to tell a restarted server from the same one).
fn run_id() -> &'static str {
    static RUN_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN_ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // Each RandomState is seeded from the OS's randomness.
        let mut id = String::with_capacity(48);
        for _ in 0..3 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            let _ = write!(id, "{:016x}", h.finish());
        }
        id.truncate(40);
        id
    })
}

fn clients_section(o: &mut String, ctx: &RespCtx) {
    let _ = write!(
        o,
        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
        ctx.clients.count(),
        ctx.max_clients,
    );
}

/// raftkv has no allocator accounting: `used_memory` is the process's resident size,
/// `used_memory_dataset` the bytes of keys and values in the state machine.
fn memory_section(o: &mut String, s: &Status) {
    let m = ProcMemory::read();
    let _ = write!(
        o,
        "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
         used_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\n\
         used_memory_dataset:{}\r\ntotal_system_memory:{total}\r\n\
         total_system_memory_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n\
         maxmemory_policy:noeviction\r\n",
        human(m.rss),
        human(m.rss),
        human(m.peak),
        s.kv_bytes,
        human(m.total),
        rss = m.rss,
        peak = m.peak,
        total = m.total,
    );
}

/// Memory figures from `/proc` (zero where it is not available).
#[derive(Default)]
struct ProcMemory {
    rss: u64,
    peak: u64,
    total: u64,
}

impl ProcMemory {
    fn read() -> Self {
        let kib = |text: &str, field: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |k| k * 1024)
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        ProcMemory {
            rss: kib(&status, "VmRSS:"),
            peak: kib(&status, "VmHWM:"),
            total: kib(&meminfo, "MemTotal:"),
        }
    }
}

/// Bytes as Redis's `bytesToHuman` writes them: `512B`, `1.50K`, `2.00M`...
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

/// Redis's persistence fields as they map onto raftkv: every write is in the log
/// (fsynced) before it is acknowledged; a snapshot plays the part of an RDB save.
fn persistence_section(o: &mut String, s: &Status) {
    let _ = write!(
        o,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\n\
         rdb_saves:{}\r\nrdb_last_snapshot_index:{}\r\naof_enabled:0\r\nlog_entries:{}\r\n\
         log_bytes:{}\r\n",
        s.applied_index.saturating_sub(s.snapshot_index),
        s.snapshots_taken,
        s.snapshot_index,
        s.log_entries,
        s.log_bytes,
    );
}

fn raft_section(o: &mut String, s: &Status) {
    let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
    let _ = write!(
        o,
        "# Raft\r\nrole:{}\r\nnode_id:{}\r\nterm:{}\r\nleader:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\nfirst_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\n\
         snapshots_taken:{}\r\nsnapshots_installed:{}\r\nread_mode:{}\r\n",
        s.role,
        s.id,
        s.term,
        leader,
        s.commit_index,
        s.applied_index,
        s.first_index,
        s.last_index,
        s.snapshot_index,
        s.snapshots_taken,
        s.snapshots_installed,
        s.read_mode,
    );
    for p in &s.peers {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            o,
            "peer_{}:addr={},connected={},match_index={},lag={}\r\n",
            p.id,
            p.addr,
            u8::from(p.connected),
            opt(p.match_index),
            opt(p.lag),
        );
    }
}

/// As in Redis, an empty database has no line. `expires`: the keys with a TTL;
/// `avg_ttl`: their average time left in ms (exact, where Redis samples).
fn keyspace_section(o: &mut String, s: &Status) {
    o.push_str("# Keyspace\r\n");
    if s.keys > 0 {
        let _ = write!(
            o,
            "db0:keys={},expires={},avg_ttl={}\r\n",
            s.keys, s.expires, s.avg_ttl_ms
        );
    }
}

/// The parameters `CONFIG GET` knows (redis-benchmark reads `save` and `appendonly` at
/// start-up, and only warns if it cannot).
const CONFIG: &[(&str, &str)] = &[("save", ""), ("appendonly", "no"), ("databases", "1")];

/// `CONFIG GET parameter [parameter ...]` (glob patterns, as Redis 7); a map in RESP3.
fn config(a: &[Bytes]) -> Res<Value> {
    let Some(sub) = a.first() else {
        return Err(Failed(wrong_args("CONFIG")));
    };
    match upper(sub).as_str() {
        "GET" if a.len() >= 2 => {}
        "GET" => {
            return Err(Failed(Value::err(
                "wrong number of arguments for 'config|get' command",
            )))
        }
        "SET" | "RESETSTAT" | "REWRITE" => {
            return Err(Failed(Value::err(format!(
                "CONFIG {} is not supported by raftkv",
                upper(sub)
            ))))
        }
        _ => return Err(unknown_sub("CONFIG", sub)),
    }
    let mut out = Vec::new();
    for (name, value) in CONFIG {
        let lower = name.as_bytes();
        if a[1..]
            .iter()
            .any(|p| glob_match(&p.to_ascii_lowercase(), lower))
        {
            out.push((Value::bulk(*name), Value::bulk(*value)));
        }
    }
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_as_redis_writes_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }

    #[test]
    fn run_id_is_40_hex_digits_and_stable() {
        assert_eq!(run_id().len(), 40);
        assert!(run_id().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(run_id(), run_id());
    }
}
