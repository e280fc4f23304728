//! Redis over RESP: `SET key value` and `GET key`, reconnecting after a broken connection.

use super::resp::{Reply, RespConn};
use super::Found;

pub struct RedisConn {
    addr: String,
    tls: bool,
    conn: Option<RespConn>,
}

impl RedisConn {
    pub async fn connect(addr: &str) -> Result<Self, String> {
        RedisConn::connect_with(addr, false).await
    }

    /// Over TLS when `tls` (see [`super::resp::trust_ca`]).
    pub async fn connect_with(addr: &str, tls: bool) -> Result<Self, String> {
        let mut c = RedisConn {
            addr: addr.to_string(),
            tls,
            conn: None,
        };
        match c.call(&[b"PING"]).await? {
            Reply::Simple(_) | Reply::Bulk(_) => Ok(c),
            other => Err(format!("{addr}: PING answered {other:?}")),
        }
    }

    /// One round trip. A transport error drops the connection so the next call
    /// reconnects: the client keeps going, and the error is counted by the caller.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        if self.conn.is_none() {
            let c = RespConn::connect_with(&self.addr, self.tls)
                .await
                .map_err(|e| format!("{}: connect: {e}", self.addr))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        match conn.call(args).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.conn = None;
                Err(format!("{}: {e}", self.addr))
            }
        }
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Found, String> {
        match self.call(&[b"GET", key]).await? {
            Reply::Bulk(Some(_)) => Ok(Found::Hit),
            Reply::Bulk(None) => Ok(Found::Miss),
            Reply::Error(e) => Err(e),
            other => Err(format!("GET answered {other:?}")),
        }
    }

    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        expect_ok(self.call(&[b"SET", key, value]).await?)
    }

    pub async fn set_many(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), String> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 2 * keys.len());
        args.push(b"MSET");
        for k in keys {
            args.push(k);
            args.push(value);
        }
        expect_ok(self.call(&args).await?)
    }
}

pub(crate) fn expect_ok(r: Reply) -> Result<(), String> {
    match r {
        Reply::Simple(s) if s == "OK" => Ok(()),
        Reply::Error(e) => Err(e),
        other => Err(format!("expected +OK, got {other:?}")),
    }
}
