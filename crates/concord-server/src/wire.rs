//! The peer wire format: length-prefixed postcard frames.
//!
//! ```text
//!   +----------------+-------------------------------+
//!   | length: u32 BE | payload: postcard(Frame)      |   repeated
//!   +----------------+-------------------------------+
//! ```
//!
//! A reader checks the length against a limit *before* allocating, so a peer (or a stray HTTP client
//! on the peer port) cannot make a node allocate gigabytes: "GET " read as a length is ~1.2 GB and is
//! refused with a message that says what probably happened. The handshake uses a much smaller limit
//! than data frames, so garbage is rejected before the peer is even authenticated.
//!
//! Four kinds of data frame flow after the handshake (see [`crate::transport`]):
//! * [`Frame::Raft`] – a Raft message (strong mode);
//! * [`Frame::Dynamo`] – a Dynamo message (eventual mode; a node of the other mode drops it and
//!   says so in its log);
//! * [`Frame::Forward`] – a client request a follower forwards to the leader;
//! * [`Frame::ForwardReply`] – the leader's answer, sent back over the leader's own connection;
//! * [`Frame::Sharded`] – a sharded node's message (its groups' Raft messages, batched per node
//!   pair, and requests forwarded between nodes: `concord_shard::node::NodeMessage`);
//! * [`Frame::Publish`] – a Pub/Sub message published on the sending node, in every mode
//!   ([`crate::front::pubsub`]).
//!
//! postcard writes an enum's variant *index*: a new variant goes at the end, never in between, or
//! a node of the previous version reads every later frame as the wrong kind (a test pins them).

use crate::{KvRequest, KvResponse, RaftMessage};
use concord_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest handshake frame (a few ids and nonces).
pub const MAX_HANDSHAKE_FRAME_BYTES: u32 = 4 * 1024;
/// The largest data frame: an append batch is capped by `max_bytes_per_append`, but one entry is
/// always sent whole, so this must exceed the largest command the store accepts.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// The protocol version spoken in the handshake; bumped on incompatible changes. Version 2: the
/// dialer proves first and refusals are generic (version 1 nodes refuse version 2 `Hello`s and vice
/// versa, each with a clear refusal: the layout of `Hello` and `Reject` is the same in both).
/// Version 3: `Auth` and `Welcome` carry each side's incarnation, inside what the proofs cover, and
/// an acceptor may answer a verified dialer it knows under another incarnation with `Stale`
/// ([`crate::incarnation`]). Versions 2 and 3 refuse each other at `Hello`, before those differ.
pub const WIRE_VERSION: u32 = 3;

/// The one refusal an acceptor sends before the dialer has proved it knows the secret, whatever the
/// reason (see [`crate::transport`]): the same bytes for a wrong cluster id, an unknown node id, a
/// wrong secret, a wrong version or garbage, so that a stranger learns nothing from it.
pub const REFUSAL: &str = "refused";

/// A data frame between authenticated peers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    Raft(RaftMessage),
    Forward {
        id: u64,
        request: KvRequest,
    },
    ForwardReply {
        id: u64,
        response: KvResponse,
    },
    Dynamo(concord_dynamo::DynamoMessage),
    /// Appended last: older variants keep their postcard index.
    Sharded(concord_shard::node::NodeMessage),
    /// A `PUBLISH`/`SPUBLISH` on the sender, for this node's subscribers (any mode). Appended last.
    Publish(PublishFrame),
}

/// A published message as it travels between nodes ([`crate::front::pubsub`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishFrame {
    /// `SPUBLISH` (a shard channel) rather than `PUBLISH`.
    pub shard: bool,
    pub channel: Vec<u8>,
    pub message: Vec<u8>,
}

impl Frame {
    /// The mode whose node sends this frame.
    pub fn mode(&self) -> &'static str {
        match self {
            Frame::Raft(_) | Frame::Forward { .. } | Frame::ForwardReply { .. } => "strong",
            Frame::Dynamo(_) => "eventual",
            Frame::Sharded(_) => "sharded",
            Frame::Publish(_) => "any",
        }
    }
}

/// The handshake (see [`crate::transport`] for the exchange). The variants' order and `Hello`'s
/// and `Reject`'s fields must not change: they are how two versions recognise each other. New
/// variants go at the end.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Handshake {
    /// Dialer → acceptor: who the dialer claims to be and whom it wants, and its nonce.
    Hello { version: u32, cluster_id: String, from: NodeId, to: NodeId, nonce: [u8; 32] },
    /// Acceptor → dialer: the acceptor's nonce. Nothing else – no proof, no ids.
    Challenge { nonce: [u8; 32] },
    /// Dialer → acceptor: the dialer's incarnation, and its proof over the ids, both nonces and
    /// that incarnation.
    Auth { proof: [u8; 32], incarnation: [u8; 16] },
    /// Acceptor → dialer, only after the dialer's proof verified and its incarnation was accepted:
    /// the acceptor's incarnation, and its proof over everything the dialer's covered and that.
    Welcome { proof: [u8; 32], incarnation: [u8; 16] },
    /// Either way: the handshake is over. An acceptor only ever sends [`REFUSAL`] as the reason.
    Reject { reason: String },
    /// Acceptor → dialer, only after the dialer's proof verified: "I know your id under another
    /// incarnation" (a wiped data directory, see [`crate::incarnation`]), with the acceptor's proof
    /// of it, so that the refused node can say so in its log. The handshake is over.
    Stale { proof: [u8; 32] },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "frame of {len} bytes exceeds the limit of {limit} bytes (is something other than a concord node \
         talking to the peer port?)"
    )]
    TooLarge { len: u32, limit: u32 },
    #[error(
        "TLS arrived on a plaintext peer connection: one side uses TLS and the other does not (give every \
         node the same --tls-cert, --tls-key and --tls-ca settings)"
    )]
    UnexpectedTls,
    #[error("frame does not decode ({0}): not a concord peer, or a different concord version")]
    Decode(postcard::Error),
}

/// Encode `value` as one frame into `out` (length prefix included).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let out_taken = std::mem::take(out);
    let mut buf = postcard::to_extend(value, out_taken).expect("frames serialise");
    let len = u32::try_from(buf.len() - start - 4).expect("frame below 4 GiB");
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    *out = buf;
}

/// Write one frame and flush.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, value: &T) -> std::io::Result<()> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Read one frame of at most `limit` bytes; `buf` is reused between calls.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: u32,
) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > limit {
        // A TLS record starts 0x16 0x03 (a handshake: a TLS node dialed a plain one) or 0x15 0x03
        // (an alert: a TLS node refused a plain dialer).
        if len >> 16 == 0x1603 || len >> 16 == 0x1503 {
            return Err(WireError::UnexpectedTls);
        }
        return Err(WireError::TooLarge { len, limit });
    }
    // Grow the buffer with the bytes that arrive, not to the claimed length up front: a peer that
    // claims `limit` bytes and sends none must not make this node allocate them.
    buf.clear();
    let got = (&mut *r).take(u64::from(len)).read_to_end(buf).await?;
    if got < len as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    postcard::from_bytes(buf).map_err(WireError::Decode)
}

/// A frame of the other mode: a misconfigured cluster. Said once per peer in the log (`mine` names
/// this node's mode); the caller drops the frame.
pub(crate) fn wrong_mode(from: NodeId, frame: &Frame, mine: &str) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<u32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    if WARNED.lock().map(|mut w| w.insert(from.0)).unwrap_or(false) {
        let theirs = frame.mode();
        tracing::error!(
            "peer {from} runs the {theirs} mode and this node the {mine} mode: its messages are dropped \
             (every node of a cluster must run the same --mode)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// postcard encodes a variant as its index: the frames of every earlier version keep theirs
    /// (a node that is one version behind reads them), and the sharded frame is the newest.
    #[test]
    fn frame_variants_keep_their_wire_index() {
        let index = |frame: &Frame| postcard::to_allocvec(frame).unwrap()[0];
        let dynamo = concord_dynamo::DynamoMessage::Swim(concord_dynamo::swim::SwimMessage::Ping {
            seq: 1,
            updates: Vec::new(),
        });
        let sharded = Frame::Sharded(concord_shard::node::NodeMessage::Groups(concord_shard::Batch {
            messages: Vec::new(),
        }));
        let request = concord_raft::RaftRequest::Read {
            consistency: concord_raft::ReadConsistency::Stale,
            query: concord_kv::Query::get("k"),
        };
        let response = concord_raft::RaftResponse::NotLeader { hint: None };
        assert_eq!(index(&Frame::Forward { id: 1, request }), 1);
        assert_eq!(index(&Frame::ForwardReply { id: 1, response }), 2);
        assert_eq!(index(&Frame::Dynamo(dynamo)), 3);
        assert_eq!(index(&sharded), 4);
        let publish = Frame::Publish(PublishFrame { shard: false, channel: b"c".to_vec(), message: vec![] });
        assert_eq!(index(&publish), 5);
        assert_eq!(sharded.mode(), "sharded");
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused() {
        let mut bytes = Vec::new();
        encode_into(&Handshake::Welcome { proof: [7; 32], incarnation: [1; 16] }, &mut bytes);
        encode_into(&Handshake::Reject { reason: "no".into() }, &mut bytes);
        let mut r = &bytes[..];
        let mut buf = Vec::new();
        assert!(matches!(read_frame(&mut r, &mut buf, 100).await.unwrap(), Handshake::Welcome { .. }));
        assert!(matches!(read_frame(&mut r, &mut buf, 100).await.unwrap(), Handshake::Reject { .. }));
        assert!(matches!(read_frame::<_, Handshake>(&mut r, &mut buf, 100).await, Err(WireError::Closed)));

        let mut http = &b"GET / HTTP/1.1\r\n\r\n"[..];
        let err =
            read_frame::<_, Handshake>(&mut http, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await.unwrap_err();
        assert!(err.to_string().contains("something other than a concord node"), "{err}");

        let mut client_hello = &[0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01][..];
        let err = read_frame::<_, Handshake>(&mut client_hello, &mut buf, MAX_HANDSHAKE_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("one side uses TLS"), "{err}");

        let mut junk = &[0u8, 0, 0, 3, 0xff, 0xff, 0xff][..];
        let err = read_frame::<_, Handshake>(&mut junk, &mut buf, 100).await.unwrap_err();
        assert!(matches!(err, WireError::Decode(_)), "{err}");
    }

    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_its_bytes_arrive() {
        // 64 MiB claimed, three bytes sent, then the peer hangs up.
        let limit: u32 = 64 << 20;
        let mut short = Vec::from(limit.to_be_bytes());
        short.extend_from_slice(b"abc");
        let mut r = &short[..];
        let mut buf = Vec::new();
        let err = read_frame::<_, Handshake>(&mut r, &mut buf, limit).await.unwrap_err();
        assert!(matches!(&err, WireError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{err}");
        assert!(buf.capacity() < 1 << 20, "allocated {} bytes for 3 received", buf.capacity());
    }
}
