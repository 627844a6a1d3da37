//! The RESP wire format as a type: a [`Frame`] is one RESP2 or RESP3 value.
//!
//! RESP ("REdis Serialization Protocol") is a line-oriented, length-prefixed format. Every value
//! starts with one type byte and ends with `\r\n`:
//!
//! | byte | type            | example                          | RESP2 equivalent            |
//! |------|-----------------|----------------------------------|-----------------------------|
//! | `+`  | simple string   | `+OK\r\n`                        | same                        |
//! | `-`  | simple error    | `-ERR syntax error\r\n`          | same                        |
//! | `:`  | integer         | `:42\r\n`                        | same                        |
//! | `$`  | bulk string     | `$5\r\nhello\r\n`                | same                        |
//! | `*`  | array           | `*1\r\n$4\r\nPING\r\n`           | same                        |
//! | `_`  | null            | `_\r\n`                          | `$-1\r\n` (null bulk)       |
//! | `#`  | boolean         | `#t\r\n`                         | `:1\r\n` / `:0\r\n`          |
//! | `,`  | double          | `,1.5\r\n`                       | bulk string `$3\r\n1.5\r\n` |
//! | `(`  | big number      | `(3492890328409238509324850943850943825024385\r\n` | bulk string |
//! | `!`  | bulk error      | `!21\r\nSYNTAX invalid syntax\r\n` | simple error              |
//! | `=`  | verbatim string | `=15\r\ntxt:Some string\r\n`     | bulk string of the text     |
//! | `%`  | map             | `%1\r\n+key\r\n:1\r\n`           | flat array of 2n items      |
//! | `~`  | set             | `~2\r\n:1\r\n:2\r\n`             | array                       |
//! | `>`  | push            | `>2\r\n+message\r\n+hi\r\n`      | array                       |
//!
//! A client picks the protocol version with `HELLO 2|3`; a connection starts in RESP2. The server
//! builds every reply as a RESP3 [`Frame`] and the encoder downgrades it for RESP2 clients, the way
//! Redis does ([`Frame::downgrade`]).
//!
//! Attributes (`|`) are not supported: no Concord reply carries them, and clients never send them.

use bytes::Bytes;

/// Which protocol version a connection speaks (chosen with `HELLO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+...` – a short, binary-unsafe status string (no `\r` or `\n`).
    Simple(String),
    /// `-...` – an error; by convention its first word is a code (`ERR`, `WRONGTYPE`, `NOAUTH`…).
    Error(String),
    /// `:...` – a signed 64-bit integer.
    Integer(i64),
    /// `$n` – a binary-safe string.
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 `$-1` (also parsed from RESP2's null array `*-1`).
    Null,
    /// RESP2 `*-1`, RESP3 `_`: a missing array (EXEC whose watched key changed). Only sent; the
    /// decoder reads `*-1` as [`Frame::Null`].
    NullArray,
    /// `*n` – an ordered list of frames.
    Array(Vec<Frame>),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,` – a 64-bit float (`inf`, `-inf` and `nan` allowed).
    Double(f64),
    /// RESP3 `(` – an integer too big for 64 bits, as its decimal digits.
    BigNumber(String),
    /// RESP3 `!n` – a binary-safe error.
    BulkError(Bytes),
    /// RESP3 `=n` – a string with a three-byte format (`txt` or `mkd`), shown as is by clients.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3 `%n` – key/value pairs, in order.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n` – an unordered collection (kept in wire order).
    Set(Vec<Frame>),
    /// Pairs in order: RESP3 an array of two-element arrays, RESP2 one flat array (the shape of
    /// `ZRANGE … WITHSCORES`). Only sent, like [`Frame::NullArray`].
    Pairs(Vec<(Frame, Frame)>),
    /// RESP3 `>n` – out-of-band data (pub/sub); never sent by Concord, parsed for completeness.
    Push(Vec<Frame>),
}

/// The state machine's replies ([`concord_kv::Reply`]) as frames.
impl From<concord_kv::Reply> for Frame {
    fn from(reply: concord_kv::Reply) -> Frame {
        use concord_kv::Reply;
        match reply {
            Reply::Nil => Frame::Null,
            Reply::NilArray => Frame::NullArray,
            Reply::Ok => Frame::ok(),
            Reply::Status(s) => Frame::Simple(s),
            Reply::Int(n) => Frame::Integer(n),
            Reply::Bool(b) => Frame::Boolean(b),
            Reply::Bulk(b) => Frame::Bulk(b.into()),
            Reply::Double(d) => Frame::Double(d),
            Reply::Array(items) => Frame::Array(items.into_iter().map(Frame::from).collect()),
            Reply::Map(pairs) => Frame::Map(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()),
            Reply::Set(items) => Frame::Set(items.into_iter().map(Frame::from).collect()),
            Reply::Pairs(pairs) => {
                Frame::Pairs(pairs.into_iter().map(|(a, b)| (a.into(), b.into())).collect())
            }
            Reply::Error(line) => Frame::Error(line),
        }
    }
}

impl Frame {
    /// About how many bytes this frame takes on the wire: its strings plus a few bytes of framing
    /// per element. What a connection's output-buffer limit counts.
    pub fn size_estimate(&self) -> usize {
        const FRAMING: usize = 16;
        FRAMING
            + match self {
                Frame::Simple(text) | Frame::Error(text) | Frame::BigNumber(text) => text.len(),
                Frame::Bulk(bytes) | Frame::BulkError(bytes) | Frame::Verbatim { text: bytes, .. } => {
                    bytes.len()
                }
                Frame::Integer(_) | Frame::Null | Frame::NullArray | Frame::Boolean(_) | Frame::Double(_) => {
                    0
                }
                Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                    items.iter().map(Frame::size_estimate).sum()
                }
                Frame::Map(pairs) | Frame::Pairs(pairs) => {
                    pairs.iter().map(|(k, v)| k.size_estimate() + v.size_estimate()).sum()
                }
            }
    }

    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    pub fn simple(text: impl Into<String>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error reply; `text` starts with its code, e.g. `"ERR syntax error"`.
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(text.into())
    }

    pub fn bulk(bytes: impl Into<Bytes>) -> Frame {
        Frame::Bulk(bytes.into())
    }

    /// A bulk string, or null when absent.
    pub fn bulk_or_null(bytes: Option<impl Into<Bytes>>) -> Frame {
        bytes.map_or(Frame::Null, |b| Frame::Bulk(b.into()))
    }

    /// A map whose keys are bulk strings (the shape of `HELLO`, `CONFIG GET`, `COMMAND DOCS`).
    pub fn map_of(pairs: impl IntoIterator<Item = (&'static str, Frame)>) -> Frame {
        Frame::Map(pairs.into_iter().map(|(k, v)| (Frame::bulk(k), v)).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }

    /// What a RESP2 client receives instead of this frame – Redis's downgrade rules: null becomes
    /// a null bulk string, a boolean an integer 0/1, a double or big number a bulk string of its
    /// text, a verbatim string a bulk string of its text (without the format), a bulk error a
    /// simple error, a map or pairs a flat array `[k1, v1, k2, v2, …]`, a set or push an array.
    pub fn downgrade(self) -> Frame {
        match self {
            Frame::Boolean(b) => Frame::Integer(i64::from(b)),
            Frame::Double(d) => Frame::Bulk(format_double(d).into()),
            Frame::BigNumber(n) => Frame::Bulk(n.into()),
            Frame::BulkError(e) => Frame::Error(String::from_utf8_lossy(&e).into_owned()),
            Frame::Verbatim { text, .. } => Frame::Bulk(text),
            Frame::Map(pairs) | Frame::Pairs(pairs) => {
                Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k.downgrade(), v.downgrade()]).collect())
            }
            Frame::Set(items) | Frame::Push(items) | Frame::Array(items) => {
                Frame::Array(items.into_iter().map(Frame::downgrade).collect())
            }
            other @ (Frame::Simple(_)
            | Frame::Error(_)
            | Frame::Integer(_)
            | Frame::Bulk(_)
            | Frame::Null
            | Frame::NullArray) => other,
        }
    }
}

/// A double as redis-server 7.0 writes it (C's `%.17g`; `inf`, `-inf`, `nan`), in RESP3 `,`
/// lines and RESP2 bulk strings alike: `1.5`, `3`, `0.10000000000000001`, `1e+300`. Seventeen
/// significant digits always parse back to the same double.
pub use concord_kv::redis::format_double;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrade_follows_redis() {
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Boolean(true)), (Frame::bulk("b"), Frame::Null)]);
        assert_eq!(
            map.downgrade(),
            Frame::Array(vec![Frame::bulk("a"), Frame::Integer(1), Frame::bulk("b"), Frame::Null])
        );
        assert_eq!(Frame::Double(1.5).downgrade(), Frame::bulk("1.5"));
        assert_eq!(Frame::Verbatim { format: *b"txt", text: "hi".into() }.downgrade(), Frame::bulk("hi"));
        assert_eq!(Frame::BulkError("ERR x".into()).downgrade(), Frame::error("ERR x"));
        assert_eq!(Frame::Set(vec![Frame::Integer(1)]).downgrade(), Frame::Array(vec![Frame::Integer(1)]));
    }

    #[test]
    fn pairs_nest_in_resp3_and_flatten_in_resp2() {
        use crate::codec::encode_to_vec;
        let pairs = Frame::from(concord_kv::Reply::scored([(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.5)]));
        assert_eq!(
            encode_to_vec(&pairs, Protocol::Resp2),
            b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n"
        );
        assert_eq!(
            encode_to_vec(&pairs, Protocol::Resp3),
            b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        );
        assert_eq!(
            encode_to_vec(&pairs.clone().downgrade(), Protocol::Resp2),
            encode_to_vec(&pairs, Protocol::Resp2)
        );
        assert_eq!(encode_to_vec(&Frame::from(concord_kv::Reply::Bool(true)), Protocol::Resp2), b":1\r\n");
        assert_eq!(encode_to_vec(&Frame::from(concord_kv::Reply::Bool(false)), Protocol::Resp3), b"#f\r\n");
    }

    #[test]
    fn doubles_print_shortest_and_special_values() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(1e300), "1.0000000000000001e+300");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(f64::NAN), "nan");
        assert_eq!(format_double(3.0), "3");
    }
}
