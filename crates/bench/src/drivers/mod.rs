//! One connection per client to the system under test, behind one enum so the load loop
//! is written once. An enum rather than a trait object: async methods stay plain `async fn`
//! and the call is a match, not an allocation per operation.

pub mod etcd;
pub mod raftkv;
pub mod redis;
pub mod resp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The system a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Raftkv,
    Etcd,
    Redis,
    /// raftkv with TLS on every surface (`kvbench tls`: what TLS costs).
    #[serde(rename = "raftkv-tls")]
    RaftkvTls,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Raftkv => "raftkv",
            Target::Etcd => "etcd",
            Target::Redis => "redis",
            Target::RaftkvTls => "raftkv-tls",
        }
    }

    /// The name people know it by, for tables and charts.
    pub fn title(self) -> &'static str {
        match self {
            Target::Raftkv => "raftkv",
            Target::Etcd => "etcd",
            Target::Redis => "Redis",
            Target::RaftkvTls => "raftkv (TLS)",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raftkv" => Ok(Target::Raftkv),
            "etcd" => Ok(Target::Etcd),
            "redis" => Ok(Target::Redis),
            "raftkv-tls" => Ok(Target::RaftkvTls),
            other => Err(format!(
                "unknown target {other:?} (redis|etcd|raftkv|raftkv-tls)"
            )),
        }
    }
}

/// What a read found. A miss is not an error (the key may not be loaded), but the count
/// is reported so a read-only run that read nothing cannot pass unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Hit,
    Miss,
}

pub enum Conn {
    Redis(redis::RedisConn),
    // Boxed: a gRPC client is over a kilobyte, a RESP connection a tenth of that.
    Etcd(Box<etcd::EtcdConn>),
    Raftkv(raftkv::RaftkvConn),
}

impl Conn {
    /// Opens one client connection to `endpoint` (`host:port`) and checks it answers.
    pub async fn connect(target: Target, endpoint: &str) -> Result<Conn, String> {
        Ok(match target {
            Target::Redis => Conn::Redis(redis::RedisConn::connect(endpoint).await?),
            Target::Etcd => Conn::Etcd(Box::new(etcd::EtcdConn::connect(endpoint).await?)),
            Target::Raftkv => Conn::Raftkv(raftkv::RaftkvConn::connect(endpoint).await?),
            Target::RaftkvTls => {
                Conn::Raftkv(raftkv::RaftkvConn::connect_with(endpoint, true).await?)
            }
        })
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Found, String> {
        match self {
            Conn::Redis(c) => c.get(key).await,
            Conn::Etcd(c) => c.get(key).await,
            Conn::Raftkv(c) => c.get(key).await,
        }
    }

    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self {
            Conn::Redis(c) => c.set(key, value).await,
            Conn::Etcd(c) => c.set(key, value).await,
            Conn::Raftkv(c) => c.set(key, value).await,
        }
    }

    /// Writes many keys in one request (MSET or one etcd transaction): the preload.
    pub async fn set_many(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), String> {
        match self {
            Conn::Redis(c) => c.set_many(keys, value).await,
            Conn::Etcd(c) => c.set_many(keys, value).await,
            Conn::Raftkv(c) => c.set_many(keys, value).await,
        }
    }
}
