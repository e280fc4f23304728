//! The users as this node's RESP connections see them: the replicated users (`kv::acl`,
//! applied by the node loop), or — until the first ACL entry applies — this node's
//! bootstrap, Redis's `default` user with the configured `requirepass`.
//!
//! The node loop publishes a new [`Users`] whenever its state machine's users change
//! (an ACL entry, a snapshot installed), before it answers the clients waiting on that
//! batch: a client that got `OK` from `ACL SETUSER` sees the change on its next command.
//! Other nodes see it once they applied the entry (normally within a round trip).
//! Connections read the latest publication on every command (`gate.rs`); one task here
//! closes the connections of users that were deleted, as Redis does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kv::acl::{Acl, User, DEFAULT_USER};
use tokio::sync::watch;

use super::permissions::Permissions;
use crate::resp::client::Clients;

/// One publication of the users.
#[derive(Debug)]
pub struct Users {
    map: BTreeMap<Bytes, User>,
    /// Whether these are the cluster's users (an ACL entry applied) rather than this
    /// node's bootstrap.
    pub replicated: bool,
    /// Each user's rules decided for the command table, worked out on first use.
    compiled: Mutex<HashMap<Bytes, Arc<Permissions>>>,
}

/// Where the node loop publishes and the connections read.
pub type UsersTx = watch::Sender<Arc<Users>>;
pub type UsersRx = watch::Receiver<Arc<Users>>;

impl Users {
    /// The users of `acl`, or the bootstrap ones (`bootstrap`: the rules for `default`,
    /// `Config::bootstrap_rules`) if no ACL entry applied yet.
    pub fn of(acl: &Acl, bootstrap: &[Bytes]) -> Users {
        let (map, replicated) = match acl.users() {
            Some(users) => (users.clone(), true),
            // Rules from our own config parse (they are `resetpass #<hash>`); were they
            // not to, the default stays passwordless, which protected mode keeps on
            // loopback.
            None => (
                Acl::bootstrap_users(bootstrap).unwrap_or_else(|_| {
                    BTreeMap::from([(Bytes::from_static(DEFAULT_USER), User::redis_default())])
                }),
                false,
            ),
        };
        Users {
            map,
            replicated,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&User> {
        self.map.get(name)
    }

    /// By name.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &User)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Redis's rule: a new connection is authenticated when `default` is on and needs
    /// no password.
    pub fn default_is_open(&self) -> bool {
        self.get(DEFAULT_USER)
            .is_some_and(|d| d.enabled && d.nopass)
    }

    /// The user's permissions, if it exists.
    pub fn permissions(&self, name: &[u8]) -> Option<Arc<Permissions>> {
        let user = self.map.get(name)?;
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            compiled
                .entry(Bytes::copy_from_slice(name))
                .or_insert_with(|| Arc::new(Permissions::compile(user)))
                .clone(),
        )
    }
}

/// Closes, as they change, the connections whose user was deleted (or deleted and
/// created again: another incarnation). Runs until the publisher is gone.
pub async fn close_connections_of_deleted_users(mut rx: UsersRx, clients: Arc<Clients>) {
    while rx.changed().await.is_ok() {
        let users = rx.borrow_and_update().clone();
        for client in clients.list() {
            let (name, incarnation) = {
                let s = client.state();
                (s.user.clone(), s.incarnation)
            };
            if users
                .get(&name)
                .is_none_or(|u| u.incarnation != incarnation)
            {
                tracing::info!(
                    client = client.id,
                    user = %String::from_utf8_lossy(&name),
                    "closing a connection: its user was deleted"
                );
                client.kill();
            }
        }
    }
}
