//! AUTH and ACL: who a connection is, and the users (Redis 7's replies and errors).
//!
//! `ACL SETUSER` and `ACL DELUSER` are log entries (`kv::Command::Acl`): a change made
//! through any node holds on every node. Before proposing, `SETUSER` hashes every
//! `>password`/`<password` into `#hash`/`!hash` (the log never holds a password), checks
//! command names against the table, and tries the rules on the user as this node knows
//! it, so errors are Redis's, with the argument as the client sent it. The state machine
//! applies the rules again, all or nothing (a concurrent change can still make them fail
//! there: its error then names the hashed form).
//!
//! The other subcommands read this node's view of the users (`resp/acl/users.rs`).

use bytes::Bytes;
use kv::acl::{hash_hex, setuser_error, AclError, AclOp, Rule, CATEGORIES};
use kv::{Command, Reply};

use super::node_calls::ReadFrom;
use super::table::{command_spec, lookup, TABLE};
use super::typed::Parsed;
use super::{upper, Failed, Res, RespCtx};
use crate::resp::acl::gate::{self, authenticate};
use crate::resp::acl::permissions::Denied;
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub(super) async fn run(
    ctx: &RespCtx,
    client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "AUTH" => auth(ctx, client, a),
        "ACL" => acl(ctx, client, a).await,
        _ => return None,
    })
}

/// `AUTH password` (the `default` user) or `AUTH user password`.
fn auth(ctx: &RespCtx, client: &Client, a: &[Bytes]) -> Res<Value> {
    let (user, password) = match a {
        [password] => {
            let users = ctx.users.borrow().clone();
            if users.get(kv::acl::DEFAULT_USER).is_none_or(|d| d.nopass) {
                return Err(Failed(Value::Error(
                    "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?"
                        .into(),
                )));
            }
            (kv::acl::DEFAULT_USER, password)
        }
        [user, password] => (&user[..], password),
        _ => return Err(Failed(Value::err("syntax error"))),
    };
    authenticate(ctx, client, user, password).map_err(Failed)?;
    Ok(Value::ok())
}

const NO_ACL_FILE: &str = "This Redis instance is not configured to use an ACL file. You may \
     want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE \
     (assuming you have a Redis configuration file set) in order to store users in the Redis \
     configuration.";

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

async fn acl(ctx: &RespCtx, client: &Client, a: &[Bytes]) -> Res<Value> {
    // The gate checked the subcommand's arity; an unknown one is answered here.
    let Some(sub) = a.first() else {
        return Err(Failed(super::wrong_args("ACL")));
    };
    let container = command_spec("ACL").expect("ACL is in the table");
    if container.sub(sub).is_none() {
        return Err(super::connection::unknown_sub("ACL", sub));
    }
    let args = &a[1..];
    match upper(sub).as_str() {
        "SETUSER" => setuser(ctx, &args[0], &args[1..]).await,
        "DELUSER" => {
            let op = AclOp::DelUser {
                names: args.to_vec(),
            };
            propose(ctx, op).await
        }
        "GETUSER" => Ok(getuser(ctx, &args[0])),
        "LIST" | "USERS" => {
            let users = ctx.users.borrow().clone();
            let names_only = upper(sub) == "USERS";
            Ok(Value::Array(Some(
                users
                    .iter()
                    .map(|(name, u)| {
                        if names_only {
                            Value::bulk(name.clone())
                        } else {
                            Value::bulk(format!(
                                "user {} {}",
                                String::from_utf8_lossy(name),
                                u.describe()
                            ))
                        }
                    })
                    .collect(),
            )))
        }
        "WHOAMI" => Ok(Value::bulk(client.state().user.clone())),
        "CAT" => cat(args.first()),
        "GENPASS" => genpass(args.first()),
        "DRYRUN" => Ok(dryrun(ctx, args)?),
        "LOAD" | "SAVE" => Err(Failed(Value::err(NO_ACL_FILE))),
        _ => Ok(Value::Array(Some(
            ACL_HELP
                .iter()
                .map(|l| Value::Simple(l.to_string()))
                .collect(),
        ))),
    }
}

/// `ACL SETUSER name rule...`: checked here, applied by every node's state machine.
async fn setuser(ctx: &RespCtx, name: &Bytes, rules: &[Bytes]) -> Res<Value> {
    if kv::acl::has_spaces(name) {
        return Err(Failed(Value::err(
            "Usernames can't contain spaces or null characters",
        )));
    }
    // Tried on this node's copy first, rule by rule as Redis applies them, for Redis's
    // errors (the rule as the client sent it).
    let users = ctx.users.borrow().clone();
    let mut trial = users
        .get(name)
        .cloned()
        .unwrap_or_else(|| kv::acl::User::new(0));
    let mut normalized = Vec::with_capacity(rules.len());
    for op in rules {
        let refused = |e| Failed(Value::Error(setuser_error(op, e)));
        let rule = normalize(op).map_err(refused)?;
        if !rule.is_empty() {
            trial
                .apply(&Rule::parse(&rule).map_err(refused)?)
                .map_err(refused)?;
        }
        normalized.push(rule);
    }
    let op = AclOp::SetUser {
        name: name.clone(),
        rules: normalized,
    };
    propose(ctx, op).await
}

/// One rule as it goes into the log: passwords hashed, command names checked.
fn normalize(op: &Bytes) -> Result<Bytes, AclError> {
    match op.first() {
        Some(b'>') => return Ok(hashed(b'#', &op[1..])),
        Some(b'<') => return Ok(hashed(b'!', &op[1..])),
        _ => {}
    }
    if let Rule::Command(r) = Rule::parse(op)? {
        if let kv::acl::Target::Command(name) = &r.target {
            check_command_rule(r.allow, name)?;
        }
    }
    Ok(op.clone())
}

fn hashed(sign: u8, password: &[u8]) -> Bytes {
    let mut rule = vec![sign];
    rule.extend_from_slice(hash_hex(&crate::password::hash(password)).as_bytes());
    Bytes::from(rule)
}

/// Redis's checks of `+name` / `-name` against the command table: the command must
/// exist; `container|sub` must be one of its subcommands; `command|arg` (a first
/// argument) only with `+`, only for a command without subcommands.
fn check_command_rule(allow: bool, name: &str) -> Result<(), AclError> {
    let Some((cmd, arg)) = name.rsplit_once('|') else {
        return command_spec(&name.to_ascii_uppercase())
            .map(|_| ())
            .ok_or(AclError::UnknownName);
    };
    let Some(spec) = lookup(cmd) else {
        return Err(AclError::UnknownName);
    };
    if spec.name.contains('|') {
        // A first argument of a subcommand (`+client|list|x`).
        return if allow {
            Err(AclError::FirstArgOfSubcommand)
        } else {
            Err(AclError::UnknownName)
        };
    }
    if arg.is_empty() {
        return Err(AclError::Syntax);
    }
    if !spec.subs.is_empty() {
        return spec
            .sub(arg.as_bytes())
            .map(|_| ())
            .ok_or(AclError::UnknownName);
    }
    if allow {
        Ok(())
    } else {
        Err(AclError::UnknownName)
    }
}

/// Proposes an ACL entry (with this node's bootstrap, in case it is the first) and
/// answers what the state machine replied.
async fn propose(ctx: &RespCtx, op: AclOp) -> Res<Value> {
    let cmd = Command::Acl {
        op,
        bootstrap: ctx.bootstrap.clone(),
    };
    match ctx.kv(Parsed::Write(cmd), ReadFrom::Node).await? {
        Reply::Ok => Ok(Value::ok()),
        Reply::Int(n) => Ok(Value::Int(n)),
        Reply::Error(e) => Err(Failed(Value::Error(e))),
        other => Err(Failed(Value::err(format!(
            "internal error: unexpected answer {other:?}"
        )))),
    }
}

/// `ACL GETUSER name`: a map (RESP3; a flat array in RESP2), nil for no such user.
fn getuser(ctx: &RespCtx, name: &[u8]) -> Value {
    let users = ctx.users.borrow().clone();
    let Some(u) = users.get(name) else {
        return Value::nil();
    };
    let field = |k: &'static str, v: Value| (Value::bulk(k), v);
    Value::Map(vec![
        field(
            "flags",
            Value::Set(u.flags().into_iter().map(Value::bulk).collect()),
        ),
        field(
            "passwords",
            Value::Array(Some(
                u.passwords
                    .iter()
                    .map(|h| Value::bulk(hash_hex(h)))
                    .collect(),
            )),
        ),
        field("commands", Value::bulk(u.commands_text())),
        field("keys", Value::bulk(u.keys_text())),
        field("channels", Value::bulk(u.channels_text())),
        field("selectors", Value::Array(Some(Vec::new()))),
    ])
}

/// `ACL CAT [category]`: the categories, or the commands (and subcommands) in one.
fn cat(category: Option<&Bytes>) -> Res<Value> {
    let Some(c) = category else {
        return Ok(Value::Array(Some(
            CATEGORIES.iter().map(|c| Value::bulk(*c)).collect(),
        )));
    };
    let wanted = String::from_utf8_lossy(c).to_ascii_lowercase();
    if !CATEGORIES.contains(&wanted.as_str()) {
        let shown: String = String::from_utf8_lossy(c).chars().take(128).collect();
        return Err(Failed(Value::err(format!("Unknown category '{shown}'"))));
    }
    let tag = format!("@{wanted}");
    let mut out = Vec::new();
    for s in TABLE {
        for s in std::iter::once(s).chain(s.subs) {
            if s.acl.contains(&tag.as_str()) {
                out.push(Value::bulk(s.name));
            }
        }
    }
    Ok(Value::Array(Some(out)))
}

/// `ACL GENPASS [bits]`: random hex digits from the OS's generator (256 bits default).
fn genpass(bits: Option<&Bytes>) -> Res<Value> {
    let bits = match bits {
        None => 256,
        Some(b) => super::parse_i64(b)?,
    };
    if !(1..=4096).contains(&bits) {
        return Err(Failed(Value::Error(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a \
             positive number up to 4096"
                .into(),
        )));
    }
    crate::password::random_hex(bits as usize)
        .map(Value::bulk)
        .map_err(|_| Failed(Value::err("the system's random generator failed")))
}

/// `ACL DRYRUN user command [arg...]`: OK, or why the user may not run it (a bulk
/// string, as Redis answers).
fn dryrun(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    let users = ctx.users.borrow().clone();
    let Some(perms) = users.permissions(&a[0]) else {
        return Err(Failed(Value::err(format!(
            "User '{}' not found",
            String::from_utf8_lossy(&a[0])
        ))));
    };
    let cmd = &a[1..];
    let spec = match gate::resolve(cmd) {
        Ok(s) => s,
        Err(_) => {
            return Err(Failed(Value::err(format!(
                "Command '{}' not found",
                String::from_utf8_lossy(&cmd[0])
            ))))
        }
    };
    if !spec.arity_ok(cmd.len()) {
        return Err(Failed(Value::err(format!(
            "wrong number of arguments for '{}' command",
            spec.name
        ))));
    }
    Ok(match perms.check(spec, cmd) {
        Ok(()) => Value::ok(),
        Err(Denied::Command) => Value::bulk(format!(
            "This user has no permissions to run the '{}' command",
            spec.name
        )),
        Err(Denied::Key(i)) => Value::bulk(format!(
            "This user has no permissions to access the '{}' key",
            String::from_utf8_lossy(&cmd[i])
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_rules_are_checked_as_redis_checks_them() {
        let ok = |allow, n: &str| check_command_rule(allow, n);
        assert_eq!(ok(true, "get"), Ok(()));
        assert_eq!(ok(false, "nosuch"), Err(AclError::UnknownName));
        assert_eq!(ok(false, "client|list"), Ok(()));
        assert_eq!(ok(true, "client|x"), Err(AclError::UnknownName));
        assert_eq!(
            ok(true, "client|list|x"),
            Err(AclError::FirstArgOfSubcommand)
        );
        assert_eq!(ok(true, "select|0"), Ok(()));
        assert_eq!(ok(false, "select|0"), Err(AclError::UnknownName));
        assert_eq!(ok(true, "get|"), Err(AclError::Syntax));
        assert_eq!(
            normalize(&Bytes::from_static(b">p1")).unwrap(),
            Bytes::from_static(
                b"#f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"
            )
        );
    }
}
