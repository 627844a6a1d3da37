//! RESP on the lean path: requests parsed in place, replies written straight into one buffer.
//!
//! The cache's hot loop is "parse `GET k`, look k up, write `$3\r\nxxx\r\n`" a few hundred thousand
//! times a second, so nothing here allocates per request: [`parse_request`] records each
//! argument as a byte range of the connection's read buffer (a multibulk request is never copied),
//! and the reply writers append to the connection's output buffer, integers formatted on the
//! stack. Only inline requests (`GET k` typed into telnet) are copied, because their words must
//! be unquoted – [`concord_resp::codec::split_inline`] does that, as redis-cli quotes them.
//!
//! Replies the hot loop never sends (`HELLO`'s map, `INFO`) are built as
//! [`concord_resp::Frame`]s and encoded by `concord_resp::encode` for the connection's protocol.

use bytes::{BufMut, BytesMut};
use std::ops::Range;

/// The longest inline request line, and the longest multibulk header line (Redis's 64 KiB).
const MAX_INLINE: usize = 64 * 1024;
/// The most arguments one request may carry.
const MAX_ARGS: usize = 1024 * 1024;

/// What [`parse_request`] found at the front of the unparsed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A multibulk request ending at byte `end`; its arguments' ranges were pushed.
    Multibulk { end: usize },
    /// An inline request ending at `end`, unquoted into words (empty: a blank line, skip it).
    Inline { end: usize, words: Vec<Vec<u8>> },
    /// Not all of it has arrived.
    Incomplete,
    /// Malformed: answer `-ERR Protocol error: …` and close (the stream cannot be resynchronised).
    Error(String),
}

/// Parse one request from `buf[pos..]`. Multibulk arguments are pushed onto `args` (cleared
/// first) as ranges of `buf`. `max_bulk` bounds one argument (longer: a protocol error, before any
/// of it is buffered).
pub fn parse_request(buf: &[u8], pos: usize, max_bulk: usize, args: &mut Vec<Range<usize>>) -> Parsed {
    args.clear();
    let Some(&first) = buf.get(pos) else { return Parsed::Incomplete };
    if first != b'*' {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - pos > MAX_INLINE {
                Parsed::Error("too big inline request".into())
            } else {
                Parsed::Incomplete
            };
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return match concord_resp::codec::split_inline(line) {
            Some(words) => Parsed::Inline { end: pos + nl + 1, words },
            None => Parsed::Error("unbalanced quotes in request".into()),
        };
    }
    let (count, mut at) = match header(buf, pos + 1) {
        Header::Value(n, next) => (n, next),
        Header::Incomplete => return Parsed::Incomplete,
        Header::Bad => return Parsed::Error("invalid multibulk length".into()),
    };
    if count > MAX_ARGS as i64 {
        return Parsed::Error("invalid multibulk length".into());
    }
    for _ in 0..count.max(0) {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(&other) => return Parsed::Error(format!("expected '$', got '{}'", other as char)),
        }
        let (len, data) = match header(buf, at + 1) {
            Header::Value(n, next) if n >= 0 && (n as usize) <= max_bulk => (n as usize, next),
            Header::Incomplete => return Parsed::Incomplete,
            _ => return Parsed::Error("invalid bulk length".into()),
        };
        if buf.len() < data + len + 2 {
            return Parsed::Incomplete;
        }
        if &buf[data + len..data + len + 2] != b"\r\n" {
            return Parsed::Error("bulk string not terminated by CRLF".into());
        }
        args.push(data..data + len);
        at = data + len + 2;
    }
    Parsed::Multibulk { end: at }
}

enum Header {
    /// The number and where the next line starts.
    Value(i64, usize),
    Incomplete,
    Bad,
}

/// Read the decimal number of a header line starting at `at` (after its type byte).
fn header(buf: &[u8], at: usize) -> Header {
    let rest = &buf[at.min(buf.len())..];
    let Some(cr) = rest.iter().take(MAX_INLINE).position(|&b| b == b'\r') else {
        return if rest.len() > MAX_INLINE { Header::Bad } else { Header::Incomplete };
    };
    if rest.len() < cr + 2 {
        return Header::Incomplete;
    }
    if rest[cr + 1] != b'\n' {
        return Header::Bad;
    }
    match concord_resp::codec::parse_int(&rest[..cr]) {
        Some(n) => Header::Value(n, at + cr + 2),
        None => Header::Bad,
    }
}

/// Which RESP version a connection speaks; only nulls differ among the replies written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Resp2,
    Resp3,
}

impl Version {
    pub fn protocol(self) -> concord_resp::Protocol {
        match self {
            Version::Resp2 => concord_resp::Protocol::Resp2,
            Version::Resp3 => concord_resp::Protocol::Resp3,
        }
    }
}

/// Append `n` in decimal, formatted on the stack.
pub fn put_int(out: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[i..]);
}

pub fn bulk(out: &mut BytesMut, value: &[u8]) {
    out.reserve(value.len() + 16);
    out.put_u8(b'$');
    put_int(out, value.len() as i64);
    out.put_slice(b"\r\n");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

pub fn null(out: &mut BytesMut, version: Version) {
    out.put_slice(match version {
        Version::Resp2 => b"$-1\r\n",
        Version::Resp3 => b"_\r\n",
    });
}

pub fn int(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    put_int(out, n);
    out.put_slice(b"\r\n");
}

pub fn array(out: &mut BytesMut, len: usize) {
    out.put_u8(b'*');
    put_int(out, len as i64);
    out.put_slice(b"\r\n");
}

pub fn simple(out: &mut BytesMut, text: &str) {
    out.put_u8(b'+');
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

/// An error line; `\r` and `\n` inside become spaces so that client input cannot break the stream.
pub fn error(out: &mut BytesMut, text: &str) {
    out.put_u8(b'-');
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.put_slice(b"\r\n");
}

pub fn frame(out: &mut BytesMut, frame: &concord_resp::Frame, version: Version) {
    concord_resp::encode(frame, version.protocol(), out);
}

/// A request as a client library writes it: a multibulk array of bulk strings.
pub fn encode_request(out: &mut BytesMut, args: &[&[u8]]) {
    array(out, args.len());
    for arg in args {
        bulk(out, arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut args = Vec::new();
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            match parse_request(input, pos, 1 << 20, &mut args) {
                Parsed::Multibulk { end } => {
                    out.push(args.iter().map(|r| input[r.clone()].to_vec()).collect());
                    pos = end;
                }
                Parsed::Inline { end, words } => {
                    out.push(words);
                    pos = end;
                }
                Parsed::Incomplete => return out,
                Parsed::Error(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn pipelined_multibulk_and_inline_requests_parse_in_place() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET \"a b\" c\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET";
        let got = parse_all(input);
        assert_eq!(
            got,
            vec![
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"SET".to_vec(), b"a b".to_vec(), b"c".to_vec()],
                vec![b"PING".to_vec()],
            ]
        );
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete_and_bad_lengths_are_errors() {
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut args = Vec::new();
        for cut in 0..input.len() {
            assert_eq!(parse_request(&input[..cut], 0, 100, &mut args), Parsed::Incomplete, "cut {cut}");
        }
        assert_eq!(parse_request(input, 0, 100, &mut args), Parsed::Multibulk { end: input.len() });
        assert!(matches!(parse_request(b"*1\r\n$x\r\n", 0, 100, &mut args), Parsed::Error(_)));
        assert!(matches!(parse_request(b"*1\r\n$200\r\n", 0, 100, &mut args), Parsed::Error(_)));
        assert!(matches!(parse_request(b"*1\r\n$1\r\nabc", 0, 100, &mut args), Parsed::Error(_)));
    }

    #[test]
    fn replies_are_resp() {
        let mut out = BytesMut::new();
        bulk(&mut out, b"xxx");
        int(&mut out, -42);
        int(&mut out, 0);
        null(&mut out, Version::Resp2);
        null(&mut out, Version::Resp3);
        error(&mut out, "ERR a\r\nb");
        assert_eq!(&out[..], b"$3\r\nxxx\r\n:-42\r\n:0\r\n$-1\r\n_\r\n-ERR a  b\r\n");
    }
}
