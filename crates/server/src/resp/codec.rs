//! RESP: parsing client commands (multibulk arrays and inline commands) and encoding
//! replies in RESP2 or RESP3; plus a reply parser (both) for our own CLI and tests.
//!
//! Limits, so one client cannot make the server buffer without bound: a command's total
//! size (`max_request`), its argument count, and the length of a header or inline line.
//! Errors come in two kinds:
//! - *recoverable*: the bad bytes end at a line break we can see (a malformed array
//!   header, a bad inline line), so we skip that line, answer with an error and go on
//!   with the next command — the connection keeps working;
//! - *fatal*: inside an array, or a size over the limits; the stream cannot be
//!   resynchronised, so we answer with an error and close (as Redis does).

use bytes::{BufMut, Bytes, BytesMut};

/// Arguments in one command.
pub const MAX_ARGS: usize = 1 << 20;
/// A `*N` or `$N` header line, CRLF included.
const MAX_HEADER_LINE: usize = 32;
/// An inline command line.
pub const MAX_INLINE: usize = 64 << 10;

#[derive(Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// Skip `skip` bytes, reply with the error, carry on.
    Recoverable { msg: String, skip: usize },
    /// Reply with the error, then close.
    Fatal(String),
}

fn fatal(msg: impl Into<String>) -> ProtoError {
    ProtoError::Fatal(format!("Protocol error: {}", msg.into()))
}

/// Finds `\r\n` in `buf[from..]`; returns the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// Parses one command from the front of `buf`. `Ok(None)`: incomplete, read more. On
/// success the command's bytes are split off `buf` and the arguments share them. An
/// empty command (`*0`, a blank inline line) is consumed and returned as no arguments.
pub fn parse_command(
    buf: &mut BytesMut,
    max_request: usize,
) -> Result<Option<Vec<Bytes>>, ProtoError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (ranges, consumed) = if first == b'*' {
        match parse_multibulk(buf, max_request)? {
            Some(x) => x,
            None => return Ok(None),
        }
    } else {
        match parse_inline(buf)? {
            Some(x) => x,
            None => return Ok(None),
        }
    };
    let frame = buf.split_to(consumed).freeze();
    Ok(Some(
        ranges.into_iter().map(|(a, b)| frame.slice(a..b)).collect(),
    ))
}

type Parsed = (Vec<(usize, usize)>, usize);

fn parse_multibulk(buf: &[u8], max_request: usize) -> Result<Option<Parsed>, ProtoError> {
    let Some(cr) = find_crlf(buf, 1) else {
        if buf.len() > MAX_HEADER_LINE {
            return Err(fatal("too long multibulk header"));
        }
        return Ok(None);
    };
    let count = match parse_int(&buf[1..cr]) {
        Some(n) if n <= MAX_ARGS as i64 => n,
        Some(_) => return Err(fatal("invalid multibulk length")),
        // The whole bad line is in view: skip it and go on.
        None => {
            return Err(ProtoError::Recoverable {
                msg: "Protocol error: invalid multibulk length".into(),
                skip: cr + 2,
            })
        }
    };
    let mut pos = cr + 2;
    if count <= 0 {
        return Ok(Some((Vec::new(), pos)));
    }
    let count = count as usize;
    // Each argument costs at least its 4-byte header `$0\r\n` plus 2: a cheap bound
    // that stops a forged count before we reserve for it.
    if count.saturating_mul(6) > max_request {
        return Err(fatal("command exceeds the request size limit"));
    }
    let mut ranges = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        if b != b'$' {
            return Err(fatal(format!("expected '$', got '{}'", b as char)));
        }
        let Some(cr) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > MAX_HEADER_LINE {
                return Err(fatal("too long bulk header"));
            }
            return Ok(None);
        };
        let len = match parse_int(&buf[pos + 1..cr]) {
            Some(n) if n >= 0 => n as usize,
            _ => return Err(fatal("invalid bulk length")),
        };
        let start = cr + 2;
        let end = start.saturating_add(len);
        if end.saturating_add(2) > max_request {
            return Err(fatal(format!(
                "command exceeds the request size limit ({max_request} bytes)"
            )));
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(fatal("bulk string not terminated by CRLF"));
        }
        ranges.push((start, end));
        pos = end + 2;
    }
    Ok(Some((ranges, pos)))
}

/// A line of space-separated words, as typed into telnet. Double quotes group words
/// (no escapes); good enough for `PING` and `SET k v` by hand.
fn parse_inline(buf: &[u8]) -> Result<Option<Parsed>, ProtoError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(fatal("too big inline request"));
        }
        return Ok(None);
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < end {
        if buf[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if buf[i] == b'"' {
            let Some(close) = buf[i + 1..end].iter().position(|&b| b == b'"') else {
                return Err(ProtoError::Recoverable {
                    msg: "Protocol error: unbalanced quotes in request".into(),
                    skip: nl + 1,
                });
            };
            ranges.push((i + 1, i + 1 + close));
            i += close + 2;
            continue;
        }
        let start = i;
        while i < end && !buf[i].is_ascii_whitespace() {
            i += 1;
        }
        ranges.push((start, i));
    }
    Ok(Some((ranges, nl + 1)))
}

/// Which protocol a connection speaks: RESP2 until the client says `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The number clients use for it (`HELLO 2`, `proto:3`).
    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply value: what we send, and what the CLI and tests read.
///
/// The RESP3 types encode as RESP3 on a RESP3 connection and as their RESP2 forms on a
/// RESP2 one (the forms Redis uses): a map as a flat array of keys and values, a set or a
/// push as an array, a double or a verbatim string as a bulk string, a boolean as 1 or 0.
/// A nil (`Bulk(None)` or `Array(None)`) is `_` in RESP3.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Value>>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Double(f64),
    Boolean(bool),
    /// Out-of-band data (pub/sub messages, invalidations).
    Push(Vec<Value>),
    /// Text meant to be shown as is (INFO, CLIENT LIST); sent with the `txt` format.
    Verbatim(Bytes),
}

impl Value {
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }
    pub fn nil() -> Value {
        Value::Bulk(None)
    }
    pub fn bulk(b: impl Into<Bytes>) -> Value {
        Value::Bulk(Some(b.into()))
    }
    /// `msg` starting with an upper-case code (`CLUSTERDOWN ...`) is sent as is;
    /// anything else gets the generic `ERR` code.
    pub fn err(msg: impl Into<String>) -> Value {
        let msg = msg.into();
        let code = msg.split(' ').next().unwrap_or("");
        let has_code = code.len() >= 3 && code.bytes().all(|b| b.is_ascii_uppercase());
        Value::Error(if has_code { msg } else { format!("ERR {msg}") })
    }

    /// Encodes in RESP2.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(Protocol::Resp2, out)
    }

    pub fn encode_as(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Value::Simple(s) => {
                out.put_u8(b'+');
                put_line(out, s);
            }
            Value::Error(s) => {
                out.put_u8(b'-');
                put_line(out, s);
            }
            Value::Int(n) => put_header(out, b':', *n),
            Value::Bulk(None) | Value::Array(None) if resp3 => out.put_slice(b"_\r\n"),
            Value::Bulk(None) => out.put_slice(b"$-1\r\n"),
            Value::Bulk(Some(b)) => put_bulk(out, b'$', b),
            Value::Array(None) => out.put_slice(b"*-1\r\n"),
            Value::Array(Some(items)) => put_aggregate(out, b'*', items, proto),
            Value::Map(pairs) => {
                let (tag, len) = if resp3 {
                    (b'%', pairs.len())
                } else {
                    (b'*', 2 * pairs.len())
                };
                put_header(out, tag, len as i64);
                for (k, v) in pairs {
                    k.encode_as(proto, out);
                    v.encode_as(proto, out);
                }
            }
            Value::Set(items) => put_aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Value::Push(items) => put_aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Value::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    out.put_u8(b',');
                    put_line(out, &text);
                } else {
                    put_bulk(out, b'$', text.as_bytes());
                }
            }
            Value::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Value::Boolean(b) => put_header(out, b':', i64::from(*b)),
            Value::Verbatim(text) if resp3 => {
                put_header(out, b'=', text.len() as i64 + 4);
                out.put_slice(b"txt:");
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Value::Verbatim(text) => put_bulk(out, b'$', text),
        }
    }
}

/// A double as Redis writes it: `inf`, `-inf`, `nan`, else the shortest text that reads
/// back as the same number (Redis 7.0 prints 17 significant digits, 7.2 the shortest).
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{d}")
    }
}

/// `<tag><n>\r\n`: an integer, or the header of a string or an aggregate.
fn put_header(out: &mut BytesMut, tag: u8, n: i64) {
    out.put_u8(tag);
    out.put_slice(n.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, tag: u8, b: &[u8]) {
    put_header(out, tag, b.len() as i64);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn put_aggregate(out: &mut BytesMut, tag: u8, items: &[Value], proto: Protocol) {
    put_header(out, tag, items.len() as i64);
    for v in items {
        v.encode_as(proto, out);
    }
}

/// Simple strings and errors cannot hold line breaks: replace them.
fn put_line(out: &mut BytesMut, s: &str) {
    for b in s.bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// Encodes a command as a multibulk array (what clients send).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.put_u8(b'*');
    out.put_slice(args.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.put_u8(b'$');
        out.put_slice(a.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `buf`; `Ok(None)` if incomplete. Splits it off.
pub fn parse_reply(buf: &mut BytesMut) -> Result<Option<Value>, String> {
    match reply_at(buf, 0, 0)? {
        Some((v, used)) => {
            let _ = buf.split_to(used);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

/// `n` replies one after another from `pos`, and where they end.
fn replies_at(
    buf: &[u8],
    mut pos: usize,
    n: usize,
    depth: usize,
) -> Result<Option<(Vec<Value>, usize)>, String> {
    let mut items = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        match reply_at(buf, pos, depth + 1)? {
            Some((v, next)) => {
                items.push(v);
                pos = next;
            }
            None => return Ok(None),
        }
    }
    Ok(Some((items, pos)))
}

fn reply_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > 64 {
        return Err("reply nested too deeply".into());
    }
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..cr];
    let next = cr + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || parse_int(line).ok_or_else(|| format!("bad integer {:?}", text()));
    Ok(Some(match t {
        b'+' => (Value::Simple(text()), next),
        b'-' => (Value::Error(text()), next),
        b':' => (Value::Int(int()?), next),
        b'$' => {
            let n = int()?;
            if n < 0 {
                (Value::Bulk(None), next)
            } else {
                let end = next + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                (
                    Value::bulk(Bytes::copy_from_slice(&buf[next..end])),
                    end + 2,
                )
            }
        }
        b'*' | b'~' | b'>' => {
            let n = int()?;
            if n < 0 {
                (Value::Array(None), next)
            } else {
                let Some((items, p)) = replies_at(buf, next, n as usize, depth)? else {
                    return Ok(None);
                };
                let v = match t {
                    b'*' => Value::Array(Some(items)),
                    b'~' => Value::Set(items),
                    _ => Value::Push(items),
                };
                (v, p)
            }
        }
        b'%' => {
            let n = usize::try_from(int()?).map_err(|_| "bad map length".to_string())?;
            let Some((flat, p)) = replies_at(buf, next, 2 * n, depth)? else {
                return Ok(None);
            };
            let mut flat = flat.into_iter();
            let mut pairs = Vec::with_capacity(n);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            (Value::Map(pairs), p)
        }
        b'_' => (Value::Bulk(None), next),
        b'#' => match line {
            b"t" => (Value::Boolean(true), next),
            b"f" => (Value::Boolean(false), next),
            _ => return Err(format!("bad boolean {:?}", text())),
        },
        b',' => {
            let d = match line {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                b"nan" => f64::NAN,
                _ => text()
                    .parse()
                    .map_err(|_| format!("bad double {:?}", text()))?,
            };
            (Value::Double(d), next)
        }
        // A big number: kept as its digits.
        b'(' => (Value::Simple(text()), next),
        b'=' => {
            let n = usize::try_from(int()?).map_err(|_| "bad verbatim length".to_string())?;
            let end = next + n;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            // `txt:` or `mkd:` before the text.
            let body = buf.get(next + 4..end).ok_or("verbatim string too short")?;
            (Value::Verbatim(Bytes::copy_from_slice(body)), end + 2)
        }
        other => return Err(format!("unknown reply type {:?}", other as char)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> (Result<Option<Vec<Bytes>>, ProtoError>, usize) {
        let mut buf = BytesMut::from(input);
        let r = parse_command(&mut buf, 1 << 20);
        (r, buf.len())
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn multibulk_and_inline() {
        let (r, left) = parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n");
        assert_eq!(r, Ok(Some(args(&["GET", "k"]))));
        assert_eq!(left, 4);
        assert_eq!(parse(b"PING\r\n").0, Ok(Some(args(&["PING"]))));
        assert_eq!(
            parse(b"set  k \"a b\"\n").0,
            Ok(Some(args(&["set", "k", "a b"])))
        );
        assert_eq!(parse(b"*0\r\n").0, Ok(Some(vec![])));
        assert_eq!(parse(b"$0\r\n\r\n").0, Ok(Some(args(&["$0"]))));
        // Binary-safe values.
        assert_eq!(
            parse(b"*1\r\n$4\r\na\r\nb\r\n").0,
            Ok(Some(vec![Bytes::from_static(b"a\r\nb")]))
        );
    }

    #[test]
    fn incomplete_input_waits() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).0, Ok(None), "cut {cut}");
        }
        assert_eq!(parse(b"PIN").0, Ok(None));
    }

    #[test]
    fn malformed_input_is_an_error() {
        match parse(b"*x\r\nPING\r\n").0 {
            Err(ProtoError::Recoverable { skip, .. }) => assert_eq!(skip, 4),
            other => panic!("{other:?}"),
        }
        for bad in [
            &b"*1\r\n+3\r\nGET\r\n"[..],
            b"*1\r\n$-2\r\n",
            b"*1\r\n$3\r\nGETxx",
            b"*1\r\n$abc\r\n",
            b"*99999999999\r\n",
            b"*1\r\n$2000000\r\n",
        ] {
            assert!(matches!(parse(bad).0, Err(ProtoError::Fatal(_))), "{bad:?}");
        }
        // A header line that never ends is refused once it is implausibly long.
        assert!(matches!(parse(&[b'*'; 100]).0, Err(ProtoError::Fatal(_))));
        assert!(matches!(
            parse(&vec![b'a'; MAX_INLINE + 1]).0,
            Err(ProtoError::Fatal(_))
        ));
    }

    #[test]
    fn replies_round_trip() {
        let v = Value::Array(Some(vec![
            Value::ok(),
            Value::err("boom"),
            Value::Int(-3),
            Value::nil(),
            Value::bulk("x\r\ny"),
            Value::Array(None),
            Value::Array(Some(vec![])),
        ]));
        let mut out = BytesMut::new();
        v.encode(&mut out);
        let full = out.clone();
        assert_eq!(parse_reply(&mut out), Ok(Some(v)));
        assert!(out.is_empty());
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(parse_reply(&mut part), Ok(None));
        }
        assert_eq!(
            Value::err("CLUSTERDOWN no leader"),
            Value::Error("CLUSTERDOWN no leader".into())
        );
        assert_eq!(Value::err("busy"), Value::Error("ERR busy".into()));
    }

    #[test]
    fn resp3_types_and_their_resp2_forms() {
        let v = Value::Array(Some(vec![
            Value::Map(vec![(Value::bulk("k"), Value::Int(1))]),
            Value::Set(vec![Value::bulk("a")]),
            Value::nil(),
            Value::Array(None),
            Value::Double(1.5),
            Value::Double(f64::NEG_INFINITY),
            Value::Boolean(true),
            Value::Push(vec![Value::bulk("m")]),
            Value::Verbatim(Bytes::from_static(b"x:1")),
        ]));
        let enc = |p| {
            let mut out = BytesMut::new();
            v.encode_as(p, &mut out);
            String::from_utf8(out.to_vec()).unwrap()
        };
        assert_eq!(
            enc(Protocol::Resp3),
            "*9\r\n%1\r\n$1\r\nk\r\n:1\r\n~1\r\n$1\r\na\r\n_\r\n_\r\n,1.5\r\n,-inf\r\n\
             #t\r\n>1\r\n$1\r\nm\r\n=7\r\ntxt:x:1\r\n"
        );
        assert_eq!(
            enc(Protocol::Resp2),
            "*9\r\n*2\r\n$1\r\nk\r\n:1\r\n*1\r\n$1\r\na\r\n$-1\r\n*-1\r\n$3\r\n1.5\r\n\
             $4\r\n-inf\r\n:1\r\n*1\r\n$1\r\nm\r\n$3\r\nx:1\r\n"
        );
        // Our reply parser reads RESP3 back (nil arrays come back as nil bulks).
        let mut buf = BytesMut::from(enc(Protocol::Resp3).as_bytes());
        let Ok(Some(Value::Array(Some(items)))) = parse_reply(&mut buf) else {
            panic!("not an array")
        };
        assert_eq!(
            items[0],
            Value::Map(vec![(Value::bulk("k"), Value::Int(1))])
        );
        assert_eq!(items[3], Value::nil());
        assert_eq!(items[5], Value::Double(f64::NEG_INFINITY));
        assert_eq!(items[8], Value::Verbatim(Bytes::from_static(b"x:1")));
        let full = enc(Protocol::Resp3);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full.as_bytes()[..cut]);
            assert_eq!(parse_reply(&mut part), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn command_encoding_parses_back() {
        let mut out = BytesMut::new();
        encode_command(&["SET", "k", ""], &mut out);
        assert_eq!(
            parse_command(&mut out, 100),
            Ok(Some(args(&["SET", "k", ""])))
        );
    }
}
