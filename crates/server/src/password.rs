//! Passwords: how they are hashed, compared and generated.
//!
//! A password is stored as its SHA-256, as Redis stores ACL passwords, so `#<hash>` rules
//! and `ACL LIST` lines are interchangeable with Redis's, and a password never reaches the
//! log, a snapshot, a log line or a peer: the RESP layer hashes it on arrival (`AUTH`,
//! `HELLO AUTH`, `ACL SETUSER >password`) and the config's `requirepass` is hashed when
//! the config is read.
//!
//! Why a fast hash rather than argon2 or scrypt: those make each guess expensive, which
//! protects weak passwords if the hashes leak, but they also make every `AUTH` cost tens of
//! milliseconds of CPU — on a 2-core node a few unauthenticated clients looping on `AUTH`
//! would take it over, and Redis clients authenticate on every new connection. Redis's
//! answer is to use long random passwords (`ACL GENPASS`: 256 bits), for which SHA-256 is
//! as good as any KDF. The digest comes from `ring`, already our TLS provider.

use kv::acl::PasswordHash;

/// The SHA-256 of `password`.
pub fn hash(password: &[u8]) -> PasswordHash {
    let d = ring::digest::digest(&ring::digest::SHA256, password);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `password` hashes to one of `hashes`, in time that does not depend on where
/// the hashes differ (every hash compared in full, no early exit).
pub fn matches_any(password: &[u8], hashes: &[PasswordHash]) -> bool {
    let h = hash(password);
    let mut found = false;
    for stored in hashes {
        let diff = stored
            .iter()
            .zip(h.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        found |= diff == 0;
    }
    found
}

/// `bits` random bits as `ceil(bits / 4)` lowercase hex digits (`ACL GENPASS`), from the
/// operating system's generator.
pub fn random_hex(bits: usize) -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_redis_s() {
        // `ACL SETUSER u >p1` in Redis 7.0 shows this hash.
        assert_eq!(
            kv::acl::hash_hex(&hash(b"p1")),
            "f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"
        );
        assert!(matches_any(b"p1", &[hash(b"x"), hash(b"p1")]));
        assert!(!matches_any(b"p2", &[hash(b"p1")]));
        assert!(!matches_any(b"p1", &[]));
    }

    #[test]
    fn random_hex_has_the_asked_length() {
        assert_eq!(random_hex(5).unwrap().len(), 2);
        assert_eq!(random_hex(256).unwrap().len(), 64);
        assert_ne!(random_hex(256).unwrap(), random_hex(256).unwrap());
    }
}
