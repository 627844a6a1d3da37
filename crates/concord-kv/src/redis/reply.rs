//! [`Reply`]: a Redis reply as the state machine computes it, before any protocol encodes it.

use serde::{Deserialize, Serialize};

/// One reply, in RESP3's vocabulary; the front door writes it as RESP2 or RESP3 for the
/// connection (a RESP2 client sees a [`Reply::Map`] as a flat array, a [`Reply::Double`] as a
/// bulk string), as redis-server does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// A missing value (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// A missing array (`*-1` in RESP2): e.g. `EXEC` whose watched key changed.
    NilArray,
    /// `+OK`.
    Ok,
    /// A status line, e.g. `+hash` for `TYPE`.
    Status(String),
    Int(i64),
    /// RESP3 `#t`/`#f`, RESP2 `:1`/`:0` (a script's boolean after `redis.setresp(3)`).
    Bool(bool),
    Bulk(Vec<u8>),
    Double(f64),
    Array(Vec<Reply>),
    /// Field-value pairs (`HGETALL`).
    Map(Vec<(Reply, Reply)>),
    /// Members (`SMEMBERS`).
    Set(Vec<Reply>),
    /// Pairs in order (`ZRANGE … WITHSCORES`, `HRANDFIELD … WITHVALUES`): RESP3 nests each pair as
    /// a two-element array, RESP2 flattens them to `[a1, b1, a2, b2, …]`, as redis-server does.
    Pairs(Vec<(Reply, Reply)>),
    /// The whole error line without the `-`, code first: `WRONGTYPE Operation against …`.
    Error(String),
}

/// Doubles compare by bits, so a reply equals itself even when it holds a NaN.
impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        use Reply::*;
        match (self, other) {
            (Nil, Nil) | (NilArray, NilArray) | (Ok, Ok) => true,
            (Status(a), Status(b)) | (Error(a), Error(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Bulk(a), Bulk(b)) => a == b,
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Array(a), Array(b)) | (Set(a), Set(b)) => a == b,
            (Map(a), Map(b)) | (Pairs(a), Pairs(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Reply {}

impl Reply {
    pub fn error(line: impl Into<String>) -> Reply {
        Reply::Error(line.into())
    }

    /// Redis's error for a command on a key of another kind, word for word.
    pub fn wrong_type() -> Reply {
        Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value")
    }

    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// A bulk string, or nil.
    pub fn bulk_or_nil(bytes: Option<Vec<u8>>) -> Reply {
        bytes.map_or(Reply::Nil, Reply::Bulk)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// `(member, score)` pairs as a [`Reply::Pairs`] of bulk strings and doubles.
    pub fn scored(pairs: impl IntoIterator<Item = (Vec<u8>, f64)>) -> Reply {
        Reply::Pairs(pairs.into_iter().map(|(m, s)| (Reply::Bulk(m), Reply::Double(s))).collect())
    }
}

/// A double as redis-server 7.0 prints it (`addReplyDouble`: C's `%.17g`, `inf` / `-inf`), in
/// RESP2 bulk strings and RESP3 `,` lines alike: `1.5`, `3`, `0.10000000000000001`, `1e+20`.
/// (Redis 7.2 moved to the shortest round-tripping form; the differential tests run against
/// Debian's 7.0.)
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value.is_nan() {
        return "nan".into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // 17 significant digits: one before the point, 16 after, then the exponent.
    let scientific = format!("{value:.16e}");
    let (mantissa, exp) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponents are integers");
    if !(-4..17).contains(&exp) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    strip_zeros(&format!("{value:.*}", (16 - exp) as usize)).to_string()
}

/// `%g` drops trailing zeros of the fraction, and the point if nothing is left after it.
fn strip_zeros(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::format_double;

    #[test]
    fn doubles_print_as_printf_g17_does() {
        let cases = [
            (1.5, "1.5"),
            (3.0, "3"),
            (-2.0, "-2"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789.0, "123456789"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (value, text) in cases {
            assert_eq!(format_double(value), text, "{value}");
        }
    }
}
