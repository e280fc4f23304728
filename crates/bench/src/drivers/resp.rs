//! A minimal RESP2 client: one TCP connection, one request in flight.
//!
//! Our own rather than the `redis` crate because a closed-loop benchmark needs exactly
//! "write one command, read one reply" and nothing between them: no connection manager,
//! no pipelining, no retries we cannot see. Redis and raftkv both speak it.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use server::resp::codec::{encode_command, parse_reply};

/// One decoded reply: the server's own RESP value type, parsed by the server's own reply
/// parser (one RESP client implementation in the repository).
pub use server::resp::codec::Value as Reply;

/// The TLS client of `raftkv-tls` connections: trusts the CA given to [`trust_ca`].
static TLS: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();

/// Makes connections with `tls` trust the CA in this PEM file (`raftkv certs`'s ca.pem).
pub fn trust_ca(ca: &Path) -> Result<(), String> {
    let tls = server::cli::ClientTls::from_ca_file(ca).map_err(|e| e.to_string())?;
    let _ = TLS.set(tokio_rustls::TlsConnector::from(tls.config()));
    Ok(())
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

pub struct RespConn {
    addr: String,
    // Boxed halves, TLS or not: both configurations run the same code, so the TLS cost
    // measured is TLS's alone.
    reader: Reader,
    writer: Writer,
    out: BytesMut,
    /// Bytes read and not yet parsed.
    buf: BytesMut,
}

impl RespConn {
    pub async fn connect(addr: &str) -> io::Result<Self> {
        RespConn::connect_with(addr, false).await
    }

    /// Over TLS when `tls` (the CA from [`trust_ca`]; the node's certificate must name the
    /// host of `addr`).
    pub async fn connect_with(addr: &str, tls: bool) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are tiny and latency is the measurement: never let Nagle hold one back.
        stream.set_nodelay(true)?;
        let (r, w): (Reader, Writer) = if tls {
            let connector = TLS.get().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "TLS: no CA given (trust_ca)")
            })?;
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
            let name = rustls_pki_types::ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let s = connector.connect(name, stream).await?;
            let (r, w) = tokio::io::split(s);
            (Box::new(r), Box::new(w))
        } else {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        };
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
        // A TLS session holds written bytes until flushed (a socket has nothing to flush).
        self.writer.flush().await?;
        self.read_reply().await
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

    /// The TLS path: a node's certificate from `raftkv certs`, checked against its CA,
    /// and a reply read through the session (a request not flushed would never arrive).
    #[tokio::test]
    async fn speaks_tls_trusting_the_ca_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        server::tls::certs::generate(dir.path(), 1, &[]).unwrap();
        let files = server::config::TlsFiles::in_dir(dir.path(), 1);
        let tls = server::tls::Tls::load(&files, 1).unwrap();
        let acceptor = tls.public_acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(s).await.unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"*1\r\n$4\r\nPING\r\n");
            s.write_all(b"+PONG\r\n").await.unwrap();
            s.flush().await.unwrap();
        });
        trust_ca(&dir.path().join("ca.pem")).unwrap();
        let mut c = RespConn::connect_with(&addr, true).await.unwrap();
        assert_eq!(
            c.call(&[b"PING"]).await.unwrap(),
            Reply::Simple("PONG".into())
        );
        server.await.unwrap();
    }
}
