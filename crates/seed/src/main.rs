//! `3700kvstore <UDP port> <your ID> <other IDs...>` — the seed replica (SEED.md).
//!
//! Tuning knobs (environment, for experiments; defaults are the measured best):
//! `RAFTKV_UNSAFE_STALE_READS=1` (TEST ONLY: serve gets locally with no lease),
//! `RAFTKV_SEED=<u64>` (seed for election timeouts; default derived from the ID and PID),
//! `RAFTKV_TAIL_ANSWERS=1` (EXPERIMENT: the chain's tail answers writes; see answers.rs).

mod answers;
mod client;
mod codec;
#[cfg(test)]
mod decode_props;
mod ids;
mod order;
mod server;
mod tuning;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: {} <UDP port> <your ID> <other IDs...>", args[0]);
        ExitCode::from(2)
    };
    if args.len() < 3 {
        return usage();
    }
    let Ok(port) = args[1].parse::<u16>() else {
        return usage();
    };
    let Some(me) = ids::parse_id(&args[2]) else {
        return usage();
    };
    let mut peers = Vec::new();
    for a in &args[3..] {
        match ids::parse_id(a) {
            Some(p) if p != me => peers.push(p),
            _ => return usage(),
        }
    }
    let tuning = tuning::Tuning::from_env(me);
    let cfg = tuning.raft_config(me);
    let server = match server::Server::new(me, peers, port, cfg, &tuning) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: cannot start: {e}", ids::format_id(me));
            return ExitCode::FAILURE;
        }
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: fatal: {e}", ids::format_id(me));
            ExitCode::FAILURE
        }
    }
}
