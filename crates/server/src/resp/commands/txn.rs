//! MULTI, EXEC, DISCARD, WATCH, UNWATCH: one connection's transaction.
//!
//! While a transaction is open every command is parsed and queued, not run (`+QUEUED`).
//! `EXEC` sends the queue as ONE log entry (`kv::Command::Multi`): the state machine
//! applies it atomically, at one index, with one clock. `WATCH` reads the keys' versions
//! (the version of the entry that last changed each key, 0 when absent); `EXEC` carries
//! them, and the state machine applies the queue only if none changed since — else the
//! reply is a nil array, as Redis gives it.
//!
//! Errors as Redis 7 gives them: an unknown command or a wrong number of arguments
//! while queueing is answered at once and makes `EXEC` fail with `EXECABORT`; any other
//! error (syntax, wrong type, not an integer) is that command's entry in the `EXEC` array.
//! Commands that touch no data (PING, ECHO, UNWATCH, SELECT 0) are answered inside the
//! array too. Other commands (SCAN, INFO, CLIENT, CAS, ...) are refused inside a
//! transaction (a difference from Redis, listed in the README) and abort it.

use bytes::Bytes;
use kv::{Command, Op, Query, Reply};

use super::data::unix_ms;
use super::node_calls::ReadFrom;
use super::typed::{self, ParseError, Parsed};
use super::{upper, Failed, Res, RespCtx};
use crate::resp::acl::gate::{self, Verdict};
use crate::resp::acl::permissions::Denied;
use crate::resp::client::Client;
use crate::resp::codec::Value;

/// Commands queued in one transaction at most (the entry must also fit a log entry).
pub const MAX_QUEUED: usize = 10_000;
/// Keys watched at once at most.
pub const MAX_WATCHED: usize = 10_000;

/// One connection's transaction state.
#[derive(Debug, Default)]
pub struct Txn {
    /// `Some` between MULTI and EXEC/DISCARD.
    queued: Option<Vec<Op>>,
    /// Each queued op's command as sent: EXEC checks permissions again (they may have
    /// changed since it was queued).
    queued_args: Vec<Vec<Bytes>>,
    /// A queueing error happened: EXEC answers EXECABORT.
    aborted: bool,
    /// Keys and the versions WATCH read (the first read of each key counts).
    watched: Vec<(Bytes, u64)>,
}

impl Txn {
    /// Whether this command is the transaction's to answer (rather than the pipeline's).
    pub fn takes(&self, args: &[Bytes]) -> bool {
        let Some(name) = args.first() else {
            return false;
        };
        let name = upper(name);
        if self.queued.is_some() {
            return name != "QUIT";
        }
        matches!(
            name.as_str(),
            "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH"
        )
    }

    fn reset(&mut self) {
        *self = Txn::default();
    }

    /// Answers one command the transaction takes (see [`Txn::takes`]), after the check
    /// every command passes (`resp/acl/gate.rs`). A refused command inside MULTI aborts
    /// the transaction, as in Redis; a refused EXEC discards it.
    pub async fn handle(&mut self, ctx: &RespCtx, client: &Client, args: &[Bytes]) -> Value {
        let name = upper(&args[0]);
        match gate::check(ctx, client, args) {
            Verdict::Run => {}
            // A refused EXEC discards the transaction, open or not (Redis's
            // `execCommandAbort`, which drops the generic `ERR ` code).
            Verdict::Refuse(Value::Error(e)) if name == "EXEC" => {
                self.reset();
                let e = e.strip_prefix("ERR ").unwrap_or(&e);
                return Value::Error(format!("EXECABORT Transaction discarded because of: {e}"));
            }
            Verdict::Refuse(e) => {
                if self.queued.is_some() {
                    self.aborted = true;
                }
                return e;
            }
            Verdict::Close => {
                client.kill();
                return Value::err("this connection's user was deleted");
            }
        }
        let a = &args[1..];
        let arity_error = |ok: bool| (!ok).then(|| Value::err(ParseError::Arity.text(&name)));
        match (name.as_str(), self.queued.is_some()) {
            ("MULTI", false) => {
                if let Some(e) = arity_error(a.is_empty()) {
                    return e;
                }
                self.queued = Some(Vec::new());
                Value::ok()
            }
            ("MULTI", true) => Value::err("ERR MULTI calls can not be nested"),
            ("EXEC", false) => Value::err("ERR EXEC without MULTI"),
            ("DISCARD", false) => Value::err("ERR DISCARD without MULTI"),
            ("DISCARD", true) => {
                self.reset();
                Value::ok()
            }
            ("EXEC", true) => {
                let mut queued = self.queued.take().unwrap_or_default();
                let queued_args = std::mem::take(&mut self.queued_args);
                recheck_permissions(ctx, client, &mut queued, &queued_args);
                let watched = std::mem::take(&mut self.watched);
                let aborted = self.aborted;
                self.reset();
                if aborted {
                    return Value::err(
                        "EXECABORT Transaction discarded because of previous errors.",
                    );
                }
                let cmd = Command::Multi {
                    watched,
                    ops: queued,
                };
                match ctx.kv(Parsed::Write(cmd), ReadFrom::Node).await {
                    Ok(r) => typed::to_value(r),
                    Err(Failed(v)) => v,
                }
            }
            ("WATCH", true) => Value::err("ERR WATCH inside MULTI is not allowed"),
            ("WATCH", false) => {
                if let Some(e) = arity_error(!a.is_empty()) {
                    return e;
                }
                match self.watch(ctx, a).await {
                    Ok(()) => Value::ok(),
                    Err(Failed(v)) => v,
                }
            }
            ("UNWATCH", false) => {
                self.watched.clear();
                Value::ok()
            }
            (_, true) => self.queue(ctx, &name, a),
            (_, false) => Value::err("ERR internal error: not a transaction command"),
        }
    }

    async fn watch(&mut self, ctx: &RespCtx, keys: &[Bytes]) -> Res<()> {
        if self.watched.len() + keys.len() > MAX_WATCHED {
            return Err(Failed(Value::err(format!(
                "ERR too many watched keys (raftkv's limit is {MAX_WATCHED})"
            ))));
        }
        for k in keys {
            ctx.check_key(k)?;
        }
        let q = Query::Versions {
            keys: keys.to_vec(),
        };
        let Reply::Array(versions) = ctx.kv(Parsed::Read(q), ReadFrom::Node).await? else {
            return Err(Failed(Value::err("ERR internal error: versions")));
        };
        for (k, v) in keys.iter().zip(versions) {
            let Reply::Int(v) = v else { continue };
            if !self.watched.iter().any(|(w, _)| w == k) {
                self.watched.push((k.clone(), v as u64));
            }
        }
        Ok(())
    }

    /// Queues one command inside MULTI.
    fn queue(&mut self, ctx: &RespCtx, name: &str, a: &[Bytes]) -> Value {
        let queued_len = self.queued.as_ref().map_or(0, Vec::len);
        if queued_len >= MAX_QUEUED {
            self.aborted = true;
            return Value::err(format!(
                "ERR too many commands in a transaction (raftkv's limit is {MAX_QUEUED})"
            ));
        }
        let op = match typed::parse(name, a, unix_ms()) {
            Some(Ok(p)) => match ctx.check_parsed(&p, a) {
                Err(Failed(Value::Error(e))) => Op::Const(Reply::Error(e)),
                Err(Failed(_)) => Op::Const(Reply::error("ERR bad argument")),
                Ok(()) => match p {
                    Parsed::Write(c) => Op::Write(c),
                    Parsed::Read(q) => Op::Read(q),
                },
            },
            Some(Err(ParseError::Arity)) => {
                self.aborted = true;
                return Value::err(ParseError::Arity.text(name));
            }
            Some(Err(ParseError::Other(e))) => Op::Const(Reply::Error(e)),
            None => match constant(name, a) {
                Some(Ok(r)) => Op::Const(r),
                Some(Err(e)) => {
                    self.aborted = true;
                    return e;
                }
                None => {
                    self.aborted = true;
                    return Value::err(format!(
                        "ERR '{}' is not supported inside MULTI by raftkv",
                        name.to_ascii_lowercase()
                    ));
                }
            },
        };
        if let Some(q) = self.queued.as_mut() {
            q.push(op);
            let mut full = Vec::with_capacity(a.len() + 1);
            full.push(bytes::Bytes::from(name.to_string()));
            full.extend_from_slice(a);
            self.queued_args.push(full);
        }
        Value::Simple("QUEUED".into())
    }
}

/// Redis checks a transaction's commands again at EXEC: one the user may no longer run
/// (or whose keys it may no longer touch) answers this error in its place, the others
/// run.
fn recheck_permissions(ctx: &RespCtx, client: &Client, ops: &mut [Op], args: &[Vec<Bytes>]) {
    let users = ctx.users.borrow().clone();
    let Some(perms) = users.permissions(&client.state().user) else {
        return; // the gate closes the connection on its next command
    };
    for (op, a) in ops.iter_mut().zip(args) {
        let Ok(spec) = gate::resolve(a) else { continue };
        let reason = match perms.check(spec, a) {
            Ok(()) => continue,
            Err(Denied::Command) => "no permission to execute the command or subcommand",
            Err(Denied::Key(_)) => "no permission to touch the specified keys",
        };
        *op = Op::Const(Reply::Error(format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated \
             and the EXEC call. This command is no longer allowed for the following reason: \
             {reason}"
        )));
    }
}

/// The commands that touch no data, answered inside EXEC's array: their reply, an
/// arity error (which aborts the transaction), or `None` if not one of them.
fn constant(name: &str, a: &[Bytes]) -> Option<Result<Reply, Value>> {
    let arity_ok = match name {
        "PING" => a.len() <= 1,
        "ECHO" | "SELECT" => a.len() == 1,
        "UNWATCH" => a.is_empty(),
        _ => return None,
    };
    if !arity_ok {
        return Some(Err(Value::err(ParseError::Arity.text(name))));
    }
    Some(Ok(match name {
        "PING" => match a.first() {
            Some(m) => Reply::Bulk(m.clone()),
            None => Reply::Status("PONG".into()),
        },
        "ECHO" => Reply::Bulk(a[0].clone()),
        "SELECT" if &a[0][..] != b"0" => Reply::error("ERR DB index is out of range"),
        _ => Reply::Ok,
    }))
}
