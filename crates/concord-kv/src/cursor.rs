//! SCAN cursors that carry their own position: the next key to visit, written as a decimal number.
//!
//! Redis's cursor is an opaque position in its hash table. Concord's keys are ordered, so the
//! position is simply "the next key": a cursor encodes that key, and the server keeps no
//! per-iteration state (any node can continue any scan, and an abandoned scan costs nothing).
//! `SSCAN` and `HSCAN` use the same cursors, over a collection's members (sorted by bytes too).
//!
//! Clients insist that a cursor is a decimal number: redis-py converts it with `int()`, redis-cli
//! with `strtoull`. So the key is written as one big number in decimal: the bytes `0x01 ++ key`
//! read as a big-endian base-256 integer (the leading `0x01` keeps leading zero bytes of the key,
//! and makes every cursor non-zero). `0` means "start" in a request and "done" in a reply.
//!
//! The cost: a cursor is about 2.4 decimal digits per key byte. redis-py handles any length.
//! **`redis-cli --scan` parses the cursor as a 64-bit integer**, so it can only follow cursors of
//! keys up to 7 bytes; typing `SCAN <cursor>` in redis-cli works for any key.

/// Longest cursor accepted, in digits: a 4 KiB key (the default key limit) needs about 9 900.
const MAX_DIGITS: usize = 20_000;

/// The cursor that resumes a scan at `next_key`.
pub fn encode(next_key: &[u8]) -> String {
    // Big-endian base-256 digits, most significant first; repeatedly divide by 10^9.
    let mut number: Vec<u8> = Vec::with_capacity(next_key.len() + 1);
    number.push(1);
    number.extend_from_slice(next_key);
    let mut chunks: Vec<u32> = Vec::new(); // base 10^9, least significant first
    let mut start = 0;
    while start < number.len() {
        let mut remainder: u64 = 0;
        for byte in &mut number[start..] {
            let value = remainder * 256 + u64::from(*byte);
            *byte = (value / 1_000_000_000) as u8;
            remainder = value % 1_000_000_000;
        }
        chunks.push(remainder as u32);
        while start < number.len() && number[start] == 0 {
            start += 1;
        }
    }
    let mut text = chunks.last().map_or_else(|| "0".to_string(), u32::to_string);
    for chunk in chunks.iter().rev().skip(1) {
        text.push_str(&format!("{chunk:09}"));
    }
    text
}

/// Decode a cursor: `Some(None)` for `0` (start), `Some(Some(key))` to resume at `key`, `None` if
/// it is not a cursor this server made.
pub fn decode(cursor: &[u8]) -> Option<Option<Vec<u8>>> {
    if cursor == b"0" {
        return Some(None);
    }
    if cursor.is_empty()
        || cursor.len() > MAX_DIGITS
        || cursor[0] == b'0'
        || !cursor.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    // Base-256 digits, least significant first; multiply by 10^k and add each chunk of k digits.
    let mut number: Vec<u8> = Vec::new();
    for chunk in cursor.chunks(9) {
        let scale = 10u64.pow(chunk.len() as u32);
        let mut carry: u64 = chunk.iter().fold(0, |acc, d| acc * 10 + u64::from(d - b'0'));
        for byte in &mut number {
            let value = u64::from(*byte) * scale + carry;
            *byte = (value % 256) as u8;
            carry = value / 256;
        }
        while carry > 0 {
            number.push((carry % 256) as u8);
            carry /= 256;
        }
    }
    number.reverse();
    match number.split_first() {
        Some((1, key)) => Some(Some(key.to_vec())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_keys_give_small_cursors() {
        assert_eq!(encode(b""), "1");
        assert_eq!(encode(b"a"), (256 + 97).to_string());
        assert_eq!(decode(b"353"), Some(Some(b"a".to_vec())));
        assert_eq!(decode(b"0"), Some(None));
        // A 7-byte key still fits in a u64 (redis-cli --scan).
        assert!(encode(b"\xff\xff\xff\xff\xff\xff\xff").parse::<u64>().is_ok());
    }

    #[test]
    fn invalid_cursors_are_refused() {
        for bad in [&b""[..], b"abc", b"01", b"-1", b"2", b"12x"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_key_round_trips(key in proptest::collection::vec(any::<u8>(), 0..300)) {
            let cursor = encode(&key);
            prop_assert!(cursor.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(decode(cursor.as_bytes()), Some(Some(key)));
        }
    }
}
