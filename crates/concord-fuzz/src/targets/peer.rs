//! `peer`: the bytes an authenticated peer sends after the handshake – length-prefixed postcard
//! frames – through `wire::read_frame`, as the transport's inbound loop reads them.
//!
//! Properties, beyond no panic: the reader stops at the first bad frame with an error (never reads
//! past the input); a frame that decodes re-encodes to bytes that decode to a frame with the very
//! same encoding (a fixed point: nothing is lost or invented between decode and encode).

use super::{block_on, label};
use crate::driver::Target;
use concord_server::wire::{self, Frame, PublishFrame, MAX_FRAME_BYTES};
use concord_server::RaftMessage;

pub const TARGET: Target = Target {
    name: "peer",
    about: "peer data frames (wire::read_frame) after the handshake",
    seeds,
    dictionary: &[&[0, 0, 0], &[0xff, 0xff, 0xff, 0xff], &[0x80], &[0x7f], &[0, 0, 0, 1]],
    max_len: 4096,
    // A frame's buffer is sized from its length prefix, up to MAX_FRAME_BYTES (64 MiB), once the
    // peer has authenticated: the budget allows that, and no more.
    max_alloc_bytes: MAX_FRAME_BYTES as usize + (1 << 20),
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    let frames = [
        Frame::Raft(RaftMessage::TimeoutNow { term: 7 }),
        Frame::Raft(RaftMessage::TimeoutNow { term: u64::MAX }),
        Frame::Publish(PublishFrame { shard: false, channel: b"news".to_vec(), message: b"hi".to_vec() }),
    ];
    let mut all = Vec::new();
    let mut seeds = Vec::new();
    for frame in &frames {
        let mut one = Vec::new();
        wire::encode_into(frame, &mut one);
        all.extend_from_slice(&one);
        seeds.push(one);
    }
    seeds.push(all);
    // Hand-made frames of the other kinds: variant indexes and small fields.
    for payload in
        [&[1u8, 5, 0, 0][..], &[2, 5, 0], &[3, 0, 0], &[0, 4, 1, 2, 3, 0, 0, 0], &[0, 8, 1, 0, 0, 0]]
    {
        let mut one = (payload.len() as u32).to_be_bytes().to_vec();
        one.extend_from_slice(payload);
        seeds.push(one);
    }
    seeds
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_into(frame, &mut out);
    out
}

fn run(input: &[u8]) -> String {
    block_on(async {
        let mut reader = input;
        let mut buf = Vec::new();
        let mut decoded = 0;
        loop {
            let before = reader.len();
            match wire::read_frame::<_, Frame>(&mut reader, &mut buf, MAX_FRAME_BYTES).await {
                Ok(frame) => {
                    decoded += 1;
                    assert!(reader.len() < before, "a frame was decoded from no bytes");
                    let first = encode(&frame);
                    let mut again_reader = &first[..];
                    let again: Frame = wire::read_frame(&mut again_reader, &mut Vec::new(), MAX_FRAME_BYTES)
                        .await
                        .unwrap_or_else(|e| {
                            panic!("a re-encoded frame does not decode: {e}; frame {frame:?}")
                        });
                    assert!(again_reader.is_empty(), "a re-encoded frame left bytes over");
                    assert_eq!(encode(&again), first, "decode → encode is not a fixed point for {frame:?}");
                }
                Err(e) => {
                    let kind = format!("{e:?}");
                    return label(&format!("{} frames then", decoded.min(4)), &kind);
                }
            }
        }
    })
}
