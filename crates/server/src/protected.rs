//! Protected mode, as Redis has it: a node that would listen beyond loopback without
//! protection refuses to start, unless the operator says in so many words that the
//! network is trusted.
//!
//! - Peers (`peer_addr`): protected by mutual TLS (`[tls]`), which both encrypts and
//!   authenticates every member. Without it, beyond loopback needs `--insecure-peers`
//!   (`insecure_peers = true`): anyone who reaches the port could pose as a member.
//! - RESP (`client_addr`): protection is TLS *and* a password: `requirepass` (or
//!   `RAFTKV_REQUIREPASS`), the `default` user's password until ACL users are set
//!   (`resp/acl/`). Without both, beyond loopback needs `--insecure` (`insecure = true`);
//!   the message says what is missing. (A password is checked in this node's config:
//!   the replicated users are not known before the node starts.)
//! - Admin (`admin_addr`, HTTP): TLS and an admin credential (`admin_token` or
//!   `RAFTKV_ADMIN_TOKEN`, which every write route then requires: `admin/auth.rs`).
//!   Without both, beyond loopback needs `--insecure`. The read routes (`/status`,
//!   `/metrics`, `/health`) stay open to whoever reaches the port, as etcd's do.
//!
//! The check runs on the addresses actually bound (`0.0.0.0`/`::` count as beyond
//! loopback), so a host name that resolves elsewhere cannot slip through.

use std::net::SocketAddr;

use crate::config::Config;

/// Checks the three bound addresses against the config. The error names every surface
/// at fault and the flags that would allow it.
pub fn check(
    cfg: &Config,
    peer: SocketAddr,
    client: SocketAddr,
    admin: SocketAddr,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if !peer.ip().is_loopback() && cfg.tls.is_none() && !cfg.insecure_peers {
        problems.push(format!(
            "peer_addr {peer} is beyond loopback and peers are not authenticated: \
             configure [tls] (mutual TLS; `raftkv certs` writes the files) or pass \
             --insecure-peers (insecure_peers = true) if this network is trusted"
        ));
    }
    for (key, addr) in [("client_addr", client), ("admin_addr", admin)] {
        if addr.ip().is_loopback() || cfg.insecure {
            continue;
        }
        let missing = match key {
            "client_addr" => resp_protection(cfg),
            _ => admin_protection(cfg),
        };
        if let Some(missing) = missing {
            problems.push(format!(
                "{key} {addr} is beyond loopback with {missing}: pass --insecure \
                 (insecure = true) if this network is trusted"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "protected mode: refusing to start: {}",
            problems.join("; ")
        ))
    }
}

/// What RESP connections lack, if anything: TLS and a password.
fn resp_protection(cfg: &Config) -> Option<&'static str> {
    match (cfg.tls.is_some(), cfg.requirepass.is_some()) {
        (true, true) => None,
        (false, false) => Some("neither TLS nor a password (requirepass)"),
        (false, true) => {
            Some("a password but no TLS (passwords would cross the network in the clear)")
        }
        (true, false) => Some("TLS but no password (set requirepass or RAFTKV_REQUIREPASS)"),
    }
}

/// What admin connections lack, if anything: TLS and an admin credential.
fn admin_protection(cfg: &Config) -> Option<&'static str> {
    match (cfg.tls.is_some(), cfg.admin_token.is_some()) {
        (true, true) => None,
        (false, false) => Some("neither TLS nor an admin credential (admin_token)"),
        (false, true) => {
            Some("an admin credential but no TLS (it would cross the network in the clear)")
        }
        (true, false) => {
            Some("TLS but no admin credential (set admin_token or RAFTKV_ADMIN_TOKEN)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides, Requirepass, Secret, TlsFiles};

    fn cfg(tls: bool, insecure: bool, insecure_peers: bool) -> Config {
        let flags = Overrides {
            id: Some(1),
            peers: Some("1=127.0.0.1:7001,2=127.0.0.1:7002".into()),
            insecure,
            insecure_peers,
            ..Overrides::default()
        };
        let mut c = Config::resolve(FileConfig::default(), &flags).unwrap();
        if tls {
            c.tls = Some(TlsFiles::in_dir(std::path::Path::new("/x"), 1));
        }
        c
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_needs_nothing() {
        let lo = a("127.0.0.1:1");
        assert_eq!(
            check(&cfg(false, false, false), lo, lo, a("[::1]:2")),
            Ok(())
        );
    }

    #[test]
    fn peers_beyond_loopback_need_tls_or_the_flag() {
        let lo = a("127.0.0.1:1");
        let any = a("0.0.0.0:7001");
        let err = check(&cfg(false, false, false), any, lo, lo).unwrap_err();
        assert!(err.contains("peer_addr 0.0.0.0:7001"), "{err}");
        assert!(err.contains("--insecure-peers"), "{err}");
        assert!(!err.contains("client_addr"), "{err}");
        // --insecure (clients) is not enough for peers.
        assert!(check(&cfg(false, true, false), any, lo, lo).is_err());
        assert_eq!(check(&cfg(false, false, true), any, lo, lo), Ok(()));
        assert_eq!(check(&cfg(true, false, false), any, lo, lo), Ok(()));
    }

    #[test]
    fn resp_beyond_loopback_needs_tls_and_a_password_or_the_flag() {
        let lo = a("127.0.0.1:1");
        let lan = a("10.0.0.5:6379");
        let err = check(&cfg(false, false, false), lo, lan, lo).unwrap_err();
        assert!(err.contains("client_addr 10.0.0.5:6379"), "{err}");
        assert!(err.contains("neither TLS nor a password"), "{err}");
        let err = check(&cfg(true, false, false), lo, lan, lo).unwrap_err();
        assert!(err.contains("TLS but no password"), "{err}");
        let mut pw = cfg(false, false, false);
        pw.requirepass = Some(Requirepass(crate::password::hash(b"x")));
        let err = check(&pw, lo, lan, lo).unwrap_err();
        assert!(err.contains("a password but no TLS"), "{err}");
        pw.tls = Some(TlsFiles::in_dir(std::path::Path::new("/x"), 1));
        assert_eq!(check(&pw, lo, lan, lo), Ok(()));
        assert_eq!(check(&cfg(false, true, false), lo, lan, lan), Ok(()));
        // --insecure-peers is not enough for clients.
        assert!(check(&cfg(false, false, true), lo, lan, lo).is_err());
    }

    #[test]
    fn admin_beyond_loopback_needs_tls_and_a_credential_or_the_flag() {
        let lo = a("127.0.0.1:1");
        let any = a("[::]:9379");
        let mut full = cfg(true, false, false);
        full.requirepass = Some(Requirepass(crate::password::hash(b"x")));
        let err = check(&full, lo, lo, any).unwrap_err();
        assert!(err.contains("admin_addr [::]:9379"), "{err}");
        assert!(err.contains("TLS but no admin credential"), "{err}");
        assert!(!err.contains("client_addr"), "{err}");
        let mut token = cfg(false, false, false);
        token.admin_token = Some(Secret::new("0123456789abcdef"));
        let err = check(&token, lo, lo, any).unwrap_err();
        assert!(err.contains("an admin credential but no TLS"), "{err}");
        token.tls = Some(TlsFiles::in_dir(std::path::Path::new("/x"), 1));
        assert_eq!(check(&token, lo, lo, any), Ok(()));
        assert_eq!(
            check(&cfg(false, true, false), lo, lo, a("[::]:9379")),
            Ok(())
        );
    }
}
