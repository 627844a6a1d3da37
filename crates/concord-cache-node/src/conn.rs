//! One client connection to a RESP server (a database node or a peer cache node): send a
//! pipeline of requests, read as many replies; pushes (RESP3 `>`) are handed out separately.

use crate::proto;
use bytes::BytesMut;
use concord_resp::{DecodeLimits, Frame};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long connecting, and each reply, may take before the connection counts as broken.
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Conn {
    pub addr: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    limits: DecodeLimits,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn { addr, stream, buf: BytesMut::with_capacity(4096), limits: DecodeLimits::default() })
    }

    /// Send `requests` in one write and read one reply for each (pushes in between are skipped).
    pub async fn call(&mut self, requests: &[&[&[u8]]]) -> std::io::Result<Vec<Frame>> {
        let mut out = BytesMut::new();
        for request in requests {
            proto::encode_request(&mut out, request);
        }
        self.stream.write_all(&out).await?;
        let mut replies = Vec::with_capacity(requests.len());
        while replies.len() < requests.len() {
            match tokio::time::timeout(IO_TIMEOUT, self.next_frame()).await {
                Ok(Ok(Frame::Push(_))) => continue,
                Ok(Ok(frame)) => replies.push(frame),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply in time")),
            }
        }
        Ok(replies)
    }

    /// Send one request without reading its reply.
    pub async fn send(&mut self, request: &[&[u8]]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        proto::encode_request(&mut out, request);
        self.stream.write_all(&out).await
    }

    /// Send one request and read its reply.
    pub async fn call1(&mut self, request: &[&[u8]]) -> std::io::Result<Frame> {
        Ok(self.call(&[request]).await?.remove(0))
    }

    /// The next frame from the server, waiting as long as it takes (for the push feed).
    pub async fn next_frame(&mut self) -> std::io::Result<Frame> {
        loop {
            match concord_resp::decode_frame(&mut self.buf, &self.limits) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
            }
        }
    }
}

/// The text of a simple or bulk string reply.
pub fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Simple(s) => Some(s.clone()),
        Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// `concord_cluster_id:<id>` from an `INFO server` reply.
pub fn cluster_id_in_info(info: &str) -> Option<String> {
    info.lines().find_map(|line| line.trim_end().strip_prefix("concord_cluster_id:").map(str::to_string))
}
