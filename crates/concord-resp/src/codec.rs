//! Bytes to frames and back: an incremental RESP parser and a RESP2/RESP3 encoder.
//!
//! # Reading requests
//! A client sends a request in one of two forms, exactly as Redis accepts them:
//! * **multibulk**: an array of bulk strings, `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n` – what every client
//!   library sends;
//! * **inline**: one line of space-separated words, `GET k\r\n` – what a person types into telnet.
//!   Words may be quoted: `"a b"`, `"\x41\n"` (hex and C escapes), `'it''s'`... as `redis-cli` does.
//!
//! [`RequestDecoder::decode`] looks at the bytes received so far and returns `Ok(None)` when a
//! request is not complete yet, `Ok(Some(args))` for a whole request (consuming its bytes), or a
//! [`DecodeError`]. After a protocol error ([`DecodeError::Protocol`], Redis's wording:
//! `ERR Protocol error: invalid bulk length`) the stream cannot be resynchronised, so the server
//! replies with the error and closes the connection – as Redis does.
//!
//! # Oversized arguments: refused, and the connection goes on
//! A bulk string longer than [`DecodeLimits::max_arg_bytes`] (the largest key or value the store
//! accepts) but within [`DecodeLimits::max_bulk_bytes`] (the hard cap, Redis's
//! `proto-max-bulk-len`) is well-formed: its header says exactly how many bytes to pass over. The
//! decoder returns [`DecodeError::TooLarge`] as soon as it reads that header – its text is the KV
//! store's own (`ERR value is 2000000 bytes; the limit is 1048576`, what the HTTP door says too) –
//! and then reads and **discards** the rest of that request as it arrives, never buffering it,
//! before it looks for the next request. The stream stays in step, so the server answers the
//! error and goes on. Only a length beyond the hard cap, or one that is not a length, stays a
//! protocol error (also when it turns up later in a request being passed over).
//!
//! # Bounded memory
//! Every length is checked against [`DecodeLimits`] **as soon as its header is read**, before any
//! of its payload is buffered: a `$600000000\r\n` header is refused at once, not after 600 MB have
//! arrived. A header line itself may be at most `max_inline_bytes` long. The parser never
//! allocates in proportion to a *declared* length – only to bytes actually received – so arbitrary
//! input cannot make it allocate unboundedly (a property test checks that it never panics).
//!
//! # Linear in the bytes received
//! A request may arrive one byte at a time. The decoder never scans a byte twice: it remembers how
//! far an incomplete request was scanned (the arguments already whole, where the next one starts,
//! how much of an unfinished line holds no line break) and resumes there, and it remembers how many
//! bytes it needs at least before looking again (a 100 MB bulk string arriving in 64 KiB reads is
//! not looked at 1600 times). A 1 000 000-argument request sent slowly costs what it costs sent at
//! once; [`RequestDecoder::bytes_examined`] counts the work, and a test holds it to the input size.
//!
//! # General frames
//! [`decode_frame`] parses any RESP2/RESP3 value (maps, doubles, verbatim strings…): what a client
//! reads. The server does not need it – clients only send arrays of bulk strings – but the tests
//! use it to read replies, and the property tests check `decode_frame(encode(f)) == f`.
//!
//! # Writing replies
//! [`encode`] writes a [`Frame`] in RESP3, or in RESP2 after [`Frame::downgrade`]. Simple strings
//! and errors cannot contain line breaks; the encoder replaces `\r` and `\n` with spaces (as Redis
//! does for error messages) so that a message built from client input cannot break the stream.

use crate::frame::{format_double, Frame, Protocol};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::ops::Range;

/// Upper bounds on what the parser accepts. The defaults are Redis's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest bulk string the stream may carry (Redis `proto-max-bulk-len`, default 512 MiB): a
    /// longer one is a protocol error, and the connection is closed.
    pub max_bulk_bytes: usize,
    /// Largest argument a request may carry (default: `max_bulk_bytes`, no separate limit). A bulk
    /// string longer than this but within `max_bulk_bytes` is read and discarded, and its request
    /// is refused with [`DecodeError::TooLarge`] (see the module docs). The server sets it from the
    /// KV store's key and value limits.
    pub max_arg_bytes: usize,
    /// Most elements of one array (the number of arguments of one request).
    pub max_array_len: usize,
    /// Longest inline request line, and longest header line (Redis `PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline_bytes: usize,
    /// Deepest nesting of aggregates [`decode_frame`] accepts (requests are never nested).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bulk_bytes: 512 * 1024 * 1024,
            max_arg_bytes: 512 * 1024 * 1024,
            max_array_len: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_depth: 32,
        }
    }
}

impl DecodeLimits {
    /// The limits for a client that has not authenticated yet on a password-protected server:
    /// like Redis, at most 10 arguments of at most 16 KiB, so that an anonymous peer cannot make
    /// the server buffer much.
    pub fn unauthenticated(self) -> DecodeLimits {
        DecodeLimits {
            max_bulk_bytes: self.max_bulk_bytes.min(16 * 1024),
            max_array_len: self.max_array_len.min(10),
            ..self
        }
    }
}

/// A malformed request. Displays as the Redis error reply: `ERR Protocol error: <detail>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ERR Protocol error: {detail}")]
pub struct ProtocolError {
    pub detail: String,
}

fn protocol_error(detail: impl Into<String>) -> ProtocolError {
    ProtocolError { detail: detail.into() }
}

/// Why [`RequestDecoder::decode`] returned no request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream is malformed: reply with it and close the connection.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A request carried an argument of `bytes` bytes, more than `limit` (`max_arg_bytes`). Its
    /// bytes were passed over: reply with it and go on reading. Displays as the KV store's error,
    /// `ERR value is 2000000 bytes; the limit is 1048576`.
    #[error("ERR {}", concord_kv::KvError::ValueTooLarge { value_bytes: *.bytes, max_value_bytes: *.limit })]
    TooLarge { bytes: usize, limit: usize },
}

impl DecodeError {
    /// The protocol error's detail (`invalid bulk length`), if it is one.
    pub fn protocol_detail(&self) -> Option<&str> {
        match self {
            DecodeError::Protocol(e) => Some(&e.detail),
            DecodeError::TooLarge { .. } => None,
        }
    }
}

/// A request being passed over because one of its arguments is too large (see the module docs).
#[derive(Debug)]
struct Skip {
    /// Payload bytes of the current bulk string still to discard.
    data_left: usize,
    /// The current bulk string's trailing CRLF is still to come (after `data_left`).
    crlf_left: bool,
    /// Arguments after the current one still to pass over.
    args_left: usize,
    /// The first oversized argument's length (what the error reports).
    bytes: usize,
}

/// The outcome of scanning a buffer.
enum Scan<T> {
    Complete(T),
    /// More bytes are needed: the buffer must hold at least this many before scanning again.
    Incomplete(usize),
}

/// A scanned request: how many bytes it spans, and its arguments.
enum Scanned {
    /// `*0`, `*-1` or an empty inline line: consumed and ignored (Redis does the same).
    Empty { consumed: usize },
    /// Multibulk: arguments are ranges of the buffer (no copy).
    Multibulk { consumed: usize, args: Vec<Range<usize>> },
    /// Inline: arguments were unquoted, so they are new bytes.
    Inline { consumed: usize, args: Vec<Vec<u8>> },
    /// A multibulk request with an argument longer than `max_arg_bytes`: the bytes before its
    /// payload are `consumed`; the rest of the request is to be passed over ([`Skip`]).
    Oversized { consumed: usize, skip: Skip },
}

/// How far the request at the front of the buffer has been scanned, so that the next read resumes
/// there instead of at byte 0. Offsets are from the front of the buffer, which is not consumed until
/// the request is whole.
#[derive(Debug, Default)]
enum Progress {
    /// Nothing of the request at the front has been scanned.
    #[default]
    Fresh,
    /// An unfinished first line (a multibulk count, or an inline request): its first `scanned` bytes
    /// hold no line break.
    FirstLine { scanned: usize },
    /// A multibulk request of `count` arguments: `args` are whole, the next starts at `pos`, and
    /// its unfinished header line holds no `\r` before `scanned`.
    Arguments { count: usize, pos: usize, scanned: usize, args: Vec<Range<usize>> },
}

/// Incremental parser for client requests (see the module docs).
#[derive(Debug, Default)]
pub struct RequestDecoder {
    limits: DecodeLimits,
    /// Do not scan again until the buffer holds this many bytes.
    need: usize,
    progress: Progress,
    /// Bytes looked at so far, for [`RequestDecoder::bytes_examined`].
    examined: u64,
    /// The request being passed over, if one is.
    skip: Option<Skip>,
}

impl RequestDecoder {
    pub fn new(limits: DecodeLimits) -> RequestDecoder {
        RequestDecoder { limits, ..RequestDecoder::default() }
    }

    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Change the limits (e.g. after the client authenticates). A request half-scanned under the old
    /// limits is scanned again under the new ones.
    pub fn set_limits(&mut self, limits: DecodeLimits) {
        self.limits = limits;
        self.need = 0;
        self.progress = Progress::Fresh;
    }

    /// Whether the decoder is in the middle of passing over an oversized request (its bytes are
    /// being discarded as they arrive).
    pub fn skipping(&self) -> bool {
        self.skip.is_some()
    }

    /// How many bytes the decoder has looked at while searching for line breaks, over its life: the
    /// parser's work, which stays proportional to the bytes received however they are split.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// The next whole request in `buf` (its arguments, consumed from `buf`), `Ok(None)` if `buf`
    /// holds only part of one, or the error it contains (see [`DecodeError`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, DecodeError> {
        loop {
            if let Some(skip) = &mut self.skip {
                if !pass_over(skip, buf, &self.limits)? {
                    return Ok(None);
                }
                self.skip = None;
            }
            if buf.is_empty() || buf.len() < self.need {
                return Ok(None);
            }
            let mut progress = std::mem::take(&mut self.progress);
            let scan = if buf[0] == b'*' {
                scan_multibulk(buf, &self.limits, &mut progress, &mut self.examined)
            } else {
                scan_inline(buf, &self.limits, &mut progress, &mut self.examined)
            }?; // an error leaves `Fresh`: the connection is closed anyway
            let scanned = match scan {
                Scan::Incomplete(need) => {
                    self.need = need.max(buf.len() + 1);
                    self.progress = progress;
                    return Ok(None);
                }
                Scan::Complete(scanned) => scanned,
            };
            self.need = 0;
            match scanned {
                Scanned::Empty { consumed } => buf.advance(consumed),
                Scanned::Multibulk { consumed, args } => {
                    let frame = buf.split_to(consumed).freeze();
                    return Ok(Some(args.into_iter().map(|r| frame.slice(r)).collect()));
                }
                Scanned::Inline { consumed, args } => {
                    buf.advance(consumed);
                    return Ok(Some(args.into_iter().map(Bytes::from).collect()));
                }
                Scanned::Oversized { consumed, skip } => {
                    // Refused from its header: the reply need not wait for the payload, which
                    // the next calls pass over before the next request.
                    buf.advance(consumed);
                    let (bytes, limit) = (skip.bytes, self.limits.max_arg_bytes);
                    self.skip = Some(skip);
                    return Err(DecodeError::TooLarge { bytes, limit });
                }
            }
        }
    }
}

/// Discard what `buf` holds of the request `skip` passes over; `true` once all of it is gone.
/// Headers of the remaining arguments are read as usual (and refused as usual: a malformed one
/// or one beyond the hard cap is a protocol error); payloads are dropped unread.
fn pass_over(skip: &mut Skip, buf: &mut BytesMut, limits: &DecodeLimits) -> Result<bool, ProtocolError> {
    loop {
        let n = skip.data_left.min(buf.len());
        buf.advance(n);
        skip.data_left -= n;
        if skip.data_left > 0 {
            return Ok(false);
        }
        if skip.crlf_left {
            if buf.len() < 2 {
                return Ok(false);
            }
            if &buf[..2] != b"\r\n" {
                return Err(protocol_error("bulk string is not followed by CRLF"));
            }
            buf.advance(2);
            skip.crlf_left = false;
        }
        if skip.args_left == 0 {
            return Ok(true);
        }
        let Some(&type_byte) = buf.first() else { return Ok(false) };
        if type_byte != b'$' {
            return Err(protocol_error(format!("expected '$', got '{}'", shown_byte(type_byte))));
        }
        let mut examined = 0;
        let (end, data_start) =
            match line_at(buf, 0, 0, &mut examined).map_err(|()| protocol_error("invalid bulk length"))? {
                Line::Whole { end, next } => (end, next),
                Line::Partial { .. } if buf.len() > limits.max_inline_bytes => {
                    return Err(protocol_error("too big bulk count string"))
                }
                Line::Partial { .. } => return Ok(false),
            };
        let len = bulk_length(&buf[1..end], limits)?;
        buf.advance(data_start);
        *skip = Skip { data_left: len, crlf_left: true, args_left: skip.args_left - 1, bytes: skip.bytes };
    }
}

/// A bulk string's declared length, within the hard cap.
fn bulk_length(header: &[u8], limits: &DecodeLimits) -> Result<usize, ProtocolError> {
    match parse_int(header) {
        Some(len) if len >= 0 && len as u64 <= limits.max_bulk_bytes as u64 => Ok(len as usize),
        _ => Err(protocol_error("invalid bulk length")),
    }
}

/// Where a search for a line's end stands.
enum Line {
    /// The line's text ends at `end` (its `\r`), and the next line starts at `next`.
    Whole { end: usize, next: usize },
    /// No whole line yet; bytes before `scanned` need not be searched again.
    Partial { scanned: usize },
}

/// The line starting at `start`, searching for its `\r` from `from` (≥ `start`: what an earlier
/// search already passed). A `\r` must be followed by `\n`.
fn line_at(buf: &[u8], start: usize, from: usize, examined: &mut u64) -> Result<Line, ()> {
    let from = from.max(start);
    match buf[from..].iter().position(|&b| b == b'\r') {
        None => {
            *examined += (buf.len() - from) as u64;
            Ok(Line::Partial { scanned: buf.len() })
        }
        Some(offset) => {
            *examined += offset as u64 + 1;
            let cr = from + offset;
            match buf.get(cr + 1) {
                None => Ok(Line::Partial { scanned: cr }),
                Some(b'\n') => Ok(Line::Whole { end: cr, next: cr + 2 }),
                Some(_) => Err(()),
            }
        }
    }
}

fn scan_multibulk(
    buf: &[u8],
    limits: &DecodeLimits,
    progress: &mut Progress,
    examined: &mut u64,
) -> Result<Scan<Scanned>, ProtocolError> {
    if let Progress::Fresh | Progress::FirstLine { .. } = progress {
        let from = match *progress {
            Progress::FirstLine { scanned } => scanned,
            _ => 0,
        };
        let (end, pos) =
            match line_at(buf, 0, from, examined).map_err(|()| protocol_error("invalid multibulk length"))? {
                Line::Whole { end, next } => (end, next),
                Line::Partial { scanned } => {
                    if buf.len() > limits.max_inline_bytes {
                        return Err(protocol_error("too big mbulk count string"));
                    }
                    *progress = Progress::FirstLine { scanned };
                    return Ok(Scan::Incomplete(buf.len() + 1));
                }
            };
        let count = parse_int(&buf[1..end]).ok_or_else(|| protocol_error("invalid multibulk length"))?;
        if count <= 0 {
            *progress = Progress::Fresh;
            return Ok(Scan::Complete(Scanned::Empty { consumed: pos }));
        }
        if count as u64 > limits.max_array_len as u64 {
            return Err(protocol_error("invalid multibulk length"));
        }
        // Grow with the bytes that actually arrived (each argument takes at least 6), never with the
        // declared count alone.
        let args = Vec::with_capacity((count as usize).min(buf.len() / 6 + 1));
        *progress = Progress::Arguments { count: count as usize, pos, scanned: pos, args };
    }
    let Progress::Arguments { count, pos, scanned, args } = progress else {
        unreachable!("the first line was scanned above")
    };
    while args.len() < *count {
        let Some(&type_byte) = buf.get(*pos) else {
            return Ok(Scan::Incomplete(*pos + 1));
        };
        if type_byte != b'$' {
            return Err(protocol_error(format!("expected '$', got '{}'", shown_byte(type_byte))));
        }
        let (end, data_start) = match line_at(buf, *pos, *scanned, examined)
            .map_err(|()| protocol_error("invalid bulk length"))?
        {
            Line::Whole { end, next } => (end, next),
            Line::Partial { scanned: upto } => {
                if buf.len() - *pos > limits.max_inline_bytes {
                    return Err(protocol_error("too big bulk count string"));
                }
                *scanned = upto;
                return Ok(Scan::Incomplete(buf.len() + 1));
            }
        };
        let len = bulk_length(&buf[*pos + 1..end], limits)?;
        if len > limits.max_arg_bytes {
            // Well-formed but too large: pass the rest of the request over (module docs).
            let skip =
                Skip { data_left: len, crlf_left: true, args_left: *count - args.len() - 1, bytes: len };
            *progress = Progress::Fresh;
            return Ok(Scan::Complete(Scanned::Oversized { consumed: data_start, skip }));
        }
        let data_end = data_start + len;
        if buf.len() < data_end + 2 {
            // The header is whole: resume at this argument, without searching its header again.
            *scanned = end;
            return Ok(Scan::Incomplete(data_end + 2));
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Err(protocol_error(format!("bulk string of {len} bytes is not followed by CRLF")));
        }
        args.push(data_start..data_end);
        *pos = data_end + 2;
        *scanned = *pos;
    }
    let (consumed, args) = (*pos, std::mem::take(args));
    *progress = Progress::Fresh;
    Ok(Scan::Complete(Scanned::Multibulk { consumed, args }))
}

fn scan_inline(
    buf: &[u8],
    limits: &DecodeLimits,
    progress: &mut Progress,
    examined: &mut u64,
) -> Result<Scan<Scanned>, ProtocolError> {
    let from = match *progress {
        Progress::FirstLine { scanned } => scanned,
        _ => 0,
    };
    let Some(offset) = buf[from..].iter().position(|&b| b == b'\n') else {
        *examined += (buf.len() - from) as u64;
        if buf.len() > limits.max_inline_bytes {
            return Err(protocol_error("too big inline request"));
        }
        *progress = Progress::FirstLine { scanned: buf.len() };
        return Ok(Scan::Incomplete(buf.len() + 1));
    };
    *examined += offset as u64 + 1;
    *progress = Progress::Fresh;
    let newline = from + offset;
    let mut line = &buf[..newline];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line.len() > limits.max_inline_bytes {
        return Err(protocol_error("too big inline request"));
    }
    let args = split_inline(line).ok_or_else(|| protocol_error("unbalanced quotes in request"))?;
    if args.len() > limits.max_array_len {
        return Err(protocol_error("invalid multibulk length"));
    }
    let consumed = newline + 1;
    Ok(Scan::Complete(if args.is_empty() {
        Scanned::Empty { consumed }
    } else {
        Scanned::Inline { consumed, args }
    }))
}

/// Split an inline request into words like Redis's `sdssplitargs`: words are separated by
/// whitespace; `"..."` understands `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`; `'...'`
/// understands only `\'`. A closing quote must be followed by whitespace or the end. `None`:
/// unbalanced quotes.
pub fn split_inline(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(words);
        }
        let mut word = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match *line.get(i)? {
                        b'\\'
                            if i + 3 < line.len()
                                && line[i + 1] == b'x'
                                && line[i + 2].is_ascii_hexdigit()
                                && line[i + 3].is_ascii_hexdigit() =>
                        {
                            word.push(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                            i += 4;
                        }
                        b'\\' if i + 1 < line.len() => {
                            word.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                other => other,
                            });
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            if i < line.len() && !line[i].is_ascii_whitespace() {
                                return None;
                            }
                            break;
                        }
                        byte => {
                            word.push(byte);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match *line.get(i)? {
                        b'\\' if line.get(i + 1) == Some(&b'\'') => {
                            word.push(b'\'');
                            i += 2;
                        }
                        b'\'' => {
                            i += 1;
                            if i < line.len() && !line[i].is_ascii_whitespace() {
                                return None;
                            }
                            break;
                        }
                        byte => {
                            word.push(byte);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        words.push(word);
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// A byte for an error message: itself if printable, else `\xHH` (a raw `\r` would end the line).
fn shown_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        (byte as char).to_string()
    } else {
        format!("\\x{byte:02x}")
    }
}

/// Parse a decimal `i64` exactly as Redis's `string2ll` does: an optional `-`, then digits with
/// no leading zero (except `0` itself); no `+`, no spaces, no overflow.
pub fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 19 digits fit in a u64; the sign decides the i64 range.
    let magnitude: u64 = digits.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parse one complete RESP2/RESP3 value from the front of `buf`, consuming it; `Ok(None)` if
/// `buf` does not hold a whole value yet. See the module docs.
pub fn decode_frame(buf: &mut BytesMut, limits: &DecodeLimits) -> Result<Option<Frame>, ProtocolError> {
    let mut parser = FrameParser { buf, limits, pos: 0 };
    match parser.frame(0)? {
        None => Ok(None),
        Some(frame) => {
            let consumed = parser.pos;
            buf.advance(consumed);
            Ok(Some(frame))
        }
    }
}

struct FrameParser<'a> {
    buf: &'a [u8],
    limits: &'a DecodeLimits,
    pos: usize,
}

impl FrameParser<'_> {
    /// The text of the line at `pos` (after the type byte), moving past its CRLF.
    fn line(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        // Replies are read by clients and tests, whole: no resuming here (nothing to count either).
        let line = line_at(self.buf, self.pos, self.pos, &mut 0);
        match line.map_err(|()| protocol_error("expected '\\n' after '\\r'"))? {
            Line::Partial { .. } => {
                if self.buf.len() - self.pos > self.limits.max_inline_bytes {
                    return Err(protocol_error("too big line"));
                }
                Ok(None)
            }
            Line::Whole { end, next } => {
                let text = &self.buf[self.pos + 1..end];
                self.pos = next;
                Ok(Some(text))
            }
        }
    }

    fn length(&mut self, what: &str, max: usize) -> Result<Option<Option<usize>>, ProtocolError> {
        let Some(text) = self.line()? else { return Ok(None) };
        match parse_int(text) {
            Some(-1) => Ok(Some(None)),
            Some(n) if n >= 0 && n as u64 <= max as u64 => Ok(Some(Some(n as usize))),
            _ => Err(protocol_error(format!("invalid {what} length"))),
        }
    }

    /// `len` bytes and their CRLF.
    fn payload(&mut self, len: usize) -> Result<Option<Bytes>, ProtocolError> {
        let end = self.pos + len;
        if self.buf.len() < end + 2 {
            return Ok(None);
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return Err(protocol_error(format!("bulk string of {len} bytes is not followed by CRLF")));
        }
        let bytes = Bytes::copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end + 2;
        Ok(Some(bytes))
    }

    fn items(&mut self, count: usize, depth: usize) -> Result<Option<Vec<Frame>>, ProtocolError> {
        let mut items = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let Some(item) = self.frame(depth + 1)? else { return Ok(None) };
            items.push(item);
        }
        Ok(Some(items))
    }

    fn frame(&mut self, depth: usize) -> Result<Option<Frame>, ProtocolError> {
        if depth > self.limits.max_depth {
            return Err(protocol_error(format!("aggregates nested deeper than {}", self.limits.max_depth)));
        }
        let Some(&type_byte) = self.buf.get(self.pos) else { return Ok(None) };
        let max_bulk = self.limits.max_bulk_bytes;
        let max_array = self.limits.max_array_len;
        macro_rules! line {
            () => {
                match self.line()? {
                    Some(text) => text,
                    None => return Ok(None),
                }
            };
        }
        macro_rules! length {
            ($what:expr, $max:expr) => {
                match self.length($what, $max)? {
                    Some(n) => n,
                    None => return Ok(None),
                }
            };
        }
        let frame = match type_byte {
            b'+' => Frame::Simple(utf8(line!(), "simple string")?),
            b'-' => Frame::Error(utf8(line!(), "error")?),
            b':' => Frame::Integer(parse_int(line!()).ok_or_else(|| protocol_error("invalid integer"))?),
            b'_' => {
                if !line!().is_empty() {
                    return Err(protocol_error("invalid null"));
                }
                Frame::Null
            }
            b'#' => match line!() {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(protocol_error("invalid boolean")),
            },
            b',' => Frame::Double(parse_double(line!()).ok_or_else(|| protocol_error("invalid double"))?),
            b'(' => {
                let text = line!();
                let digits = text.strip_prefix(b"-").unwrap_or(text);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(protocol_error("invalid big number"));
                }
                Frame::BigNumber(utf8(text, "big number")?)
            }
            b'$' => match length!("bulk", max_bulk) {
                None => Frame::Null,
                Some(len) => match self.payload(len)? {
                    Some(bytes) => Frame::Bulk(bytes),
                    None => return Ok(None),
                },
            },
            b'!' | b'=' => {
                let Some(len) = length!("bulk", max_bulk) else {
                    return Err(protocol_error("invalid bulk length"));
                };
                let Some(bytes) = self.payload(len)? else { return Ok(None) };
                if type_byte == b'!' {
                    Frame::BulkError(bytes)
                } else {
                    if bytes.len() < 4 || bytes[3] != b':' {
                        return Err(protocol_error("invalid verbatim string"));
                    }
                    Frame::Verbatim { format: [bytes[0], bytes[1], bytes[2]], text: bytes.slice(4..) }
                }
            }
            b'*' | b'~' | b'>' => match length!("multibulk", max_array) {
                None if type_byte == b'*' => Frame::Null,
                None => return Err(protocol_error("invalid multibulk length")),
                Some(count) => {
                    let Some(items) = self.items(count, depth)? else { return Ok(None) };
                    match type_byte {
                        b'*' => Frame::Array(items),
                        b'~' => Frame::Set(items),
                        _ => Frame::Push(items),
                    }
                }
            },
            b'%' => {
                let Some(count) = length!("map", max_array / 2) else {
                    return Err(protocol_error("invalid map length"));
                };
                let Some(items) = self.items(count * 2, depth)? else { return Ok(None) };
                let mut pairs = Vec::with_capacity(count);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                Frame::Map(pairs)
            }
            other => return Err(protocol_error(format!("unknown type byte '{}'", shown_byte(other)))),
        };
        Ok(Some(frame))
    }
}

fn utf8(text: &[u8], what: &str) -> Result<String, ProtocolError> {
    String::from_utf8(text.to_vec()).map_err(|_| protocol_error(format!("{what} is not UTF-8")))
}

fn parse_double(text: &[u8]) -> Option<f64> {
    match text {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        // Rust's parser also accepts "infinity", "NaN"…: only digits, signs, '.' and exponents here.
        _ if !text.iter().all(|&b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => None,
        _ => std::str::from_utf8(text).ok()?.parse().ok().filter(|d: &f64| d.is_finite()),
    }
}

/// Append `frame` to `out` in `protocol` (RESP2 downgrades RESP3-only types, see
/// [`Frame::downgrade`]).
pub fn encode(frame: &Frame, protocol: Protocol, out: &mut BytesMut) {
    let resp3 = protocol == Protocol::Resp3;
    match frame {
        Frame::Simple(text) => line(out, b'+', text.as_bytes()),
        Frame::Error(text) => line(out, b'-', text.as_bytes()),
        Frame::Integer(n) => line(out, b':', n.to_string().as_bytes()),
        Frame::Bulk(bytes) => bulk(out, b'$', bytes),
        Frame::Null if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => aggregate(out, b'*', items, protocol),
        Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
        Frame::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
        Frame::Double(d) => bulk(out, b'$', format_double(*d).as_bytes()),
        Frame::BigNumber(n) if resp3 => line(out, b'(', n.as_bytes()),
        Frame::BigNumber(n) => bulk(out, b'$', n.as_bytes()),
        Frame::BulkError(bytes) if resp3 => bulk(out, b'!', bytes),
        // A simple error is text (the decoder refuses one that is not UTF-8): as in `downgrade`.
        Frame::BulkError(bytes) => line(out, b'-', String::from_utf8_lossy(bytes).as_bytes()),
        Frame::Verbatim { format, text } if resp3 => {
            header(out, b'=', text.len() + 4);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Verbatim { text, .. } => bulk(out, b'$', text),
        Frame::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, protocol, out);
                encode(v, protocol, out);
            }
        }
        Frame::Pairs(pairs) => {
            header(out, b'*', if resp3 { pairs.len() } else { pairs.len() * 2 });
            for (a, b) in pairs {
                if resp3 {
                    header(out, b'*', 2);
                }
                encode(a, protocol, out);
                encode(b, protocol, out);
            }
        }
        Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, protocol),
        Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, protocol),
    }
}

/// `frame` encoded in `protocol`, as a new buffer.
pub fn encode_to_vec(frame: &Frame, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, protocol, &mut out);
    out.to_vec()
}

/// A one-line value; `\r` and `\n` become spaces so the line cannot end early.
fn line(out: &mut BytesMut, type_byte: u8, text: &[u8]) {
    out.put_u8(type_byte);
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, type_byte: u8, len: usize) {
    out.put_u8(type_byte);
    out.put_slice(len.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, type_byte: u8, bytes: &[u8]) {
    header(out, type_byte, bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, type_byte: u8, items: &[Frame], protocol: Protocol) {
    header(out, type_byte, items.len());
    for item in items {
        encode(item, protocol, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, DecodeError> {
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = decoder.decode(&mut buf)? {
            out.push(args);
        }
        Ok(out)
    }

    fn err(input: &[u8]) -> String {
        decode_all(input).unwrap_err().to_string()
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn a_binary_bulk_error_sent_to_a_resp2_client_is_a_readable_simple_error() {
        // Found by the fuzzer (crates/concord-fuzz/regressions/resp/resp2-bulk-error-not-utf8.bin):
        // the raw bytes went into a `-` line, which no decoder that expects text can read.
        let frame = Frame::BulkError(Bytes::from_static(b"ERR \x89"));
        let bytes = encode_to_vec(&frame, Protocol::Resp2);
        assert_eq!(bytes, "-ERR \u{fffd}\r\n".as_bytes());
        let decoded = decode_frame(&mut BytesMut::from(&bytes[..]), &DecodeLimits::default()).unwrap();
        assert_eq!(decoded, Some(frame.downgrade()));
    }

    #[test]
    fn multibulk_and_inline_requests() {
        assert_eq!(decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap(), vec![args(&["GET", "k"])]);
        assert_eq!(decode_all(b"GET k\r\nPING\n").unwrap(), vec![args(&["GET", "k"]), args(&["PING"])]);
        // Empty commands are skipped, as Redis does.
        assert_eq!(decode_all(b"*0\r\n*-1\r\n\r\n  \r\nPING\r\n").unwrap(), vec![args(&["PING"])]);
        // Binary-safe bulk strings.
        assert_eq!(decode_all(b"*1\r\n$4\r\na\r\nb\r\n").unwrap(), vec![args(&["a\r\nb"])]);
    }

    #[test]
    fn inline_quoting_follows_sdssplitargs() {
        assert_eq!(
            split_inline(br#"set "a b" 'c\'d' "\x41\n" x"#).unwrap(),
            vec![b"set".to_vec(), b"a b".to_vec(), b"c'd".to_vec(), b"A\n".to_vec(), b"x".to_vec()]
        );
        assert_eq!(split_inline(br#"set "a"#), None);
        assert_eq!(split_inline(br#"set "a"b"#), None);
        assert_eq!(split_inline(b"set 'a"), None);
        assert_eq!(split_inline(b"   "), Some(vec![]));
    }

    #[test]
    fn protocol_errors_use_redis_wording() {
        assert_eq!(err(b"*1\r\nx\r\n"), "ERR Protocol error: expected '$', got 'x'");
        assert_eq!(err(b"*1\r\n\x01\r\n"), "ERR Protocol error: expected '$', got '\\x01'");
        assert_eq!(err(b"*1\r\n$abc\r\n"), "ERR Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$-5\r\n"), "ERR Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$600000000\r\n"), "ERR Protocol error: invalid bulk length");
        assert_eq!(err(b"*abc\r\n"), "ERR Protocol error: invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n"), "ERR Protocol error: invalid multibulk length");
        assert_eq!(err(b"set a \"b\r\n"), "ERR Protocol error: unbalanced quotes in request");
        assert_eq!(err(&[b'x'; 70_000]), "ERR Protocol error: too big inline request");
        let mut long_count = b"*1\r\n$".to_vec();
        long_count.extend([b'1'; 70_000]);
        assert_eq!(err(&long_count), "ERR Protocol error: too big bulk count string");
        assert_eq!(
            err(b"*1\r\n$4\r\nPINGxx"),
            "ERR Protocol error: bulk string of 4 bytes is not followed by CRLF"
        );
    }

    #[test]
    fn an_oversized_bulk_is_refused_from_its_header_alone() {
        let limits = DecodeLimits { max_bulk_bytes: 10, ..DecodeLimits::default() };
        let mut decoder = RequestDecoder::new(limits);
        // Only the header has arrived: refused before a single payload byte is buffered.
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$11\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap_err().protocol_detail(), Some("invalid bulk length"));
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().len(), 2);
        // Unauthenticated clients get Redis's tighter bounds.
        let mut anonymous = RequestDecoder::new(DecodeLimits::default().unauthenticated());
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            anonymous.decode(&mut buf).unwrap_err().protocol_detail(),
            Some("invalid multibulk length")
        );
    }

    /// `*3 SET k <big>`, then `PING`: the big value split over `pieces`-byte reads.
    fn oversized_then_ping(limits: DecodeLimits, big: usize, piece: usize) -> (Vec<String>, usize) {
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${big}\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'v', big));
        input.extend_from_slice(
            b"\r\n*2\r\n$4\r\nECHO\r\n$20\r\n01234567890123456789\r\n*1\r\n$4\r\nPING\r\n",
        );
        let mut decoder = RequestDecoder::new(limits);
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        let mut most_buffered = 0;
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            most_buffered = most_buffered.max(buf.len());
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(args)) => seen.push(String::from_utf8_lossy(&args[0]).into_owned()),
                    Ok(None) => break,
                    Err(e @ DecodeError::TooLarge { .. }) => seen.push(e.to_string()),
                    // The stream is lost: the server closes the connection.
                    Err(e) => return (vec![e.to_string()], most_buffered),
                }
            }
        }
        (seen, most_buffered)
    }

    #[test]
    fn an_argument_over_the_value_limit_is_passed_over_and_the_stream_goes_on() {
        let limits = DecodeLimits { max_arg_bytes: 16, ..DecodeLimits::default() };
        for piece in [1, 3, 7, 64, 100_000] {
            let (seen, most_buffered) = oversized_then_ping(limits, 5000, piece);
            assert_eq!(
                seen,
                [
                    "ERR value is 5000 bytes; the limit is 16",
                    "ERR value is 20 bytes; the limit is 16",
                    "PING"
                ],
                "read {piece} bytes at a time"
            );
            // Discarded as it arrives: never buffered whole.
            if piece < 5000 {
                assert!(most_buffered < 5000, "{most_buffered} bytes buffered");
            }
        }
        // Beyond the hard cap it stays a protocol error.
        let hard = DecodeLimits { max_arg_bytes: 16, max_bulk_bytes: 1000, ..DecodeLimits::default() };
        let (seen, _) = oversized_then_ping(hard, 5000, 64);
        assert_eq!(seen, ["ERR Protocol error: invalid bulk length"]);
        // Refused from the header; a malformed header later in the request passed over is a
        // protocol error then.
        let mut decoder = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$20\r\n01234567890123456789\r\n$x\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap_err(), DecodeError::TooLarge { bytes: 20, limit: 16 });
        assert!(decoder.skipping());
        assert_eq!(decoder.decode(&mut buf).unwrap_err().protocol_detail(), Some("invalid bulk length"));
        let mut decoder = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(&b"*1\r\n$20\r\n01234567890123456789xx"[..]);
        assert!(decoder.decode(&mut buf).unwrap_err().protocol_detail().is_none());
        assert!(decoder.decode(&mut buf).unwrap_err().protocol_detail().is_some());
    }

    #[test]
    fn requests_split_anywhere_are_reassembled() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        for split in 0..input.len() {
            let mut decoder = RequestDecoder::default();
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = Vec::new();
            while let Some(a) = decoder.decode(&mut buf).unwrap() {
                got.push(a);
            }
            buf.extend_from_slice(&input[split..]);
            while let Some(a) = decoder.decode(&mut buf).unwrap() {
                got.push(a);
            }
            assert_eq!(got, vec![args(&["SET", "k", "hello"]), args(&["PING"])], "split at {split}");
            assert!(buf.is_empty());
        }
    }

    /// Feed `input` in chunks of `chunk` bytes; the requests decoded and the decoder's work.
    fn decode_in_chunks(input: &[u8], chunk: usize) -> (Vec<Vec<Bytes>>, u64) {
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(a) = decoder.decode(&mut buf).unwrap() {
                got.push(a);
            }
        }
        assert!(buf.is_empty());
        (got, decoder.bytes_examined())
    }

    #[test]
    fn parsing_a_request_that_arrives_slowly_is_linear_in_its_bytes() {
        // Issue #23: a 1 000 000-argument request at 266 KiB/s cost 23.5 s of CPU, because every
        // read scanned the request again from byte 0. 20 000 arguments in 7-byte reads: quadratic
        // scanning would examine ~10^9 bytes; resuming examines each byte at most once.
        let n = 20_000;
        let mut input = format!("*{}\r\n$4\r\nMGET\r\n", n + 1).into_bytes();
        for i in 0..n {
            let key = format!("key:{i}");
            input.extend(format!("${}\r\n{key}\r\n", key.len()).into_bytes());
        }
        input.extend(b"PING\r\n");
        for chunk in [1, 7, 4096, input.len()] {
            let (got, examined) = decode_in_chunks(&input, chunk);
            assert_eq!(got.len(), 2, "chunks of {chunk}");
            assert_eq!(got[0].len(), n + 1);
            assert_eq!(got[0][n], Bytes::from(format!("key:{}", n - 1)));
            assert_eq!(got[1], args(&["PING"]));
            assert!(
                examined <= input.len() as u64,
                "chunks of {chunk}: examined {examined} of {} bytes",
                input.len()
            );
        }
        // The same for a long inline line and a long count header, a byte at a time.
        let mut inline = b"SET k ".to_vec();
        inline.extend([b'v'; 60_000]);
        inline.extend(b"\r\n");
        let (got, examined) = decode_in_chunks(&inline, 1);
        assert_eq!(got[0][2].len(), 60_000);
        assert!(examined <= inline.len() as u64, "inline: examined {examined}");
    }

    #[test]
    fn a_big_bulk_is_not_rescanned_for_every_read() {
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$1000\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(decoder.need, 4 + 7 + 1000 + 2);
    }

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1.5",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn resp3_frames_decode() {
        let input = b"%2\r\n+a\r\n#t\r\n$1\r\nb\r\n,1.5\r\n~1\r\n_\r\n=7\r\ntxt:abc\r\n(123\r\n!3\r\nERR\r\n>1\r\n:-1\r\n*-1\r\n$-1\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let limits = DecodeLimits::default();
        let mut frames = Vec::new();
        while let Some(f) = decode_frame(&mut buf, &limits).unwrap() {
            frames.push(f);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Map(vec![
                    (Frame::simple("a"), Frame::Boolean(true)),
                    (Frame::bulk("b"), Frame::Double(1.5))
                ]),
                Frame::Set(vec![Frame::Null]),
                Frame::Verbatim { format: *b"txt", text: "abc".into() },
                Frame::BigNumber("123".into()),
                Frame::BulkError("ERR".into()),
                Frame::Push(vec![Frame::Integer(-1)]),
                Frame::Null,
                Frame::Null,
            ]
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut buf = BytesMut::from(&b"*1\r\n".repeat(100_000)[..]);
        let e = decode_frame(&mut buf, &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.detail, "aggregates nested deeper than 32");
    }

    #[test]
    fn encoding_in_both_protocols() {
        let reply = Frame::Array(vec![Frame::Null, Frame::Boolean(false), Frame::Double(2.5)]);
        assert_eq!(encode_to_vec(&reply, Protocol::Resp3), b"*3\r\n_\r\n#f\r\n,2.5\r\n");
        assert_eq!(encode_to_vec(&reply, Protocol::Resp2), b"*3\r\n$-1\r\n:0\r\n$3\r\n2.5\r\n");
        // A line break in an error message cannot end the line early.
        assert_eq!(encode_to_vec(&Frame::error("ERR a\r\nb"), Protocol::Resp2), b"-ERR a  b\r\n");
        let map = Frame::map_of([("proto", Frame::Integer(3))]);
        assert_eq!(encode_to_vec(&map, Protocol::Resp3), b"%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode_to_vec(&map, Protocol::Resp2), b"*2\r\n$5\r\nproto\r\n:3\r\n");
    }
}
