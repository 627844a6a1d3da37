//! Redis Cluster's protocol, compared byte for byte with a real redis-server.
//!
//! Each test starts redis-server (`cluster-enabled yes`, a one-node cluster owning every slot
//! through `CLUSTER ADDSLOTSRANGE 0 16383`, or a plain one) and a Concord front door over a
//! `MemoryBackend` whose topology says the same (same node id, one shard with every slot), sends
//! both the same requests over raw TCP, in RESP2 and after `HELLO 3`, and compares the raw reply
//! bytes. Only what must differ is normalised: each server's port (in replies, `PORT`), the cluster
//! bus port (Concord reports redis's), and `version` in `HELLO`.
//!
//! Without redis-server (or redis-cli) a test prints why it is skipped; under `CI` it fails
//! (`.ci/run` installs both).

mod common;

use common::redis::{call, parse_value, Redis, Value, INSTALL};
use common::{have_program, python, Conn, TestServer};
use concord_kv::KvLimits;
use concord_resp::{RespConfig, Topology, TopologyNode, TopologyShard};
use std::net::SocketAddr;
use std::process::Command;

/// Concord's front door over a `MemoryBackend` reporting `topology(addr)` (if given).
fn concord(topology: Option<Box<dyn FnOnce(SocketAddr) -> Topology>>) -> TestServer {
    TestServer::start_custom(
        KvLimits::default(),
        RespConfig::default(),
        move |addr, backend| match topology {
            Some(topology) => backend.with_topology(topology(addr)),
            None => backend,
        },
    )
}

/// A one-node topology matching a one-node redis cluster: its node id and bus port.
fn one_node(id: String, cluster_port: u16) -> Box<dyn FnOnce(SocketAddr) -> Topology> {
    Box::new(move |addr: SocketAddr| Topology {
        myself: id.clone(),
        current_epoch: 0,
        state_ok: true,
        nodes: vec![TopologyNode {
            id: id.clone(),
            host: "127.0.0.1".into(),
            port: addr.port(),
            cluster_port,
            connected: true,
        }],
        shards: vec![TopologyShard {
            id: "0".repeat(40),
            slots: vec![(0, 16383)],
            primary: Some(id),
            replicas: vec![],
            config_epoch: 0,
            moving_out: vec![],
        }],
    })
}

/// A pair of connections, one to each server, that checks both answer the same bytes.
struct Pair {
    redis: Conn,
    redis_port: u16,
    concord: Conn,
    concord_port: u16,
}

impl Pair {
    fn new(redis: &Redis, concord: &TestServer, resp3: bool) -> Pair {
        let mut pair = Pair {
            redis: redis.connect(),
            redis_port: redis.port,
            concord: concord.connect(),
            concord_port: concord.port(),
        };
        if resp3 {
            let (ours, theirs) = pair.both(&["HELLO", "3"]);
            assert!(theirs.starts_with("%7\r\n") && ours.starts_with("%7\r\n"), "{ours} {theirs}");
        }
        pair
    }

    /// Both raw replies to `args`, each server's port replaced by `PORT`.
    fn both(&mut self, args: &[&str]) -> (String, String) {
        let normalise =
            |bytes: Vec<u8>, port: u16| String::from_utf8_lossy(&bytes).replace(&port.to_string(), "PORT");
        let theirs = normalise(call(&mut self.redis, args), self.redis_port);
        let ours = normalise(call(&mut self.concord, args), self.concord_port);
        (ours, theirs)
    }

    /// Assert both servers answer `args` with the same bytes; the reply.
    fn same(&mut self, args: &[&str]) -> String {
        let (ours, theirs) = self.both(args);
        assert_eq!(ours, theirs, "replies to {args:?} differ (left: Concord, right: redis-server)");
        ours
    }
}

fn redis_id(redis: &Redis) -> String {
    let reply = call(&mut redis.connect(), &["CLUSTER", "MYID"]);
    String::from_utf8(reply).unwrap().lines().nth(1).unwrap().to_string()
}

fn redis_cluster_port(redis: &Redis) -> u16 {
    redis.port + 10_000
}

/// Keys whose slots Redis computes with the hash-tag rule's corner cases.
const TRICKY_KEYS: &[&str] = &[
    "foo",
    "{}",
    "{a}b",
    "a{}{b}",
    "a{b}{c}",
    "{",
    "}{a}",
    "{{a}}",
    "a{b",
    "",
    "123456789",
    "{user1000}.following",
];

#[test]
fn cluster_subcommands_answer_as_redis_server() {
    let Some(redis) = Redis::start(true) else { return };
    let server = concord(Some(one_node(redis_id(&redis), redis_cluster_port(&redis))));
    for resp3 in [false, true] {
        let mut pair = Pair::new(&redis, &server, resp3);
        for sub in ["SLOTS", "SHARDS", "NODES", "INFO", "MYID"] {
            pair.same(&["CLUSTER", sub]);
            pair.same(&["cluster", &sub.to_lowercase()]);
        }
        let id = redis_id(&redis);
        pair.same(&["CLUSTER", "REPLICAS", &id]);
        pair.same(&["CLUSTER", "SLAVES", &id]);
        for key in TRICKY_KEYS {
            pair.same(&["CLUSTER", "KEYSLOT", key]);
        }
        // Data, inserted in descending key order: Redis lists a slot's keys newest first, Concord
        // in key order, so the orders agree.
        for key in ["{foo}z", "{foo}b", "foo"] {
            pair.same(&["SET", key, "v"]);
        }
        let slot = "12182"; // KEYSLOT foo
        pair.same(&["CLUSTER", "COUNTKEYSINSLOT", slot]);
        pair.same(&["CLUSTER", "COUNTKEYSINSLOT", "0"]);
        pair.same(&["CLUSTER", "GETKEYSINSLOT", slot, "10"]);
        pair.same(&["CLUSTER", "GETKEYSINSLOT", slot, "2"]);
        pair.same(&["CLUSTER", "GETKEYSINSLOT", slot, "0"]);
        pair.same(&["CLUSTER", "GETKEYSINSLOT", "0", "10"]);
        pair.same(&["DEL", "{foo}z", "{foo}b", "foo"]);
        // Bad input: Redis's wording, and nothing changes.
        for bad in [
            &["CLUSTER"][..],
            &["CLUSTER", "FOO"],
            &["CLUSTER", "FOO", "bar"],
            &["CLUSTER", "KEYSLOT"],
            &["CLUSTER", "KEYSLOT", "a", "b"],
            &["CLUSTER", "SLOTS", "x"],
            &["CLUSTER", "SHARDS", "x"],
            &["CLUSTER", "NODES", "x"],
            &["CLUSTER", "INFO", "x"],
            &["CLUSTER", "MYID", "x"],
            &["CLUSTER", "HELP", "x"],
            &["CLUSTER", "COUNTKEYSINSLOT"],
            &["CLUSTER", "COUNTKEYSINSLOT", "1", "2"],
            &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
            &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
            &["CLUSTER", "COUNTKEYSINSLOT", "abc"],
            &["CLUSTER", "COUNTKEYSINSLOT", "99999999999999999999"],
            &["CLUSTER", "GETKEYSINSLOT", "0"],
            &["CLUSTER", "GETKEYSINSLOT", "1", "2", "3"],
            &["CLUSTER", "GETKEYSINSLOT", "0", "-1"],
            &["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
            &["CLUSTER", "GETKEYSINSLOT", "abc", "-1"],
            &["CLUSTER", "GETKEYSINSLOT", "0", "abc"],
            &["CLUSTER", "GETKEYSINSLOT", "1.5", "1"],
            &["CLUSTER", "REPLICAS"],
            &["CLUSTER", "REPLICAS", "nosuchnode"],
            &["CLUSTER", "SLAVES", "nosuchnode"],
            // Redis's own subcommands Concord does not offer: Redis's arity checks first.
            &["CLUSTER", "ADDSLOTS"],
            &["CLUSTER", "SETSLOT", "1"],
            &["CLUSTER", "MEET", "1.2.3.4"],
        ] {
            pair.same(bad);
        }
        pair.same(&["CLUSTER", "COUNTKEYSINSLOT", slot]);
        // ... and the ones Concord refuses say why (Redis would change its slot map).
        let (ours, _) = pair.both(&["CLUSTER", "ADDSLOTS", "1"]);
        assert!(ours.starts_with("-ERR CLUSTER ADDSLOTS is not supported by Concord"), "{ours}");
        // HELP: Redis's lines for the subcommands Concord answers, in Redis's order.
        let (ours, theirs) = pair.both(&["CLUSTER", "HELP"]);
        let lines = |reply: &str| {
            reply.split("\r\n").skip(1).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>()
        };
        let (ours, theirs) = (lines(&ours), lines(&theirs));
        let mut rest = theirs.iter();
        for line in &ours {
            assert!(rest.any(|t| t == line), "CLUSTER HELP line {line:?} is not redis-server's (in order)");
        }
        assert!(ours.len() > 15, "{ours:?}");
    }
}

#[test]
fn crossslot_readonly_asking_and_info_answer_as_redis_server() {
    let Some(redis) = Redis::start(true) else { return };
    let server = concord(Some(one_node(redis_id(&redis), redis_cluster_port(&redis))));
    for resp3 in [false, true] {
        let mut pair = Pair::new(&redis, &server, resp3);
        for request in [
            &["MGET", "a", "b"][..],
            &["MSET", "a", "1", "b", "2"],
            &["DEL", "a", "b"],
            &["EXISTS", "a", "b"],
            &["MGET", "a", "{a}b"],
            &["MSET", "{x}1", "1", "{x}2", "2"],
            &["MGET", "{x}1", "{x}2", "x"],
            &["EXISTS", "{x}1", "{x}2"],
            &["DEL", "{x}1", "{x}2"],
            // A transaction of single-slot commands across slots: EXEC refuses and discards it.
            &["MULTI"],
            &["SET", "a", "1"],
            &["SET", "b", "1"],
            &["EXEC"],
            &["EXEC"],
            &["GET", "a"],
            // A command that spans slots is refused when queued, and dooms the transaction.
            &["MULTI"],
            &["MGET", "a", "b"],
            &["SET", "a", "1"],
            &["EXEC"],
            // Within one slot, a transaction runs.
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["MGET", "{t}a", "{t}b"],
            &["EXEC"],
            &["DEL", "{t}a"],
            &["READONLY"],
            &["GET", "{t}a"],
            &["READWRITE"],
            &["ASKING"],
            &["READONLY", "x"],
            &["READWRITE", "x"],
            &["ASKING", "x"],
            &["INFO", "cluster"],
            &["SELECT", "0"],
            &["SELECT", "1"],
            &["SELECT", "x"],
            // SORT's BY patterns and GET read keys of any slot: Redis Cluster refuses them.
            &["RPUSH", "{s}l", "2", "1"],
            &["SORT", "{s}l"],
            &["SORT", "{s}l", "BY", "w*"],
            &["SORT", "{s}l", "BY", "w*", "LIMIT", "x"],
            &["SORT", "{s}l", "BY", "nosort", "DESC"],
            &["SORT", "{s}l", "GET", "#"],
            &["SORT_RO", "{s}l", "LIMIT", "0", "1", "GET", "w*"],
            &["SORT", "{s}l", "foo", "GET", "#"],
            &["SORT", "{s}l", "STORE", "{s}d"],
            &["SORT", "{s}l", "STORE", "d"],
            &["DEL", "{s}l", "{s}d"],
        ] {
            pair.same(request);
        }
        let (ours, _) = pair.both(&["HELLO"]);
        assert!(ours.contains("mode\r\n$7\r\ncluster"), "{ours}");
    }
}

#[test]
fn without_cluster_support_replies_are_redis_servers() {
    let Some(redis) = Redis::start(false) else { return };
    let server = concord(None);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&redis, &server, resp3);
        for request in [
            &["CLUSTER", "SLOTS"][..],
            &["CLUSTER", "SHARDS"],
            &["CLUSTER", "NODES"],
            &["CLUSTER", "INFO"],
            &["CLUSTER", "MYID"],
            &["CLUSTER", "HELP"],
            &["CLUSTER", "KEYSLOT", "foo"],
            &["CLUSTER", "COUNTKEYSINSLOT", "0"],
            &["CLUSTER", "COUNTKEYSINSLOT", "abc"],
            &["CLUSTER", "GETKEYSINSLOT", "0", "1"],
            &["CLUSTER", "ADDSLOTS", "1"],
            &["CLUSTER", "FOO"],
            &["CLUSTER"],
            &["CLUSTER", "KEYSLOT"],
            &["ASKING"],
            &["READONLY"],
            &["READWRITE"],
            &["MGET", "a", "b"],
            &["MULTI"],
            &["SET", "a", "1"],
            &["SET", "b", "1"],
            &["EXEC"],
            &["DEL", "a", "b"],
            &["INFO", "cluster"],
        ] {
            pair.same(request);
        }
    }
}

/// The name of a `COMMAND INFO` entry.
fn entry_name(entry: &Value) -> String {
    let raw = String::from_utf8_lossy(&entry.items[0].raw).into_owned();
    raw.split("\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn command_info_and_getkeys_match_redis_server_for_every_command() {
    let Some(redis) = Redis::start(true) else { return };
    let server = concord(Some(one_node(redis_id(&redis), redis_cluster_port(&redis))));
    let names: Vec<&str> = concord_resp::command::COMMANDS.iter().map(|c| c.name).collect();
    // Concord's own commands (`CONSISTENCY`, `GETREV`): Redis has none of those names.
    let own: Vec<&str> =
        concord_resp::command::COMMANDS.iter().filter(|c| c.since == "concord").map(|c| c.name).collect();
    for resp3 in [false, true] {
        let mut pair = Pair::new(&redis, &server, resp3);
        for name in &names {
            let (ours, theirs) = pair.both(&["COMMAND", "INFO", name]);
            if own.contains(name) {
                assert!(theirs == "*1\r\n$-1\r\n" || theirs == "*1\r\n_\r\n", "{theirs}");
                continue;
            }
            let (ours, theirs) = (parse_value(ours.as_bytes()), parse_value(theirs.as_bytes()));
            let (ours, theirs) = (&ours.items[0], &theirs.items[0]);
            if ours.items[9].items.is_empty() {
                assert_eq!(
                    String::from_utf8_lossy(&ours.raw),
                    String::from_utf8_lossy(&theirs.raw),
                    "COMMAND INFO {name} (left: Concord, right: redis-server)"
                );
                continue;
            }
            // A container: Concord offers some of Redis's subcommands. Everything but the list
            // is the same, and each subcommand Concord lists is Redis's, byte for byte.
            for field in 0..9 {
                assert_eq!(
                    String::from_utf8_lossy(&ours.items[field].raw),
                    String::from_utf8_lossy(&theirs.items[field].raw),
                    "COMMAND INFO {name}, field {field}"
                );
            }
            for sub in &ours.items[9].items {
                let sub_name = entry_name(sub);
                match theirs.items[9].items.iter().find(|t| entry_name(t) == sub_name) {
                    Some(redis_sub) => assert_eq!(
                        String::from_utf8_lossy(&sub.raw),
                        String::from_utf8_lossy(&redis_sub.raw),
                        "COMMAND INFO {name}: {sub_name}"
                    ),
                    // CLIENT SETINFO is Redis 7.2's; the server here may be 7.0.
                    None => assert_eq!(
                        sub_name, "client|setinfo",
                        "{sub_name} is not a subcommand of redis-server's"
                    ),
                }
            }
        }
        // Key positions, as cluster clients find them.
        for request in [
            &["COMMAND", "GETKEYS", "GET", "a"][..],
            &["COMMAND", "GETKEYS", "SET", "a", "b", "EX", "10"],
            &["COMMAND", "GETKEYS", "SETNX", "a", "b"],
            &["COMMAND", "GETKEYS", "SETEX", "a", "10", "b"],
            &["COMMAND", "GETKEYS", "PSETEX", "a", "10", "b"],
            &["COMMAND", "GETKEYS", "GETSET", "a", "b"],
            &["COMMAND", "GETKEYS", "DEL", "a", "b", "c"],
            &["COMMAND", "GETKEYS", "EXISTS", "a", "b"],
            &["COMMAND", "GETKEYS", "INCR", "a"],
            &["COMMAND", "GETKEYS", "DECR", "a"],
            &["COMMAND", "GETKEYS", "INCRBY", "a", "1"],
            &["COMMAND", "GETKEYS", "DECRBY", "a", "1"],
            &["COMMAND", "GETKEYS", "MGET", "a", "b", "c"],
            &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
            &["COMMAND", "GETKEYS", "MSET", "a", "1", "b"],
            &["COMMAND", "GETKEYS", "LMOVE", "a", "b", "LEFT", "RIGHT"],
            &["COMMAND", "GETKEYS", "RPOPLPUSH", "a", "b"],
            &["COMMAND", "GETKEYS", "BLPOP", "a", "b", "0"],
            &["COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT"],
            &["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
            &["COMMAND", "GETKEYS", "BLMPOP", "0", "1", "a", "RIGHT", "COUNT", "2"],
            &["COMMAND", "GETKEYS", "EXPIRE", "a", "10"],
            &["COMMAND", "GETKEYS", "PEXPIRE", "a", "10", "NX"],
            &["COMMAND", "GETKEYS", "EXPIREAT", "a", "10"],
            &["COMMAND", "GETKEYS", "PEXPIREAT", "a", "10"],
            &["COMMAND", "GETKEYS", "TTL", "a"],
            &["COMMAND", "GETKEYS", "PTTL", "a"],
            &["COMMAND", "GETKEYS", "PERSIST", "a"],
            &["COMMAND", "GETKEYS", "OBJECT", "ENCODING", "a"],
            &["COMMAND", "GETKEYS", "RENAME", "a", "b"],
            &["COMMAND", "GETKEYS", "COPY", "a", "b", "REPLACE"],
            &["COMMAND", "GETKEYS", "MSETNX", "a", "1", "b", "2"],
            &["COMMAND", "GETKEYS", "WATCH", "a", "b"],
            &["COMMAND", "GETKEYS", "get", "a"],
            // Several key specs, and a key count.
            &["COMMAND", "GETKEYS", "SMOVE", "a", "b", "m"],
            &["COMMAND", "GETKEYS", "SINTERSTORE", "d", "a", "b"],
            &["COMMAND", "GETKEYS", "SINTERCARD", "2", "a", "b", "LIMIT", "1"],
            &["COMMAND", "GETKEYS", "SINTERCARD", "3", "a"],
            &["COMMAND", "GETKEYS", "SINTERCARD", "x", "a"],
            // Errors.
            &["COMMAND", "GETKEYS", "GET"],
            &["COMMAND", "GETKEYS", "GET", "a", "b"],
            &["COMMAND", "GETKEYS", "NOSUCH", "a"],
            &["COMMAND", "GETKEYS", "PING", "x"],
            &["COMMAND", "GETKEYS", "KEYS", "*"],
            &["COMMAND", "GETKEYS", "CLIENT", "SETNAME", "x"],
            &["COMMAND", "GETKEYS", "CLIENT", "NOSUCH", "x"],
            &["COMMAND", "GETKEYS", "CLUSTER", "KEYSLOT", "x"],
            &["COMMAND", "GETKEYS"],
            &["COMMAND", "NOSUCH"],
        ] {
            pair.same(request);
        }
    }
}

#[test]
fn redis_cli_follows_the_cluster() {
    let Some(redis) = Redis::start(true) else { return };
    if !have_program("redis-cli", &["--version"], INSTALL) {
        return;
    }
    let id = redis_id(&redis);
    drop(redis);
    let server = concord(Some(one_node(id, 16_379)));
    let cli = |args: &[&str]| {
        let output =
            Command::new("redis-cli").arg("-p").arg(server.port().to_string()).args(args).output().unwrap();
        assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(cli(&["-c", "set", "foo", "bar"]).trim(), "OK");
    assert_eq!(cli(&["-c", "get", "foo"]).trim(), "bar");
    // redis-cli's cluster checker reads CLUSTER NODES and INFO, and the slots' coverage.
    let check = cli(&["--cluster", "check", &format!("127.0.0.1:{}", server.port())]);
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
    assert!(check.contains("1 keys | 16384 slots | 0 slaves."), "{check}");
}

/// A cluster-aware client library, unmodified: redis-py's `RedisCluster` discovers the slots
/// (`CLUSTER SLOTS`), learns key positions (`COMMAND`), and routes by slot, in RESP2 and RESP3.
const REDIS_PY_CLUSTER: &str = r#"
import sys
from redis.cluster import RedisCluster
port = int(sys.argv[1])
for protocol in (2, 3):
    rc = RedisCluster(host="127.0.0.1", port=port, protocol=protocol)
    assert len(rc.get_nodes()) == 1, rc.get_nodes()
    assert rc.set("foo", "bar")
    assert rc.get("foo") == b"bar"
    assert rc.keyslot("foo") == 12182
    assert rc.cluster_keyslot("foo") == 12182
    assert rc.mset({"{u}a": "1", "{u}b": "2"})
    assert rc.mget("{u}a", "{u}b") == [b"1", b"2"]
    # The client splits a cross-slot MGET by slot itself.
    assert rc.mget_nonatomic("foo", "{u}a") == [b"bar", b"1"]
    assert rc.cluster_countkeysinslot(12182) == 1
    keys = rc.cluster_get_keys_in_slot(12182, 10)
    assert keys in ([b"foo"], ["foo"]), keys  # redis-py decodes these itself
    assert rc.delete("foo") == 1
    assert rc.delete("{u}a", "{u}b") == 2
    pipe = rc.pipeline()
    pipe.set("{p}1", "a")
    pipe.get("{p}1")
    assert pipe.execute() == [True, b"a"], "pipeline"
    info = rc.cluster_info()
    assert info["cluster_state"] == "ok", info
    rc.close()
print("ok")
"#;

#[test]
fn redis_py_cluster_client_routes_itself() {
    if !have_program("python3", &["-c", "import redis.cluster"], "pip install redis") {
        return;
    }
    let server = concord(Some(one_node("f".repeat(40), 16_379)));
    assert_eq!(python(REDIS_PY_CLUSTER, &[&server.port().to_string()]), "ok");
}

/// Two Concord nodes splitting the slots (each `MemoryBackend` leads one shard and follows the
/// other's), as two Redis Cluster primaries would.
fn two_nodes() -> (TestServer, TestServer) {
    let (a, b) = (concord(None), concord(None));
    let topology = |myself: &str| Topology {
        myself: myself.repeat(40),
        current_epoch: 2,
        state_ok: true,
        nodes: [("a", &a), ("b", &b)]
            .map(|(id, server)| TopologyNode {
                id: id.repeat(40),
                host: "127.0.0.1".into(),
                port: server.port(),
                cluster_port: 16_379,
                connected: true,
            })
            .to_vec(),
        shards: vec![
            TopologyShard {
                id: "1".repeat(40),
                slots: vec![(0, 8191)],
                primary: Some("a".repeat(40)),
                replicas: vec!["b".repeat(40)],
                config_epoch: 1,
                moving_out: vec![],
            },
            TopologyShard {
                id: "2".repeat(40),
                slots: vec![(8192, 16383)],
                primary: Some("b".repeat(40)),
                replicas: vec!["a".repeat(40)],
                config_epoch: 2,
                moving_out: vec![],
            },
        ],
    };
    a.backend.set_topology(Some(topology("a")));
    b.backend.set_topology(Some(topology("b")));
    (a, b)
}

#[test]
fn clients_follow_moved_between_two_nodes() {
    let (a, b) = two_nodes();
    // foo is in slot 12182, served by b: a redirects, in Redis Cluster's words.
    let mut conn = a.connect();
    let moved = format!("-MOVED 12182 127.0.0.1:{}\r\n", b.port());
    assert_eq!(String::from_utf8(call(&mut conn, &["SET", "foo", "bar"])).unwrap(), moved);
    assert_eq!(String::from_utf8(call(&mut conn, &["GET", "foo"])).unwrap(), moved);
    assert_eq!(call(&mut conn, &["SET", "bar", "x"]), b"+OK\r\n", "bar is in slot 5061, a's");
    if !have_program("redis-cli", &["--version"], INSTALL) {
        return;
    }
    let cli = |server: &TestServer, args: &[&str]| {
        let output =
            Command::new("redis-cli").arg("-p").arg(server.port().to_string()).args(args).output().unwrap();
        assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(cli(&a, &["-c", "set", "foo", "bar"]).trim(), "OK");
    assert_eq!(cli(&a, &["-c", "get", "foo"]).trim(), "bar");
    assert!(b.backend.snapshot().get(b"foo").is_some() && a.backend.snapshot().get(b"foo").is_none());
    // Both nodes' CLUSTER NODES agree, and cover every slot.
    let check = cli(&a, &["--cluster", "check", &format!("127.0.0.1:{}", a.port())]);
    assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    // redis-benchmark's cluster mode discovers both nodes (CLUSTER NODES) and sends each key to
    // its node.
    let output = Command::new("redis-benchmark")
        .args(["--cluster", "-p", &a.port().to_string(), "-t", "set,get", "-n", "2000", "-r", "1000", "-q"])
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && report.contains("SET:") && report.contains("GET:"), "{report}");
    assert!(!report.contains("MOVED") && !report.to_lowercase().contains("error"), "{report}");
    assert!(!a.backend.snapshot().is_empty() && !b.backend.snapshot().is_empty(), "{report}");
    if !have_program("python3", &["-c", "import redis.cluster"], "pip install redis") {
        return;
    }
    // redis-py learns the split from CLUSTER SLOTS and sends each key to its node.
    let script = r#"
import re, sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
assert len(rc.get_nodes()) == 2, rc.get_nodes()
# Each node leads one shard and follows the other: both are primaries to the client (a node listed
# as a replica of the other's shard used to become a "replica", and its keys were not listed).
assert all(n.server_type == "primary" for n in rc.get_nodes()), [(n.name, n.server_type) for n in rc.get_nodes()]
for i in range(50):
    assert rc.set(f"key{i}", str(i))
assert rc.mget_nonatomic([f"key{i}" for i in range(50)]) == [str(i).encode() for i in range(50)]
# KEYS on every primary: all 50 (redis-benchmark's keys from above are there too).
keys = {k for k in rc.keys(target_nodes=RedisCluster.PRIMARIES) if re.fullmatch(rb"key[0-9]+", k)}
assert keys == {f"key{i}".encode() for i in range(50)}, sorted(keys)
print("ok")
"#;
    assert_eq!(python(script, &[&a.port().to_string()]), "ok");
    // Each node holds exactly the keys of its slots.
    let (on_a, on_b) = (a.backend.snapshot(), b.backend.snapshot());
    for i in 0..50 {
        let key = format!("key{i}");
        let on_b_expected = concord_shard::slot::key_slot(key.as_bytes()).get() >= 8192;
        assert_eq!(on_b.get(key.as_bytes()).is_some(), on_b_expected, "{key}");
        assert_eq!(on_a.get(key.as_bytes()).is_some(), !on_b_expected, "{key}");
    }
}

/// Sets and the later hash commands through the front door, byte for byte against redis-server
/// where the reply does not depend on member order or randomness (the interpreter answers in
/// byte order, redis-server in hash-table order): counts, flags, errors, one-member sets, and
/// HINCRBYFLOAT's and INCRBYFLOAT's long-double text.
#[test]
fn sets_and_hashes_answer_as_redis_server() {
    let Some(redis) = Redis::start(false) else { return };
    let server = concord(None);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&redis, &server, resp3);
        for request in [
            &["SADD", "s", "a", "b", "c"][..],
            &["SADD", "s", "a", "d"],
            &["SADD", "t", "c", "d", "e"],
            &["SET", "str", "v"],
            &["SCARD", "s"],
            &["SISMEMBER", "s", "a"],
            &["SMISMEMBER", "s", "a", "z", "d"],
            &["SINTER", "s", "t", "nope"],
            &["SINTER", "nope", "str"],
            &["SDIFF", "t", "s"],
            &["SINTERCARD", "2", "s", "t"],
            &["SINTERCARD", "2", "s", "t", "LIMIT", "1"],
            &["SINTERCARD", "0", "s"],
            &["SINTERCARD", "3", "s"],
            &["SINTERSTORE", "d", "s", "t"],
            &["SCARD", "d"],
            &["SISMEMBER", "d", "c"],
            &["SUNIONSTORE", "str2", "s", "t"],
            &["SDIFFSTORE", "d", "s", "s"],
            &["TYPE", "d"],
            &["SMOVE", "s", "t", "a"],
            &["SMOVE", "s", "t", "zz"],
            &["SMOVE", "nope", "str", "a"],
            &["SMOVE", "s", "str", "b"],
            &["SREM", "s", "b", "c", "d"],
            &["EXISTS", "s"],
            &["SPOP", "nope"],
            &["SPOP", "nope", "2"],
            &["SPOP", "t", "-1"],
            &["SPOP", "str"],
            &["SRANDMEMBER", "nope"],
            &["SRANDMEMBER", "t", "0"],
            &["SRANDMEMBER", "t", "-9223372036854775808"],
            &["SSCAN", "nope", "0"],
            &["SSCAN", "str", "0"],
            &["SSCAN", "t", "0", "COUNT", "0"],
            &["SADD", "one", "x"],
            &["SPOP", "one"],
            &["EXISTS", "one"],
            &["HINCRBYFLOAT", "h", "f", "10.5"],
            &["HINCRBYFLOAT", "h", "f", "3.0e3"],
            &["HINCRBYFLOAT", "h", "f", "0.1"],
            &["HINCRBYFLOAT", "h", "g", "0.1"],
            &["HINCRBYFLOAT", "h", "g", "0.2"],
            &["HINCRBYFLOAT", "h", "g", "1e30"],
            &["HINCRBYFLOAT", "h", "g", "abc"],
            &["HINCRBYFLOAT", "h", "g", "inf"],
            &["HINCRBYFLOAT", "str", "g", "1"],
            &["SET", "n", "10.6"],
            &["INCRBYFLOAT", "n", "5.0e3"],
            &["INCRBYFLOAT", "n", "-2.0e2"],
            &["INCRBYFLOAT", "m", "0.1"],
            &["INCRBYFLOAT", "m", "0.2"],
            &["INCRBYFLOAT", "m", "1.23456789012345678"],
            &["SET", "m", "1e17"],
            &["INCRBYFLOAT", "m", "1"],
            &["INCRBYFLOAT", "m", "1e30"],
            &["INCRBYFLOAT", "m", "inf"],
            &["INCRBYFLOAT", "m", "nan"],
            &["INCRBYFLOAT", "m", "0x1p3"],
            &["INCRBYFLOAT", "h", "x"],
            &["DEL", "n", "m"],
            &["HRANDFIELD", "nope"],
            &["HRANDFIELD", "h", "1", "foo"],
            &["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"],
            &["HSCAN", "h", "0", "MATCH", "f"],
            &["HSCAN", "str", "0"],
            &["DEL", "s", "t", "d", "str", "str2", "h"],
        ] {
            pair.same(request);
        }
    }
}
