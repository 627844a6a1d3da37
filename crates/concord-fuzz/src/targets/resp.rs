//! `resp`: the bytes a Redis client sends, through the request decoder, the general frame decoder
//! and the command parser.
//!
//! Properties, beyond no panic:
//! * **Splitting does not matter.** The requests (and the error, if any) are the same whether the
//!   bytes arrive at once or in pieces of 1, 2, 3, 5, 8… bytes – the decoder resumes where it
//!   stopped, and must resume correctly.
//! * **Linear work.** The decoder looks at each received byte a bounded number of times
//!   ([`RequestDecoder::bytes_examined`]), however the bytes are split (issue #23, finding 4).
//! * **Round trip.** Each decoded request, encoded as a RESP array of bulk strings and decoded again,
//!   gives the same arguments; any general frame, encoded and decoded, gives a frame that encodes to
//!   the same bytes.
//! * **Limits only refuse.** A request accepted under the unauthenticated limits is accepted, the
//!   same, under the full ones.

use super::label;
use crate::driver::Target;
use bytes::{Bytes, BytesMut};
use concord_resp::codec::{decode_frame, encode_to_vec, DecodeLimits, RequestDecoder};
use concord_resp::{Frame, Protocol};

pub const TARGET: Target = Target {
    name: "resp",
    about: "RESP request decoder, frame decoder and command parser",
    seeds,
    dictionary: &[
        b"\r\n",
        b"*",
        b"$",
        b"+",
        b"-",
        b":",
        b"_",
        b"#t",
        b",",
        b"(",
        b"!",
        b"=",
        b"%",
        b"~",
        b">",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"\"",
        b"'",
        b"\\x41",
        b"\\",
        b"GET",
        b"SET",
        b"MGET",
        b"MSET",
        b"DEL",
        b"HELLO",
        b"AUTH",
        b"MULTI",
        b"EXEC",
        b"SCAN",
        b"KEYS",
        b"EXPIRE",
        b"PX",
        b"EX",
        b"NX",
        b"XX",
        b"KEEPTTL",
        b"CONSISTENCY",
        b"CLIENT",
        b"CONFIG",
        b"COMMAND",
        b"INFO",
        b"INCRBY",
        b"txt:",
    ],
    max_len: 16 * 1024,
    // The decoder's buffers grow with the bytes received (a 16 KiB input), never with a declared
    // length (`$536870912`).
    max_alloc_bytes: 1 << 20,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    [
        &b"*1\r\n$4\r\nPING\r\n"[..],
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"PING\r\nSET \"a b\" 'it''s' \"\\x41\\n\"\r\nGET k\n",
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n",
        b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
        b"*3\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n",
        b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n,1.5\r\n",
        b"*3\r\n~1\r\n#t\r\n>1\r\n_\r\n=7\r\ntxt:abc\r\n",
        b"!5\r\nERR x\r\n(123456789012345678901234567890\r\n-ERR no\r\n",
        b"*0\r\n*-1\r\n\r\n",
        b"$600000000\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Sizes the bytes are fed in: small and irregular, then larger.
const PIECES: &[usize] = &[1, 2, 3, 5, 8, 13, 64, 1000];

/// Everything a decoder made of a byte stream: the requests, then the error or `None` if the bytes
/// ran out in the middle of (or between) requests.
#[derive(Debug, PartialEq)]
struct Decoded {
    requests: Vec<Vec<Bytes>>,
    error: Option<String>,
    /// Bytes left over (an incomplete request).
    left: usize,
    examined: u64,
}

fn decode_all(input: &[u8], limits: DecodeLimits, pieces: Option<&[usize]>) -> Decoded {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut piece = 0;
    loop {
        let next = match pieces {
            None => input.len(),
            Some(p) => (fed + p[piece % p.len()]).min(input.len()),
        };
        piece += 1;
        buf.extend_from_slice(&input[fed..next]);
        fed = next;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "a request with no arguments was returned");
                    requests.push(args)
                }
                Ok(None) => break,
                Err(e) => {
                    return Decoded {
                        requests,
                        error: Some(e.to_string()),
                        left: 0,
                        examined: decoder.bytes_examined(),
                    }
                }
            }
        }
        if fed == input.len() {
            return Decoded { requests, error: None, left: buf.len(), examined: decoder.bytes_examined() };
        }
    }
}

fn run(input: &[u8]) -> String {
    let limits = DecodeLimits::default();
    let whole = decode_all(input, limits, None);
    let split = decode_all(input, limits, Some(PIECES));
    assert_eq!(
        (&whole.requests, &whole.error, whole.left),
        (&split.requests, &split.error, split.left),
        "the same bytes, split differently, decode differently"
    );
    // Linear: every byte is searched for line ends a bounded number of times.
    for d in [&whole, &split] {
        assert!(
            d.examined <= 2 * input.len() as u64 + 16,
            "the decoder examined {} bytes of a {}-byte input",
            d.examined,
            input.len()
        );
    }
    // Tighter limits refuse more, never accept differently.
    let strict = decode_all(input, limits.unauthenticated(), None);
    assert!(strict.requests.len() <= whole.requests.len());
    assert_eq!(strict.requests[..], whole.requests[..strict.requests.len()], "the limits changed a request");

    // Each request round-trips through the encoder, and the command parser takes it.
    let mut commands = Vec::new();
    for args in &whole.requests {
        let frame = Frame::Array(args.iter().cloned().map(Frame::Bulk).collect());
        let mut bytes = BytesMut::from(&encode_to_vec(&frame, Protocol::Resp2)[..]);
        let again = RequestDecoder::new(limits).decode(&mut bytes).expect("an encoded request decodes");
        assert_eq!(again.as_ref(), Some(args), "a request changed through encode and decode");
        assert!(bytes.is_empty());
        commands.push(match concord_resp::parse(args.clone()) {
            Ok(request) => {
                let shown = format!("{request:?}");
                shown.split(['(', ' ', '{']).next().unwrap_or_default().to_string()
            }
            Err(e) => label("err", &e.0),
        });
    }

    // The general frame decoder on the same bytes.
    let frame_label = frames_round_trip(input, &limits);

    let ending = match &whole.error {
        Some(e) => label("error", e),
        None if whole.left > 0 => "incomplete".to_string(),
        None => "complete".to_string(),
    };
    // The first command only: the combinations of several would make almost every input new.
    let first = commands.first().map_or("-", String::as_str);
    format!("{} requests, {ending}, {first}; {frame_label}", whole.requests.len().min(4))
}

/// Decode frames until the bytes end or an error; each must re-encode to bytes that decode to a
/// frame with the very same encoding (RESP3 and RESP2).
fn frames_round_trip(input: &[u8], limits: &DecodeLimits) -> String {
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    loop {
        match decode_frame(&mut buf, limits) {
            Ok(Some(frame)) => {
                n += 1;
                for protocol in [Protocol::Resp3, Protocol::Resp2] {
                    let first = encode_to_vec(&frame, protocol);
                    let mut bytes = BytesMut::from(&first[..]);
                    let again = decode_frame(&mut bytes, limits)
                        .unwrap_or_else(|e| panic!("an encoded frame does not decode ({e}): {frame:?}"))
                        .unwrap_or_else(|| panic!("an encoded frame is incomplete: {frame:?}"));
                    assert!(bytes.is_empty(), "encoding {frame:?} left bytes over");
                    assert_eq!(
                        encode_to_vec(&again, protocol),
                        first,
                        "{frame:?} encoded, decoded as {again:?}, encodes differently"
                    );
                }
            }
            Ok(None) => return format!("{} frames", n.min(4)),
            Err(e) => return label(&format!("{} frames then", n.min(4)), &e.detail),
        }
    }
}
