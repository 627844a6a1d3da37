//! Accepting client connections without letting clients take the node down.
//!
//! Both front doors follow the same rules (see [`super::budget`] for where the caps come from):
//!
//! * **A cap per door.** A connection beyond it is refused at once – HTTP answers
//!   `503 {"error": "too many connections…"}` (over TLS it is just closed: answering would cost
//!   a handshake), RESP `-ERR max number of clients reached` – and counted in
//!   `concord_rejected_connections_total{door, reason="max_connections"}`.
//! * **Accept errors never stop a door.** `EMFILE`/`ENFILE` (out of descriptors) and the like are
//!   counted (`concord_accept_errors_total`), logged at most once per [`LOG_EVERY`], and retried
//!   after a pause that doubles from 10 ms to 1 s. A client that left before it was accepted is
//!   ignored.
//! * **Idle connections are closed.** HTTP: a connection must deliver a complete request head
//!   within `http_idle_timeout` of opening or of its previous response, so a slowloris client
//!   (headers a byte at a time) and an idle keep-alive connection both give their slot back. A
//!   request being served, or a response being streamed (the dashboard's events), is not idle.
//!   RESP: Redis's `timeout` (off by default, as in Redis).
//!
//! The HTTP door is a small accept loop over hyper's HTTP/1 connection (what `axum::serve` uses
//! underneath, which offers neither a cap nor a header timeout): a semaphore permit per connection,
//! hyper's `header_read_timeout` for the idle rule, and the client's address handed to axum as
//! `ConnectInfo`.

use crate::metrics::Metrics;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// A repeated warning is logged at most once per this long (with the count of those skipped).
pub const LOG_EVERY: Duration = Duration::from_secs(10);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A warning that may repeat thousands of times a second (a connection flood): logged once, then
/// at most once per [`LOG_EVERY`] with how many were not logged.
pub struct RateLimitedWarning {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for RateLimitedWarning {
    fn default() -> Self {
        RateLimitedWarning { state: Mutex::new((None, 0)) }
    }
}

impl RateLimitedWarning {
    /// Log `message()` unless one was logged less than [`LOG_EVERY`] ago. Returns whether it was.
    pub fn warn(&self, message: impl FnOnce() -> String) -> bool {
        let mut state = self.state.lock().expect("warning lock");
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                state.1 += 1;
                false
            }
            _ => {
                let skipped = std::mem::take(&mut state.1);
                state.0 = Some(now);
                drop(state);
                let message = message();
                if skipped > 0 {
                    tracing::warn!("{message} ({skipped} more like it not logged in the last {LOG_EVERY:?})");
                } else {
                    tracing::warn!("{message}");
                }
                true
            }
        }
    }
}

/// One front door's counters and rate-limited warnings.
pub struct Door {
    pub name: &'static str,
    pub metrics: Arc<Metrics>,
    pub max_connections: usize,
    refused: RateLimitedWarning,
    accept_failed: RateLimitedWarning,
    disconnected: RateLimitedWarning,
}

impl Door {
    pub fn new(name: &'static str, metrics: Arc<Metrics>, max_connections: usize) -> Door {
        metrics.set_client_connections_max(name, max_connections);
        Door {
            name,
            metrics,
            max_connections,
            refused: RateLimitedWarning::default(),
            accept_failed: RateLimitedWarning::default(),
            disconnected: RateLimitedWarning::default(),
        }
    }

    /// A connection from `peer` refused: the door is at its cap.
    pub fn refused_max_connections(&self, peer: SocketAddr) {
        self.metrics.rejected_connection(self.name, "max_connections");
        self.refused.warn(|| {
            format!(
                "{} connection from {peer} refused: {} connections are open, the most this door takes \
                 (see docs/security.md to raise it)",
                self.name, self.max_connections
            )
        });
    }

    /// `accept` failed with `e`; the door waits `retry_in` and accepts again.
    pub fn accept_failed(&self, e: &std::io::Error, retry_in: Duration) {
        self.metrics.accept_error(self.name);
        self.accept_failed.warn(|| {
            let hint = match e.raw_os_error() {
                Some(24) | Some(23) => " – the process is out of file descriptors (raise ulimit -n)",
                _ => "",
            };
            format!("{} accept failed: {e}{hint}; retrying in {retry_in:?}", self.name)
        });
    }

    /// The node closed a connection of `peer` for `reason` (a metrics label).
    pub fn disconnected(&self, peer: SocketAddr, reason: &'static str) {
        self.metrics.client_disconnect(self.name, reason);
        self.disconnected.warn(|| format!("{} connection from {peer} closed: {reason}", self.name));
    }
}

/// RESP's [`concord_resp::ServerEvents`]: counted and logged through the door.
impl concord_resp::ServerEvents for Door {
    fn opened(&self) {
        self.metrics.client_connection(self.name, 1);
    }
    fn closed(&self) {
        self.metrics.client_connection(self.name, -1);
    }
    fn refused_max_clients(&self, peer: SocketAddr) {
        self.refused_max_connections(peer);
    }
    fn accept_failed(&self, error: &std::io::Error, retry_in: Duration) {
        Door::accept_failed(self, error, retry_in);
    }
    fn disconnected(&self, peer: SocketAddr, reason: concord_resp::Disconnect) {
        Door::disconnected(self, peer, reason.label());
    }
}

/// An `accept` error that concerns one connection only (the client left before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// The HTTP door's settings.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// A connection must send a complete request head within this long of opening or of its last
    /// response (`None`: no limit).
    pub idle_timeout: Option<Duration>,
}

/// What a connection refused by the HTTP door is told (plain TCP only), written without waiting.
const HTTP_TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 79\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
{\"error\":\"too many connections: this node's HTTP door is full; retry shortly\"}\n";

/// Serve `app` on `listener` (over TLS when `tls` is given) until `stop` changes, with the door's
/// cap and idle timeout (see the module docs).
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let door = Arc::new(Door::new("http", metrics, limits.max_connections));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                door.accept_failed(&e, backoff);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            door.refused_max_connections(peer);
            if tls.is_none() {
                // Never waits: a fresh socket's send buffer is empty. Then closed.
                let _ = socket.try_write(HTTP_TOO_MANY);
            }
            continue;
        };
        let (app, tls, door, stop) = (app.clone(), tls.clone(), door.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            door.metrics.client_connection(door.name, 1);
            let _ = socket.set_nodelay(true);
            match tls {
                None => serve_connection(socket, peer, app, limits, &door, stop).await,
                Some(acceptor) => {
                    if let Ok(stream) = crate::tls::handshake(&acceptor, socket, peer, "HTTPS").await {
                        serve_connection(stream, peer, app, limits, &door, stop).await;
                    }
                }
            }
            door.metrics.client_connection(door.name, -1);
        });
    }
}

/// One HTTP/1.1 connection, until it closes, times out, or the node stops (then the request in
/// progress is finished and the connection closed).
async fn serve_connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    peer: SocketAddr,
    app: axum::Router,
    limits: HttpLimits,
    door: &Door,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        // What `into_make_service_with_connect_info` would add: the fault endpoints read it.
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        door.disconnected(peer, "idle_timeout");
                    }
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Everything the server sends until it closes the connection (or 5 s pass).
    async fn read_until_closed(conn: &mut TcpStream) -> Option<String> {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        read.ok().map(|_| String::from_utf8_lossy(&answer).into_owned())
    }

    #[tokio::test]
    async fn the_http_door_refuses_beyond_its_cap_and_closes_idle_connections() {
        // Issue #23: HTTP had no connection cap and no header timeout.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/who",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let metrics = Arc::new(Metrics::new());
        let limits = HttpLimits { max_connections: 2, idle_timeout: Some(Duration::from_millis(300)) };
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(serve_http(listener, app, None, limits, metrics.clone(), stop));

        // Two unfinished requests hold both slots…
        let mut idle = Vec::new();
        for _ in 0..2 {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(b"GET /who HTTP/1.1\r\n").await.unwrap();
            idle.push(conn);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // …so a third connection is refused at once, with a 503 that says why.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let answer = read_until_closed(&mut third).await.expect("refused at once");
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("too many connections"), "{answer}");
        assert_eq!(metrics.rejected_connections("http", "max_connections"), 1);

        // The unfinished requests are closed after the idle timeout, and the slots come back.
        for conn in &mut idle {
            assert!(read_until_closed(conn).await.is_some(), "an idle connection stayed open");
        }
        let text = metrics.render();
        assert!(
            text.contains("concord_client_disconnects_total{door=\"http\",reason=\"idle_timeout\"} 2"),
            "{text}"
        );
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = read_until_closed(&mut conn).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        // The router sees the client's address (the fault endpoints rely on it).
        assert!(answer.ends_with(&conn.local_addr().unwrap().to_string()), "{answer}");
    }

    #[test]
    fn a_repeated_warning_is_logged_once_per_period() {
        let warning = RateLimitedWarning::default();
        assert!(warning.warn(|| "first".into()));
        for _ in 0..1000 {
            assert!(!warning.warn(|| unreachable!("not even formatted")));
        }
        assert_eq!(warning.state.lock().unwrap().1, 1000);
        // A period later, one line again, which counts the skipped ones.
        warning.state.lock().unwrap().0 = Some(Instant::now() - LOG_EVERY);
        assert!(warning.warn(|| "again".into()));
        assert_eq!(warning.state.lock().unwrap().1, 0);
    }
}
