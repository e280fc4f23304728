//! What the server keeps about one client connection, beside its sockets: the state that
//! commands read and change (its id, name, protocol, read consistency...), and the
//! registry of open connections that `CLIENT LIST` and `INFO clients` read.
//!
//! Commands of one pipeline group run concurrently (see `conn.rs`), so the state is
//! shared by reference; commands that change it are barriers (`commands/class.rs`), so
//! no command of the same connection sees it change under it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

use super::codec::Protocol;

/// One connection's state.
#[derive(Debug)]
pub struct Client {
    /// Unique among this process's connections (`CLIENT ID`); never 0.
    pub id: u64,
    /// The client's address and ours (`None` if the socket could not tell).
    pub addr: Option<SocketAddr>,
    pub local_addr: Option<SocketAddr>,
    /// The socket's file descriptor, as `CLIENT LIST` shows it (-1 if unknown).
    pub fd: i64,
    pub opened: Instant,
    state: Mutex<ClientState>,
    /// Woken to close the connection (its user was deleted: `acl/users.rs`).
    kill: tokio::sync::Notify,
}

/// What commands change.
#[derive(Clone, Debug, Default)]
pub struct ClientState {
    /// `CLIENT SETNAME` / `HELLO ... SETNAME`; empty: no name.
    pub name: Bytes,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER`.
    pub lib_name: Bytes,
    pub lib_ver: Bytes,
    /// Set by `HELLO`; replies are encoded in it.
    pub protocol: Protocol,
    /// `READONLY`: reads on this connection are served from the local state machine.
    pub local_reads: bool,
    /// The last command run (lower case, as `CLIENT LIST` shows it) and when.
    pub last_command: String,
    pub last_active: Option<Instant>,
    /// Who this connection runs as (`AUTH`, `HELLO AUTH`; `default` until then).
    pub user: Bytes,
    /// The user's incarnation when it authenticated (`kv::acl::User::incarnation`): a
    /// user deleted and created again is not this one.
    pub incarnation: u64,
    /// Authenticated: by `AUTH`, or at connect while `default` needed no password.
    pub authenticated: bool,
}

impl Client {
    pub fn new(id: u64, addr: Option<SocketAddr>, local_addr: Option<SocketAddr>, fd: i64) -> Self {
        Client {
            id,
            addr,
            local_addr,
            fd,
            opened: Instant::now(),
            state: Mutex::new(ClientState {
                user: Bytes::from_static(kv::acl::DEFAULT_USER),
                ..ClientState::default()
            }),
            kill: tokio::sync::Notify::new(),
        }
    }

    /// Asks the connection to close (it does at once, without a reply).
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Resolves once [`Client::kill`] was called.
    pub async fn killed(&self) {
        self.kill.notified().await
    }

    /// The state, to read or change. Held only for short, non-async sections.
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        // A panic while holding this lock leaves plain data behind: use it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn protocol(&self) -> Protocol {
        self.state().protocol
    }

    /// Records that `command` (upper case) is about to run.
    pub fn touch(&self, command: &str) {
        let mut s = self.state();
        s.last_command.clear();
        s.last_command.push_str(&command.to_ascii_lowercase());
        s.last_active = Some(Instant::now());
    }
}

/// Where a connection comes from, read off its TCP socket before any TLS wraps it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Endpoints {
    pub addr: Option<SocketAddr>,
    pub local_addr: Option<SocketAddr>,
    /// The socket's file descriptor (-1 if unknown).
    pub fd: i64,
}

impl Endpoints {
    pub fn of(stream: &tokio::net::TcpStream) -> Self {
        #[cfg(unix)]
        let fd = {
            use std::os::fd::AsRawFd;
            i64::from(stream.as_raw_fd())
        };
        #[cfg(not(unix))]
        let fd = -1;
        Endpoints {
            addr: stream.peer_addr().ok(),
            local_addr: stream.local_addr().ok(),
            fd,
        }
    }
}

/// The registry of this process's open connections. Bounded by the accept loop's
/// `max_clients`: an entry lives exactly as long as its connection (see [`Registered`]).
#[derive(Debug, Default)]
pub struct Clients {
    last_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Client>>>,
}

impl Clients {
    /// Registers a new connection under a fresh id; it is removed when the returned
    /// guard drops.
    pub fn open(self: &Arc<Self>, ends: Endpoints) -> Registered {
        let id = 1 + self.last_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(Client::new(id, ends.addr, ends.local_addr, ends.fd));
        self.lock().insert(id, client.clone());
        Registered {
            client,
            clients: self.clone(),
        }
    }

    /// The open connections, by id.
    pub fn list(&self) -> Vec<Arc<Client>> {
        self.lock().values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Client>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's entry in the registry; dropping it removes the entry.
pub struct Registered {
    pub client: Arc<Client>,
    clients: Arc<Clients>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.client.id);
    }
}
