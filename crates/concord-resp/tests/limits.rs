//! Bounded work per request and per connection (issue #23): a many-key command keeps one read in
//! flight and stops at the first error; a client that does not read its replies is closed at the
//! output-buffer limit; batches of thousands of keys are served atomically.

use bytes::Bytes;
use concord_kv::{Command, KvLimits, Query, Response};
use concord_resp::{
    serve, Backend, BackendError, BoxFuture, Disconnect, MemoryBackend, RequestConsistency, RespConfig,
    ServerEvents,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// How a [`Counting`] backend was read.
#[derive(Default)]
struct Reads {
    total: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    most_keys: AtomicUsize,
}

/// A [`MemoryBackend`] that counts its reads – how many, how many at once, the most keys one asked
/// for – and fails the read numbered `fail_read` (from 1), if set.
struct Counting {
    inner: MemoryBackend,
    reads: Arc<Reads>,
    fail_read: Option<usize>,
}

impl Counting {
    fn new(fail_read: Option<usize>) -> (Arc<Counting>, Arc<Reads>) {
        let reads = Arc::new(Reads::default());
        let backend = Arc::new(Counting {
            inner: MemoryBackend::new(KvLimits::default()),
            reads: reads.clone(),
            fail_read,
        });
        (backend, reads)
    }
}

fn keys_of(query: &Query) -> usize {
    match query {
        Query::Get { .. } => 1,
        Query::GetMany { keys } => keys.len(),
        _ => 0,
    }
}

impl Backend for Counting {
    fn write(&self, command: Command, c: RequestConsistency) -> BoxFuture<Result<Response, BackendError>> {
        self.inner.write(command, c)
    }

    fn read(&self, query: Query, c: RequestConsistency) -> BoxFuture<Result<Response, BackendError>> {
        let reads = self.reads.clone();
        let n = reads.total.fetch_add(1, Ordering::SeqCst) + 1;
        reads.most_keys.fetch_max(keys_of(&query), Ordering::SeqCst);
        let now = reads.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        reads.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = self.inner.read(query, c);
        let failing = self.fail_read == Some(n);
        Box::pin(async move {
            // A real read takes a while: other reads may start meanwhile, if anything starts them.
            tokio::time::sleep(Duration::from_millis(1)).await;
            reads.in_flight.fetch_sub(1, Ordering::SeqCst);
            if failing {
                return Err(BackendError::Unavailable("the test fails this read".into()));
            }
            answer.await
        })
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.inner.info()
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    fn limits(&self) -> KvLimits {
        self.inner.limits()
    }
}

/// What the server reported.
#[derive(Default)]
struct Recorder {
    disconnects: Mutex<Vec<Disconnect>>,
}

impl ServerEvents for Recorder {
    fn disconnected(&self, _peer: SocketAddr, reason: Disconnect) {
        self.disconnects.lock().unwrap().push(reason);
    }
}

async fn start(
    backend: Arc<dyn Backend>,
    config: RespConfig,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, backend, config, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn request(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Send one request and read until `done` says the reply is complete (or the server closes).
async fn call(conn: &mut TcpStream, args: &[Bytes], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    conn.write_all(&request(args)).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !done(&reply) {
        match tokio::time::timeout(WAIT, conn.read(&mut buf)).await.expect("reply in time") {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply
}

fn line_complete(reply: &[u8]) -> bool {
    reply.ends_with(b"\r\n")
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:06}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_and_del_take_ten_thousand_keys_atomically() {
    // Issue #23: more than 128 keys were refused ("transaction has 129 … operations").
    let (backend, _) = Counting::new(None);
    let (addr, _stop) = start(backend, RespConfig::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut mset = vec![Bytes::from("MSET")];
    for i in 0..10_000 {
        mset.extend([key(i), Bytes::from(format!("v{i}"))]);
    }
    assert_eq!(call(&mut conn, &mset, line_complete).await, b"+OK\r\n");
    let mut del = vec![Bytes::from("DEL")];
    del.extend((0..10_000).step_by(2).map(key));
    assert_eq!(call(&mut conn, &del, line_complete).await, b":5000\r\n");
    let exists = [Bytes::from("EXISTS"), key(0), key(1), key(9_999)];
    assert_eq!(call(&mut conn, &exists, line_complete).await, b":2\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_mget_keeps_one_read_in_flight_and_answers_every_key() {
    // Issue #23: one MGET of 1 000 000 keys spawned one read task per key, all at once.
    let (backend, reads) = Counting::new(None);
    let (addr, _stop) = start(backend, RespConfig::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut mset = vec![Bytes::from("MSET")];
    for i in (0..20_000).step_by(2) {
        mset.extend([key(i), Bytes::from(format!("v{i}"))]);
    }
    assert_eq!(call(&mut conn, &mset, line_complete).await, b"+OK\r\n");

    let mut mget = vec![Bytes::from("MGET")];
    mget.extend((0..20_000).map(key));
    let mut expected = b"*20000\r\n".to_vec();
    for i in 0..20_000 {
        if i % 2 == 0 {
            let v = format!("v{i}");
            expected.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
        } else {
            expected.extend_from_slice(b"$-1\r\n");
        }
    }
    let reply = call(&mut conn, &mget, |r| r.len() >= expected.len()).await;
    assert!(
        reply == expected,
        "wrong MGET reply: {:?}…",
        String::from_utf8_lossy(&reply[..200.min(reply.len())])
    );

    let per_page = KvLimits::default().max_range_limit;
    assert_eq!(reads.most_in_flight.load(Ordering::SeqCst), 1, "reads in flight at once");
    assert_eq!(reads.total.load(Ordering::SeqCst), 20_000 / per_page, "one read per page of keys");
    assert_eq!(reads.most_keys.load(Ordering::SeqCst), per_page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_ends_the_mget_and_nothing_of_it_keeps_running() {
    let (backend, reads) = Counting::new(Some(3));
    let (addr, _stop) = start(backend, RespConfig::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut mget = vec![Bytes::from("MGET")];
    mget.extend((0..50_000).map(key));
    let reply = call(&mut conn, &mget, line_complete).await;
    assert_eq!(reply, b"-TRYAGAIN unavailable: the test fails this read\r\n");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(reads.total.load(Ordering::SeqCst), 3, "reads after the failed one");
    assert_eq!(reads.in_flight.load(Ordering::SeqCst), 0);
    // The connection still serves.
    assert_eq!(call(&mut conn, &[Bytes::from("PING")], line_complete).await, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mget_reply_past_the_output_limit_is_refused_with_an_error() {
    let (backend, _) = Counting::new(None);
    let config = RespConfig { max_output_bytes: Some(1 << 20), ..RespConfig::default() };
    let (addr, _stop) = start(backend, config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let value = Bytes::from(vec![b'x'; 400 * 1024]);
    for i in 0..3 {
        assert_eq!(
            call(&mut conn, &[Bytes::from("SET"), key(i), value.clone()], line_complete).await,
            b"+OK\r\n"
        );
    }
    let two = [Bytes::from("MGET"), key(0), key(1)];
    let reply = call(&mut conn, &two, |r| r.len() >= 2 * 400 * 1024).await;
    assert!(reply.starts_with(b"*2\r\n$409600\r\n"), "{:?}", &reply[..20]);
    let config_get = [Bytes::from("CONFIG"), Bytes::from("GET"), Bytes::from("client-output-buffer-limit")];
    let reply = call(&mut conn, &config_get, |r| r.ends_with(b"0 0\r\n")).await;
    assert!(
        reply.ends_with(b"normal 1048576 0 0 pubsub 33554432 0 0\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let three = [Bytes::from("MGET"), key(0), key(1), key(2)];
    let reply = call(&mut conn, &three, line_complete).await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR the reply would hold more than 1048576 bytes of values (the client output buffer limit, \
         client-output-buffer-limit); ask for fewer keys\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed_at_the_output_limit() {
    let (backend, _) = Counting::new(None);
    let events = Arc::new(Recorder::default());
    let config =
        RespConfig { max_output_bytes: Some(4 << 20), events: events.clone(), ..RespConfig::default() };
    let (addr, _stop) = start(backend, config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    assert_eq!(call(&mut conn, &[Bytes::from("SET"), key(0), value], line_complete).await, b"+OK\r\n");
    // 100 pipelined GETs of 1 MiB each, and no reading: 100 MiB the server would have to hold.
    let get = request(&[Bytes::from("GET"), key(0)]);
    let pipeline: Vec<u8> = std::iter::repeat_n(get, 100).flatten().collect();
    let (mut reader, mut writer) = conn.into_split();
    let _ = writer.write_all(&pipeline).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while events.disconnects.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the connection was not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*events.disconnects.lock().unwrap(), vec![Disconnect::OutputBuffer]);
    // The socket is closed: reading what the kernel buffered ends in EOF or a reset.
    let mut sink = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket stayed open");
}
