//! How a command orders against its neighbours in a pipeline (see `conn.rs`).

use bytes::Bytes;

use super::typed::{self, Parsed};
use super::upper;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Touches no data (PING, ECHO, COMMAND...): runs alongside anything.
    Free,
    /// Reads only (GET, MGET, EXISTS, HGET, TTL, ...).
    Read,
    /// Writes that are one request each, to these keys (SET in all its forms, DEL, MSET,
    /// INCR, HSET, CAS, ...).
    Write(Vec<Bytes>),
    /// Everything else: runs alone, after everything before it finished.
    Barrier,
}

pub fn classify(args: &[Bytes]) -> Class {
    let Some(name) = args.first() else {
        return Class::Free;
    };
    let sub = || args.get(1).map(|s| upper(s)).unwrap_or_default();
    match upper(name).as_str() {
        // They change the connection's state: what runs after them must see the change
        // (a reply after HELLO 3 is encoded in RESP3).
        // AUTH changes who runs what follows; ACL SETUSER/DELUSER what they may run.
        "HELLO" | "READONLY" | "READWRITE" | "AUTH" => Class::Barrier,
        "ACL" if matches!(sub().as_str(), "SETUSER" | "DELUSER") => Class::Barrier,
        "ACL" => Class::Free,
        "CLIENT" if matches!(sub().as_str(), "SETNAME" | "SETINFO") => Class::Barrier,
        "PING" | "ECHO" | "COMMAND" | "CLIENT" | "CONFIG" | "SELECT" => Class::Free,
        "CAS" if args.len() >= 2 => Class::Write(vec![args[1].clone()]),
        // One log entry that touches no key: pipelined publishes are in flight together
        // (and reach the log in the order sent on the leader; through a follower a lost
        // forward is resent after the others, see `conn.rs`).
        "PUBLISH" => Class::Write(Vec::new()),
        // FLUSHALL touches every key; MULTI and friends change the connection's state.
        "FLUSHALL" | "FLUSHDB" => Class::Barrier,
        name => match typed::parse(name, &args[1..], 0) {
            Some(Ok(Parsed::Read(_))) => Class::Read,
            Some(Ok(p @ Parsed::Write(_))) => Class::Write(typed::keys_of(&p)),
            // Refused before reaching the node: it touches nothing.
            Some(Err(_)) => Class::Free,
            None => Class::Barrier,
        },
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
        assert_eq!(
            classify(&args(&["set", "k", "v", "xx", "px", "10"])),
            Class::Write(args(&["k"]))
        );
        assert_eq!(classify(&args(&["hgetall", "h"])), Class::Read);
        assert_eq!(
            classify(&args(&["rename", "a", "b"])),
            Class::Write(args(&["a", "b"]))
        );
        assert_eq!(classify(&args(&["multi"])), Class::Barrier);
        assert_eq!(classify(&args(&["flushall"])), Class::Barrier);
        assert_eq!(
            classify(&args(&["mset", "a", "1", "b", "2"])),
            Class::Write(args(&["a", "b"]))
        );
        assert_eq!(classify(&args(&["incr", "k"])), Class::Write(args(&["k"])));
        assert_eq!(classify(&args(&["quit"])), Class::Barrier);
        assert_eq!(classify(&args(&["hello", "3"])), Class::Barrier);
        assert_eq!(classify(&args(&["client", "setname", "x"])), Class::Barrier);
        assert_eq!(classify(&args(&["client", "id"])), Class::Free);
        assert_eq!(
            classify(&args(&["publish", "c", "m"])),
            Class::Write(vec![])
        );
        assert_eq!(classify(&args(&["subscribe", "c"])), Class::Barrier);
    }
}
