//! RESP on the lean path: requests parsed in place, replies written straight into one buffer.
//!
//! The cache's hot loop is "parse `GET k`, look k up, write `$3\r\nxxx\r\n`" a few hundred thousand
//! times a second, so nothing here allocates per request: [`RequestParser`] records each
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

/// What [`RequestParser::parse`] found at the front of the unparsed bytes.
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

/// A connection's request parser: [`parse`](Self::parse) finds the next request in the read
/// buffer, recording its arguments as ranges of the buffer ([`args`](Self::args)).
///
/// **A request that has not all arrived is not parsed again from its start.** The parser
/// remembers how far it got (the arguments already found, or how much of an inline line was
/// searched for its end) and resumes there when more bytes arrive. Without that, a request of a
/// million small arguments trickling in 16 KiB at a time would be re-parsed after every read:
/// quadratic work for a linear amount of input, which a client could use to stall the node.
///
/// The contract with the caller: between two calls the buffer only grows at its end, except that
/// the caller may drop bytes before the request being parsed, telling the parser with
/// [`consumed`](Self::consumed).
#[derive(Debug)]
pub struct RequestParser {
    max_bulk: usize,
    args: Vec<Range<usize>>,
    partial: Option<Partial>,
}

/// How far an incomplete request got.
#[derive(Clone, Copy, Debug)]
enum Partial {
    /// A multibulk request starting at `start`: its next argument's header is at `at`, and
    /// `left` arguments are still to come (the ones before are in `args`).
    Multibulk { start: usize, at: usize, left: i64 },
    /// An inline request starting at `start` whose first `searched` bytes hold no newline.
    Inline { start: usize, searched: usize },
}

impl Partial {
    fn start(self) -> usize {
        match self {
            Partial::Multibulk { start, .. } | Partial::Inline { start, .. } => start,
        }
    }
}

impl RequestParser {
    /// A parser whose arguments may each be up to `max_bulk` bytes (longer: a protocol error,
    /// before any of it is buffered).
    pub fn new(max_bulk: usize) -> RequestParser {
        RequestParser { max_bulk, args: Vec::new(), partial: None }
    }

    /// The arguments of the multibulk request the last [`parse`](Self::parse) returned.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// The caller dropped the first `n` bytes of its buffer (all before the request in
    /// progress): shift what the parser remembers to match.
    pub fn consumed(&mut self, n: usize) {
        match &mut self.partial {
            Some(Partial::Multibulk { start, at, .. }) => {
                *start -= n;
                *at -= n;
                for range in &mut self.args {
                    *range = range.start - n..range.end - n;
                }
            }
            Some(Partial::Inline { start, .. }) => *start -= n,
            None => {}
        }
    }

    /// Parse one request from `buf[pos..]`, resuming where the last call stopped if that call
    /// found the request at `pos` incomplete.
    pub fn parse(&mut self, buf: &[u8], pos: usize) -> Parsed {
        let resume = self.partial.take().filter(|p| p.start() == pos);
        if !matches!(resume, Some(Partial::Multibulk { .. })) {
            self.args.clear();
        }
        let Some(&first) = buf.get(pos) else { return Parsed::Incomplete };
        if first != b'*' {
            let searched = match resume {
                Some(Partial::Inline { searched, .. }) => searched,
                _ => 0,
            };
            return self.inline(buf, pos, searched);
        }
        let (mut at, mut left) = match resume {
            Some(Partial::Multibulk { at, left, .. }) => (at, left),
            _ => match header(buf, pos + 1) {
                Header::Value(n, _) if n > MAX_ARGS as i64 => {
                    return Parsed::Error("invalid multibulk length".into())
                }
                Header::Value(n, next) => (next, n.max(0)),
                Header::Incomplete => return Parsed::Incomplete,
                Header::Bad => return Parsed::Error("invalid multibulk length".into()),
            },
        };
        while left > 0 {
            match self.argument(buf, at) {
                Ok(Some(next)) => {
                    at = next;
                    left -= 1;
                }
                Ok(None) => {
                    self.partial = Some(Partial::Multibulk { start: pos, at, left });
                    return Parsed::Incomplete;
                }
                Err(e) => return Parsed::Error(e),
            }
        }
        Parsed::Multibulk { end: at }
    }

    /// One `$len\r\n…\r\n` argument at `at`: pushed, and where the next one starts; `None`
    /// if it has not all arrived.
    fn argument(&mut self, buf: &[u8], at: usize) -> Result<Option<usize>, String> {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => return Err(format!("expected '$', got '{}'", other as char)),
        }
        let (len, data) = match header(buf, at + 1) {
            Header::Value(n, next) if n >= 0 && (n as usize) <= self.max_bulk => (n as usize, next),
            Header::Incomplete => return Ok(None),
            _ => return Err("invalid bulk length".into()),
        };
        if buf.len() < data + len + 2 {
            return Ok(None);
        }
        if &buf[data + len..data + len + 2] != b"\r\n" {
            return Err("bulk string not terminated by CRLF".into());
        }
        self.args.push(data..data + len);
        Ok(Some(data + len + 2))
    }

    /// An inline request (`GET k` typed into telnet) at `pos`, whose first `searched` bytes
    /// were already searched for the line's end.
    fn inline(&mut self, buf: &[u8], pos: usize, searched: usize) -> Parsed {
        let Some(nl) = buf[pos + searched..].iter().position(|&b| b == b'\n').map(|i| searched + i) else {
            if buf.len() - pos > MAX_INLINE {
                return Parsed::Error("too big inline request".into());
            }
            self.partial = Some(Partial::Inline { start: pos, searched: buf.len() - pos });
            return Parsed::Incomplete;
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match concord_resp::codec::split_inline(line) {
            Some(words) => Parsed::Inline { end: pos + nl + 1, words },
            None => Parsed::Error("unbalanced quotes in request".into()),
        }
    }
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
        let mut parser = RequestParser::new(1 << 20);
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            match parser.parse(input, pos) {
                Parsed::Multibulk { end } => {
                    out.push(parser.args().iter().map(|r| input[r.clone()].to_vec()).collect());
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

    /// `input` received `piece` bytes at a time into a buffer that, as a connection's, drops
    /// the requests it has answered after every read.
    fn parse_trickled(input: &[u8], piece: usize) -> Vec<Vec<Vec<u8>>> {
        let mut parser = RequestParser::new(1 << 20);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            let mut pos = 0;
            loop {
                match parser.parse(&buf, pos) {
                    Parsed::Multibulk { end } => {
                        out.push(parser.args().iter().map(|r| buf[r.clone()].to_vec()).collect());
                        pos = end;
                    }
                    Parsed::Inline { end, words } => {
                        out.push(words);
                        pos = end;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Error(e) => panic!("{e}"),
                }
            }
            buf.drain(..pos);
            parser.consumed(pos);
        }
        out
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
    fn a_request_arriving_in_pieces_resumes_where_it_stopped() {
        // A request of many arguments between ordinary ones, inline lines among them: received
        // in pieces of any size, with the answered requests dropped from the buffer after every
        // read, it parses to the same requests as all at once.
        let mut input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n".to_vec();
        let many = 5_000;
        input.extend_from_slice(format!("*{}\r\n$4\r\nMSET\r\n", many + 1).as_bytes());
        for i in 0..many {
            let arg = format!("v{i}");
            input.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        input.extend_from_slice(b"GET \"a b\"\r\n*1\r\n$4\r\nPING\r\n");
        let whole = parse_all(&input);
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[2].len(), many + 1);
        assert_eq!(whole[2][many], format!("v{}", many - 1).into_bytes());
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(parse_trickled(&input, piece), whole, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete_and_bad_lengths_are_errors() {
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        for cut in 0..input.len() {
            assert_eq!(RequestParser::new(100).parse(&input[..cut], 0), Parsed::Incomplete, "cut {cut}");
        }
        let mut parser = RequestParser::new(100);
        assert_eq!(parser.parse(input, 0), Parsed::Multibulk { end: input.len() });
        assert!(matches!(parser.parse(b"*1\r\n$x\r\n", 0), Parsed::Error(_)));
        assert!(matches!(parser.parse(b"*1\r\n$200\r\n", 0), Parsed::Error(_)));
        assert!(matches!(parser.parse(b"*1\r\n$1\r\nabc", 0), Parsed::Error(_)));
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
