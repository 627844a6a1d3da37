//! The HTTP client of the node's own API: what `concord member` and `concord join` send to a
//! cluster, what the dashboard asks the other members, and what the tests call.
//!
//! It is hyper's connection-level HTTP/1.1 client (`hyper::client::conn::http1`) – the request is
//! written and the answer parsed by hyper, not by hand. Each call opens one connection, plain TCP
//! or TLS through [`crate::tls`] (the same rustls setup the nodes use), sends one request with
//! `Connection: close`, and reads the whole answer. There is no pool: these calls are rare
//! (administration, a dashboard refresh), and a fresh connection per call means a killed node shows
//! up as an error at once, never as a stale pooled socket. Every call has a hard deadline, so a
//! node that stops answering is an error, never a hung command or test.
//!
//! A `POST` with a body is sent as `Content-Type: application/json` unless the caller says
//! otherwise: every POST body of the API is JSON, and the node refuses other types
//! ([`crate::auth`]).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// An HTTP answer: status, headers (names in lower case) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first value of header `name` (lower case), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("answer is not JSON ({e}): {}", self.text()))
    }
}

/// `key` as one URL path segment (`/v1/kv/{segment}`): every byte but RFC 3986's unreserved ones
/// percent-encoded, so a key holding `/`, `?`, `#`, `%` or a space reaches the server whole.
pub fn path_segment(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP request with a deadline. Errors (refused, reset, timed out) are strings: a refused
/// connection reads `connect ADDR: …`, a deadline `METHOD PATH on ADDR: timed out`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    http_with_headers(addr, method, path, &[], body, timeout).await
}

/// [`http`] with extra request headers.
pub async fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    call(addr, None, method, path, headers, body, timeout).await
}

/// [`http_with_headers`] over TLS (a node started with `--tls-*`): `tls` trusts the cluster's CA
/// (see [`crate::tls::client_config`]), and the node's certificate must name `addr`'s IP.
pub async fn https_with_headers(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    call(addr, Some(tls), method, path, headers, body, timeout).await
}

/// One request on a fresh connection (TLS when `tls` is given), within `timeout` in all.
async fn call(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    let fut = async {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        match tls {
            None => exchange(s, addr, method, path, headers, body).await,
            Some(tls) => {
                let s = tokio_rustls::TlsConnector::from(tls)
                    .connect(crate::tls::server_name(addr), s)
                    .await
                    .map_err(|e| format!("TLS handshake with {addr}: {}", crate::tls::describe(&e)))?;
                exchange(s, addr, method, path, headers, body).await
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("{method} {path} on {addr}: timed out"))?
}

/// Aborts the task driving a connection when the call that owns it ends (answered, failed or
/// dropped at its deadline), so no connection outlives its request.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request and its whole answer on a fresh connection `s` (already connected to `addr`).
async fn exchange<S>(
    s: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpAnswer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut request = hyper::Request::builder().method(method).uri(path);
    if !given("host") {
        request = request.header(hyper::header::HOST, addr.to_string());
    }
    let mut request =
        request.header(hyper::header::CONTENT_LENGTH, body.len()).header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if method == "POST" && !body.is_empty() && !given("content-type") {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| format!("{method} {path}: not a valid request: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("write {addr}: {e}"))?;
    // The connection future does the I/O; it ends when the server closes after its answer.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let answer = sender.send_request(request).await.map_err(|e| format!("read {addr}: {e}"))?;
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let body = answer.into_body().collect().await.map_err(|e| format!("read {addr}: {e}"))?.to_bytes();
    Ok(HttpAnswer { status, headers, body: body.to_vec() })
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn a_key_with_reserved_characters_is_one_path_segment() {
        assert_eq!(super::path_segment("plain-key_1.~"), "plain-key_1.~");
        assert_eq!(super::path_segment("a/b?c=1&d#e f%"), "a%2Fb%3Fc%3D1%26d%23e%20f%25");
        assert_eq!(super::path_segment("é"), "%C3%A9");
    }
}
