//! `serve_with_acceptor`: every connection passes through the acceptor first (this is how
//! `concord-server` puts TLS in front of RESP). The test acceptor demands a preamble line before
//! RESP starts – enough to show that the acceptor's stream is the one served, that a refused
//! handshake closes only its own connection, and that a stalled handshake holds up nobody.

use concord_kv::KvLimits;
use concord_resp::{serve_with_acceptor, Acceptor, BoxFuture, MemoryBackend, RespConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(5);
const PREAMBLE: &[u8] = b"OPEN SESAME\n";

/// Reads `PREAMBLE` off the socket, then serves RESP on it; anything else is refused.
struct Preamble {
    refused: Arc<AtomicUsize>,
}

impl Acceptor for Preamble {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    fn accept(
        &self,
        mut socket: TcpStream,
        _peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<(OwnedReadHalf, OwnedWriteHalf)>> {
        let refused = self.refused.clone();
        Box::pin(async move {
            let mut got = vec![0u8; PREAMBLE.len()];
            socket.read_exact(&mut got).await?;
            if got != PREAMBLE {
                refused.fetch_add(1, Ordering::SeqCst);
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "no preamble"));
            }
            Ok(socket.into_split())
        })
    }
}

/// Send `request`, read what comes back; a connection closed (or reset) by the server reads as
/// nothing.
async fn reply(s: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    let _ = s.write_all(request).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("a reply in time").unwrap_or(0);
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn connections_pass_through_the_acceptor() {
    let limits = KvLimits::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_acceptor(
        listener,
        Preamble { refused: refused.clone() },
        Arc::new(MemoryBackend::new(limits.clone())),
        RespConfig::for_kv_limits(&limits),
        async {
            let _ = stopped.await;
        },
    ));

    // A client that never finishes its handshake is opened first: it must not block the others.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(b"OPEN").await.unwrap();

    let mut good = TcpStream::connect(addr).await.unwrap();
    good.write_all(PREAMBLE).await.unwrap();
    assert_eq!(reply(&mut good, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").await, b"+OK\r\n");

    // Plain RESP without the preamble is refused by the acceptor: the connection just closes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    assert_eq!(reply(&mut plain, b"*1\r\n$4\r\nPING\r\n").await, b"", "closed without a reply");
    assert_eq!(refused.load(Ordering::SeqCst), 1);

    assert_eq!(reply(&mut good, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").await, b"$1\r\nv\r\n");
    let _ = stop.send(());
    tokio::time::timeout(WAIT, server).await.expect("serve returns after shutdown").unwrap();
    drop(stalled);
}
