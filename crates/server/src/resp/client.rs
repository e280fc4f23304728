//! What the server keeps about one client connection, beside its sockets: the state that
//! commands read and change (its id; later its name, protocol, transaction...).
//!
//! Commands of one pipeline group run concurrently (see `conn.rs`), so the state is
//! shared by reference; commands that change it are barriers (`commands/class.rs`), so no
//! command of the same connection observes it half-changed.

/// One connection's state.
#[derive(Debug)]
pub struct Client {
    /// Unique among this process's connections (`CLIENT ID`); never 0.
    pub id: u64,
}

impl Client {
    pub fn new(id: u64) -> Self {
        Client { id }
    }
}

/// The registry of this process's connections: hands out their ids.
#[derive(Debug, Default)]
pub struct Clients {
    last_id: std::sync::atomic::AtomicU64,
}

impl Clients {
    /// The state of a new connection, with a fresh id.
    pub fn open(&self) -> std::sync::Arc<Client> {
        let id = 1 + self
            .last_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::sync::Arc::new(Client::new(id))
    }
}
