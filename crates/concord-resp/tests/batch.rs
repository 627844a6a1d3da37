//! A pipeline's plain GETs and SETs go to the backend as batches (`concord_resp`'s `batch`
//! module), and the replies keep every meaning they had one by one: in request order, a read
//! after a write in the same pipeline sees it, other commands keep their places.

mod common;

use common::{resp, Conn};
use concord_kv::{Command, KvLimits, Query, Response};
use concord_resp::{serve, Backend, BackendError, BoxFuture, MemoryBackend, RequestConsistency, RespConfig};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One backend call as the backend saw it: its kind and how many requests it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Read,
    Write,
    ReadBatch(usize),
    WriteBatch(usize),
}

/// A [`MemoryBackend`] that records its calls. Its batches answer only after a short pause, so a
/// pipeline's later requests are decoded while the batch is in flight (as on a real node).
struct Recording {
    store: MemoryBackend,
    calls: Mutex<Vec<Call>>,
}

impl Recording {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Backend for Recording {
    fn write(
        &self,
        command: Command,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        self.calls.lock().unwrap().push(Call::Write);
        self.store.write(command, consistency)
    }

    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        self.calls.lock().unwrap().push(Call::Read);
        self.store.read(query, consistency)
    }

    fn read_batch(
        &self,
        queries: Vec<Query>,
        consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        self.calls.lock().unwrap().push(Call::ReadBatch(queries.len()));
        // Submitted now (the contract): the answers are computed at once, delivered later.
        let answers: Vec<_> = queries.into_iter().map(|q| self.store.read(q, consistency)).collect();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            futures::future::join_all(answers).await
        })
    }

    fn write_batch(
        &self,
        commands: Vec<Command>,
        consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        self.calls.lock().unwrap().push(Call::WriteBatch(commands.len()));
        let answers: Vec<_> = commands.into_iter().map(|c| self.store.write(c, consistency)).collect();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            futures::future::join_all(answers).await
        })
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.store.info()
    }

    fn now_ms(&self) -> u64 {
        self.store.now_ms()
    }
}

struct Server {
    addr: SocketAddr,
    backend: Arc<Recording>,
    _runtime: tokio::runtime::Runtime,
}

fn server(config: RespConfig) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let backend =
        Arc::new(Recording { store: MemoryBackend::new(KvLimits::default()), calls: Mutex::new(vec![]) });
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let served = backend.clone();
    runtime.spawn(async move { serve(listener, served, config, std::future::pending::<()>()).await });
    Server { addr, backend, _runtime: runtime }
}

fn pipeline(requests: &[&[&str]]) -> Vec<u8> {
    requests.iter().flat_map(|r| resp(r)).collect()
}

fn bulk(value: &str) -> String {
    format!("${}\r\n{}\r\n", value.len(), value)
}

#[test]
fn a_pipeline_of_gets_is_one_batch_and_answers_in_order() {
    let server = server(RespConfig::default());
    let mut conn = Conn::new(server.addr);
    for i in 0..16 {
        conn.expect(&resp(&["SET", &format!("k{i}"), &format!("v{i}")]), b"+OK\r\n");
    }
    server.backend.take();
    let gets: Vec<Vec<String>> = (0..16).map(|i| vec!["GET".into(), format!("k{i}")]).collect();
    let gets: Vec<Vec<&str>> = gets.iter().map(|g| g.iter().map(String::as_str).collect()).collect();
    let gets: Vec<&[&str]> = gets.iter().map(Vec::as_slice).collect();
    let expected: String = (0..16).map(|i| bulk(&format!("v{i}"))).collect();
    conn.expect(&pipeline(&gets), expected.as_bytes());
    let calls = server.backend.take();
    assert_eq!(calls.iter().filter(|c| matches!(c, Call::Read)).count(), 0, "{calls:?}");
    let batched: usize = calls.iter().map(|c| if let Call::ReadBatch(n) = c { *n } else { 0 }).sum();
    assert_eq!(batched, 16, "{calls:?}");
    assert!(calls.len() < 16, "the pipeline went as batches, not one by one: {calls:?}");
}

#[test]
fn a_pipeline_of_sets_is_one_batch_applied_in_order() {
    let server = server(RespConfig::default());
    let mut conn = Conn::new(server.addr);
    let sets: Vec<Vec<String>> = (0..16).map(|i| vec!["SET".into(), "k".into(), format!("v{i}")]).collect();
    let sets: Vec<Vec<&str>> = sets.iter().map(|g| g.iter().map(String::as_str).collect()).collect();
    let sets: Vec<&[&str]> = sets.iter().map(Vec::as_slice).collect();
    conn.expect(&pipeline(&sets), "+OK\r\n".repeat(16).as_bytes());
    let calls = server.backend.take();
    assert!(!calls.contains(&Call::Write), "{calls:?}");
    assert!(calls.len() < 16, "{calls:?}");
    conn.expect(&resp(&["GET", "k"]), bulk("v15").as_bytes());
}

#[test]
fn reads_after_writes_in_one_pipeline_see_them_and_other_commands_keep_their_places() {
    let server = server(RespConfig::default());
    let mut conn = Conn::new(server.addr);
    let requests: &[&[&str]] = &[
        &["SET", "n", "0"],
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["GET", "a"],
        &["GET", "b"],
        &["INCR", "n"],
        &["GET", "n"],
        &["SET", "a", "3"],
        &["PING"],
        &["GET", "a"],
        &["SET", "b", "4"],
        &["GET", "b"],
        &["DEL", "a"],
        &["GET", "a"],
        &["GET", "missing"],
    ];
    let expected = format!(
        "+OK\r\n+OK\r\n+OK\r\n{}{}:1\r\n{}+OK\r\n+PONG\r\n{}+OK\r\n{}:1\r\n$-1\r\n$-1\r\n",
        bulk("1"),
        bulk("2"),
        bulk("1"),
        bulk("3"),
        bulk("4")
    );
    // Several rounds: each decode of the buffer may cut the pipeline differently.
    for _ in 0..20 {
        conn.expect(&pipeline(requests), expected.as_bytes());
    }
}

/// A `SET` the front door refuses before it reaches the backend (an expiry past the clock's
/// range) answers in its place: the batch before it is sent first, the SETs after it form the
/// next batch, and the slow log and keyspace counters still see every batched request.
#[test]
fn a_set_refused_inside_a_pipeline_answers_in_its_place_between_two_batches() {
    let server = server(RespConfig::default());
    let mut conn = Conn::new(server.addr);
    conn.expect(&resp(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), b"+OK\r\n");
    conn.expect(&resp(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    server.backend.take();
    let requests: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["SET", "c", "3", "EX", "9223372036854775807"],
        &["SET", "d", "4"],
        &["GET", "a"],
        &["GET", "c"],
        &["GET", "d"],
    ];
    let expected = format!(
        "+OK\r\n+OK\r\n-ERR invalid expire time in 'set' command\r\n+OK\r\n{}$-1\r\n{}",
        bulk("1"),
        bulk("4")
    );
    conn.expect(&pipeline(requests), expected.as_bytes());
    let calls = server.backend.take();
    let batches: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::WriteBatch(_))).collect();
    assert_eq!(batches, [&Call::WriteBatch(2), &Call::WriteBatch(1)], "{calls:?}");
    // The slow log (at 0 µs) has every request of the pipeline, batched or not, after the RESET.
    conn.expect(&resp(&["SLOWLOG", "LEN"]), b":8\r\n");
}

#[test]
fn a_batched_get_of_a_collection_is_wrongtype_and_multi_exec_still_works_pipelined() {
    let server = server(RespConfig::default());
    let mut conn = Conn::new(server.addr);
    conn.expect(&resp(&["RPUSH", "list", "x"]), b":1\r\n");
    let requests: &[&[&str]] = &[
        &["SET", "s", "v"],
        &["GET", "list"],
        &["GET", "s"],
        &["MULTI"],
        &["SET", "s", "w"],
        &["GET", "s"],
        &["EXEC"],
        &["GET", "s"],
        &["GET", "s"],
    ];
    let expected = format!(
        "+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n{}+OK\r\n+QUEUED\r\n\
         +QUEUED\r\n*2\r\n+OK\r\n{}{}{}",
        bulk("v"),
        bulk("w"),
        bulk("w"),
        bulk("w")
    );
    conn.expect(&pipeline(requests), expected.as_bytes());
}

/// One whole reply read from `conn`: a simple string, an error, an integer or a bulk string
/// (the commands of [`pipelines_answer_as_the_same_commands_one_by_one`] answer nothing else).
fn read_reply(conn: &mut Conn) -> Vec<u8> {
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    let mut read_line = |reply: &mut Vec<u8>| {
        while !reply.ends_with(b"\r\n") {
            std::io::Read::read_exact(&mut conn.stream, &mut byte).unwrap();
            reply.push(byte[0]);
        }
    };
    read_line(&mut reply);
    if reply[0] == b'$' && reply[1] != b'-' {
        let len: usize = std::str::from_utf8(&reply[1..reply.len() - 2]).unwrap().parse().unwrap();
        let mut body = vec![0u8; len + 2];
        std::io::Read::read_exact(&mut conn.stream, &mut body).unwrap();
        reply.extend_from_slice(&body);
    }
    reply
}

/// Random pipelines of batchable commands (GET, SET) mixed with others and with requests refused
/// before they reach the backend – an unknown command, a wrong arity, an expiry past the clock's
/// range, a `SET` refused at parse time: each pipeline's replies are byte for byte those of the
/// same commands sent one at a time, on a server of its own. (The refused SET among batched ones
/// found a reply out of place.)
#[test]
fn pipelines_answer_as_the_same_commands_one_by_one() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for case in 0..24 {
        let commands: Vec<Vec<String>> = (0..48)
            .map(|i| {
                let key = format!("k{}", next(4));
                let words: Vec<String> = match next(16) {
                    0..=4 => vec!["SET".into(), key, format!("v{case}.{i}")],
                    5..=9 => vec!["GET".into(), key],
                    10 => vec!["SET".into(), key, "x".into(), "EX".into(), "9223372036854775807".into()],
                    11 => vec!["INCR".into(), "n".into()],
                    12 => vec!["DEL".into(), key],
                    13 => vec!["GET".into()],
                    14 => vec!["NOSUCH".into(), key],
                    _ => vec!["APPEND".into(), key, "+".into()],
                };
                words
            })
            .collect();
        let requests: Vec<Vec<u8>> =
            commands.iter().map(|c| resp(&c.iter().map(String::as_str).collect::<Vec<_>>())).collect();

        let alone = server(RespConfig::default());
        let mut conn = Conn::new(alone.addr);
        let mut expected = Vec::new();
        for request in &requests {
            conn.send(request);
            expected.extend(read_reply(&mut conn));
        }

        let pipelined = server(RespConfig::default());
        let mut conn = Conn::new(pipelined.addr);
        // In two parts cut at a random byte: the reader decodes what it has, then the rest.
        let bytes: Vec<u8> = requests.concat();
        let cut = next(bytes.len() as u64) as usize;
        conn.send(&bytes[..cut]);
        std::thread::sleep(Duration::from_millis(2));
        conn.send(&bytes[cut..]);
        let (got, _) = conn.read_for(expected.len(), Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "case {case}: {commands:?}"
        );
        let calls = pipelined.backend.take();
        assert!(
            calls.iter().any(|c| matches!(c, Call::ReadBatch(_) | Call::WriteBatch(_))),
            "case {case}: {calls:?}"
        );
    }
}

#[test]
fn a_pipeline_longer_than_the_writers_queue_does_not_stall() {
    // A queue of 4 replies between reader and writer: the reader must send its batch before it
    // waits for room, or the writer (waiting for the batch) and the reader wait for each other.
    let config = RespConfig { max_pipeline: 4, ..RespConfig::default() };
    let server = server(config);
    let mut conn = Conn::new(server.addr);
    let mut requests = Vec::new();
    let mut expected = String::new();
    for i in 0..300 {
        requests.extend(resp(&["SET", &format!("k{i}"), "v"]));
        expected.push_str("+OK\r\n");
    }
    for i in 0..300 {
        requests.extend(resp(&["GET", &format!("k{i}")]));
        expected.push_str(&bulk("v"));
    }
    conn.send(&requests);
    let (got, _) = conn.read_for(expected.len(), Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&got), expected);
}
