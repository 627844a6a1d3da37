//! A tiny blocking RESP client that keeps every reply's exact bytes.
//!
//! The differential test compares replies byte for byte, so a client library that decodes and
//! re-encodes (and would hide `+OK` vs `$2\r\nOK`, `:1` vs `,1`, a map vs a flat array) is no use
//! here. [`Client::call`] writes one multibulk request and reads exactly one reply: the raw bytes
//! (what is compared) and a parsed [`Value`] (what the order-insensitive and shape-only rules of
//! `compare.rs` look at). RESP2 and RESP3 types are both understood; an attribute (`|`) before a
//! reply is kept in the raw bytes and skipped in the value.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One parsed reply. Scalars keep their payload bytes; aggregates their elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+…`
    Status(Vec<u8>),
    /// `-…` (the line without `-`)
    Error(Vec<u8>),
    /// `:…` (as text: the bytes are what is compared)
    Int(Vec<u8>),
    /// `$…` (`None`: the RESP2 null bulk `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*…` (`None`: the RESP2 null array `*-1`)
    Array(Option<Vec<Value>>),
    /// RESP3 `_`
    Null,
    /// RESP3 `,` (kept as text: the bytes are what is compared)
    Double(Vec<u8>),
    /// RESP3 `#`
    Bool(bool),
    /// RESP3 `(`
    BigNum(Vec<u8>),
    /// RESP3 `=` (format and text together)
    Verbatim(Vec<u8>),
    /// RESP3 `%`: key, value, key, value …
    Map(Vec<Value>),
    /// RESP3 `~`
    Set(Vec<Value>),
    /// RESP3 `>`
    Push(Vec<Value>),
}

impl Value {
    /// The RESP type byte this value came with (what "the same shape" starts from).
    pub fn kind(&self) -> u8 {
        match self {
            Value::Status(_) => b'+',
            Value::Error(_) => b'-',
            Value::Int(_) => b':',
            Value::Bulk(Some(_)) => b'$',
            Value::Bulk(None) => b'0', // a null bulk is its own shape
            Value::Array(Some(_)) => b'*',
            Value::Array(None) => b'1',
            Value::Null => b'_',
            Value::Double(_) => b',',
            Value::Bool(_) => b'#',
            Value::BigNum(_) => b'(',
            Value::Verbatim(_) => b'=',
            Value::Map(_) => b'%',
            Value::Set(_) => b'~',
            Value::Push(_) => b'>',
        }
    }

    /// The elements of an aggregate (a map's keys and values interleaved).
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::Array(Some(v)) | Value::Map(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    /// A bulk or status payload (SCAN cursors, keys in a KEYS reply).
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) | Value::Status(b) | Value::Verbatim(b) => Some(b),
            _ => None,
        }
    }
}

/// One reply: its exact bytes and what they mean.
#[derive(Clone, Debug)]
pub struct Reply {
    pub raw: Vec<u8>,
    pub value: Value,
}

/// A connection to one server.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Replies larger than this are refused (the generator's values are small; a runaway reply is a
/// bug to report, not to buffer).
const MAX_BULK_BYTES: usize = 64 << 20;
/// Aggregates with more elements than this are refused, for the same reason.
const MAX_ELEMENTS: usize = 1 << 20;

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::new(stream), writer })
    }

    /// Send `argv` as one multibulk request and read its reply.
    pub fn call(&mut self, argv: &[Vec<u8>]) -> anyhow::Result<Reply> {
        self.send(argv)?;
        self.read_reply()
    }

    /// Send `argv` as one multibulk request (its reply is read with [`Client::read_reply`]).
    pub fn send(&mut self, argv: &[Vec<u8>]) -> anyhow::Result<()> {
        self.writer.write_all(&encode(argv))?;
        Ok(())
    }

    /// Read one reply (skipping nothing: an out-of-band push would be returned as the reply).
    pub fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut raw = Vec::new();
        let value = read_value(&mut self.reader, &mut raw, 0)?;
        Ok(Reply { raw, value })
    }
}

/// `argv` as a RESP multibulk request.
pub fn encode(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for arg in argv {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `value` in RESP (the inverse of reading it; an attribute read before a reply is not kept in
/// the value and so not written back). Used for results the harness assembles itself, such as a
/// whole SCAN iteration.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let head = |out: &mut Vec<u8>, kind: u8, text: &[u8]| {
        out.push(kind);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    };
    let blob = |out: &mut Vec<u8>, kind: u8, bytes: &[u8]| {
        head(out, kind, bytes.len().to_string().as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    };
    let aggregate = |out: &mut Vec<u8>, kind: u8, n: usize, items: &[Value]| {
        head(out, kind, n.to_string().as_bytes());
        for item in items {
            out.extend_from_slice(&encode_value(item));
        }
    };
    match value {
        Value::Status(s) => head(&mut out, b'+', s),
        Value::Error(s) => head(&mut out, b'-', s),
        Value::Int(s) => head(&mut out, b':', s),
        Value::Bulk(Some(b)) => blob(&mut out, b'$', b),
        Value::Bulk(None) => head(&mut out, b'$', b"-1"),
        Value::Array(Some(items)) => aggregate(&mut out, b'*', items.len(), items),
        Value::Array(None) => head(&mut out, b'*', b"-1"),
        Value::Null => head(&mut out, b'_', b""),
        Value::Double(s) => head(&mut out, b',', s),
        Value::Bool(b) => head(&mut out, b'#', if *b { b"t" } else { b"f" }),
        Value::BigNum(s) => head(&mut out, b'(', s),
        Value::Verbatim(b) => blob(&mut out, b'=', b),
        Value::Map(items) => aggregate(&mut out, b'%', items.len() / 2, items),
        Value::Set(items) => aggregate(&mut out, b'~', items.len(), items),
        Value::Push(items) => aggregate(&mut out, b'>', items.len(), items),
    }
    out
}

/// One line up to CRLF, appended to `raw`; returned without the CRLF.
fn line(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let n = reader.read_until(b'\n', &mut buf).context("read reply")?;
    if n == 0 {
        bail!("the server closed the connection");
    }
    raw.extend_from_slice(&buf);
    if !buf.ends_with(b"\r\n") {
        bail!("reply line without CRLF: {:?}", String::from_utf8_lossy(&buf));
    }
    buf.truncate(buf.len() - 2);
    Ok(buf)
}

fn number(text: &[u8]) -> anyhow::Result<i64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("bad length or integer in reply: {:?}", String::from_utf8_lossy(text)))
}

/// `n` bytes and the CRLF after them.
fn payload(reader: &mut impl BufRead, raw: &mut Vec<u8>, n: i64) -> anyhow::Result<Vec<u8>> {
    if n < 0 || n as usize > MAX_BULK_BYTES {
        bail!("bulk length {n} out of range");
    }
    let mut buf = vec![0u8; n as usize + 2];
    std::io::Read::read_exact(reader, &mut buf).context("read bulk")?;
    raw.extend_from_slice(&buf);
    if !buf.ends_with(b"\r\n") {
        bail!("bulk of {n} bytes not followed by CRLF");
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn read_value(reader: &mut impl BufRead, raw: &mut Vec<u8>, depth: usize) -> anyhow::Result<Value> {
    if depth > 32 {
        bail!("reply nested deeper than 32");
    }
    let head = line(reader, raw)?;
    let Some((&kind, rest)) = head.split_first() else { bail!("empty reply line") };
    let elements = |reader: &mut _, raw: &mut Vec<u8>, n: i64| -> anyhow::Result<Vec<Value>> {
        if n < 0 || n as usize > MAX_ELEMENTS {
            bail!("aggregate length {n} out of range");
        }
        (0..n).map(|_| read_value(reader, raw, depth + 1)).collect()
    };
    Ok(match kind {
        b'+' => Value::Status(rest.to_vec()),
        b'-' => Value::Error(rest.to_vec()),
        b':' => Value::Int(rest.to_vec()),
        b'$' => match number(rest)? {
            -1 => Value::Bulk(None),
            n => Value::Bulk(Some(payload(reader, raw, n)?)),
        },
        b'*' => match number(rest)? {
            -1 => Value::Array(None),
            n => Value::Array(Some(elements(reader, raw, n)?)),
        },
        b'_' => Value::Null,
        b',' => Value::Double(rest.to_vec()),
        b'#' => Value::Bool(rest == b"t"),
        b'(' => Value::BigNum(rest.to_vec()),
        b'=' => Value::Verbatim(payload(reader, raw, number(rest)?)?),
        b'!' => Value::Error(payload(reader, raw, number(rest)?)?),
        b'%' => Value::Map(elements(reader, raw, 2 * number(rest)?)?),
        b'~' => Value::Set(elements(reader, raw, number(rest)?)?),
        b'>' => Value::Push(elements(reader, raw, number(rest)?)?),
        b'|' => {
            // An attribute: read (and keep in `raw`) its map, then the reply it annotates.
            elements(reader, raw, 2 * number(rest)?)?;
            read_value(reader, raw, depth + 1)?
        }
        other => bail!("unknown RESP type byte {:?}", other as char),
    })
}

/// Bytes as a reader sees them in a report: printable ASCII as is, the rest escaped, CRLF shown.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// A command as one line: arguments quoted the way redis-cli accepts them.
pub fn show_argv(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|a| {
            let text = show(a).replace('"', "\\\"");
            if a.is_empty()
                || a.iter().any(|&b| b == b' ' || !(0x21..=0x7e).contains(&b))
                || text.contains('\\')
            {
                format!("\"{text}\"")
            } else {
                text
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Reply {
        let mut raw = Vec::new();
        let value = read_value(&mut &bytes[..], &mut raw, 0).unwrap();
        Reply { raw, value }
    }

    #[test]
    fn a_reply_keeps_its_exact_bytes_and_no_more() {
        let wire = b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n+PONG\r\n";
        let reply = parse(wire);
        assert_eq!(reply.raw, b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n");
        assert_eq!(
            reply.value,
            Value::Array(Some(vec![
                Value::Bulk(Some(b"a".to_vec())),
                Value::Bulk(None),
                Value::Int(b"7".to_vec())
            ]))
        );
    }

    #[test]
    fn resp3_types_parse() {
        let reply = parse(b"%1\r\n$1\r\nf\r\n,1.5\r\n");
        assert_eq!(
            reply.value,
            Value::Map(vec![Value::Bulk(Some(b"f".to_vec())), Value::Double(b"1.5".to_vec())])
        );
        assert_eq!(parse(b"~0\r\n").value, Value::Set(vec![]));
        assert_eq!(parse(b"_\r\n").value, Value::Null);
        assert_eq!(parse(b"#t\r\n").value, Value::Bool(true));
        assert_eq!(parse(b"!3\r\nERR\r\n").value, Value::Error(b"ERR".to_vec()));
        // A bulk containing CRLF is read by length, not by line.
        assert_eq!(parse(b"$4\r\na\r\nb\r\n").value, Value::Bulk(Some(b"a\r\nb".to_vec())));
    }

    #[test]
    fn encoding_a_parsed_reply_gives_its_bytes_back() {
        let wire: &[u8] = b"*4\r\n%1\r\n$1\r\nf\r\n,1.5\r\n~1\r\n:-3\r\n$-1\r\n_\r\n";
        assert_eq!(encode_value(&parse(wire).value), wire);
    }

    #[test]
    fn commands_print_so_redis_cli_can_replay_them() {
        let argv = vec![b"SET".to_vec(), b"k 1".to_vec(), Vec::new(), b"\x00\"".to_vec()];
        assert_eq!(show_argv(&argv), r#"SET "k 1" "" "\x00\"""#);
    }
}
