//! A server on 127.0.0.1:0 backed by a `MemoryBackend`, running on its own tokio runtime so that
//! tests can drive it with blocking sockets and external programs.

#![allow(dead_code)]

pub mod redis;

use concord_kv::KvLimits;
use concord_resp::{serve, MemoryBackend, RespConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TestServer {
    pub addr: SocketAddr,
    pub backend: Arc<MemoryBackend>,
    /// The backend's clock, in ms since the Unix epoch (tests move it by hand).
    pub clock_ms: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn start(config: RespConfig) -> TestServer {
        TestServer::start_with(KvLimits::default(), config)
    }

    pub fn start_with(limits: KvLimits, config: RespConfig) -> TestServer {
        TestServer::start_custom(limits, config, |_, backend| backend)
    }

    /// A server whose backend `customize` may change once the listening address is known (e.g.
    /// to give it a cluster topology naming that address).
    pub fn start_custom(
        limits: KvLimits,
        config: RespConfig,
        customize: impl FnOnce(SocketAddr, MemoryBackend) -> MemoryBackend,
    ) -> TestServer {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let clock_ms = Arc::new(AtomicU64::new(1_700_000_000_000));
        let clock = clock_ms.clone();
        let backend = MemoryBackend::with_clock(limits, Arc::new(move || clock.load(Ordering::SeqCst)));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(customize(addr, backend));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let served = backend.clone();
        runtime.spawn(async move {
            serve(listener, served, config, async {
                let _ = stopped.await;
            })
            .await;
            let _ = done_tx.send(());
        });
        TestServer { addr, backend, clock_ms, stop: Some(stop), done: Some(done), runtime: Some(runtime) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn advance_clock(&self, ms: u64) {
        self.clock_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Complete the shutdown future and wait for `serve` to return (at most `within`).
    pub fn shutdown(&mut self, within: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.take().is_some_and(|done| done.recv_timeout(within).is_ok())
    }

    pub fn connect(&self) -> Conn {
        Conn::new(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A raw client connection.
pub struct Conn {
    pub stream: TcpStream,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Read until `expected` bytes have arrived, the peer closes, or `timeout` passes; what
    /// arrived, and whether the peer closed.
    pub fn read_for(&mut self, expected: usize, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while out.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (out, false);
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return (out, false)
                }
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    /// Send `request` and read exactly `reply.len()` bytes; assert they equal `reply`.
    pub fn expect(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        let (got, _) = self.read_for(reply.len(), Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(reply),
            "reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }

    /// Whether the server closed the connection (waits up to `timeout`).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let (extra, closed) = self.read_for(usize::MAX, timeout);
        assert!(extra.is_empty(), "unexpected bytes: {:?}", String::from_utf8_lossy(&extra));
        closed
    }
}

/// `args` as a RESP multibulk request.
pub fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{}\r\n", arg.len(), arg).as_bytes());
    }
    out
}

/// Run `python3 -c script args…`: it must exit 0 and print a line starting with `ok` (a script
/// may add why it checked less, e.g. "ok (RESP2 only …)"). Its standard output, trimmed.
pub fn python(script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("python3").arg("-c").arg(script).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.starts_with("ok"), "python3 {args:?}: {stdout}\n{stderr}");
    stdout
}

/// Whether an external program can be used. Missing under `CI`: a failure (the CI script must
/// install it); missing elsewhere: the test prints why it is skipped.
pub fn have_program(program: &str, probe: &[&str], install_hint: &str) -> bool {
    let ok = std::process::Command::new(program).args(probe).output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{program} is not usable here but CI is set: {install_hint}");
        }
        // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {program} is not usable ({install_hint})");
    }
    ok
}
