//! `notify-keyspace-events`: which keyspace notifications this node publishes on the
//! Redis channels (`__keyspace@0__:<key>`, `__keyevent@0__:<event>`). Parsed and shown
//! exactly as Redis 7.0 does (`CONFIG SET`/`CONFIG GET` answer the same bytes).
//!
//! Off by default, as in Redis. It gates only the Redis channels: the events are
//! produced and kept either way, and `RAFTKV.WATCH` always sees every one of them.
//! Per node, as in Redis Cluster (each node has its own config): set it on the node your
//! subscribers use, or in every node's config file (`[events] notify_keyspace_events`).

use kv::{EventClass, KeyEvent};

const GENERIC: u32 = 1 << 2; // g
const STRING: u32 = 1 << 3; // $
const LIST: u32 = 1 << 4; // l
const SET: u32 = 1 << 5; // s
const HASH: u32 = 1 << 6; // h
const ZSET: u32 = 1 << 7; // z
const EXPIRED: u32 = 1 << 8; // x
const EVICTED: u32 = 1 << 9; // e
const STREAM: u32 = 1 << 10; // t
const KEY_MISS: u32 = 1 << 11; // m
const MODULE: u32 = 1 << 12; // d
const NEW: u32 = 1 << 13; // n
const KEYSPACE: u32 = 1 << 0; // K
const KEYEVENT: u32 = 1 << 1; // E
/// `A`: every class but `m` and `n`.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error Redis gives for a bad class character.
pub const BAD_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyFlags(pub u32);

impl NotifyFlags {
    /// Redis's `keyspaceEventsStringToFlags`.
    pub fn parse(s: &[u8]) -> Option<NotifyFlags> {
        let mut f = 0;
        for c in s {
            f |= match c {
                b'A' => ALL,
                b'g' => GENERIC,
                b'$' => STRING,
                b'l' => LIST,
                b's' => SET,
                b'h' => HASH,
                b'z' => ZSET,
                b'x' => EXPIRED,
                b'e' => EVICTED,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b't' => STREAM,
                b'm' => KEY_MISS,
                b'd' => MODULE,
                b'n' => NEW,
                _ => return None,
            };
        }
        Some(NotifyFlags(f))
    }

    /// Redis 7.0's `keyspaceEventsFlagsToString` (which shows `n` only without `A`).
    pub fn show(self) -> String {
        let f = self.0;
        let mut s = String::new();
        if f & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if f & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if f & bit != 0 {
                s.push(c);
            }
        }
        s
    }

    /// Whether `kind` is published on the keyspace channel, and on the keyevent one.
    pub fn publishes(self, kind: KeyEvent) -> (bool, bool) {
        let class = match kind.class() {
            EventClass::Generic => GENERIC,
            EventClass::String => STRING,
            EventClass::Hash => HASH,
            EventClass::Expired => EXPIRED,
        };
        if self.0 & class == 0 {
            return (false, false);
        }
        (self.0 & KEYSPACE != 0, self.0 & KEYEVENT != 0)
    }

    /// Whether any keyspace notification is published at all.
    pub fn any(self) -> bool {
        self.0 & (KEYSPACE | KEYEVENT) != 0 && self.0 & !(KEYSPACE | KEYEVENT) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> String {
        NotifyFlags::parse(s.as_bytes()).expect("valid").show()
    }

    #[test]
    fn parsed_and_shown_as_redis_7_0_shows_them() {
        // Each pair read off redis-server 7.0.15 (CONFIG SET, then CONFIG GET).
        assert_eq!(shown(""), "");
        assert_eq!(shown("KEA"), "AKE");
        assert_eq!(shown("Kg$x"), "g$xK");
        assert_eq!(shown("Eh"), "hE");
        assert_eq!(shown("AKEn"), "AKE");
        assert_eq!(shown("gA"), "A");
        assert!(NotifyFlags::parse(b"Q").is_none());
    }

    #[test]
    fn classes_and_channels_gate_each_event() {
        let f = NotifyFlags::parse(b"Kx").unwrap();
        assert_eq!(f.publishes(KeyEvent::Expired), (true, false));
        assert_eq!(f.publishes(KeyEvent::Set), (false, false));
        let f = NotifyFlags::parse(b"E$h").unwrap();
        assert_eq!(f.publishes(KeyEvent::HSet), (false, true));
        assert_eq!(f.publishes(KeyEvent::Del), (false, false));
        assert!(f.any());
        assert!(!NotifyFlags::parse(b"KE").unwrap().any());
        assert!(!NotifyFlags::parse(b"A").unwrap().any());
    }
}
