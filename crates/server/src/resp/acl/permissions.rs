//! What a user may run, worked out from its rules against the command table, and the
//! keys a command touches (from the table's key specs), as Redis 7 decides both.
//!
//! A user's command rules (`kv::acl`) are a starting point (`+@all`/`-@all`) and `+`/`-`
//! rules in order. For each command and subcommand of the table, the last rule that
//! names it decides, where a rule names it if it is the command (`get`), its container
//! (`client` names `client|list`), a category of it or of its container (Redis gives a
//! container's categories to all its subcommands: `-@slow` takes away `client|id` too),
//! or exactly the subcommand (`client|list`). A `+command|arg` rule on a command without
//! subcommands allows it only with that first argument (`+select|0`), unless the command
//! is allowed anyway. This is what Redis's per-user bitmap computes, rule by rule.
//!
//! Keys: each key spec of the command finds key positions in the arguments; a key needs
//! read permission if the spec says `access`, write permission if it says `insert`,
//! `delete` or `update` (SET's flags depend on its `GET` option). A `~pattern` gives both,
//! `%R~` read, `%W~` write.

use std::collections::HashMap;

use bytes::Bytes;
use kv::acl::{Target, User};

use crate::resp::commands::table::{Begin, Find, Spec, TABLE};
use crate::resp::scan::glob_match;

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Command,
    /// The argument at this position is a key the user may not touch as asked.
    Key(usize),
}

/// One command's verdict for a user.
#[derive(Clone, Debug, Default)]
struct Allowed {
    allowed: bool,
    /// First arguments that allow it when `allowed` is false (lower case).
    first_args: Vec<Bytes>,
}

/// A user's rules, decided for every command of the table.
#[derive(Debug)]
pub struct Permissions {
    pub user: User,
    /// By full name (`get`, `client|list`).
    commands: HashMap<&'static str, Allowed>,
}

impl Permissions {
    pub fn compile(user: &User) -> Permissions {
        let mut commands = HashMap::new();
        for cmd in TABLE {
            commands.insert(cmd.name, decide(user, cmd, None));
            for sub in cmd.subs {
                commands.insert(sub.name, decide(user, sub, Some(cmd)));
            }
        }
        Permissions {
            user: user.clone(),
            commands,
        }
    }

    /// Whether the user may run `spec` with `args` (the full command, name included).
    pub fn check(&self, spec: &Spec, args: &[Bytes]) -> Result<(), Denied> {
        // AUTH, HELLO and QUIT are for everyone (Redis's `no_auth` commands).
        if !spec.flags.contains(&"no_auth") && !all_commands_allowed(&self.user) {
            let a = self.commands.get(spec.name).cloned().unwrap_or_default();
            let by_first_arg = args
                .get(1)
                .is_some_and(|arg| a.first_args.iter().any(|f| f.eq_ignore_ascii_case(arg)));
            if !a.allowed && !by_first_arg {
                return Err(Denied::Command);
            }
        }
        if self.user.all_keys {
            return Ok(());
        }
        for k in key_refs(spec, args) {
            if !self.may_touch(&args[k.pos], k.read, k.write) {
                return Err(Denied::Key(k.pos));
            }
        }
        Ok(())
    }

    /// Whether some pattern gives this key the permissions asked.
    pub fn may_touch(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.user.all_keys
            || self
                .user
                .key_patterns
                .iter()
                .any(|p| (p.read || !read) && (p.write || !write) && glob_match(&p.pattern, key))
    }
}

/// Redis's shortcut (its `allcommands` flag): a user that started from `+@all` and took
/// nothing away may run everything, even commands this table does not know.
fn all_commands_allowed(user: &User) -> bool {
    user.all_commands && user.command_rules.iter().all(|r| r.allow)
}

/// The rules' verdict on one command (`parent`: its container, for a subcommand).
fn decide(user: &User, spec: &Spec, parent: Option<&Spec>) -> Allowed {
    let mut a = Allowed {
        allowed: user.all_commands,
        first_args: Vec::new(),
    };
    let has_category = |s: &Spec, c: &str| s.acl.iter().any(|x| x.strip_prefix('@') == Some(c));
    for rule in &user.command_rules {
        let names_it = match &rule.target {
            Target::Category(c) => {
                has_category(spec, c) || parent.is_some_and(|p| has_category(p, c))
            }
            Target::Command(n) => n == spec.name || parent.is_some_and(|p| p.name == n),
        };
        if names_it {
            a.allowed = rule.allow;
            a.first_args.clear();
            continue;
        }
        // `+select|0`: a first argument of a command without subcommands.
        if let (Target::Command(n), true, None) = (&rule.target, rule.allow, parent) {
            if let Some((cmd, arg)) = n.split_once('|') {
                if cmd == spec.name && spec.subs.is_empty() {
                    a.first_args.push(Bytes::copy_from_slice(arg.as_bytes()));
                }
            }
        }
    }
    a
}

/// A key argument and what the command does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    /// Its position in the arguments (the name is 0).
    pub pos: usize,
    pub read: bool,
    pub write: bool,
}

/// The keys `args` (name included) touches, by the command's key specs, as Redis's
/// `getKeysUsingKeySpecs` finds them; a spec that does not fit the arguments gives no
/// keys (the command itself then answers with a syntax error).
pub fn key_refs(spec: &Spec, args: &[Bytes]) -> Vec<KeyRef> {
    let argc = args.len() as i64;
    let mut out = Vec::new();
    for ks in spec.key_specs {
        if ks.flags.contains(&"not_key") {
            continue;
        }
        let (mut read, mut write) = access_of(ks.flags);
        if ks.flags.contains(&"variable_flags") && spec.name == "set" {
            // SET reads the old value only with GET.
            let get = args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"GET"));
            (read, write) = (get, true);
        }
        let first = match ks.begin {
            Begin::Index(i) => i,
            Begin::Keyword { keyword, startfrom } => {
                let start = if startfrom > 0 {
                    startfrom
                } else {
                    argc + startfrom
                };
                let end = if startfrom > 0 { argc - 1 } else { 1 };
                let step = if start <= end { 1 } else { -1 };
                let mut i = start;
                let mut found = None;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if args[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
                        found = Some(i + 1);
                        break;
                    }
                    i += step;
                }
                match found {
                    Some(f) => f,
                    None => continue,
                }
            }
        };
        let (first, last, step) = match ks.find {
            Find::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, keystep)
            }
            Find::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                let at = first + keynumidx;
                let Some(n) = usize::try_from(at)
                    .ok()
                    .and_then(|at| args.get(at))
                    .and_then(|a| std::str::from_utf8(a).ok()?.parse::<i64>().ok())
                    .filter(|n| *n >= 0)
                else {
                    continue;
                };
                // `n` is the client's number: saturate, so an absurd count is a spec
                // that does not fit (below), not an overflow.
                let first = first.saturating_add(firstkey);
                (first, first.saturating_add(n).saturating_sub(1), keystep)
            }
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            continue;
        }
        let mut i = first;
        while i <= last {
            out.push(KeyRef {
                pos: i as usize,
                read,
                write,
            });
            i += step;
        }
    }
    out
}

/// What a key spec's flags ask of a key: read if it accesses the value, write if it
/// inserts, deletes or updates.
fn access_of(flags: &[&str]) -> (bool, bool) {
    let read = flags.contains(&"access");
    let write = flags
        .iter()
        .any(|f| matches!(*f, "insert" | "delete" | "update"));
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::commands::table::{command_spec, lookup};

    /// A key count given by the client (`numkeys`, as EVAL and ZUNION take) far beyond
    /// the arguments gives no keys; `i64::MAX` overflowed computing the last key's
    /// position. No command of today's table counts its keys that way, so this spec is
    /// made up for the test.
    #[test]
    fn a_huge_client_key_count_finds_no_keys() {
        use crate::resp::commands::table::{Begin, Find, Group, KeySpec, Spec};
        static KEY_SPECS: [KeySpec; 1] = [KeySpec {
            notes: None,
            flags: &["RO"],
            begin: Begin::Index(1),
            find: Find::Keynum {
                keynumidx: 0,
                firstkey: 1,
                keystep: 1,
            },
        }];
        let spec = Spec {
            name: "numkeys-test",
            group: Group::Keyspace,
            arity: -2,
            flags: &[],
            keys: (0, 0, 0),
            acl: &[],
            tips: &[],
            key_specs: &KEY_SPECS,
            subs: &[],
        };
        assert!(key_refs(&spec, &args("CMD 9223372036854775807 k")).is_empty());
        let keys: Vec<usize> = key_refs(&spec, &args("CMD 2 a b"))
            .iter()
            .map(|k| k.pos)
            .collect();
        assert_eq!(keys, vec![2, 3]);
    }

    fn user(rules: &str) -> User {
        let mut u = User::new(1);
        let rules: Vec<Bytes> = rules
            .split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        u.apply_all(&rules).expect("rules");
        u
    }

    fn args(s: &str) -> Vec<Bytes> {
        s.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn check(p: &Permissions, cmd: &str) -> Result<(), Denied> {
        let a = args(cmd);
        let name = String::from_utf8_lossy(&a[0]).to_ascii_uppercase();
        let top = command_spec(&name).expect("a command");
        let spec = match a.get(1).and_then(|s| top.sub(s)) {
            Some(sub) => sub,
            None => top,
        };
        p.check(spec, &a)
    }

    #[test]
    fn rules_apply_in_order_with_categories_containers_and_first_args() {
        let p = Permissions::compile(&user("allkeys -@all +@read -get +set"));
        assert_eq!(check(&p, "GET k"), Err(Denied::Command));
        assert_eq!(check(&p, "MGET k"), Ok(()));
        assert_eq!(check(&p, "SET k v"), Ok(()));
        assert_eq!(check(&p, "DEL k"), Err(Denied::Command));

        let p = Permissions::compile(&user("allkeys +@all -client +client|id"));
        assert_eq!(check(&p, "CLIENT LIST"), Err(Denied::Command));
        assert_eq!(check(&p, "CLIENT ID"), Ok(()));
        // The container's category reaches its subcommands.
        let p = Permissions::compile(&user("allkeys +@all -@slow"));
        assert_eq!(check(&p, "CLIENT ID"), Err(Denied::Command));
        assert_eq!(check(&p, "GET k"), Ok(()));

        let p = Permissions::compile(&user("allkeys -@all +select|0"));
        assert_eq!(check(&p, "SELECT 0"), Ok(()));
        assert_eq!(check(&p, "SELECT 1"), Err(Denied::Command));
        // AUTH and HELLO need no permission.
        assert_eq!(check(&p, "AUTH x y"), Ok(()));
        assert_eq!(check(&p, "HELLO 3"), Ok(()));
    }

    #[test]
    fn keys_are_found_by_key_specs_and_checked_for_what_is_done_with_them() {
        let p = Permissions::compile(&user("+@all ~k* %R~r* %W~w*"));
        assert_eq!(check(&p, "GET k1"), Ok(()));
        assert_eq!(check(&p, "GET x"), Err(Denied::Key(1)));
        assert_eq!(check(&p, "MSET k1 1 k2 2"), Ok(()));
        assert_eq!(check(&p, "MSET k1 1 x 2"), Err(Denied::Key(3)));
        assert_eq!(check(&p, "RENAME k1 x1"), Err(Denied::Key(2)));
        assert_eq!(check(&p, "GET r1"), Ok(()));
        assert_eq!(check(&p, "SET r1 v"), Err(Denied::Key(1)));
        assert_eq!(check(&p, "SET w1 v"), Ok(()));
        // With GET, SET reads the key too.
        assert_eq!(check(&p, "SET w1 v GET"), Err(Denied::Key(1)));
        assert_eq!(check(&p, "GET w1"), Err(Denied::Key(1)));
        assert_eq!(check(&p, "COPY r1 w1"), Ok(()));
        assert_eq!(check(&p, "COPY w1 r1"), Err(Denied::Key(1)));
        // EXISTS neither reads nor writes a value: any pattern will do.
        assert_eq!(check(&p, "EXISTS w1 r1"), Ok(()));
    }

    #[test]
    fn key_positions_follow_the_specs() {
        let pos = |cmd: &str| {
            let a = args(cmd);
            let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
            key_refs(lookup(&name).unwrap(), &a)
                .iter()
                .map(|k| k.pos)
                .collect::<Vec<_>>()
        };
        assert_eq!(pos("MSET a 1 b 2 c 3"), [1, 3, 5]);
        assert_eq!(pos("DEL a b c"), [1, 2, 3]);
        assert_eq!(pos("HSET h f v"), [1]);
        assert_eq!(pos("PING"), Vec::<usize>::new());
    }
}
