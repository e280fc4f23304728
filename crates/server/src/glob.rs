//! Redis's glob patterns (`stringmatchlen`), for KEYS, SCAN MATCH, PSUBSCRIBE and
//! PUBSUB CHANNELS.

/// Redis glob matching: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, and `\x` escapes.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: (pattern position after it, string position).
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == b'['`; returns whether it
/// matched and the position after the class, or None if the class is unterminated.
fn class_match(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut q = p + 1;
    let negate = pattern.get(q) == Some(&b'^');
    if negate {
        q += 1;
    }
    let mut matched = false;
    let mut first = true;
    while q < pattern.len() && (pattern[q] != b']' || first) {
        first = false;
        let lo = if pattern[q] == b'\\' && q + 1 < pattern.len() {
            q += 1;
            pattern[q]
        } else {
            pattern[q]
        };
        if q + 2 < pattern.len() && pattern[q + 1] == b'-' && pattern[q + 2] != b']' {
            let hi = pattern[q + 2];
            if (lo.min(hi)..=lo.max(hi)).contains(&c) {
                matched = true;
            }
            q += 3;
        } else {
            if lo == c {
                matched = true;
            }
            q += 1;
        }
    }
    if q >= pattern.len() {
        return None;
    }
    Some((matched != negate, q + 1))
}
