//! `CONSISTENCY` end to end: what a client may set depends on the backend's consistency model, and
//! what it set arrives with every read and write the connection makes.
//!
//! The backend here is a [`MemoryBackend`] that claims a model of our choosing and records the
//! [`RequestConsistency`] of every call, so the tests see exactly what an eventual (or Raft)
//! backend would be asked for.

mod common;

use bytes::BytesMut;
use common::{resp, Conn};
use concord_kv::{Command, KvLimits, Query, Response};
use concord_raft::ReadConsistency;
use concord_resp::{
    decode_frame, serve, Backend, BackendError, BoxFuture, ConsistencyModel, DecodeLimits, Frame,
    MemoryBackend, RequestConsistency, RespConfig, Topology,
};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTUAL: ConsistencyModel = ConsistencyModel::Eventual { n: 3, r: 2, w: 2 };

/// One backend call as the backend saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Read(RequestConsistency),
    Write(RequestConsistency),
}

/// A [`MemoryBackend`] with a chosen model that records every call's consistency.
struct Recording {
    store: MemoryBackend,
    model: ConsistencyModel,
    calls: Mutex<Vec<Call>>,
    /// Sharded (Redis Cluster) when `Some`.
    topology: Option<Topology>,
}

impl Recording {
    /// The calls since the last `take`.
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
        self.calls.lock().unwrap().push(Call::Write(consistency));
        self.store.write(command, consistency)
    }

    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        self.calls.lock().unwrap().push(Call::Read(consistency));
        self.store.read(query, consistency)
    }

    fn model(&self) -> ConsistencyModel {
        self.model
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.store.info()
    }

    fn now_ms(&self) -> u64 {
        self.store.now_ms()
    }

    fn topology(&self) -> Option<Topology> {
        self.topology.clone()
    }
}

/// A server over a [`Recording`] backend, on its own runtime (dropped with the test).
struct Server {
    addr: SocketAddr,
    backend: Arc<Recording>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(model: ConsistencyModel, config: RespConfig) -> Server {
        Server::start_with_topology(model, config, None)
    }

    fn start_with_topology(
        model: ConsistencyModel,
        config: RespConfig,
        topology: Option<Topology>,
    ) -> Server {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let backend = Arc::new(Recording {
            store: MemoryBackend::new(KvLimits::default()),
            model,
            calls: Mutex::new(Vec::new()),
            topology,
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(serve(listener, backend.clone(), config, std::future::pending::<()>()));
        Server { addr, backend, _runtime: runtime }
    }

    fn connect(&self) -> Conn {
        Conn::new(self.addr)
    }
}

/// Send one command and read its whole reply.
fn call(conn: &mut Conn, args: &[&str]) -> Frame {
    conn.send(&resp(args));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = decode_frame(&mut buf, &DecodeLimits::default()).unwrap() {
            return frame;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no complete reply to {args:?}; got {buf:?}");
        conn.stream.set_read_timeout(Some(left)).unwrap();
        let n = conn.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed while waiting for the reply to {args:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn text(frame: Frame) -> String {
    match frame {
        Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
        Frame::Simple(s) | Frame::Error(s) => s,
        other => panic!("expected a string reply, got {other:?}"),
    }
}

fn error(frame: Frame) -> String {
    match frame {
        Frame::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Whatever the connection set, with the configured read level in `read`.
fn eventual(r: Option<usize>, w: Option<usize>) -> RequestConsistency {
    RequestConsistency { read: ReadConsistency::Linearizable, r, w }
}

/// `SET` then `GET` on `conn`: the consistency each reached the backend with.
fn set_then_get(server: &Server, conn: &mut Conn) -> (Call, Call) {
    server.backend.take();
    assert_eq!(call(conn, &["SET", "k", "v"]), Frame::ok());
    assert_eq!(call(conn, &["GET", "k"]), Frame::bulk("v"));
    let calls = server.backend.take();
    assert_eq!(calls.len(), 2, "{calls:?}");
    (calls[0], calls[1])
}

#[test]
fn eventual_connections_choose_their_r_and_w() {
    let server = Server::start(EVENTUAL, RespConfig::default());
    let mut conn = server.connect();
    // A new connection asks for nothing: the backend's own R and W apply, and are shown.
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=2 w=2 n=3");
    assert_eq!(
        set_then_get(&server, &mut conn),
        (Call::Write(eventual(None, None)), Call::Read(eventual(None, None)))
    );

    assert_eq!(call(&mut conn, &["consistency", "one"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=1 w=1 n=3");
    assert_eq!(
        set_then_get(&server, &mut conn),
        (Call::Write(eventual(Some(1), Some(1))), Call::Read(eventual(Some(1), Some(1))))
    );

    assert_eq!(call(&mut conn, &["CONSISTENCY", "QUORUM"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=2 w=2 n=3");
    assert_eq!(set_then_get(&server, &mut conn).0, Call::Write(eventual(Some(2), Some(2))));

    assert_eq!(call(&mut conn, &["CONSISTENCY", "ALL"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=3 w=3 n=3");
    assert_eq!(set_then_get(&server, &mut conn).1, Call::Read(eventual(Some(3), Some(3))));

    assert_eq!(call(&mut conn, &["CONSISTENCY", "R", "3", "W", "1"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=3 w=1 n=3");
    assert_eq!(
        set_then_get(&server, &mut conn),
        (Call::Write(eventual(Some(3), Some(1))), Call::Read(eventual(Some(3), Some(1))))
    );

    // One of the two changes only that one.
    assert_eq!(call(&mut conn, &["CONSISTENCY", "w", "2"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=3 w=2 n=3");
    let client_info = text(call(&mut conn, &["CLIENT", "INFO"]));
    assert!(client_info.contains(" consistency=r=3,w=2,n=3\n"), "{client_info}");

    // Every backend call of a command carries the setting: MGET's read (one page of keys), the
    // interpreter's write (KEEPTTL), the one write of EXEC.
    server.backend.take();
    let r3w2 = eventual(Some(3), Some(2));
    call(&mut conn, &["MGET", "k", "other"]);
    assert_eq!(server.backend.take(), vec![Call::Read(r3w2)]);
    call(&mut conn, &["SET", "k", "v2", "KEEPTTL"]);
    assert_eq!(server.backend.take(), vec![Call::Write(r3w2)]);
    call(&mut conn, &["MULTI"]);
    call(&mut conn, &["SET", "a", "1"]);
    call(&mut conn, &["GET", "a"]);
    call(&mut conn, &["EXEC"]);
    assert_eq!(server.backend.take(), vec![Call::Write(r3w2)]);

    // DEFAULT drops the overrides: the backend's defaults apply again.
    assert_eq!(call(&mut conn, &["CONSISTENCY", "DEFAULT"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=2 w=2 n=3");
    assert_eq!(
        set_then_get(&server, &mut conn),
        (Call::Write(eventual(None, None)), Call::Read(eventual(None, None)))
    );
    let client_info = text(call(&mut conn, &["CLIENT", "INFO"]));
    assert!(client_info.contains(" consistency=r=2,w=2,n=3\n"), "{client_info}");
}

#[test]
fn eventual_refuses_out_of_range_quorums_and_raft_levels() {
    let server = Server::start(EVENTUAL, RespConfig::default());
    let mut conn = server.connect();
    assert_eq!(call(&mut conn, &["CONSISTENCY", "R", "1"]), Frame::ok());
    let out_of_range = |name: &str| {
        format!("ERR {name} must be between 1 and 3 (N, the replicas of each key on this cluster)")
    };
    assert_eq!(error(call(&mut conn, &["CONSISTENCY", "R", "4"])), out_of_range("R"));
    assert_eq!(error(call(&mut conn, &["CONSISTENCY", "W", "0"])), out_of_range("W"));
    assert_eq!(error(call(&mut conn, &["CONSISTENCY", "R", "-1"])), out_of_range("R"));
    // Both are checked before either is set: a bad W leaves R as it was.
    assert_eq!(error(call(&mut conn, &["CONSISTENCY", "R", "3", "W", "9"])), out_of_range("W"));
    for level in ["linearizable", "LEASE", "stale"] {
        let refused = error(call(&mut conn, &["CONSISTENCY", level]));
        assert!(
            refused.starts_with("ERR this node runs the eventual mode: reads are quorum reads")
                && refused.ends_with("use ONE, QUORUM, ALL, R <r>, W <w> or DEFAULT"),
            "{refused}"
        );
    }
    // Grammar errors are Redis's.
    assert_eq!(error(call(&mut conn, &["CONSISTENCY", "R"])), "ERR syntax error");
    assert_eq!(
        error(call(&mut conn, &["CONSISTENCY", "R", "x"])),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(call(&mut conn, &["CONSISTENCY", "one", "two"])),
        "ERR wrong number of arguments for 'consistency' command"
    );
    // Nothing refused changed the setting.
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "r=1 w=2 n=3");
    assert_eq!(set_then_get(&server, &mut conn).1, Call::Read(eventual(Some(1), None)));
    // The setting belongs to the connection.
    assert_eq!(text(call(&mut server.connect(), &["CONSISTENCY"])), "r=2 w=2 n=3");
}

#[test]
fn raft_connections_choose_a_read_level_and_refuse_quorums() {
    let config = RespConfig { default_consistency: ReadConsistency::Lease, ..RespConfig::default() };
    let server = Server::start(ConsistencyModel::Strong, config);
    let mut conn = server.connect();
    let strong = |read| Call::Read(RequestConsistency::strong(read));
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "lease");
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Lease));

    assert_eq!(call(&mut conn, &["CONSISTENCY", "stale"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "stale");
    assert_eq!(
        set_then_get(&server, &mut conn),
        (Call::Write(RequestConsistency::strong(ReadConsistency::Stale)), strong(ReadConsistency::Stale))
    );
    let client_info = text(call(&mut conn, &["CLIENT", "INFO"]));
    assert!(client_info.contains(" consistency=stale\n"), "{client_info}");

    for setting in [&["ONE"][..], &["quorum"], &["ALL"], &["R", "1"], &["W", "2", "R", "2"], &["R", "99"]] {
        let args: Vec<&str> = ["CONSISTENCY"].iter().chain(setting).copied().collect();
        let refused = error(call(&mut conn, &args));
        assert!(
            refused.starts_with("ERR quorum settings (ONE, QUORUM, ALL, R, W) apply to the eventual mode")
                && refused.contains("concord up --mode eventual")
                && refused.contains("this node runs Raft"),
            "{args:?}: {refused}"
        );
    }
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "stale");

    // DEFAULT: back to the configured level.
    assert_eq!(call(&mut conn, &["CONSISTENCY", "default"]), Frame::ok());
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "lease");
    assert_eq!(call(&mut conn, &["CONSISTENCY", "LINEARIZABLE"]), Frame::ok());
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Linearizable));
}

#[test]
fn readonly_makes_a_cluster_connections_reads_stale_until_readwrite() {
    let config = RespConfig { default_consistency: ReadConsistency::Lease, ..RespConfig::default() };
    let strong = |read| Call::Read(RequestConsistency::strong(read));
    // Not sharded: READONLY is refused as redis-server refuses it, and changes nothing.
    let server = Server::start(ConsistencyModel::Strong, config.clone());
    let mut conn = server.connect();
    assert_eq!(error(call(&mut conn, &["READONLY"])), "ERR This instance has cluster support disabled");
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Lease));

    let server = Server::start_with_topology(ConsistencyModel::Strong, config, Some(Topology::default()));
    let mut conn = server.connect();
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Lease));
    assert_eq!(call(&mut conn, &["READONLY"]), Frame::ok());
    // Reads – GET, MGET – go out as stale reads, which a replica may serve; the connection's own
    // setting is kept for READWRITE.
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Stale));
    // (The keys share a slot: `{k}` is the hash tag.)
    call(&mut conn, &["MGET", "k", "{k}other"]);
    assert_eq!(server.backend.take(), vec![strong(ReadConsistency::Stale)]);
    // WATCH's read is linearizable whatever the connection says: a stale revision would let EXEC
    // run over a write the client already saw acknowledged.
    assert_eq!(call(&mut conn, &["WATCH", "k"]), Frame::ok());
    assert_eq!(server.backend.take(), vec![strong(ReadConsistency::Linearizable)]);
    assert_eq!(text(call(&mut conn, &["CONSISTENCY"])), "lease");
    assert_eq!(call(&mut conn, &["READWRITE"]), Frame::ok());
    assert_eq!(set_then_get(&server, &mut conn).1, strong(ReadConsistency::Lease));
    // Another connection was never READONLY.
    let mut other = server.connect();
    assert_eq!(set_then_get(&server, &mut other).1, strong(ReadConsistency::Lease));
}
