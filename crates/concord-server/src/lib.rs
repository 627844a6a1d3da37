//! # concord-server – the real database
//!
//! The simulator proves Concord's Raft on a virtual network and disk. This crate runs the **same**
//! `RaftNode<KvStore>` value – not a port, not a copy – on a real machine: tokio for time and
//! sockets, a write-ahead log for the disk, HTTP and RESP for clients.
//!
//! ```text
//!   HTTP (axum) ─┐                                       ┌─> peers (TCP, HMAC handshake)
//!   RESP ────────┼─> NodeHandle ──Input──> Driver ───────┼─> WAL (append, group-commit sync)
//!   peers ───────┘   (route, forward,     (owns RaftNode) └─> replies (oneshot / forward-reply)
//!                     sessions, deadlines)
//! ```
//!
//! Modules, in reading order:
//! * [`driver`] – the event loop around the node: the effect contract of `concord_core::process`
//!   made real, with group commit; generic over [`hosted::Hosted`], so it runs Raft (the strong
//!   mode) and Dynamo (the eventual mode, [`eventual`]) alike;
//! * [`storage`] – the disk behind `Persist`/`Sync` (the `concord-wal` write-ahead log);
//! * [`redb_engine`] – the key-value state on disk (redb), checkpointed at Raft snapshots;
//! * [`transport`] and [`wire`] – peer connections: framing, authentication, bounded queues;
//! * [`strong`] – the strong mode's client side ([`NodeHandle`]: leader routing, forwarding,
//!   sessions, deadlines), its HTTP API and RESP backend; [`eventual`] – the eventual mode's, in the
//!   same shape; [`sharded`] – the sharded mode's (many Raft groups, a shard map, Redis Cluster's
//!   redirects); [`front`] – what the modes' front doors share (errors, HTTP and RESP plumbing);
//! * [`node::Served`] – what a mode plugs into [`Node::start`] (one start path for both modes);
//! * [`disk_space`] – a full disk refuses writes and keeps serving reads;
//! * [`backup`] – a consistent, checksummed copy of the keys, and its restore;
//! * [`identity`] – a data directory belongs to one cluster, node and mode, and says so;
//! * [`peer_file`] – peer addresses learned at run time, kept in the data directory for restarts;
//! * [`metrics`] – Prometheus metrics; [`log_limit`] – rate-limited warnings for what strangers can trigger;
//! * [`dashboard`] – the live cluster dashboard every node serves; [`fault_injection`] – partition,
//!   heal and stop nodes from it (off unless asked for);
//! * [`auth`] – who may use the HTTP API: users and roles (shared with RESP), cluster proofs, the
//!   dashboard token, Host/Origin/content-type checks – one middleware for every route;
//! * [`tls`] – optional TLS on every port (mutual for peers); [`certgen`] – a throwaway CA;
//! * [`client`] – the HTTP client of the node's API (hyper), for `concord member`, the dashboard
//!   and the tests; [`testkit`] – test helpers (free ports, in-process clusters, a RESP client);
//! * [`config`] – [`NodeConfig`]; [`node`] – [`Node::start`] wires it all together;
//! * [`error`] – [`Error`], what a node that cannot start or run reports (typed, matchable);
//! * the commands' logic, without their argument parsing (that is the `concord` binary's):
//!   [`serve`] – run one node (`concord serve`); [`cluster`] – the supervisor of a local cluster of
//!   processes (`concord up`); [`membership`] – `concord member` and `concord join`; [`tour`] –
//!   `concord tour`, the guided first run.

pub mod auth;
pub mod backup;
pub mod certgen;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod disk_space;
pub mod driver;
mod entry_cache;
pub mod error;
pub mod eventual;
pub mod fault_injection;
pub mod front;
pub mod hosted;
pub mod identity;
pub mod incarnation;
pub mod log_limit;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peer_file;
pub mod redb_engine;
pub mod serve;
pub mod sharded;
pub mod storage;
pub mod strong;
pub mod testkit;
pub mod tls;
pub mod tour;
pub mod transport;
pub mod wire;

pub use config::{Mode, NodeConfig, PeerConfig, ReadMode};
pub use error::Error;
pub use front::ClientError;
pub use node::Node;
pub use strong::NodeHandle;

/// Raft replicating the key-value store, whose state lives on disk in redb: the strong mode's node.
pub type RaftKv = concord_raft::RaftNode<concord_kv::KvStore<redb_engine::RedbEngine>>;
/// A client request to the node.
pub type KvRequest = concord_raft::RaftRequest<concord_kv::Command, concord_kv::Query>;
/// The node's answer.
pub type KvResponse = concord_raft::RaftResponse<concord_kv::KvResult>;
/// A message between nodes.
pub type RaftMessage = concord_raft::Message<concord_kv::Command>;
