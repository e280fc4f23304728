//! `raftkv serve` configuration: a TOML file, overridden key by key by command-line
//! flags, then validated into a [`Config`].
//!
//! Every error names the key it is about (`config key `read_mode`: ...`), whether it came
//! from the file or a flag: unknown keys are refused (`deny_unknown_fields`), and values
//! are checked here rather than where they are used, so a bad config never half-starts a
//! node.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft::NodeId;
use serde::Deserialize;

/// Defaults, in one place so README and code agree.
pub const DEFAULT_CLIENT_ADDR: &str = "127.0.0.1:6379";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9379";
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1 << 20;
pub const DEFAULT_MAX_KEY_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

/// Upper bounds of limits whose values feed arithmetic (a deadline, `now` plus the
/// timeout in ticks; a memory budget, twice the request size). Beyond these a value is
/// surely a typo: it gets a clear error rather than relying on TOML's `i64` ceiling to
/// keep that arithmetic from overflowing.
const MAX_REQUEST_BYTES_LIMIT: u64 = 1 << 30;
const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;

fn key_err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// The environment variable that sets the admin token (over the file's `admin_token`).
pub const ADMIN_TOKEN_ENV: &str = "RAFTKV_ADMIN_TOKEN";

/// A credential that must never reach a log line: `Debug` and `Display` print
/// `<redacted>`; the value is read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The shortest admin token accepted: a guessable token is no credential.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// An admin token must be long enough and travel in an HTTP header as is: visible ASCII,
/// no spaces. The error never quotes the token.
pub fn check_admin_token(key: &str, t: &Secret) -> Result<(), ConfigError> {
    let s = t.expose();
    if s.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(key_err(
            key,
            format!("the admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters"),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(key_err(
            key,
            "the admin token must be visible ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// How reads (GET, MGET, EXISTS) are served. Writes always go through the leader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: the leader confirms with a quorum round after the read arrives, then
    /// serves from a state machine at least at the commit index it saw. Linearizable
    /// whatever the clocks do.
    Linearizable,
    /// Leader lease: the leader serves locally while a quorum acknowledged it within the
    /// lease (0.9 × election timeout). Linearizable as long as clock drift between nodes
    /// stays under the remaining 10% of the election timeout; saves a round trip.
    Lease,
    /// Any node serves from its own state machine, which may lag the leader: no
    /// linearizability, no read-your-writes across nodes; monotonic on one node.
    Stale,
}

impl ReadMode {
    pub fn parse(s: &str) -> Option<ReadMode> {
        match s {
            "linearizable" => Some(ReadMode::Linearizable),
            "lease" => Some(ReadMode::Lease),
            "stale" => Some(ReadMode::Stale),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Lease => "lease",
            ReadMode::Stale => "stale",
        }
    }
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file as written: every key optional (flags may supply it), nothing unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<u64>,
    pub data_dir: Option<PathBuf>,
    /// Node ID (as a string: TOML keys are strings) to `host:port` of its peer listener.
    /// May include this node itself, so every node can share one list.
    pub peers: Option<BTreeMap<String, String>>,
    pub peer_addr: Option<String>,
    pub client_addr: Option<String>,
    pub admin_addr: Option<String>,
    pub max_value_bytes: Option<u64>,
    pub max_key_bytes: Option<u64>,
    pub read_mode: Option<String>,
    #[serde(default)]
    pub raft: RaftFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub snapshot: SnapshotFile,
    #[serde(default)]
    pub events: EventsFile,
    /// Serve RESP and admin beyond loopback without TLS and authentication.
    pub insecure: Option<bool>,
    /// Talk to peers beyond loopback without mutual TLS.
    pub insecure_peers: Option<bool>,
    /// The `default` user's password while the cluster's users were never set (Redis's
    /// `requirepass`); `RAFTKV_REQUIREPASS` overrides it. Keep the file private.
    pub requirepass: Option<String>,
    #[serde(default)]
    pub tls: TlsFile,
    /// The admin credential: HTTP admin write routes require it (as a bearer token, or
    /// the password of HTTP Basic user `admin`). `RAFTKV_ADMIN_TOKEN` overrides it.
    pub admin_token: Option<Secret>,
}

/// `[tls]`: either `dir` (as `raftkv certs` writes it) or all of `ca`, `cert`, `key`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub dir: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    pub every_entries: Option<u64>,
    pub keep_entries: Option<u64>,
    pub chunk_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// `[events]`: keyspace notifications and the watch (`src/events/`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    pub ring_bytes: Option<u64>,
    pub notify_keyspace_events: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftFile {
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub retransmit_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_request_bytes: Option<u64>,
    pub max_pipeline: Option<u64>,
    pub max_clients: Option<u64>,
    pub max_client_memory_bytes: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub peer_queue_messages: Option<u64>,
    pub max_peer_connections: Option<u64>,
    pub peer_handshake_timeout_ms: Option<u64>,
    pub pubsub_output_hard_bytes: Option<u64>,
    pub pubsub_output_soft_bytes: Option<u64>,
    pub pubsub_output_soft_seconds: Option<u64>,
}

/// What flags can override. `None` leaves the file's value (or the default).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub id: Option<u64>,
    pub data_dir: Option<PathBuf>,
    /// `ID=host:port,ID=host:port`
    pub peers: Option<String>,
    pub peer_addr: Option<String>,
    pub client_addr: Option<String>,
    pub admin_addr: Option<String>,
    pub max_value_bytes: Option<u64>,
    pub read_mode: Option<String>,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    /// A `raftkv certs` directory: TLS on every surface.
    pub tls_dir: Option<PathBuf>,
    /// `--insecure` (true) or nothing (the file decides).
    pub insecure: bool,
    pub insecure_peers: bool,
    /// From `RAFTKV_ADMIN_TOKEN` (never a flag: command lines are visible to every user).
    pub admin_token: Option<Secret>,
    /// From the environment (`RAFTKV_REQUIREPASS`), never a flag: a flag shows in `ps`.
    pub requirepass: Option<String>,
}

/// The SHA-256 of the configured `requirepass`; `Debug` does not show it (a fast hash of
/// a weak password can be guessed).
#[derive(Clone, PartialEq, Eq)]
pub struct Requirepass(pub kv::acl::PasswordHash);

impl fmt::Debug for Requirepass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Requirepass(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct RaftTuning {
    pub election_timeout: Duration,
    pub heartbeat: Duration,
    pub retransmit: Duration,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest RESP command accepted (all its arguments); above it the connection closes.
    pub max_request_bytes: usize,
    /// Commands read ahead of their replies per client connection.
    pub max_pipeline: usize,
    pub max_clients: usize,
    /// Bytes all client connections together may hold beyond a small allowance each
    /// (read buffers, commands not yet answered); see `resp/memory.rs`.
    pub max_client_memory_bytes: usize,
    /// A forwarded request gets no answer from the leader after this long: error reply.
    pub request_timeout: Duration,
    /// Messages queued per peer; beyond it the oldest are dropped (raft retransmits).
    pub peer_queue_messages: usize,
    /// Inbound peer connections open at once, authenticated or not; more are refused.
    pub max_peer_connections: usize,
    /// An inbound peer connection must finish its TLS handshake and `Hello` this fast.
    pub peer_handshake_timeout: Duration,
}

/// PEM files of the node's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA: peers' certificates must chain to it.
    pub ca: PathBuf,
    /// This node's certificate (chain), naming `raftkv-member-<id>`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files for node `id` in a directory `raftkv certs` wrote.
    pub fn in_dir(dir: &Path, id: NodeId) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("node-{id}.pem")),
            key: dir.join(format!("node-{id}.key")),
        }
    }
}

/// Log compaction (§7 of the Raft paper).
#[derive(Clone, Debug)]
pub struct SnapshotSettings {
    /// Snapshot the state machine every this many applied entries (0: never; the log
    /// then grows without bound).
    pub every_entries: u64,
    /// Entries kept behind a snapshot, so a follower slightly behind gets appends.
    pub keep_entries: u64,
    /// InstallSnapshot chunk size.
    pub chunk_bytes: usize,
    /// Largest snapshot this node accepts from a leader.
    pub max_bytes: u64,
}

/// Keyspace notifications, pub/sub and the watch.
#[derive(Clone, Debug)]
pub struct EventSettings {
    /// Bytes of applied entries' events kept in memory, for subscribers reading at their
    /// own pace and for `RAFTKV.WATCH ... FROM` (the oldest go first).
    pub ring_bytes: usize,
    /// `notify-keyspace-events` at start (`CONFIG SET` changes it on this node).
    pub notify: crate::events::NotifyFlags,
    /// A subscriber's output buffer bounds (`client-output-buffer-limit pubsub`).
    pub output: crate::events::OutputLimits,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// The other members: ID to `host:port` of their peer listener. Never contains `id`.
    pub peers: BTreeMap<NodeId, String>,
    pub peer_addr: String,
    pub client_addr: String,
    pub admin_addr: String,
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub read_mode: ReadMode,
    pub raft: RaftTuning,
    pub limits: Limits,
    pub snapshot: SnapshotSettings,
    pub events: EventSettings,
    /// TLS on every surface (peers mutual), or none.
    pub tls: Option<TlsFiles>,
    /// Protected mode's overrides (see `protected.rs`).
    pub insecure: bool,
    pub insecure_peers: bool,
    /// Admin write routes require this credential; without one they are served to
    /// loopback clients only (`admin/auth.rs`).
    pub admin_token: Option<Secret>,
    /// The bootstrap password of the `default` user (see `resp/users.rs`); `None`: no
    /// password, as Redis's default.
    pub requirepass: Option<Requirepass>,
}

impl Config {
    /// Reads `path` (if any), applies `flags`, validates.
    pub fn load(path: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => parse_file(p)?,
            None => FileConfig::default(),
        };
        Config::resolve(file, flags)
    }

    pub fn resolve(file: FileConfig, flags: &Overrides) -> Result<Config, ConfigError> {
        let id = flags
            .id
            .or(file.id)
            .ok_or_else(|| key_err("id", "missing (set it in the file or with --id)"))?;
        if id == 0 {
            return Err(key_err("id", "must be a positive integer"));
        }

        let mut members = match &flags.peers {
            Some(list) => parse_peer_list(list)?,
            None => parse_peer_table(file.peers.unwrap_or_default())?,
        };
        let own_entry = members.remove(&id);
        let peer_addr = flags
            .peer_addr
            .clone()
            .or(file.peer_addr)
            .or_else(|| own_entry.clone())
            .ok_or_else(|| {
                key_err(
                    "peer_addr",
                    "missing (set it, or list this node's own ID in `peers`)",
                )
            })?;
        check_addr("peer_addr", &peer_addr, true)?;
        if let Some(own) = &own_entry {
            if *own != peer_addr {
                return Err(key_err(
                    format!("peers.{id}"),
                    format!("this node's entry {own} differs from peer_addr {peer_addr}"),
                ));
            }
        }

        let client_addr = flags
            .client_addr
            .clone()
            .or(file.client_addr)
            .unwrap_or_else(|| DEFAULT_CLIENT_ADDR.to_string());
        check_addr("client_addr", &client_addr, true)?;
        let admin_addr = flags
            .admin_addr
            .clone()
            .or(file.admin_addr)
            .unwrap_or_else(|| DEFAULT_ADMIN_ADDR.to_string());
        check_addr("admin_addr", &admin_addr, true)?;

        let max_value_bytes = flags
            .max_value_bytes
            .or(file.max_value_bytes)
            .unwrap_or(DEFAULT_MAX_VALUE_BYTES);
        if !(1..=(256 << 20)).contains(&max_value_bytes) {
            return Err(key_err("max_value_bytes", "must be in 1..=268435456"));
        }
        let max_key_bytes = file.max_key_bytes.unwrap_or(DEFAULT_MAX_KEY_BYTES);
        if !(1..=(1 << 20)).contains(&max_key_bytes) {
            return Err(key_err("max_key_bytes", "must be in 1..=1048576"));
        }

        let read_mode = match flags.read_mode.clone().or(file.read_mode) {
            None => ReadMode::Linearizable,
            Some(s) => ReadMode::parse(&s).ok_or_else(|| {
                key_err(
                    "read_mode",
                    format!("unknown mode {s:?} (expected linearizable, lease or stale)"),
                )
            })?,
        };

        let election = flags
            .election_timeout_ms
            .or(file.raft.election_timeout_ms)
            .unwrap_or(1000);
        if !(10..=60_000).contains(&election) {
            return Err(key_err("raft.election_timeout_ms", "must be in 10..=60000"));
        }
        let heartbeat = flags
            .heartbeat_ms
            .or(file.raft.heartbeat_ms)
            .unwrap_or((election / 10).max(1));
        if heartbeat == 0 || heartbeat >= election {
            return Err(key_err(
                "raft.heartbeat_ms",
                format!("must be in 1..{election} (below the election timeout)"),
            ));
        }
        let retransmit = file.raft.retransmit_ms.unwrap_or(2 * heartbeat);
        if !(1..=60_000).contains(&retransmit) {
            return Err(key_err("raft.retransmit_ms", "must be in 1..=60000"));
        }

        let default_request = (4 * max_value_bytes).max(8 << 20);
        let max_request_bytes = file.limits.max_request_bytes.unwrap_or(default_request);
        if max_request_bytes < max_value_bytes + max_key_bytes + 64 {
            return Err(key_err(
                "limits.max_request_bytes",
                "must leave room for one key and one value of the maximum sizes",
            ));
        }
        if max_request_bytes > MAX_REQUEST_BYTES_LIMIT {
            return Err(key_err(
                "limits.max_request_bytes",
                format!("must be at most {MAX_REQUEST_BYTES_LIMIT} (1 GiB)"),
            ));
        }
        let max_pipeline = file.limits.max_pipeline.unwrap_or(1024);
        if !(1..=1_000_000).contains(&max_pipeline) {
            return Err(key_err("limits.max_pipeline", "must be in 1..=1000000"));
        }
        let max_clients = file.limits.max_clients.unwrap_or(10_000);
        if max_clients == 0 {
            return Err(key_err("limits.max_clients", "must be positive"));
        }
        let max_client_memory = file.limits.max_client_memory_bytes.unwrap_or(1 << 30);
        if max_client_memory < 2 * max_request_bytes {
            return Err(key_err(
                "limits.max_client_memory_bytes",
                format!(
                    "must be at least twice limits.max_request_bytes ({max_request_bytes}): \
                     one largest command must fit, with room to spare"
                ),
            ));
        }
        let request_timeout = file.limits.request_timeout_ms.unwrap_or(10_000);
        if request_timeout < election {
            return Err(key_err(
                "limits.request_timeout_ms",
                "must be at least the election timeout (a request may wait out an election)",
            ));
        }
        if request_timeout > MAX_REQUEST_TIMEOUT_MS {
            return Err(key_err(
                "limits.request_timeout_ms",
                format!("must be at most {MAX_REQUEST_TIMEOUT_MS} (an hour)"),
            ));
        }
        let peer_queue = file.limits.peer_queue_messages.unwrap_or(4096);
        if peer_queue == 0 {
            return Err(key_err("limits.peer_queue_messages", "must be positive"));
        }

        let max_peer_connections = file.limits.max_peer_connections.unwrap_or(64);
        if max_peer_connections == 0 {
            return Err(key_err("limits.max_peer_connections", "must be positive"));
        }
        let handshake = file.limits.peer_handshake_timeout_ms.unwrap_or(5_000);
        if !(1..=600_000).contains(&handshake) {
            return Err(key_err(
                "limits.peer_handshake_timeout_ms",
                "must be in 1..=600000",
            ));
        }

        let admin_token = match (flags.admin_token.clone(), file.admin_token) {
            (Some(t), _) => {
                check_admin_token(ADMIN_TOKEN_ENV, &t)?;
                Some(t)
            }
            (None, Some(t)) => {
                check_admin_token("admin_token", &t)?;
                Some(t)
            }
            (None, None) => None,
        };

        let snapshot = resolve_snapshot(&file.snapshot)?;
        let events = resolve_events(&file.events, &file.limits)?;
        let tls = resolve_tls(id, flags.tls_dir.as_deref(), file.tls)?;

        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(format!("data/{id}")));

        Ok(Config {
            id,
            data_dir,
            peers: members,
            peer_addr,
            client_addr,
            admin_addr,
            max_value_bytes: max_value_bytes as usize,
            max_key_bytes: max_key_bytes as usize,
            read_mode,
            raft: RaftTuning {
                election_timeout: Duration::from_millis(election),
                heartbeat: Duration::from_millis(heartbeat),
                retransmit: Duration::from_millis(retransmit),
            },
            limits: Limits {
                max_request_bytes: max_request_bytes as usize,
                max_pipeline: max_pipeline as usize,
                max_clients: max_clients as usize,
                max_client_memory_bytes: usize::try_from(max_client_memory).unwrap_or(usize::MAX),
                request_timeout: Duration::from_millis(request_timeout),
                peer_queue_messages: peer_queue as usize,
                max_peer_connections: max_peer_connections as usize,
                peer_handshake_timeout: Duration::from_millis(handshake),
            },
            snapshot,
            events,
            tls,
            insecure: flags.insecure || file.insecure.unwrap_or(false),
            insecure_peers: flags.insecure_peers || file.insecure_peers.unwrap_or(false),
            admin_token,
            // An empty password is none, as Redis's `requirepass ""`.
            requirepass: flags
                .requirepass
                .as_ref()
                .or(file.requirepass.as_ref())
                .filter(|p| !p.is_empty())
                .map(|p| Requirepass(crate::password::hash(p.as_bytes()))),
        })
    }

    /// The rules that give the `default` user this node's bootstrap password (none: the
    /// user keeps Redis's `nopass`).
    pub fn bootstrap_rules(&self) -> Vec<bytes::Bytes> {
        match &self.requirepass {
            None => Vec::new(),
            Some(Requirepass(h)) => vec![
                bytes::Bytes::from_static(b"resetpass"),
                bytes::Bytes::from(format!("#{}", kv::acl::hash_hex(h))),
            ],
        }
    }

    /// Every voter, this node included.
    pub fn voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.peers.keys().copied().collect();
        v.push(self.id);
        v.sort_unstable();
        v
    }

    /// Bytes of entry data in one append, and so the largest command the log accepts: a
    /// maximal key and value with room for the command encoding.
    pub fn raft_max_msg_bytes(&self) -> usize {
        (self.max_value_bytes + self.max_key_bytes + 1024).max(1 << 20)
    }

    /// Largest peer frame: one append holds at most `raft_max_msg_bytes` of entries, or a
    /// single entry of at most that size, plus per-entry headers.
    pub fn max_peer_frame_bytes(&self) -> usize {
        2 * self.raft_max_msg_bytes() + (1 << 20)
    }
}

fn resolve_events(file: &EventsFile, limits: &LimitsFile) -> Result<EventSettings, ConfigError> {
    use crate::events::{NotifyFlags, OutputLimits};
    let ring_bytes = file.ring_bytes.unwrap_or(64 << 20);
    if !((1 << 20)..=(64 << 30)).contains(&ring_bytes) {
        return Err(key_err(
            "events.ring_bytes",
            "must be in 1048576..=68719476736 (1 MiB to 64 GiB)",
        ));
    }
    let notify = match &file.notify_keyspace_events {
        None => NotifyFlags::default(),
        Some(s) => NotifyFlags::parse(s.as_bytes()).ok_or_else(|| {
            key_err(
                "events.notify_keyspace_events",
                crate::events::notify::BAD_CLASS,
            )
        })?,
    };
    let d = OutputLimits::default();
    let hard = limits
        .pubsub_output_hard_bytes
        .unwrap_or(d.hard_bytes as u64);
    let soft = limits
        .pubsub_output_soft_bytes
        .unwrap_or(d.soft_bytes as u64);
    if hard < 64 << 10 {
        return Err(key_err(
            "limits.pubsub_output_hard_bytes",
            "must be at least 65536 (one batch of messages must fit)",
        ));
    }
    if soft > hard {
        return Err(key_err(
            "limits.pubsub_output_soft_bytes",
            "must be at most limits.pubsub_output_hard_bytes",
        ));
    }
    let soft_for = limits
        .pubsub_output_soft_seconds
        .unwrap_or(d.soft_for.as_secs());
    Ok(EventSettings {
        ring_bytes: ring_bytes as usize,
        notify,
        output: OutputLimits {
            hard_bytes: hard as usize,
            soft_bytes: soft as usize,
            soft_for: Duration::from_secs(soft_for),
        },
    })
}

/// `--tls-dir` wins over the file; in the file, `dir` or all three paths.
fn resolve_tls(
    id: NodeId,
    flag_dir: Option<&Path>,
    file: TlsFile,
) -> Result<Option<TlsFiles>, ConfigError> {
    if let Some(dir) = flag_dir {
        return Ok(Some(TlsFiles::in_dir(dir, id)));
    }
    match file {
        TlsFile {
            dir: Some(dir),
            ca: None,
            cert: None,
            key: None,
        } => Ok(Some(TlsFiles::in_dir(&dir, id))),
        TlsFile {
            dir: None,
            ca: Some(ca),
            cert: Some(cert),
            key: Some(key),
        } => Ok(Some(TlsFiles { ca, cert, key })),
        TlsFile {
            dir: None,
            ca: None,
            cert: None,
            key: None,
        } => Ok(None),
        _ => Err(key_err(
            "tls",
            "give either `dir` (as `raftkv certs` writes it) or all of `ca`, `cert` and `key`",
        )),
    }
}

fn resolve_snapshot(file: &SnapshotFile) -> Result<SnapshotSettings, ConfigError> {
    let chunk_bytes = file.chunk_bytes.unwrap_or(1 << 20);
    // A chunk travels in one peer frame, whose limit leaves room for 1 MiB of data.
    if !(1..=(1 << 20)).contains(&chunk_bytes) {
        return Err(key_err("snapshot.chunk_bytes", "must be in 1..=1048576"));
    }
    let max_bytes = file.max_bytes.unwrap_or(8 << 30);
    if max_bytes == 0 {
        return Err(key_err("snapshot.max_bytes", "must be positive"));
    }
    Ok(SnapshotSettings {
        every_entries: file.every_entries.unwrap_or(100_000),
        keep_entries: file.keep_entries.unwrap_or(1_000),
        chunk_bytes: chunk_bytes as usize,
        max_bytes,
    })
}

pub fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// toml's messages already name the offending key and position (`unknown field `x``,
/// `invalid type ... for key `id``).
pub fn parse_str(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

fn parse_peer_table(
    table: BTreeMap<String, String>,
) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, addr) in table {
        let key = format!("peers.{k}");
        let id: NodeId = k
            .parse()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| key_err(&key, "peer IDs must be positive integers"))?;
        check_addr(&key, &addr, false)?;
        out.insert(id, addr);
    }
    Ok(out)
}

/// `1=127.0.0.1:7001,2=127.0.0.1:7002` (the `--peers` flag).
pub fn parse_peer_list(list: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| key_err("peers", format!("{item:?} is not ID=host:port")))?;
        let id: NodeId = id
            .trim()
            .parse()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| key_err("peers", format!("{id:?} is not a positive integer ID")))?;
        let addr = addr.trim().to_string();
        check_addr(&format!("peers.{id}"), &addr, false)?;
        if out.insert(id, addr).is_some() {
            return Err(key_err("peers", format!("node {id} is listed twice")));
        }
    }
    Ok(out)
}

/// `host:port` or `[v6]:port`. Resolution happens at bind/connect time (names may only
/// resolve later), so this checks the shape only.
/// Whether `addr` is a peer address (`host:port`, port not 0), as a member's is.
pub fn check_peer_addr(addr: &str) -> Result<(), String> {
    check_addr("peer_addr", addr, false).map_err(|e| e.to_string())
}

fn check_addr(key: &str, addr: &str, allow_port_zero: bool) -> Result<(), ConfigError> {
    let bad = |why: &str| key_err(key, format!("{addr:?} is not host:port ({why})"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if port == 0 && !allow_port_zero {
        return Err(bad("port 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, flags: &Overrides) -> Result<Config, String> {
        let file = parse_str(text)?;
        Config::resolve(file, flags).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
        id = 2
        data_dir = "/tmp/x"
        client_addr = "127.0.0.1:6380"
        read_mode = "lease"
        [peers]
        1 = "127.0.0.1:7001"
        2 = "127.0.0.1:7002"
        3 = "localhost:7003"
        [raft]
        election_timeout_ms = 500
    "#;

    /// Limits far beyond any sane value are refused by name. Before, they were accepted:
    /// a request timeout of millions of years, a request size of exabytes. Their uses
    /// (deadlines `now + timeout`, the budget `2 * max_request_bytes`) stayed below
    /// overflow only because TOML's integers stop at `i64::MAX`.
    #[test]
    fn huge_limits_are_refused_by_name() {
        for (section, key, value) in [
            ("limits", "max_request_bytes", "9223372036854775807"),
            ("limits", "max_request_bytes", "1073741825"),
            ("limits", "request_timeout_ms", "9223372036854775807"),
            ("limits", "request_timeout_ms", "3600001"),
            ("raft", "retransmit_ms", "9223372036854775807"),
        ] {
            let text =
                format!("id = 1\npeer_addr = \"127.0.0.1:7001\"\n[{section}]\n{key} = {value}\n");
            let err = match parse_str(&text) {
                Err(e) => e,
                Ok(file) => match Config::resolve(file, &Overrides::default()) {
                    Err(e) => e.to_string(),
                    Ok(_) => panic!("{section}.{key} = {value} accepted"),
                },
            };
            assert!(
                err.contains(key),
                "{section}.{key} = {value}: the error does not name it: {err}"
            );
        }
        for (section, key, value) in [
            (
                "limits",
                "max_request_bytes",
                "1073741824\nmax_client_memory_bytes = 2147483648",
            ),
            ("limits", "request_timeout_ms", "3600000"),
            ("raft", "retransmit_ms", "60000"),
        ] {
            let text =
                format!("id = 1\npeer_addr = \"127.0.0.1:7001\"\n[{section}]\n{key} = {value}\n");
            resolve(&text, &Overrides::default())
                .unwrap_or_else(|e| panic!("{section}.{key} = {value}: {e}"));
        }
    }

    #[test]
    fn full_file_resolves() {
        let c = resolve(GOOD, &Overrides::default()).unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.peer_addr, "127.0.0.1:7002");
        assert_eq!(c.peers.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(c.voters(), vec![1, 2, 3]);
        assert_eq!(c.read_mode, ReadMode::Lease);
        assert_eq!(c.raft.heartbeat, Duration::from_millis(50));
        assert_eq!(c.max_value_bytes, 1 << 20);
        assert_eq!(c.admin_addr, DEFAULT_ADMIN_ADDR);
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Overrides {
            id: Some(3),
            read_mode: Some("stale".into()),
            max_value_bytes: Some(10),
            ..Overrides::default()
        };
        let c = resolve(GOOD, &flags).unwrap();
        assert_eq!(c.id, 3);
        assert_eq!(c.peer_addr, "localhost:7003");
        assert_eq!(c.read_mode, ReadMode::Stale);
        assert_eq!(c.max_value_bytes, 10);
        let flags = Overrides {
            id: Some(1),
            peers: Some("1=h:1,2=h:2".into()),
            ..Overrides::default()
        };
        let c = resolve(GOOD, &flags).unwrap();
        assert_eq!(c.peers.get(&2).map(String::as_str), Some("h:2"));
        assert!(!c.peers.contains_key(&3));
    }

    #[test]
    fn requirepass_comes_from_the_file_or_the_environment_and_is_kept_hashed() {
        let file = "id = 1\npeer_addr = \"h:1\"\nrequirepass = \"from-file\"";
        let c = resolve(file, &Overrides::default()).unwrap();
        let h = |p: &str| Some(Requirepass(crate::password::hash(p.as_bytes())));
        assert_eq!(c.requirepass, h("from-file"));
        assert_eq!(c.bootstrap_rules().len(), 2);
        assert!(!format!("{c:?}").contains("from-file"));
        let env = Overrides {
            requirepass: Some("from-env".into()),
            ..Overrides::default()
        };
        assert_eq!(resolve(file, &env).unwrap().requirepass, h("from-env"));
        // An empty password is none, as Redis's `requirepass ""`.
        let empty = Overrides {
            requirepass: Some(String::new()),
            ..Overrides::default()
        };
        let c = resolve(file, &empty).unwrap();
        assert_eq!(c.requirepass, None);
        assert!(c.bootstrap_rules().is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("id = 1\npeer_addr = \"h:1\"\nbogus = 3", "bogus"),
            ("id = 1\npeer_addr = \"h:1\"\n[raft]\nfoo = 1", "foo"),
            ("id = \"one\"", "id"),
            ("id = 1\npeer_addr = \"h:1\"\nread_mode = \"fast\"", "read_mode"),
            ("id = 1\npeer_addr = \"nope\"", "peer_addr"),
            ("id = 1\npeer_addr = \"h:1\"\n[peers]\nx = \"h:2\"", "peers.x"),
            ("id = 1\npeer_addr = \"h:1\"\n[peers]\n2 = \"h:0\"", "peers.2"),
            ("id = 1\npeer_addr = \"h:1\"\nmax_value_bytes = 0", "max_value_bytes"),
            ("peer_addr = \"h:1\"", "id"),
            ("id = 1", "peer_addr"),
            (
                "id = 1\npeer_addr = \"h:1\"\n[raft]\nelection_timeout_ms = 100\nheartbeat_ms = 100",
                "raft.heartbeat_ms",
            ),
            ("id = 1\npeer_addr = \"h:1\"\n[peers]\n1 = \"h:9\"", "peers.1"),
            ("id = 1\npeer_addr = \"h:1\"\n[tls]\nca = \"a.pem\"", "tls"),
            (
                "id = 1\npeer_addr = \"h:1\"\n[limits]\nmax_peer_connections = 0",
                "limits.max_peer_connections",
            ),
        ];
        for (text, key) in cases {
            let err = resolve(text, &Overrides::default()).unwrap_err();
            assert!(
                err.contains(key),
                "{text:?}: error {err:?} does not name {key}"
            );
        }
    }

    #[test]
    fn the_admin_token_comes_from_the_file_or_the_environment_and_never_shows() {
        let token = "s3cret-token-0123456789";
        let c = resolve(
            &format!("{GOOD}\nadmin_token = \"{token}\"\n"),
            &Overrides::default(),
        );
        // `admin_token` after `[raft]` would belong to that table: put it first.
        assert!(c.is_err());
        let file = format!("admin_token = \"{token}\"\n{GOOD}");
        let c = resolve(&file, &Overrides::default()).unwrap();
        assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some(token));
        assert!(
            !format!("{c:?}").contains(token),
            "the token shows in Debug"
        );
        let env = Overrides {
            admin_token: Some(Secret::new("from-the-environment-123")),
            ..Overrides::default()
        };
        let c = resolve(&file, &env).unwrap();
        assert_eq!(
            c.admin_token.as_ref().map(Secret::expose),
            Some("from-the-environment-123")
        );
        let err = resolve(
            &format!("admin_token = \"short\"\n{GOOD}"),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.contains("admin_token") && !err.contains("short\""),
            "{err}"
        );
        let err = resolve(
            GOOD,
            &Overrides {
                admin_token: Some(Secret::new("has a space in it, sadly")),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.contains(ADMIN_TOKEN_ENV), "{err}");
        assert!(resolve(GOOD, &Overrides::default())
            .unwrap()
            .admin_token
            .is_none());
    }

    #[test]
    fn the_example_file_is_valid() {
        let c = resolve(include_str!("../example.toml"), &Overrides::default()).unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.peer_addr, "127.0.0.1:7101");
        assert_eq!(c.voters(), vec![1, 2, 3]);
    }

    #[test]
    fn peer_list_flag() {
        assert_eq!(parse_peer_list("1=a:1, 2=b:2").unwrap().len(), 2);
        assert!(parse_peer_list("1=a:1,1=b:2").is_err());
        assert!(parse_peer_list("a:1").is_err());
        assert!(parse_peer_list("0=a:1").is_err());
    }
}
