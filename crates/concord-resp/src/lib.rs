//! # concord-resp – Concord's Redis-protocol front door
//!
//! Unmodified Redis clients – `redis-cli`, `redis-benchmark`, redis-py, any RESP2/RESP3 library –
//! talk to Concord through this crate. It speaks the protocol and maps Redis's string commands
//! onto Concord's replicated key-value store (`concord_kv`); the database behind it is a
//! [`Backend`]: the Raft server in production, [`MemoryBackend`] in tests.
//!
//! ```no_run
//! use concord_resp::{serve, MemoryBackend, RespConfig};
//! use std::sync::Arc;
//!
//! # async fn run() -> std::io::Result<()> {
//! let limits = concord_kv::KvLimits::default();
//! let backend = Arc::new(MemoryBackend::new(limits.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6379").await?;
//! serve(listener, backend, RespConfig::for_kv_limits(&limits), tokio::signal::ctrl_c()).await;
//! # Ok(()) }
//! ```
//!
//! ## Layers, one module each
//! * [`frame`] – the RESP value type ([`Frame`]) and the RESP3 → RESP2 downgrade;
//! * [`codec`] – bytes ⇄ frames: an incremental, bounded request parser (multibulk and inline) and
//!   the reply encoder;
//! * [`command`] – arguments → a typed [`Request`], with Redis's exact error replies, and the
//!   command table;
//! * [`exec`] – data commands as `concord_kv` commands and queries (the mapping table is there);
//! * [`glob`] and [`cursor`] – `KEYS`/`SCAN` patterns, and stateless `SCAN` cursors;
//! * [`introspect`] – `INFO`, `ROLE`, `COMMAND`, `CONFIG GET`, `HELP` texts;
//! * [`monitor`] – what the server knows of itself: the client registry (`CLIENT LIST|KILL`), the
//!   slow log, counters, the process's memory;
//! * [`acl`] – users, passwords and roles: the credential check both of a node's doors use;
//! * [`server`] – the tokio server: connections, pipelining, authentication, limits, shutdown;
//!   [`serve_with_acceptor`] runs it over any stream an [`Acceptor`] makes of a socket (TLS);
//! * [`backend`] – the [`Backend`] trait and how its errors look to Redis clients;
//! * [`cluster`] – Redis Cluster's protocol: the view of a sharded backend ([`Topology`]), the
//!   `CLUSTER` replies rendered from it, and `-CROSSSLOT`;
//! * [`pubsub`] – Pub/Sub: the per-node registry of subscriptions (sans-IO), the [`pubsub::Hub`]
//!   every connection of a node shares, and the [`pubsub::Relay`] to the other nodes;
//! * [`memory`] – [`MemoryBackend`], a single-process backend;
//! * [`scripts`] – the node's script cache behind `SCRIPT LOAD` and `EVALSHA` (scripts themselves run
//!   in the state machine: `concord_kv::redis::script`).
//!
//! ## Commands
//! `PING`, `ECHO`, `HELLO [2|3] [AUTH user pass] [SETNAME name]`, `AUTH [user] pass`,
//! `ACL SETUSER|DELUSER|WHOAMI|LIST|USERS` (roles, see [`acl`]), `SELECT 0`, `QUIT`,
//! `CLIENT SETNAME|GETNAME|ID|SETINFO|INFO|LIST|KILL|HELP`, `INFO [section …]`, `ROLE`, `TIME`,
//! `SLOWLOG GET|LEN|RESET|HELP`, `COMMAND [COUNT|INFO|DOCS|LIST]`,
//! `CONFIG GET|SET|RESETSTAT|HELP` (`SET`: the `slowlog-*` parameters), `DBSIZE`; `GET`, `SET` (NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL), `SETNX`,
//! `SETEX`, `PSETEX`, `GETSET`, `DEL`, `EXISTS`, `INCR`, `DECR`, `INCRBY`, `DECRBY`, `MGET`, `MSET`,
//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (NX, XX, GT, LT), `TTL`, `PTTL`, `PERSIST`,
//! `KEYS` (bounded), `SCAN` (MATCH, COUNT, TYPE); `MULTI`/`EXEC`/`DISCARD` for transactions of
//! plain KV operations (one atomic KV transaction; see [`exec`]); Redis Cluster's
//! `CLUSTER SLOTS|SHARDS|NODES|INFO|MYID|KEYSLOT|COUNTKEYSINSLOT|GETKEYSINSLOT|REPLICAS|HELP`,
//! `ASKING`,
//! `READONLY` and `READWRITE` (see [`cluster`]), and `COMMAND GETKEYS`; and Concord's own
//! `CONSISTENCY`, which sets this connection's consistency: `linearizable|lease|stale` reads on a
//! Raft node, `ONE|QUORUM|ALL` or `R <r> W <w>` quorums on a node in the eventual mode (see
//! [`backend`] and [`command`]).
//!
//! Pub/Sub: `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, their `UNSUBSCRIBE`s, `PUBLISH`, `SPUBLISH`
//! and `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP`, across every node of a
//! cluster, delivered at most once (see [`pubsub`]).
//!
//! Hashes, lists, sets and sorted sets run in the replicated state machine's interpreter
//! (`concord_kv::redis`): the front door sends their arguments as they came. Lua scripting: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`,
//! `SCRIPT LOAD|EXISTS|FLUSH|KILL` (see [`scripts`]).
//!
//! `COMMAND INFO` reports each command as Redis 7 does – flags, ACL categories, tips, key
//! positions and key specs, byte for byte (`tests/cluster.rs` compares them with redis-server's) –
//! so cluster clients find the keys of Concord's commands as they find Redis's.
//!
//! ## Errors
//! Redis's own wording throughout; where Redis has no such situation, a Redis error code that
//! clients already handle, with a reason:
//!
//! | situation                                  | reply                                                       | where |
//! |--------------------------------------------|-------------------------------------------------------------|-------|
//! | unknown command, wrong arity, bad option   | `-ERR unknown command …`, `-ERR wrong number of arguments for 'get' command`, `-ERR syntax error` | [`command`] |
//! | no `AUTH` yet; a role that does not allow it | `-NOAUTH Authentication required.`; `-NOPERM User … has no permissions to run the 'set' command` | [`server`], [`acl`] |
//! | protocol error, limits                     | `-ERR Protocol error: …` (connection closed), `-ERR max number of clients reached` | [`server`] |
//! | an argument over the key/value limit       | `-ERR value is 2000000 bytes; the limit is 1048576` (the KV store's words, as HTTP; the payload is passed over and the connection kept) | [`codec`] |
//! | `CONFIG SET` of a parameter set in the file | `-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - Concord sets it in its configuration file; …` | [`server`] |
//! | not the leader, no quorum, timeout, …      | `-READONLY …`, `-TRYAGAIN …`, `-TIMEOUT …`, `-UNKNOWN …`, `-MISCONF …` | [`backend`] |
//! | sharded: the key's slot is elsewhere       | `-MOVED <slot> <host:port>`                                 | [`backend`] |
//! | sharded: the key's slot is being moved     | `-TRYAGAIN …` (never `-ASK`: see [`cluster`])               | [`backend`] |
//! | sharded: the key's slot has no shard now   | `-CLUSTERDOWN …`                                            | [`backend`] |
//! | sharded: a request's keys span slots       | `-CROSSSLOT Keys in request don't hash to the same slot`    | [`cluster`] |
//! | `CLUSTER`, `ASKING`, `READONLY`, `READWRITE` on a backend that is not sharded | `-ERR This instance has cluster support disabled` | [`cluster`] |
//! | `CLUSTER COUNTKEYSINSLOT 16384`, `CLUSTER GETKEYSINSLOT 0 -1` | `-ERR Invalid slot`, `-ERR Invalid slot or number of keys` | [`cluster`] |
//! | `CLUSTER ADDSLOTS …` and Redis's other map-changing subcommands | `-ERR CLUSTER ADDSLOTS is not supported by Concord: …` (the shard map changes through its metadata group) | [`cluster`] |
//! | `COMMAND GETKEYS` of no command, bad arity, no keys | `-ERR Invalid command specified`, `-ERR Invalid number of arguments specified for command`, `-ERR The command has no key arguments` | [`introspect`] |

pub mod acl;
pub mod backend;
pub mod blocking;
pub mod cluster;
pub mod codec;
pub mod command;
// Patterns and cursors live in concord-kv, where the interpreter's SSCAN/HSCAN use them too.
pub use concord_kv::cursor;
pub mod exec;
pub mod frame;
pub use concord_kv::glob;
mod batch;
pub mod introspect;
pub mod memory;
pub mod monitor;
mod pipeline;
pub mod pubsub;
pub mod scripts;
pub mod server;
pub mod tracking;

pub use acl::Acl;
pub use backend::{
    Backend, BackendError, BoxFuture, ConsistencyModel, KeyspaceInfo, ReplicaInfo, ReplicationInfo,
    ReplicationRole, RequestConsistency,
};
pub use cluster::{Topology, TopologyNode, TopologyShard};
pub use codec::{decode_frame, encode, DecodeError, DecodeLimits, ProtocolError, RequestDecoder};
pub use command::{parse, ConsistencySetting, Request};
pub use frame::{Frame, Protocol};
pub use memory::MemoryBackend;
pub use server::{
    serve, serve_with_acceptor, Acceptor, Disconnect, NoEvents, PlainTcp, RespConfig, ServerEvents,
};
