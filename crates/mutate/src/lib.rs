//! Seeded mutations of valid encodings, shared by the decoders' property tests
//! (`decode_props` in kv, storage, server and seed). The coverage-guided fuzzing of the
//! same decoders is in `fuzz/` (AFL++); these run in the default suite, in seconds.
//!
//! One mutation is one to three edits of a valid input: a bit flip, a truncation, a splice
//! with another valid input, a field set to an extreme, junk inserted, a range deleted or
//! duplicated, or random bytes outright. The two edits that depend on the format — what an
//! "extreme field" and what "junk" look like (a varint, a big-endian length, JSON digits,
//! RESP framing) — come from the caller's [`Format`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::Rng;

/// The format-specific edits of a mutation.
pub trait Format {
    /// Set a length, count or number field of `v` (not empty) to an extreme value.
    fn extreme_field(&self, rng: &mut StdRng, v: &mut Vec<u8>);

    /// Bytes to insert somewhere: by default 1–15 random ones.
    fn junk(&self, rng: &mut StdRng) -> Vec<u8> {
        random_bytes(rng, 1..16)
    }
}

/// Binary formats with varints: a byte replaced by a one-byte or a maximal ten-byte
/// varint (the largest value, or one bit over it), or a 0xff-filled u32.
pub struct Varints;

impl Format for Varints {
    fn extreme_field(&self, rng: &mut StdRng, v: &mut Vec<u8>) {
        let field: &[u8] = match rng.gen_range(0..5) {
            0 => &[0],
            1 => &[0x7f],
            2 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
            3 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            _ => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        };
        splice_at_random(rng, v, 1, field);
    }
}

/// `valid` mutated by one to three edits; `others` (not empty) are splice material.
pub fn mutate(rng: &mut StdRng, valid: &[u8], others: &[Vec<u8>], format: &impl Format) -> Vec<u8> {
    let mut v = valid.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        let len = v.len();
        match rng.gen_range(0..8) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => v.truncate(rng.gen_range(0..=len)),
            2 => {
                let o = &others[rng.gen_range(0..others.len())];
                let from = rng.gen_range(0..=o.len());
                v.truncate(rng.gen_range(0..=len));
                v.extend_from_slice(&o[from..]);
            }
            3 if len > 0 => format.extreme_field(rng, &mut v),
            4 => {
                let at = rng.gen_range(0..=len);
                let junk = format.junk(rng);
                v.splice(at..at, junk);
            }
            5 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len);
                v.drain(a..b);
            }
            6 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                let copy = v[a..b].to_vec();
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, copy);
            }
            _ => v = random_bytes(rng, 0..48),
        }
    }
    v
}

/// Replace up to `width` bytes at a random position of `v` (not empty) by `field`.
pub fn splice_at_random(rng: &mut StdRng, v: &mut Vec<u8>, width: usize, field: &[u8]) {
    let at = rng.gen_range(0..v.len());
    let end = (at + width).min(v.len());
    v.splice(at..end, field.iter().copied());
}

/// Between `len.start` and `len.end - 1` random bytes.
pub fn random_bytes(rng: &mut StdRng, len: std::ops::Range<usize>) -> Vec<u8> {
    let n = rng.gen_range(len);
    (0..n).map(|_| rng.gen()).collect()
}

/// Run `f`; if it panics, fail with `what`, the input that made it panic, and the panic's
/// message (the input is what a regression test needs).
pub fn check(what: &str, input: &[u8], f: impl FnOnce()) {
    if let Err(e) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what}: panicked on input {input:02x?}: {msg}");
    }
}
