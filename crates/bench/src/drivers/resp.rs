//! A minimal RESP2 client: one TCP connection, one request in flight.
//!
//! Our own rather than the `redis` crate because a closed-loop benchmark needs exactly
//! "write one command, read one reply" and nothing between them: no connection manager,
//! no pipelining, no retries we cannot see. Redis and raftkv both speak it.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use server::resp::codec::{encode_command, parse_reply};

/// One decoded reply: the server's own RESP value type, parsed by the server's own reply
/// parser (one RESP client implementation in the repository).
pub use server::resp::codec::Value as Reply;

pub struct RespConn {
    addr: String,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    out: BytesMut,
    /// Bytes read and not yet parsed.
    buf: BytesMut,
}

impl RespConn {
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are tiny and latency is the measurement: never let Nagle hold one back.
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(RespConn {
            addr: addr.to_string(),
            reader: r,
            writer: w,
            out: BytesMut::with_capacity(1024),
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command (as an array of bulk strings) and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.out.clear();
        encode_command(args, &mut self.out);
        self.writer.write_all(&self.out).await?;
        self.read_reply().await
    }

    /// Sends several commands at once and reads their replies, in order (setup and
    /// background load only: the measured loop keeps one request in flight).
    pub async fn call_many(&mut self, cmds: &[Vec<Vec<u8>>]) -> io::Result<Vec<Reply>> {
        self.out.clear();
        for c in cmds {
            encode_command(c, &mut self.out);
        }
        self.writer.write_all(&self.out).await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some(reply) = parse_reply(&mut self.buf).map_err(|e| bad(&e))? {
                return Ok(reply);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn decodes_replies_from_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            for reply in [
                &b"+OK\r\n"[..],
                b"$3\r\nabc\r\n",
                b"$-1\r\n",
                b"-ERR nope\r\n",
                b"*2\r\n:1\r\n$1\r\nx\r\n",
            ] {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(reply).await.unwrap();
            }
        });
        let mut c = RespConn::connect(&addr).await.unwrap();
        assert_eq!(
            c.call(&[b"PING"]).await.unwrap(),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            c.call(&[b"GET", b"a"]).await.unwrap(),
            Reply::bulk(&b"abc"[..])
        );
        assert_eq!(c.call(&[b"GET", b"b"]).await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            c.call(&[b"X"]).await.unwrap(),
            Reply::Error("ERR nope".into())
        );
        assert_eq!(
            c.call(&[b"Y"]).await.unwrap(),
            Reply::Array(Some(vec![Reply::Int(1), Reply::bulk(&b"x"[..])]))
        );
        server.await.unwrap();
    }
}
