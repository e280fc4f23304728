//! Protected mode, as Redis has it: a node that would listen beyond loopback without
//! protection refuses to start, unless the operator says in so many words that the
//! network is trusted.
//!
//! - Peers (`peer_addr`): protected by mutual TLS (`[tls]`), which both encrypts and
//!   authenticates every member. Without it, beyond loopback needs `--insecure-peers`
//!   (`insecure_peers = true`): anyone who reaches the port could pose as a member.
//! - Clients (`client_addr` RESP, `admin_addr` HTTP): protection is TLS *and*
//!   authentication. raftkv has no client authentication yet (RESP `AUTH`/ACL users are
//!   the other half of issue 14), so beyond loopback these need `--insecure`
//!   (`insecure = true`) even with TLS; the message says what is missing. When users
//!   land, `client_protection` is the one place that learns about them.
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
        if let Some(missing) = client_protection(cfg) {
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

/// What clients' connections lack, if anything.
fn client_protection(cfg: &Config) -> Option<&'static str> {
    if cfg.tls.is_none() {
        Some("neither TLS nor client authentication")
    } else {
        Some("TLS but no client authentication (raftkv has no RESP AUTH yet)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides, TlsFiles};

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
    fn clients_beyond_loopback_need_the_flag_until_auth_exists() {
        let lo = a("127.0.0.1:1");
        let lan = a("10.0.0.5:6379");
        let err = check(&cfg(false, false, false), lo, lan, a("[::]:9379")).unwrap_err();
        assert!(err.contains("client_addr 10.0.0.5:6379"), "{err}");
        assert!(err.contains("admin_addr [::]:9379"), "{err}");
        assert!(err.contains("neither TLS"), "{err}");
        let err = check(&cfg(true, false, false), lo, lan, lo).unwrap_err();
        assert!(err.contains("no client authentication"), "{err}");
        assert_eq!(check(&cfg(false, true, false), lo, lan, lan), Ok(()));
        // --insecure-peers is not enough for clients.
        assert!(check(&cfg(false, false, true), lo, lan, lo).is_err());
    }
}
