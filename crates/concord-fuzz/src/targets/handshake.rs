//! `handshake`: a stranger on either end of a peer connection.
//!
//! The first input byte picks the side:
//! * **acceptor** – the input is what a dialer sends to `transport::accept_handshake`; what the
//!   acceptor writes back is collected;
//! * **dialer** – `transport::dial` connects to a loopback listener that answers with the input.
//!
//! The property: without the cluster secret nothing authenticates – every input ends in a
//! refusal, on both sides, and promptly (the stream ends with the input, so the handshake cannot
//! wait for its timeout). Fresh random nonces make every proof single-use, so no stored input can
//! ever be a valid exchange.

use super::block_on;
use crate::driver::Target;
use concord_core::NodeId;
use concord_server::transport::{self, Identity};
use concord_server::wire::{self, Handshake, WIRE_VERSION};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TARGET: Target = Target {
    name: "handshake",
    about: "peer handshake, acceptor and dialer side, against a stranger",
    seeds,
    dictionary: &[b"fuzz-cluster", &[0, 0, 0], &[0, 0, 0, 1], &[0, 0, 0, 2], &[32], &[0xff, 0xff]],
    max_len: 2048,
    max_alloc_bytes: 1 << 20,
    run,
};

const CLUSTER: &str = "fuzz-cluster";
const ME: NodeId = NodeId(1);
const PEER: NodeId = NodeId(2);

fn hello(version: u32, cluster: &str, from: NodeId, to: NodeId) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_into(
        &Handshake::Hello { version, cluster_id: cluster.into(), from, to, nonce: [9; 32] },
        &mut out,
    );
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for side in [0u8, 1] {
        let mut good = vec![side];
        good.extend(hello(WIRE_VERSION, CLUSTER, PEER, ME));
        // A guessed proof (an Auth frame's shape: variant 2, 32 bytes).
        let mut auth = vec![2u8];
        auth.extend([0x5a; 32]);
        good.extend((auth.len() as u32).to_be_bytes());
        good.extend(auth);
        seeds.push(good);
        let mut other = vec![side];
        other.extend(hello(WIRE_VERSION, "other-cluster", NodeId(3), ME));
        seeds.push(other);
        let mut old = vec![side];
        old.extend(hello(1, CLUSTER, PEER, ME));
        seeds.push(old);
    }
    seeds.push(b"\0GET / HTTP/1.1\r\n\r\n".to_vec());
    seeds.push(vec![1, 0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    seeds
}

fn identity(peer_addr: SocketAddr) -> Identity {
    Identity::new(ME, CLUSTER.into(), b"the real secret".to_vec(), BTreeMap::from([(PEER, peer_addr)]))
}

fn run(input: &[u8]) -> String {
    let Some((&side, bytes)) = input.split_first() else { return "empty".into() };
    if side % 2 == 0 {
        accept(bytes)
    } else {
        dial(bytes)
    }
}

fn accept(bytes: &[u8]) -> String {
    block_on(async {
        let mut written = Vec::new();
        let mut stream = tokio::io::join(bytes, &mut written);
        let remote: SocketAddr = "127.0.0.1:9".parse().expect("an address");
        let id = identity(remote);
        let outcome = transport::accept_handshake(&id, &mut stream, remote).await;
        assert!(outcome.is_err(), "the acceptor authenticated a stranger ({} bytes)", bytes.len());
        format!("accept: refused, answered {} bytes", written.len().min(100) / 10 * 10)
    })
}

fn dial(bytes: &[u8]) -> String {
    block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let answer = bytes.to_vec();
        // The fake acceptor: reads what the dialer says while answering with the input, then closes.
        let acceptor = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let (mut r, mut w) = tcp.split();
            let read = async {
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink).await;
                sink.len()
            };
            let write = async {
                let _ = w.write_all(&answer).await;
                let _ = w.shutdown().await;
            };
            tokio::join!(read, write);
        });
        let id = identity(addr);
        let outcome = transport::dial(&id, PEER, addr).await;
        assert!(outcome.is_err(), "the dialer accepted a stranger as {PEER} ({} bytes)", bytes.len());
        drop(outcome);
        // (What the dialer managed to say is not part of the label: when the dialer closes with
        // unread bytes the kernel resets the connection, and how much was heard varies.)
        acceptor.await.expect("the fake acceptor");
        format!("dial: refused, {} bytes answered", bytes.len().min(100) / 10 * 10)
    })
}
