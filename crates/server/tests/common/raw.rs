//! A RESP client that keeps the exact bytes of every reply, for tests that compare
//! replies byte for byte (with real Redis, or with an expected encoding).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use server::resp::codec::{encode_command, parse_reply, Value};

/// One connection; `buf` holds bytes received but not yet returned as a reply.
pub struct RawConn {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawConn {
    /// Connects with a 20 s read timeout and Nagle off.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<RawConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
        })
    }

    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::try_connect(addr).expect("connect")
    }

    /// Sends one command without waiting for its reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out).expect("send");
    }

    /// The next reply: its bytes and its value; an I/O error or a closed connection is
    /// returned, so a caller probing a server that is still starting can retry.
    pub fn try_read(&mut self) -> std::io::Result<(Vec<u8>, Value)> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            let mut probe = self.buf.clone();
            if let Some(v) = parse_reply(&mut probe).expect("well-formed reply") {
                let used = self.buf.len() - probe.len();
                return Ok((self.buf.split_to(used).to_vec(), v));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next reply's bytes (lossy UTF-8) and value.
    pub fn read(&mut self) -> (String, Value) {
        let (bytes, v) = self.try_read().expect("read a reply");
        (String::from_utf8_lossy(&bytes).into_owned(), v)
    }

    /// Sends `args` and returns the reply's exact bytes, or the I/O error.
    pub fn try_bytes<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Vec<u8>> {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out)?;
        Ok(self.try_read()?.0)
    }

    /// Sends `args` and returns the reply's exact bytes.
    pub fn bytes<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.try_bytes(args).expect("call")
    }

    /// Sends `args` and returns the reply's bytes as (lossy) text.
    pub fn raw<A: AsRef<[u8]>>(&mut self, args: &[A]) -> String {
        self.send(args);
        self.read().0
    }

    /// Sends `args` and returns the reply's value.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.send(args);
        self.read().1
    }
}
