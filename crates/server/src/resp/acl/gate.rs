//! The check every command passes before it runs, in Redis 7's order: an unknown
//! command or subcommand, then a wrong number of arguments, then `NOAUTH` (not
//! authenticated, and `default` needs a password), then `NOPERM` (the user may not run
//! the command, or touch one of its keys). `AUTH`, `HELLO` and `QUIT` pass without
//! authentication. Every refusal is counted (`INFO stats`: `acl_access_denied_*`), and
//! logged at debug level (a client looping on a refused command must not flood the log).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::permissions::Denied;
use crate::resp::client::Client;
use crate::resp::codec::Value;
use crate::resp::commands::table::{self, Spec};
use crate::resp::commands::RespCtx;

pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// What to do with a command.
#[derive(Debug)]
pub enum Verdict {
    /// Run it (its handler may still refuse it).
    Run,
    /// Answer this error instead.
    Refuse(Value),
    /// The connection's user is gone: close it (as Redis closes connections of a
    /// deleted user).
    Close,
}

/// The command `args` names: the subcommand for a container given one. `Err(true)`: a
/// container with an unknown subcommand; `Err(false)`: unknown command.
pub fn resolve(args: &[Bytes]) -> Result<&'static Spec, bool> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let top = table::command_spec(&name).ok_or(false)?;
    if top.subs.is_empty() || args.len() < 2 {
        return Ok(top);
    }
    top.sub(&args[1]).ok_or(true)
}

/// Checks `args` (a whole command, name included) for `client`.
pub fn check(ctx: &RespCtx, client: &Client, args: &[Bytes]) -> Verdict {
    let spec = match resolve(args) {
        Ok(s) => s,
        Err(false) => return Verdict::Refuse(unknown_command(args)),
        // The concern's handler words its own refusal of an unknown subcommand (some say
        // "not supported by raftkv"); before authentication, Redis's generic one.
        Err(true) if client.state().authenticated => return Verdict::Run,
        Err(true) => return Verdict::Refuse(unknown_subcommand(args)),
    };
    if !spec.arity_ok(args.len()) {
        return Verdict::Refuse(Value::err(format!(
            "wrong number of arguments for '{}' command",
            spec.name
        )));
    }
    let users = ctx.users.borrow().clone();
    let (user, incarnation, authenticated) = {
        let s = client.state();
        (s.user.clone(), s.incarnation, s.authenticated)
    };
    let no_auth = spec.flags.contains(&"no_auth");
    if !authenticated && !users.default_is_open() && !no_auth {
        ctx.node
            .metrics
            .client_access_denied
            .noauth
            .fetch_add(1, Ordering::Relaxed);
        return Verdict::Refuse(Value::Error(NOAUTH.into()));
    }
    let Some(perms) = users.permissions(&user) else {
        return Verdict::Close;
    };
    if perms.user.incarnation != incarnation {
        return Verdict::Close;
    }
    match perms.check(spec, args) {
        Ok(()) => Verdict::Run,
        Err(denied) => {
            let counter = match denied {
                Denied::Command => &ctx.node.metrics.client_access_denied.command,
                Denied::Key(_) => &ctx.node.metrics.client_access_denied.key,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                client = client.id,
                user = %String::from_utf8_lossy(&user),
                command = spec.name,
                "NOPERM"
            );
            Verdict::Refuse(Value::Error(noperm(denied, spec)))
        }
    }
}

/// Redis's `NOPERM` texts.
pub fn noperm(denied: Denied, spec: &Spec) -> String {
    match denied {
        Denied::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            spec.name
        ),
        Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
    }
}

/// `AUTH`: makes `user` this connection's user if `password` is one of its passwords
/// (or it needs none) and it is on. The error is Redis's `WRONGPASS`, whatever was wrong
/// (no such user, off, wrong password), so a client cannot tell which.
pub fn authenticate(
    ctx: &RespCtx,
    client: &Client,
    user: &[u8],
    password: &[u8],
) -> Result<(), Value> {
    let users = ctx.users.borrow().clone();
    let ok = users.get(user).filter(|u| {
        u.enabled && (u.nopass || crate::password::matches_any(password, &u.passwords))
    });
    let Some(u) = ok else {
        ctx.node
            .metrics
            .client_access_denied
            .auth
            .fetch_add(1, Ordering::Relaxed);
        log_failed_auth(client, user);
        return Err(Value::Error(WRONGPASS.into()));
    };
    let mut s = client.state();
    s.user = Bytes::copy_from_slice(user);
    s.incarnation = u.incarnation;
    s.authenticated = true;
    Ok(())
}

/// One line per failed AUTH, at most one a second (the rest are counted in the next).
fn log_failed_auth(client: &Client, user: &[u8]) {
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_SECOND.swap(now, Ordering::Relaxed) == now {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let also = SUPPRESSED.swap(0, Ordering::Relaxed);
    tracing::warn!(
        client = client.id,
        addr = %client.addr.map(|a| a.to_string()).unwrap_or_default(),
        user = %String::from_utf8_lossy(user),
        failures_not_logged_since_the_last_line = also,
        "AUTH failed"
    );
}

/// Redis 7's words: the name as sent, and the first arguments, each quoted and followed
/// by a space, until 128 characters of them are shown.
pub fn unknown_command(args: &[Bytes]) -> Value {
    let name: String = String::from_utf8_lossy(&args[0])
        .chars()
        .take(128)
        .collect();
    let mut shown = String::new();
    for a in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let a: String = String::from_utf8_lossy(a).chars().take(room).collect();
        shown.push_str(&format!("'{a}' "));
    }
    Value::err(format!(
        "unknown command '{name}', with args beginning with: {shown}"
    ))
}

/// Redis's error for a container's unknown subcommand.
pub fn unknown_subcommand(args: &[Bytes]) -> Value {
    let sub: String = String::from_utf8_lossy(&args[1])
        .chars()
        .take(128)
        .collect();
    Value::err(format!(
        "unknown subcommand '{sub}'. Try {} HELP.",
        String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
    ))
}
