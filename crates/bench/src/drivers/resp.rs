//! A minimal RESP2 client: one TCP connection, one request in flight.
//!
//! Our own rather than the `redis` crate because a closed-loop benchmark needs exactly
//! "write one command, read one reply" and nothing between them: no connection manager,
//! no pipelining, no retries we cannot see. Redis and raftkv both speak it.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One decoded reply. Arrays are read (so the stream stays in sync) but not kept:
/// nothing the benchmark sends answers with one.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(usize),
}

pub struct RespConn {
    addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl RespConn {
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are tiny and latency is the measurement: never let Nagle hold one back.
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(RespConn {
            addr: addr.to_string(),
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            out: Vec::with_capacity(1024),
            line: Vec::with_capacity(128),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command (as an array of bulk strings) and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.out.clear();
        encode_command(&mut self.out, args);
        self.writer.write_all(&self.out).await?;
        self.read_reply().await
    }

    async fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(bad("line without CRLF"));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        self.read_line().await?;
        let (kind, rest) = self.line.split_first().ok_or_else(|| bad("empty line"))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        match kind {
            b'+' => Ok(Reply::Simple(text())),
            b'-' => Ok(Reply::Error(text())),
            b':' => Ok(Reply::Int(parse_int(rest)?)),
            b'$' => {
                let len = parse_int(rest)?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut buf).await?;
                buf.truncate(len as usize);
                Ok(Reply::Bulk(Some(buf)))
            }
            b'*' => {
                let n = parse_int(rest)?;
                for _ in 0..n.max(0) {
                    Box::pin(self.read_reply()).await?;
                }
                Ok(Reply::Array(n.max(0) as usize))
            }
            _ => Err(bad("unknown reply type")),
        }
    }
}

pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad integer"))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_set() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"vv"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n");
    }

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
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(c.call(&[b"GET", b"b"]).await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            c.call(&[b"X"]).await.unwrap(),
            Reply::Error("ERR nope".into())
        );
        assert_eq!(c.call(&[b"Y"]).await.unwrap(), Reply::Array(2));
        server.await.unwrap();
    }
}
