//! Redis glob patterns, for `KEYS` and `SCAN … MATCH`.
//!
//! | pattern  | matches                                                        |
//! |----------|----------------------------------------------------------------|
//! | `*`      | any run of bytes, including none                               |
//! | `?`      | exactly one byte                                               |
//! | `[abc]`  | one of `a`, `b`, `c`                                           |
//! | `[^a]`   | any one byte except `a`                                        |
//! | `[a-z]`  | one byte in the range (a reversed range `[z-a]` works too)     |
//! | `\x`     | the byte `x` itself (also inside brackets)                     |
//!
//! Matching is bytewise and case-sensitive, like Redis's `stringmatchlen`. An unterminated `[`
//! class ends at the end of the pattern, as in Redis.
//!
//! The matcher backtracks only to the most recent `*`, so it runs in O(pattern × key) time: a
//! hostile pattern like `*a*a*a*a*b` cannot make it exponential.

/// Does `key` match `pattern`?
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last `*`: the pattern position after it, and the key position it
    // currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                _ => {
                    if let Some(next) = match_one(pattern, p, key[k]) {
                        p = next;
                        k += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((after_star, swallowed)) => {
                p = after_star;
                k = swallowed + 1;
                star = Some((after_star, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// If the single-byte element of `pattern` at `p` (`?`, a class, an escape or a literal) matches
/// `byte`, the position after that element.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut found = false;
            loop {
                match pattern.get(i) {
                    // Unterminated class: it ends with the pattern (Redis does the same).
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < pattern.len() => {
                        found |= pattern[i + 1] == byte;
                        i += 2;
                    }
                    Some(&low) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                        let high = pattern[i + 2];
                        let (low, high) = if low <= high { (low, high) } else { (high, low) };
                        found |= (low..=high).contains(&byte);
                        i += 3;
                    }
                    Some(&literal) => {
                        found |= literal == byte;
                        i += 1;
                    }
                }
            }
            (found != negate).then_some(i)
        }
        literal => (literal == byte).then_some(p + 1),
    }
}

/// The bytes every key matching `pattern` starts with: the pattern up to its first special
/// character (`*`, `?`, `[`, `\`). A scan only needs to visit keys with this prefix.
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern.iter().position(|b| b"*?[\\".contains(b)).unwrap_or(pattern.len());
    &pattern[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        matches(pattern.as_bytes(), key.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h*llo", "hllo"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*a", "bbba"));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges work as in Redis");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m(r"h\*llo", "h*llo"));
        assert!(!m(r"h\*llo", "hello"));
        assert!(m(r"[\]]", "]"));
        assert!(m("[abc", "a"), "an unterminated class ends at the end of the pattern");
    }

    #[test]
    fn many_stars_stay_fast() {
        let key = "a".repeat(10_000);
        assert!(!m(&"*a".repeat(50), &(key.clone() + "b")));
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &key));
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"a?c"), b"a");
        assert_eq!(literal_prefix(b"*"), b"");
        assert_eq!(literal_prefix(b"plain"), b"plain");
    }
}
