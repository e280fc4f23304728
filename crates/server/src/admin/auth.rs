//! Who may use the admin write routes (every method but GET and HEAD).
//!
//! - With an admin credential configured (`admin_token` in the config file, or
//!   `RAFTKV_ADMIN_TOKEN`): every write request must present it, from any address
//!   (loopback included), as `Authorization: Bearer <token>` or as HTTP Basic with user
//!   `admin` and the token as password (`curl -u admin:<token>`).
//! - Without one: writes are served to loopback clients only, as before credentials
//!   existed.
//!
//! The check is behind [`AdminAuthority`], so that RESP's ACL users (issue 14) can later
//! be accepted too — a user with `@admin` presenting its password over HTTP Basic —
//! without touching the routes. Credentials are compared in constant time (SHA-256
//! digests of both sides, so neither the content nor the length leaks through timing),
//! and never logged.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// A credential as presented in an `Authorization` header.
pub enum Credential {
    Bearer(Secret),
    Basic { user: String, password: Secret },
}

/// Decides whether a presented credential carries admin rights. Implementations must
/// compare secrets in constant time.
pub trait AdminAuthority: Send + Sync {
    fn is_admin(&self, presented: &Credential) -> bool;
}

/// The configured admin token (the user name of HTTP Basic for it).
pub const ADMIN_USER: &str = "admin";

/// One shared token: kept as its SHA-256 digest only.
pub struct AdminToken {
    digest: [u8; 32],
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AdminToken {
    pub fn new(token: &Secret) -> AdminToken {
        AdminToken {
            digest: sha256(token.expose().as_bytes()),
        }
    }

    fn matches(&self, candidate: &Secret) -> bool {
        bool::from(sha256(candidate.expose().as_bytes()).ct_eq(&self.digest))
    }
}

impl AdminAuthority for AdminToken {
    fn is_admin(&self, presented: &Credential) -> bool {
        match presented {
            Credential::Bearer(t) => self.matches(t),
            // The user name is no secret; the password is compared whatever it is.
            Credential::Basic { user, password } => {
                let ok = self.matches(password);
                ok && user == ADMIN_USER
            }
        }
    }
}

/// Why a write request was refused: the metric's `reason`, the status and the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub status: StatusCode,
    pub message: &'static str,
}

/// Reads the `Authorization` header: `Ok(None)` without one; an error for one that is
/// not a well-formed Bearer or Basic credential.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, &'static str> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let (scheme, rest) = v
        .split_once(' ')
        .ok_or("the Authorization header has no scheme")?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Credential::Bearer(Secret::new(rest))));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "the Basic credential is not base64")?;
        let text = String::from_utf8(raw).map_err(|_| "the Basic credential is not UTF-8")?;
        let (user, password) = text
            .split_once(':')
            .ok_or("the Basic credential has no user:password")?;
        return Ok(Some(Credential::Basic {
            user: user.to_string(),
            password: Secret::new(password),
        }));
    }
    Err("unsupported Authorization scheme (use Bearer or Basic)")
}

/// The write-route rule (module docs). `client`: where the request came from (`None`
/// if unknown, which counts as not loopback).
pub fn authorize_write(
    authority: Option<&dyn AdminAuthority>,
    headers: &HeaderMap,
    client: Option<SocketAddr>,
) -> Result<(), Refusal> {
    let Some(authority) = authority else {
        return if client.is_some_and(|a| a.ip().is_loopback()) {
            Ok(())
        } else {
            Err(Refusal {
                reason: "not_loopback",
                status: StatusCode::FORBIDDEN,
                message: "write routes are served to loopback clients only while no admin \
                          credential is configured (admin_token, or RAFTKV_ADMIN_TOKEN)\n",
            })
        };
    };
    match credential(headers) {
        Ok(Some(c)) if authority.is_admin(&c) => Ok(()),
        Ok(None) => Err(Refusal {
            reason: "no_credential",
            status: StatusCode::UNAUTHORIZED,
            message: "this route needs the admin credential: Authorization: Bearer <token> \
                      (raftkv reads it from RAFTKV_ADMIN_TOKEN)\n",
        }),
        Ok(Some(_)) | Err(_) => Err(Refusal {
            reason: "bad_credential",
            status: StatusCode::UNAUTHORIZED,
            message: "the admin credential is not valid\n",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "0123456789abcdef-token";

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn basic(user: &str, pass: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b}")
    }

    #[test]
    fn with_a_token_every_write_needs_it_loopback_or_not() {
        let t = AdminToken::new(&Secret::new(TOKEN));
        let auth = Some(&t as &dyn AdminAuthority);
        let lo: Option<SocketAddr> = Some("127.0.0.1:5000".parse().unwrap());
        let far: Option<SocketAddr> = Some("10.1.2.3:5000".parse().unwrap());
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(authorize_write(auth, &headers(Some(&bearer)), far), Ok(()));
        assert_eq!(
            authorize_write(auth, &headers(Some(&basic("admin", TOKEN))), lo),
            Ok(())
        );
        let reason = |h: &HeaderMap, c| authorize_write(auth, h, c).unwrap_err().reason;
        assert_eq!(reason(&headers(None), lo), "no_credential");
        for bad in [
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            "Bearer ".to_string(),
            basic("root", TOKEN),
            basic("admin", "wrong"),
            "Basic !!notbase64".to_string(),
            format!("Token {TOKEN}"),
        ] {
            assert_eq!(reason(&headers(Some(&bad)), lo), "bad_credential", "{bad}");
        }
    }

    #[test]
    fn without_a_token_writes_are_loopback_only() {
        let lo: Option<SocketAddr> = Some("[::1]:5000".parse().unwrap());
        let far: Option<SocketAddr> = Some("192.168.0.9:5000".parse().unwrap());
        assert_eq!(authorize_write(None, &headers(None), lo), Ok(()));
        let r = authorize_write(None, &headers(None), far).unwrap_err();
        assert_eq!(
            (r.reason, r.status),
            ("not_loopback", StatusCode::FORBIDDEN)
        );
        assert!(authorize_write(None, &headers(None), None).is_err());
    }
}
