//! How a command orders against its neighbours in a pipeline (see `conn.rs`).

use bytes::Bytes;

use super::upper;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Touches no data (PING, ECHO, COMMAND...): runs alongside anything.
    Free,
    /// Reads only (GET, MGET, EXISTS).
    Read,
    /// Writes with one request per key, no read first (SET, SET NX, DEL, MSET, CAS).
    Write(Vec<Bytes>),
    /// Everything else: runs alone, after everything before it finished.
    Barrier,
}

pub fn classify(args: &[Bytes]) -> Class {
    let Some(name) = args.first() else {
        return Class::Free;
    };
    match upper(name).as_str() {
        "PING" | "ECHO" | "COMMAND" | "CLIENT" | "CONFIG" | "SELECT" => Class::Free,
        "GET" | "MGET" | "EXISTS" => Class::Read,
        "SET" if args.len() == 3 => Class::Write(vec![args[1].clone()]),
        "SET" if args.len() == 4 && upper(&args[3]) == "NX" => Class::Write(vec![args[1].clone()]),
        "SETNX" | "CAS" if args.len() >= 2 => Class::Write(vec![args[1].clone()]),
        "DEL" => Class::Write(args[1..].to_vec()),
        "MSET" => Class::Write(args[1..].iter().step_by(2).cloned().collect()),
        _ => Class::Barrier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&args(&["ping"])), Class::Free);
        assert_eq!(classify(&args(&["get", "k"])), Class::Read);
        assert_eq!(
            classify(&args(&["set", "k", "v"])),
            Class::Write(args(&["k"]))
        );
        assert_eq!(classify(&args(&["set", "k", "v", "xx"])), Class::Barrier);
        assert_eq!(
            classify(&args(&["mset", "a", "1", "b", "2"])),
            Class::Write(args(&["a", "b"]))
        );
        assert_eq!(classify(&args(&["incr", "k"])), Class::Barrier);
        assert_eq!(classify(&args(&["quit"])), Class::Barrier);
    }
}
