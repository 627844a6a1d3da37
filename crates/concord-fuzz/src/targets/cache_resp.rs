//! `cache-resp`: the bytes a client sends a cache node (`concord cache`), through its in-place
//! request parser (`concord_cache_node::proto::RequestParser`) – a second RESP parser, written for
//! the cache's hot loop, so it gets its own target.
//!
//! Properties, beyond no panic:
//! * **Splitting does not matter.** Fed as a connection receives them – all at once, or in pieces
//!   of 1, 2, 3, 5, 8… bytes into a buffer that drops the answered requests after every piece, the
//!   parser resuming an incomplete request where it stopped – the bytes give the same requests
//!   and the same error.
//! * **Ranges stay inside.** Every argument is a range of the bytes buffered, and a request ends
//!   after its last argument.
//! * **Round trip.** Each request, encoded as a RESP array of bulk strings, parses back to the same
//!   arguments and nothing else.

use super::label;
use crate::driver::Target;
use concord_cache_node::proto::{Parsed, RequestParser};

pub const TARGET: Target = Target {
    name: "cache-resp",
    about: "the cache node's in-place RESP request parser",
    seeds,
    dictionary: &[
        b"\r\n", b"*", b"$", b"$-1\r\n", b"*0\r\n", b"\"", b"'", b"\\x41", b"GET", b"SET", b"LGET", b"LSET",
        b"MGET", b"PX",
    ],
    max_len: 16 * 1024,
    // Arguments are ranges of the input: nothing grows with a declared length.
    max_alloc_bytes: 1 << 20,
    run,
};

/// The cache node's bulk limit in this harness (its real one is the item limit).
const MAX_BULK: usize = 4096;

fn seeds() -> Vec<Vec<u8>> {
    [
        &b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..],
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"PING\r\nGET \"a b\" 'it''s'\r\n\r\nGET k\n",
        b"*5\r\n$4\r\nLSET\r\n$1\r\nk\r\n$2\r\n17\r\n$2\r\n42\r\n$1\r\nv\r\n",
        b"*1\r\n$-1\r\n",
        b"*0\r\n*-1\r\n",
        b"$5000\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

const PIECES: &[usize] = &[1, 2, 3, 5, 8, 13, 64, 1000];

/// The requests (each a list of arguments) and the error, if any, of `input` received in `pieces`
/// (all at once for `None`), as a connection does: a buffer that drops what it answered.
fn parse_all(input: &[u8], pieces: Option<&[usize]>) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut requests = Vec::new();
    let mut parser = RequestParser::new(MAX_BULK);
    let mut buf = Vec::new();
    let (mut received, mut piece) = (0, 0);
    loop {
        let next = match pieces {
            None => input.len(),
            Some(p) => (received + p[piece % p.len()]).min(input.len()),
        };
        buf.extend_from_slice(&input[received..next]);
        received = next;
        piece += 1;
        let mut pos = 0;
        loop {
            match parser.parse(&buf, pos) {
                Parsed::Multibulk { end } => {
                    assert!(
                        end > pos && end <= buf.len(),
                        "a request ends at {end}, outside {pos}..{}",
                        buf.len()
                    );
                    for r in parser.args() {
                        assert!(
                            r.start >= pos && r.end <= end && r.start <= r.end,
                            "argument {r:?} outside {pos}..{end}"
                        );
                    }
                    requests.push(parser.args().iter().map(|r| buf[r.clone()].to_vec()).collect());
                    pos = end;
                }
                Parsed::Inline { end, words } => {
                    assert!(end > pos && end <= buf.len());
                    if !words.is_empty() {
                        requests.push(words);
                    }
                    pos = end;
                }
                Parsed::Incomplete => break,
                Parsed::Error(e) => return (requests, Some(e)),
            }
        }
        buf.drain(..pos);
        parser.consumed(pos);
        if received == input.len() {
            return (requests, None);
        }
    }
}

fn run(input: &[u8]) -> String {
    let whole = parse_all(input, None);
    let split = parse_all(input, Some(PIECES));
    assert_eq!(whole, split, "the same bytes, split differently, parse differently");
    for request in &whole.0 {
        let mut encoded = format!("*{}\r\n", request.len()).into_bytes();
        for arg in request {
            encoded.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            encoded.extend_from_slice(arg);
            encoded.extend_from_slice(b"\r\n");
        }
        if request.iter().all(|a| a.len() <= MAX_BULK) {
            let again = parse_all(&encoded, None);
            assert_eq!(again, (vec![request.clone()], None), "a request changed through encode and parse");
        }
    }
    match &whole.1 {
        Some(e) => label("error", e),
        None => format!("requests:{}", whole.0.len().min(3)),
    }
}
