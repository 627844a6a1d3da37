//! Property tests of the codec: encode/parse round trips, and arbitrary bytes never panic the
//! parsers nor make them allocate much more than the bytes they were given.

use bytes::{Bytes, BytesMut};
use concord_resp::codec::{decode_frame, encode_to_vec, DecodeLimits, RequestDecoder};
use concord_resp::{Frame, Protocol};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Records the largest single allocation made by this thread while tracking is on.
struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    f();
    TRACKING.with(|t| t.set(false));
    LARGEST.with(Cell::get)
}

/// Frames that survive a RESP3 round trip exactly: no NaN (NaN != NaN), no line breaks in
/// one-line strings (the encoder replaces them).
fn frame() -> impl Strategy<Value = Frame> {
    let line = "[a-zA-Z0-9 :_.-]{0,20}";
    let bytes = proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
    let leaf = prop_oneof![
        line.prop_map(Frame::Simple),
        line.prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes.clone().prop_map(Frame::Bulk),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        prop_oneof![
            any::<f64>().prop_filter("NaN", |d| !d.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ]
        .prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(Frame::BigNumber),
        bytes.clone().prop_map(Frame::BulkError),
        (prop_oneof![Just(*b"txt"), Just(*b"mkd")], bytes)
            .prop_map(|(format, text)| Frame::Verbatim { format, text }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// RESP2 cannot carry a bulk error's line breaks or arbitrary bytes in a simple error.
fn resp2_safe(frame: &Frame) -> bool {
    match frame {
        Frame::BulkError(bytes) => std::str::from_utf8(bytes).is_ok_and(|s| !s.contains(['\r', '\n'])),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => items.iter().all(resp2_safe),
        Frame::Map(pairs) => pairs.iter().all(|(k, v)| resp2_safe(k) && resp2_safe(v)),
        _ => true,
    }
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf, &DecodeLimits::default()).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "bytes left over");
    frame
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn resp3_round_trips(frame in frame()) {
        prop_assert_eq!(decode_one(&encode_to_vec(&frame, Protocol::Resp3)), frame);
    }

    #[test]
    fn resp2_round_trips_to_the_downgraded_frame(frame in frame().prop_filter("resp2-safe", resp2_safe)) {
        prop_assert_eq!(decode_one(&encode_to_vec(&frame, Protocol::Resp2)), frame.downgrade());
    }

    #[test]
    fn a_frame_cut_short_is_incomplete_not_an_error(frame in frame(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_to_vec(&frame, Protocol::Resp3);
        let cut = cut.index(bytes.len());
        let mut buf = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(decode_frame(&mut buf, &DecodeLimits::default()), Ok(None));
        prop_assert_eq!(buf.len(), cut, "an incomplete frame consumes nothing");
    }

    #[test]
    fn requests_round_trip_through_the_request_decoder(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..8),
        chunk in 1usize..64,
    ) {
        let request = Frame::Array(args.iter().map(|a| Frame::Bulk(Bytes::from(a.clone()))).collect());
        let bytes = encode_to_vec(&request, Protocol::Resp2);
        // Fed in small chunks, as a slow network would.
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut decoded = None;
        for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            if let Some(got) = decoder.decode(&mut buf).unwrap() {
                decoded = Some(got);
            }
        }
        let expected: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(decoded, Some(expected));
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_allocate_much(
        input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            // Mostly valid-looking headers with huge declared sizes.
            (proptest::sample::select(vec![b'*', b'$', b'%', b'~', b'>', b'=', b'!']), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(t, n, tail)| {
                    let mut v = vec![t];
                    v.extend(n.to_string().bytes());
                    v.extend(b"\r\n");
                    v.extend(tail);
                    v
                }),
        ],
    ) {
        let limits = DecodeLimits::default();
        let largest = largest_allocation(|| {
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = decode_frame(&mut buf, &limits) {}
            let mut buf = BytesMut::from(&input[..]);
            let mut decoder = RequestDecoder::new(limits);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        });
        // Generous, but far below what a declared length of up to 4 GiB would cost.
        prop_assert!(largest <= 64 * 1024, "largest allocation {} bytes for {} input bytes", largest, input.len());
    }
}

#[test]
fn the_allocation_tracker_sees_allocations() {
    let largest = largest_allocation(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(100_000))));
    assert!(largest >= 100_000, "{largest}");
}
