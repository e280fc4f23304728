//! Users and their permissions, in Redis's ACL model, as part of the replicated state:
//! `ACL SETUSER` and `ACL DELUSER` are log entries ([`crate::Command::Acl`]), applied here
//! on every replica, and the users are in the snapshot — so a change made through one
//! node holds on all of them, and survives restarts.
//!
//! What is kept per user is what Redis keeps: on/off, `nopass`, the payload-sanitizing
//! flag, SHA-256 password hashes (never a password: the RESP layer hashes `>password`
//! into `#hash` before anything is proposed, so the log and snapshots hold hashes only),
//! key patterns (`~pattern`, `%R~`/`%W~`, `allkeys`), channel patterns (`&pattern`,
//! `allchannels`), and the command rules. Command rules are kept as Redis 7.2 keeps them:
//! a starting point (`+@all` or `-@all`) and the `+`/`-` rules after it, in the order
//! given, each command or category once (a later rule for the same name replaces the
//! earlier). The state machine does not know the command table: commands are names to it,
//! checked by the RESP layer (which also decides what a rule allows, `resp/acl/`).
//!
//! Until the first ACL entry applies, the users are not initialized: each node then uses
//! its own configured bootstrap (`requirepass`). Every ACL entry carries the proposer's
//! bootstrap rules for the `default` user, applied when the entry initializes the users,
//! so the first change never opens a cluster whose nodes required a password.
//!
//! Everything here is deterministic and never panics on bad input: a rule that does not
//! parse is an error reply, and the user is left as it was (rules apply all or nothing).

use std::collections::BTreeMap;

use bytes::Bytes;

/// Redis 7's command categories (`+@name`), in Redis's order (`ACL CAT`).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The user every connection starts as.
pub const DEFAULT_USER: &[u8] = b"default";

/// A password's SHA-256, as Redis stores it (shown as 64 lowercase hex digits).
pub type PasswordHash = [u8; 32];

/// Bounds on one user (a user is replicated, kept in memory on every node and checked on
/// every command: none of it may grow without limit).
pub const MAX_PASSWORDS: usize = 64;
pub const MAX_PATTERNS: usize = 1024;
pub const MAX_COMMAND_RULES: usize = 1024;
/// Users at most.
pub const MAX_USERS: usize = 10_000;
/// Longest user name, pattern or command rule.
pub const MAX_NAME_BYTES: usize = 512;

/// A key pattern and what it allows on matching keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub read: bool,
    pub write: bool,
    pub pattern: Bytes,
}

/// What a command rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `@category` (lower case, one of [`CATEGORIES`]).
    Category(String),
    /// A command, `container|sub`, or `command|first-arg` (lower case).
    Command(String),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Target::Category(c) => format!("@{c}"),
            Target::Command(c) => c.clone(),
        }
    }
}

/// `+target` (allow) or `-target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRule {
    pub allow: bool,
    pub target: Target,
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The store's entry counter when the user was created (0 for `default`): a user
    /// deleted and created again is another user, whose old connections must not carry on.
    pub incarnation: u64,
    pub enabled: bool,
    pub nopass: bool,
    /// `Some(true)`: `sanitize-payload`; `Some(false)`: `skip-sanitize-payload`.
    pub sanitize_payload: Option<bool>,
    /// In the order added, no duplicates.
    pub passwords: Vec<PasswordHash>,
    pub all_keys: bool,
    pub key_patterns: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Bytes>,
    /// The starting point: `+@all` (true) or `-@all`.
    pub all_commands: bool,
    /// Applied in order after the starting point; each target at most once.
    pub command_rules: Vec<CommandRule>,
}

/// Why a rule was refused; `text` is Redis's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclError {
    Syntax,
    UnknownName,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
    /// raftkv's: `(selectors)` are not kept.
    Selectors,
    /// raftkv's: a bound above is reached.
    TooMany,
    /// raftkv's: a `>password`/`<password` reached the state machine (the RESP layer
    /// hashes them first; the log must never hold a password).
    Plaintext,
}

impl AclError {
    pub fn text(self) -> &'static str {
        match self {
            AclError::Syntax => "Syntax error",
            AclError::UnknownName => "Unknown command or category name in ACL",
            AclError::KeyAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid \
                 and does not have any effect. Try 'resetkeys' to start with an empty list of \
                 patterns"
            }
            AclError::ChannelAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid \
                 and does not have any effect. Try 'resetchannels' to start with an empty list \
                 of channels"
            }
            AclError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            AclError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase \
                 hexadecimal characters"
            }
            AclError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
            AclError::Selectors => "ACL selectors are not supported by raftkv",
            AclError::TooMany => {
                "too many passwords, patterns or rules for one user (raftkv's limit)"
            }
            AclError::Plaintext => "Wrong format",
        }
    }
}

/// Redis's error reply for a refused `ACL SETUSER` rule, `modifier` as the client sent it.
pub fn setuser_error(modifier: &[u8], e: AclError) -> String {
    format!(
        "ERR Error in ACL SETUSER modifier '{}': {}",
        String::from_utf8_lossy(modifier),
        e.text()
    )
}

/// One parsed rule (an `ACL SETUSER` argument).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    On,
    Off,
    NoPass,
    ResetPass,
    SanitizePayload,
    SkipSanitizePayload,
    AddHash(PasswordHash),
    RemoveHash(PasswordHash),
    AllKeys,
    ResetKeys,
    Keys(KeyPattern),
    AllChannels,
    ResetChannels,
    Channel(Bytes),
    AllCommands,
    NoCommands,
    Command(CommandRule),
    ClearSelectors,
    Reset,
}

impl Rule {
    /// Parses one rule as Redis does (keywords in any case). `>password` and
    /// `<password` are refused here: the caller hashes them into `#`/`!` rules first.
    /// Command names are not checked against any table (see the module docs).
    pub fn parse(op: &[u8]) -> Result<Rule, AclError> {
        let lower = op.to_ascii_lowercase();
        let keyword = match &lower[..] {
            b"on" => Some(Rule::On),
            b"off" => Some(Rule::Off),
            b"nopass" => Some(Rule::NoPass),
            b"resetpass" => Some(Rule::ResetPass),
            b"sanitize-payload" => Some(Rule::SanitizePayload),
            b"skip-sanitize-payload" => Some(Rule::SkipSanitizePayload),
            b"allkeys" | b"~*" => Some(Rule::AllKeys),
            b"resetkeys" => Some(Rule::ResetKeys),
            b"allchannels" | b"&*" => Some(Rule::AllChannels),
            b"resetchannels" => Some(Rule::ResetChannels),
            b"allcommands" | b"+@all" => Some(Rule::AllCommands),
            b"nocommands" | b"-@all" => Some(Rule::NoCommands),
            b"clearselectors" => Some(Rule::ClearSelectors),
            b"reset" => Some(Rule::Reset),
            _ => None,
        };
        if let Some(rule) = keyword {
            return Ok(rule);
        }
        if op.len() > MAX_NAME_BYTES + 4 {
            return Err(AclError::TooMany);
        }
        let (&first, rest) = op.split_first().ok_or(AclError::Syntax)?;
        match first {
            b'>' | b'<' => Err(AclError::Plaintext),
            b'#' => Ok(Rule::AddHash(parse_hash(rest)?)),
            b'!' => Ok(Rule::RemoveHash(parse_hash(rest)?)),
            b'~' => Ok(Rule::Keys(KeyPattern {
                read: true,
                write: true,
                pattern: pattern(rest)?,
            })),
            b'%' => key_permission_pattern(rest),
            b'&' => Ok(Rule::Channel(pattern(rest)?)),
            b'(' if op.ends_with(b")") => Err(AclError::Selectors),
            b'+' | b'-' => {
                let allow = first == b'+';
                let target = match rest.strip_prefix(b"@") {
                    Some(cat) => {
                        let cat = String::from_utf8_lossy(cat).to_ascii_lowercase();
                        if !CATEGORIES.contains(&cat.as_str()) {
                            return Err(AclError::UnknownName);
                        }
                        Target::Category(cat)
                    }
                    None if rest.is_empty() => return Err(AclError::UnknownName),
                    None => Target::Command(String::from_utf8_lossy(rest).to_ascii_lowercase()),
                };
                Ok(Rule::Command(CommandRule { allow, target }))
            }
            _ => Err(AclError::Syntax),
        }
    }
}

/// `%R~`, `%W~`, `%RW~` patterns (each letter at most once, any case). A `%` with no
/// `~` is an empty pattern, as in Redis.
fn key_permission_pattern(rest: &[u8]) -> Result<Rule, AclError> {
    let (mut read, mut write) = (false, false);
    let mut i = 0;
    let mut pattern_at = rest.len();
    while i < rest.len() {
        match rest[i].to_ascii_uppercase() {
            b'R' if !read => read = true,
            b'W' if !write => write = true,
            b'~' => {
                pattern_at = i + 1;
                break;
            }
            _ => return Err(AclError::Syntax),
        }
        i += 1;
    }
    if !read && !write {
        return Err(AclError::Syntax);
    }
    Ok(Rule::Keys(KeyPattern {
        read,
        write,
        pattern: pattern(&rest[pattern_at..])?,
    }))
}

/// A key or channel pattern: no spaces or NULs (Redis's rule, so `ACL LIST` lines split
/// unambiguously).
fn pattern(p: &[u8]) -> Result<Bytes, AclError> {
    if has_spaces(p) {
        return Err(AclError::Syntax);
    }
    Ok(Bytes::copy_from_slice(p))
}

/// Whether `s` holds a space (C's `isspace`) or a NUL: not allowed in user names and
/// patterns.
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || c == b' ' || (b'\t'..=b'\r').contains(&c))
}

/// 64 lowercase hex digits.
fn parse_hash(hex: &[u8]) -> Result<PasswordHash, AclError> {
    if hex.len() != 64 {
        return Err(AclError::BadHash);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(AclError::BadHash),
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// A hash as Redis shows it: 64 lowercase hex digits.
pub fn hash_hex(h: &PasswordHash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

impl User {
    /// A user as `ACL SETUSER` creates it: off, no passwords, no keys, no channels
    /// (Redis 7.0's `acl-pubsub-default resetchannels`), no commands.
    pub fn new(incarnation: u64) -> User {
        User {
            incarnation,
            enabled: false,
            nopass: false,
            sanitize_payload: None,
            passwords: Vec::new(),
            all_keys: false,
            key_patterns: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            all_commands: false,
            command_rules: Vec::new(),
        }
    }

    /// Redis's `default` user: `on nopass ~* &* +@all`.
    pub fn redis_default() -> User {
        User {
            enabled: true,
            nopass: true,
            all_keys: true,
            all_channels: true,
            all_commands: true,
            ..User::new(0)
        }
    }

    /// Applies one rule (Redis's `ACLSetUser`).
    pub fn apply(&mut self, rule: &Rule) -> Result<(), AclError> {
        match rule {
            Rule::On => self.enabled = true,
            Rule::Off => self.enabled = false,
            Rule::SanitizePayload => self.sanitize_payload = Some(true),
            Rule::SkipSanitizePayload => self.sanitize_payload = Some(false),
            Rule::NoPass => {
                self.nopass = true;
                self.passwords.clear();
            }
            Rule::ResetPass => {
                self.nopass = false;
                self.passwords.clear();
            }
            Rule::AddHash(h) => {
                if !self.passwords.contains(h) {
                    if self.passwords.len() >= MAX_PASSWORDS {
                        return Err(AclError::TooMany);
                    }
                    self.passwords.push(*h);
                }
                self.nopass = false;
            }
            Rule::RemoveHash(h) => {
                let Some(i) = self.passwords.iter().position(|p| p == h) else {
                    return Err(AclError::NoSuchPassword);
                };
                self.passwords.remove(i);
            }
            Rule::AllKeys => {
                self.all_keys = true;
                self.key_patterns.clear();
            }
            Rule::ResetKeys => {
                self.all_keys = false;
                self.key_patterns.clear();
            }
            Rule::Keys(p) => {
                if self.all_keys {
                    return Err(AclError::KeyAfterAll);
                }
                let full = self.key_patterns.len() >= MAX_PATTERNS;
                match self
                    .key_patterns
                    .iter_mut()
                    .find(|k| k.pattern == p.pattern)
                {
                    Some(k) => {
                        k.read |= p.read;
                        k.write |= p.write;
                    }
                    None if full => return Err(AclError::TooMany),
                    None => self.key_patterns.push(p.clone()),
                }
            }
            Rule::AllChannels => {
                self.all_channels = true;
                self.channels.clear();
            }
            Rule::ResetChannels => {
                self.all_channels = false;
                self.channels.clear();
            }
            Rule::Channel(c) => {
                if self.all_channels {
                    return Err(AclError::ChannelAfterAll);
                }
                if !self.channels.contains(c) {
                    if self.channels.len() >= MAX_PATTERNS {
                        return Err(AclError::TooMany);
                    }
                    self.channels.push(c.clone());
                }
            }
            Rule::AllCommands | Rule::NoCommands => {
                self.all_commands = matches!(rule, Rule::AllCommands);
                self.command_rules.clear();
            }
            Rule::Command(r) => {
                self.command_rules.retain(|old| old.target != r.target);
                if self.command_rules.len() >= MAX_COMMAND_RULES {
                    return Err(AclError::TooMany);
                }
                self.command_rules.push(r.clone());
            }
            Rule::ClearSelectors => {} // there are none
            Rule::Reset => {
                for r in [
                    Rule::ResetPass,
                    Rule::ResetKeys,
                    Rule::ResetChannels,
                    Rule::Off,
                    Rule::SanitizePayload,
                    Rule::NoCommands,
                ] {
                    self.apply(&r)?;
                }
            }
        }
        Ok(())
    }

    /// Applies every rule, or none: on an error, the index of the rule refused.
    pub fn apply_all(&mut self, rules: &[Bytes]) -> Result<(), (usize, AclError)> {
        let mut next = self.clone();
        for (i, op) in rules.iter().enumerate() {
            if op.is_empty() {
                continue; // Redis: an empty rule does nothing
            }
            let rule = Rule::parse(op).map_err(|e| (i, e))?;
            next.apply(&rule).map_err(|e| (i, e))?;
        }
        *self = next;
        Ok(())
    }

    /// `ACL GETUSER`'s `flags`, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize_payload {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// `ACL GETUSER`'s `keys`: `~*`, or the patterns separated by spaces.
    pub fn keys_text(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let pats: Vec<String> = self
            .key_patterns
            .iter()
            .map(|k| {
                let prefix = match (k.read, k.write) {
                    (true, false) => "%R~",
                    (false, true) => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&k.pattern))
            })
            .collect();
        pats.join(" ")
    }

    /// `ACL GETUSER`'s `channels`: `&*`, or the patterns separated by spaces.
    pub fn channels_text(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let pats: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        pats.join(" ")
    }

    /// `ACL GETUSER`'s `commands`: the starting point, then the rules.
    pub fn commands_text(&self) -> String {
        let mut out = String::from(if self.all_commands { "+@all" } else { "-@all" });
        for r in &self.command_rules {
            out.push(' ');
            out.push(if r.allow { '+' } else { '-' });
            out.push_str(&r.target.text());
        }
        out
    }

    /// The user as `ACL LIST` describes it (after `user <name> `).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        parts.extend(self.passwords.iter().map(|h| format!("#{}", hash_hex(h))));
        let keys = self.keys_text();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if self.all_channels {
            parts.push("&*".into());
        } else {
            parts.push("resetchannels".into());
            let channels = self.channels_text();
            if !channels.is_empty() {
                parts.push(channels);
            }
        }
        parts.push(self.commands_text());
        parts.join(" ")
    }
}

/// The users of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    /// `None` until the first ACL entry applies (see the module docs).
    users: Option<BTreeMap<Bytes, User>>,
}

/// What an ACL entry does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclOp {
    /// `ACL SETUSER name rules...`: creates the user if new, then applies every rule, or
    /// none.
    SetUser { name: Bytes, rules: Vec<Bytes> },
    /// `ACL DELUSER names...`: answers how many existed.
    DelUser { names: Vec<Bytes> },
    /// Only initializes the users (from the entry's bootstrap), if they are not yet.
    Init,
}

impl Acl {
    /// The users, or `None` before the first ACL entry (each node then uses its own
    /// bootstrap: [`Acl::bootstrap_users`]).
    pub fn users(&self) -> Option<&BTreeMap<Bytes, User>> {
        self.users.as_ref()
    }

    /// The users before any ACL entry: Redis's `default`, with `bootstrap` (a node's
    /// configured rules for it, e.g. `resetpass #hash`) applied.
    pub fn bootstrap_users(
        bootstrap: &[Bytes],
    ) -> Result<BTreeMap<Bytes, User>, (usize, AclError)> {
        let mut default = User::redis_default();
        default.apply_all(bootstrap)?;
        Ok(BTreeMap::from([(
            Bytes::from_static(DEFAULT_USER),
            default,
        )]))
    }

    /// Applies one ACL entry. `incarnation` identifies users it creates (the store's
    /// entry counter). The error is the reply.
    pub fn apply(
        &mut self,
        op: AclOp,
        bootstrap: &[Bytes],
        incarnation: u64,
    ) -> Result<i64, String> {
        let mut users = match self.users.take() {
            Some(u) => u,
            // A bootstrap that does not parse was never proposed by a node of ours: the
            // users start as Redis's, which protected mode keeps on loopback.
            None => Acl::bootstrap_users(bootstrap).unwrap_or_else(|_| {
                BTreeMap::from([(Bytes::from_static(DEFAULT_USER), User::redis_default())])
            }),
        };
        let result = match op {
            AclOp::Init => Ok(0),
            AclOp::SetUser { name, rules } => set_user(&mut users, name, &rules, incarnation),
            AclOp::DelUser { names } => {
                if names.iter().any(|n| &n[..] == DEFAULT_USER) {
                    Err("ERR The 'default' user cannot be removed".to_string())
                } else {
                    Ok(names.iter().filter(|n| users.remove(*n).is_some()).count() as i64)
                }
            }
        };
        self.users = Some(users);
        result
    }

    /// A store restored from a snapshot.
    pub(crate) fn restored(users: Option<BTreeMap<Bytes, User>>) -> Acl {
        Acl { users }
    }
}

fn set_user(
    users: &mut BTreeMap<Bytes, User>,
    name: Bytes,
    rules: &[Bytes],
    incarnation: u64,
) -> Result<i64, String> {
    if has_spaces(&name) {
        return Err("ERR Usernames can't contain spaces or null characters".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("ERR user name too long (raftkv's limit is 512 bytes)".into());
    }
    let exists = users.contains_key(&name);
    if !exists && users.len() >= MAX_USERS {
        return Err(format!(
            "ERR too many users (raftkv's limit is {MAX_USERS})"
        ));
    }
    let mut user = users
        .get(&name)
        .cloned()
        .unwrap_or_else(|| User::new(incarnation));
    user.apply_all(rules)
        .map_err(|(i, e)| setuser_error(&rules[i], e))?;
    users.insert(name, user);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &str) -> Vec<Bytes> {
        s.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn user(s: &str) -> User {
        let mut u = User::new(1);
        u.apply_all(&rules(s)).expect("rules apply");
        u
    }

    const HASH: &str = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";

    #[test]
    fn descriptions_are_redis_s() {
        assert_eq!(User::redis_default().describe(), "on nopass ~* &* +@all");
        assert_eq!(User::new(1).describe(), "off resetchannels -@all");
        assert_eq!(
            user(&format!(
                "on #{HASH} ~k* allchannels -@all +@read +set -get"
            ))
            .describe(),
            format!("on #{HASH} ~k* &* -@all +@read +set -get")
        );
        assert_eq!(
            user("reset").describe(),
            "off sanitize-payload resetchannels -@all"
        );
        assert_eq!(
            user("%R~a %W~a %W~b &x").describe(),
            "off ~a %W~b resetchannels &x -@all"
        );
        assert_eq!(user("%R").keys_text(), "%R~");
        assert_eq!(user("+GET +@ALL").describe(), "off resetchannels +@all");
        // A later rule for the same target replaces the earlier one (Redis 7.2's order).
        assert_eq!(user("+get +set -get").commands_text(), "-@all +set -get");
    }

    #[test]
    fn refusals_are_redis_s_and_leave_the_user_as_it_was() {
        let mut u = user("on ~a");
        let before = u.clone();
        for (bad, err) in [
            ("~* ~b", AclError::KeyAfterAll),
            ("&* &b", AclError::ChannelAfterAll),
            (&format!("!{HASH}") as &str, AclError::NoSuchPassword),
            ("#abc", AclError::BadHash),
            ("+@nosuch", AclError::UnknownName),
            ("%~k", AclError::Syntax),
            ("%X~k", AclError::Syntax),
            ("bogus", AclError::Syntax),
            ("~a\tb", AclError::Syntax),
            (">secret", AclError::Plaintext),
            ("(+get)", AclError::Selectors),
        ] {
            let rs = rules(bad);
            assert_eq!(u.apply_all(&rs).unwrap_err().1, err, "{bad}");
            assert_eq!(u, before, "{bad} changed the user");
        }
        assert_eq!(
            setuser_error(b"#abc", AclError::BadHash),
            "ERR Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 \
             characters and contain only lowercase hexadecimal characters"
        );
    }

    #[test]
    fn entries_create_change_and_delete_users() {
        let mut acl = Acl::default();
        assert!(acl.users().is_none());
        let boot = rules(&format!("resetpass #{HASH}"));
        let set = AclOp::SetUser {
            name: Bytes::from_static(b"alice"),
            rules: rules("on nopass"),
        };
        assert_eq!(acl.apply(set, &boot, 7), Ok(0));
        let users = acl.users().expect("initialized");
        // The first entry initialized the default user from its bootstrap.
        assert_eq!(users[&b"default"[..]].passwords.len(), 1);
        assert_eq!(users[&b"alice"[..]].incarnation, 7);
        // Later entries ignore the bootstrap.
        assert_eq!(acl.apply(AclOp::Init, &rules("nopass"), 8), Ok(0));
        assert!(!acl.users().unwrap()[&b"default"[..]].nopass);
        let del = |names: &[&str]| AclOp::DelUser {
            names: names
                .iter()
                .map(|n| Bytes::copy_from_slice(n.as_bytes()))
                .collect(),
        };
        assert_eq!(
            acl.apply(del(&["alice", "default"]), &[], 9),
            Err("ERR The 'default' user cannot be removed".into())
        );
        assert_eq!(acl.apply(del(&["alice", "bob"]), &[], 9), Ok(1));
        assert_eq!(acl.users().unwrap().len(), 1);
        let bad = AclOp::SetUser {
            name: Bytes::from_static(b"a b"),
            rules: vec![],
        };
        assert_eq!(
            acl.apply(bad, &[], 10),
            Err("ERR Usernames can't contain spaces or null characters".into())
        );
    }
}
