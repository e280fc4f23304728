//! The users in a snapshot (format 3, after the sessions; `acl.rs` says what a user is).
//!
//! ```text
//! acl       1 byte: 0 never set (each node uses its bootstrap), 1 set; if set:
//!           user count, then per user (names strictly ascending, `default` among them):
//!             name, incarnation,
//!             flags: 1 byte, bit 0 on, 1 nopass, 2 all keys, 3 all channels,
//!                    4 +@all start, 5 sanitize-payload, 6 skip-sanitize-payload
//!             password count, then 32 bytes each (SHA-256; no duplicates)
//!             key pattern count, then per pattern: 1 byte (bit 0 read, bit 1 write;
//!                    not 0), pattern (no duplicates; none with all keys)
//!             channel count, then per channel: pattern (no duplicates; none with all
//!                    channels)
//!             command rule count, then per rule: 1 byte (bit 0 allow, bit 1 category),
//!                    name (a category is one of Redis's; each target once)
//! ```
//!
//! The encoding is structural, not the rules that built the user, so a restored user is
//! exactly the one saved (rules can reach one state by several paths).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::acl::{
    Acl, CommandRule, KeyPattern, Target, User, CATEGORIES, DEFAULT_USER, MAX_COMMAND_RULES,
    MAX_PASSWORDS, MAX_PATTERNS, MAX_USERS,
};
use crate::snapshot::{error, put_field, Reader, SnapshotError, SnapshotErrorKind};
use crate::varint::put as put_varint;

const ON: u8 = 1;
const NOPASS: u8 = 2;
const ALL_KEYS: u8 = 4;
const ALL_CHANNELS: u8 = 8;
const ALL_COMMANDS: u8 = 16;
const SANITIZE: u8 = 32;
const SKIP_SANITIZE: u8 = 64;

const READ: u8 = 1;
const WRITE: u8 = 2;
const ALLOW: u8 = 1;
const CATEGORY: u8 = 2;

/// Name, incarnation, flags and four counts: the smallest user.
const MIN_USER_LEN: usize = 8;

pub(crate) fn write(buf: &mut Vec<u8>, acl: &Acl) {
    let Some(users) = acl.users() else {
        buf.push(0);
        return;
    };
    buf.push(1);
    put_varint(buf, users.len() as u64);
    for (name, u) in users {
        put_field(buf, name);
        put_varint(buf, u.incarnation);
        let mut flags = 0;
        for (on, bit) in [
            (u.enabled, ON),
            (u.nopass, NOPASS),
            (u.all_keys, ALL_KEYS),
            (u.all_channels, ALL_CHANNELS),
            (u.all_commands, ALL_COMMANDS),
            (u.sanitize_payload == Some(true), SANITIZE),
            (u.sanitize_payload == Some(false), SKIP_SANITIZE),
        ] {
            if on {
                flags |= bit;
            }
        }
        buf.push(flags);
        put_varint(buf, u.passwords.len() as u64);
        for p in &u.passwords {
            buf.extend_from_slice(p);
        }
        put_varint(buf, u.key_patterns.len() as u64);
        for k in &u.key_patterns {
            buf.push(if k.read { READ } else { 0 } | if k.write { WRITE } else { 0 });
            put_field(buf, &k.pattern);
        }
        put_varint(buf, u.channels.len() as u64);
        for c in &u.channels {
            put_field(buf, c);
        }
        put_varint(buf, u.command_rules.len() as u64);
        for r in &u.command_rules {
            let (kind, name) = match &r.target {
                Target::Category(c) => (CATEGORY, c),
                Target::Command(c) => (0, c),
            };
            buf.push(kind | if r.allow { ALLOW } else { 0 });
            put_field(buf, name.as_bytes());
        }
    }
}

fn bad(at: usize, what: &'static str) -> SnapshotError {
    error(at, SnapshotErrorKind::BadUser(what))
}

pub(crate) fn read(r: &mut Reader) -> Result<Acl, SnapshotError> {
    let at = r.pos;
    match r.byte("users flag")? {
        0 => return Ok(Acl::default()),
        1 => {}
        _ => return Err(bad(at, "users flag is neither 0 nor 1")),
    }
    let at = r.pos;
    let count = r.count("user count", MIN_USER_LEN)?;
    if count > MAX_USERS {
        return Err(bad(at, "more users than the limit"));
    }
    let mut users = BTreeMap::new();
    let mut previous: Option<Bytes> = None;
    for _ in 0..count {
        let at = r.pos;
        let name = Bytes::copy_from_slice(r.field("user name")?);
        if previous.as_ref().is_some_and(|p| name <= *p) {
            return Err(bad(at, "user names out of order"));
        }
        let user = read_user(r)?;
        if &name[..] == DEFAULT_USER && user.incarnation != 0 {
            return Err(bad(at, "the default user's incarnation is not 0"));
        }
        previous = Some(name.clone());
        users.insert(name, user);
    }
    if !users.contains_key(DEFAULT_USER) {
        return Err(bad(at, "no default user"));
    }
    Ok(Acl::restored(Some(users)))
}

fn read_user(r: &mut Reader) -> Result<User, SnapshotError> {
    let incarnation = r.varint("user incarnation")?;
    let at = r.pos;
    let flags = r.byte("user flags")?;
    if flags & SANITIZE != 0 && flags & SKIP_SANITIZE != 0 || flags >= 128 {
        return Err(bad(at, "unknown or contradictory flags"));
    }
    let mut u = User {
        incarnation,
        enabled: flags & ON != 0,
        nopass: flags & NOPASS != 0,
        sanitize_payload: match (flags & SANITIZE != 0, flags & SKIP_SANITIZE != 0) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        all_keys: flags & ALL_KEYS != 0,
        all_channels: flags & ALL_CHANNELS != 0,
        all_commands: flags & ALL_COMMANDS != 0,
        ..User::new(incarnation)
    };
    let at = r.pos;
    let n = r.count("password count", 32)?;
    if n > MAX_PASSWORDS || (n > 0 && u.nopass) {
        return Err(bad(at, "too many passwords, or passwords with nopass"));
    }
    for _ in 0..n {
        let at = r.pos;
        let mut h = [0u8; 32];
        h.copy_from_slice(r.bytes(32, "password hash")?);
        if u.passwords.contains(&h) {
            return Err(bad(at, "a password twice"));
        }
        u.passwords.push(h);
    }
    let at = r.pos;
    let n = r.count("key pattern count", 2)?;
    if n > MAX_PATTERNS || (n > 0 && u.all_keys) {
        return Err(bad(at, "too many key patterns, or patterns with all keys"));
    }
    for _ in 0..n {
        let at = r.pos;
        let perms = r.byte("key pattern permissions")?;
        let pattern = Bytes::copy_from_slice(r.field("key pattern")?);
        if perms == 0
            || perms > (READ | WRITE)
            || u.key_patterns.iter().any(|k| k.pattern == pattern)
        {
            return Err(bad(at, "bad or repeated key pattern"));
        }
        u.key_patterns.push(KeyPattern {
            read: perms & READ != 0,
            write: perms & WRITE != 0,
            pattern,
        });
    }
    let at = r.pos;
    let n = r.count("channel count", 1)?;
    if n > MAX_PATTERNS || (n > 0 && u.all_channels) {
        return Err(bad(at, "too many channels, or channels with all channels"));
    }
    for _ in 0..n {
        let at = r.pos;
        let c = Bytes::copy_from_slice(r.field("channel")?);
        if u.channels.contains(&c) {
            return Err(bad(at, "a channel twice"));
        }
        u.channels.push(c);
    }
    let at = r.pos;
    let n = r.count("command rule count", 2)?;
    if n > MAX_COMMAND_RULES {
        return Err(bad(at, "too many command rules"));
    }
    for _ in 0..n {
        let at = r.pos;
        let kind = r.byte("command rule kind")?;
        let name = std::str::from_utf8(r.field("command rule")?)
            .map_err(|_| bad(at, "a command rule that is not UTF-8"))?
            .to_string();
        let target = match kind & CATEGORY {
            0 if !name.is_empty() => Target::Command(name),
            CATEGORY if CATEGORIES.contains(&name.as_str()) => Target::Category(name),
            _ => return Err(bad(at, "an unknown category or an empty command")),
        };
        if kind > (ALLOW | CATEGORY) || u.command_rules.iter().any(|c| c.target == target) {
            return Err(bad(at, "a bad or repeated command rule"));
        }
        u.command_rules.push(CommandRule {
            allow: kind & ALLOW != 0,
            target,
        });
    }
    Ok(u)
}
