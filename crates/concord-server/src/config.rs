//! A node's configuration: who it is, where it listens, who its peers are, and how it stores data.
//!
//! One [`NodeConfig`] per process, read from a TOML file (`concord serve --config node.toml`) or built
//! from command-line flags. Everything that has a sensible default has one; what cannot be guessed
//! (the node id, the peers of a multi-node cluster, the cluster secret) is required, and a missing or
//! contradictory setting is an error that says which setting and why – before any socket is opened.
//!
//! ```toml
//! id = 1
//! data_dir = "./concord-data/node1"
//! cluster_id = "c-2f9a"
//! cluster_secret_file = "./concord-data/cluster.secret"
//! peer_addr = "127.0.0.1:7380"        # where other nodes reach this one
//! redis_addr = "127.0.0.1:6380"       # RESP clients (redis-cli)
//! http_addr = "127.0.0.1:8081"        # HTTP API, /metrics, /healthz
//!
//! [tls]                               # optional; see `crate::tls`
//! cert = "./tls/node1.pem"            # this node's certificate chain (PEM)
//! key = "./tls/node1.key"             # its private key (PEM)
//! ca = "./tls/ca.pem"                 # the CA that signs every node's certificate
//!
//! [[peers]]
//! id = 2
//! addr = "127.0.0.1:7381"
//! http_addr = "127.0.0.1:8082"        # optional: lets followers hint the leader's HTTP address
//! ```
//!
//! Every address defaults to loopback: a node is reachable from other machines only when asked.
//!
//! ## Modes
//! `mode = "strong"` (the default) replicates through Raft; `mode = "eventual"` runs Dynamo-style
//! leaderless replication (`concord-dynamo`) with N/R/W quorums set in a `[dynamo]` table:
//!
//! ```toml
//! mode = "eventual"
//! [dynamo]
//! n = 3          # replicas per key
//! r = 2          # replies a read waits for (clients may override per request)
//! w = 2          # acknowledgements a write waits for
//! ```
//!
//! Every node of a cluster must run the same mode and the same `[dynamo]` settings.

use crate::Error;
use concord_core::time::serde_duration;
use concord_core::NodeId;
use concord_dynamo::DynamoConfig;
use concord_kv::KvLimits;
use concord_raft::{RaftConfig, ReadConsistency};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Another member of the cluster, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u32,
    /// The peer's Raft port.
    pub addr: SocketAddr,
    /// Its HTTP API, if known (used in "not the leader" hints and `GET /v1/cluster`).
    #[serde(default)]
    pub http_addr: Option<SocketAddr>,
    /// Its RESP port, if known (used in `-MOVED`-style hints).
    #[serde(default)]
    pub redis_addr: Option<SocketAddr>,
}

impl PeerConfig {
    /// Parse the command-line form `ID=PEER_ADDR[,http=ADDR][,redis=ADDR]`.
    pub fn parse(text: &str) -> Result<PeerConfig, Error> {
        parse_peer(text).map_err(Error::Config)
    }
}

fn parse_peer(text: &str) -> Result<PeerConfig, String> {
    let usage =
        "write a peer as ID=PEER_ADDR[,http=ADDR][,redis=ADDR], e.g. 2=127.0.0.1:7381,http=127.0.0.1:8082";
    let (id, rest) = text.split_once('=').ok_or_else(|| format!("peer `{text}`: missing `=`; {usage}"))?;
    let id: u32 =
        id.trim().parse().map_err(|_| format!("peer `{text}`: `{id}` is not a node id; {usage}"))?;
    let mut parts = rest.split(',');
    let addr = parse_addr(parts.next().unwrap_or(""), &format!("peer {id}"))?;
    let mut peer = PeerConfig { id, addr, http_addr: None, redis_addr: None };
    for part in parts {
        match part.split_once('=') {
            Some(("http", a)) => peer.http_addr = Some(parse_addr(a, &format!("peer {id} http"))?),
            Some(("redis", a)) => peer.redis_addr = Some(parse_addr(a, &format!("peer {id} redis"))?),
            _ => return Err(format!("peer `{text}`: unknown part `{part}`; {usage}")),
        }
    }
    Ok(peer)
}

fn parse_addr(text: &str, what: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| format!("{what}: `{text}` is not an address like 127.0.0.1:7380"))
}

/// How the cluster replicates: one consistency family or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Raft: linearizable writes and (by default) reads, one leader.
    #[default]
    Strong,
    /// Dynamo-style: any node coordinates, N/R/W quorums, siblings, hinted handoff, anti-entropy.
    Eventual,
    /// Raft, sharded: 16 384 hash slots in shards, each shard its own Raft group, a metadata group
    /// holding the shard map (see [`crate::sharded`]).
    Sharded,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, Error> {
        match text {
            "strong" | "raft" => Ok(Mode::Strong),
            "eventual" | "dynamo" => Ok(Mode::Eventual),
            "sharded" => Ok(Mode::Sharded),
            other => Err(Error::Config(format!("mode `{other}`: expected strong, eventual or sharded"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Strong => "strong",
            Mode::Eventual => "eventual",
            Mode::Sharded => "sharded",
        }
    }
}

/// The default read consistency for clients that do not ask for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// ReadIndex: one heartbeat round per batch of reads. Linearizable.
    #[default]
    Linearizable,
    /// Leader lease: no round trip while the lease holds; linearizable while clocks drift less than
    /// `raft.clock_drift_bound`.
    Lease,
    /// The local replica's state: fast, possibly stale.
    Stale,
}

impl ReadMode {
    pub fn parse(text: &str) -> Result<ReadMode, Error> {
        match text {
            "linearizable" => Ok(ReadMode::Linearizable),
            "lease" => Ok(ReadMode::Lease),
            "stale" => Ok(ReadMode::Stale),
            other => Err(Error::Config(format!(
                "read consistency `{other}`: expected linearizable, lease or stale"
            ))),
        }
    }

    pub fn consistency(self) -> ReadConsistency {
        match self {
            ReadMode::Linearizable => ReadConsistency::Linearizable,
            ReadMode::Lease => ReadConsistency::Lease,
            ReadMode::Stale => ReadConsistency::Stale,
        }
    }
}

/// How the write-ahead log treats the disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSettings {
    /// `fdatasync` on every Raft sync (the default, and the only setting under which acknowledged
    /// writes survive a power loss). `false` only flushes to the OS page cache: writes survive a
    /// process crash (kill -9) but not a machine crash – for benchmarks that want to see the cost.
    pub fsync: bool,
    /// Free space, in MiB, the data disk keeps in reserve: below it the node refuses new writes
    /// (HTTP 507, RESP `-MISCONF`) and keeps serving reads, until space is freed (see
    /// [`crate::disk_space`]). 0 turns the check off; the WAL then still survives a full disk.
    pub reserve_mb: u64,
}

impl Default for WalSettings {
    fn default() -> Self {
        WalSettings { fsync: true, reserve_mb: crate::disk_space::DEFAULT_RESERVE_MB }
    }
}

/// The sharded mode's layout: `[shard]` in a node's TOML, `--shards`/`--replicas` on the command
/// line. Shard `k` is replicated by `replicas` consecutive nodes from the `k`-th (in id order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSettings {
    /// How many shards (Raft groups) the 16 384 slots are split into at bootstrap.
    pub shards: u32,
    /// Replicas per shard (default 3, at most the number of nodes).
    #[serde(default = "default_shard_replicas")]
    pub replicas: usize,
}

fn default_shard_replicas() -> usize {
    3
}

/// The most shards a cluster is started with: every shard owns at least one of the 16 384 slots.
/// (It was 1 024; issue #13 asks for 10 000 idle groups – `bench/sharding.sh` starts them.)
pub const MAX_SHARDS: u32 = concord_shard::SLOTS as u32;

/// The key-value state's database (the strong mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// redb's page cache, in MiB: what of the state is kept in memory. The state itself may be
    /// larger than memory.
    pub cache_mb: usize,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings { cache_mb: 64 }
    }
}

/// TLS for every port (see [`crate::tls`]): peers use mutual TLS, RESP and HTTP clients verify the
/// node with the CA. All three files are PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// This node's certificate (chain): valid for the IP addresses peers dial it at, for both
    /// server and client authentication (it is shown to peers in both directions).
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The certificate authority peers' certificates must be signed by; clients trust it too.
    pub ca: PathBuf,
}

impl TlsSettings {
    /// The command-line form: all three of `--tls-cert`, `--tls-key`, `--tls-ca`, or none.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<TlsSettings>, Error> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsSettings { cert, key, ca })),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    ("--tls-cert", cert.is_none()),
                    ("--tls-key", key.is_none()),
                    ("--tls-ca", ca.is_none()),
                ]
                .into_iter()
                .filter_map(|(flag, missing)| missing.then_some(flag))
                .collect();
                Err(Error::Config(format!(
                    "TLS needs --tls-cert, --tls-key and --tls-ca together; missing {} (the CA is what peers' \
                     certificates are checked against)",
                    missing.join(" and ")
                )))
            }
        }
    }
}

/// A user of both front doors (`[[users]]` in node.toml):
///
/// ```toml
/// [[users]]
/// name = "reporting"
/// sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"   # or: password = "…"
/// role = "read-only"                 # read-only, read-write or admin
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The password in clear (prefer `sha256`: the file then holds no password).
    #[serde(default)]
    pub password: Option<String>,
    /// The SHA-256 digest of the password, 64 hex digits (`echo -n pw | sha256sum`).
    #[serde(default)]
    pub sha256: Option<String>,
    /// `read-only`, `read-write` or `admin`.
    pub role: String,
}

impl UserConfig {
    /// The password's digest and the role; `Err` says which setting is wrong.
    pub fn resolve(&self) -> Result<([u8; 32], concord_resp::acl::Role), String> {
        let digest = match (&self.password, &self.sha256) {
            (Some(p), None) => concord_resp::acl::digest(p.as_bytes()),
            (None, Some(h)) => {
                concord_resp::acl::parse_digest(h).map_err(|e| format!("user {}: {e}", self.name))?
            }
            _ => return Err(format!("user {}: give exactly one of password and sha256", self.name)),
        };
        let role =
            concord_resp::acl::Role::parse(&self.role).map_err(|e| format!("user {}: {e}", self.name))?;
        Ok((digest, role))
    }
}

/// Everything one node needs to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (1, 2, 3, …), unique in the cluster.
    pub id: u32,
    /// Where the write-ahead log lives. Created if missing.
    #[serde(alias = "data")]
    pub data_dir: PathBuf,
    /// `strong` (Raft) or `eventual` (Dynamo); every node of a cluster runs the same.
    #[serde(default)]
    pub mode: Mode,
    /// The cluster's name; peers with another cluster id are refused at the handshake.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// The shared secret peers prove they know (HMAC-SHA256). Required with peers.
    #[serde(default)]
    pub cluster_secret: Option<String>,
    /// …or a file holding it (first line; preferred: keeps the secret out of `ps` and config files).
    #[serde(default)]
    pub cluster_secret_file: Option<PathBuf>,
    /// The Raft port this node listens on for peers.
    #[serde(default = "default_peer_addr")]
    pub peer_addr: SocketAddr,
    /// RESP (Redis protocol) clients; `None`: no RESP listener.
    #[serde(default)]
    pub redis_addr: Option<SocketAddr>,
    /// HTTP API; `None`: no HTTP listener.
    #[serde(default)]
    pub http_addr: Option<SocketAddr>,
    /// The other members (an entry for this node's own id is allowed and ignored).
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// The `default` user's password: RESP clients must `AUTH` with it, HTTP clients send it as
    /// `Authorization: Bearer <password>` (or Basic, user `default`). See [`crate::auth`].
    #[serde(default)]
    pub requirepass: Option<String>,
    /// Most RESP connections at once (Redis's `maxclients`). Lowered at start, with a warning, to
    /// what the open-files limit leaves (see [`crate::front::budget`]).
    #[serde(default = "default_maxclients")]
    pub maxclients: usize,
    /// Close a RESP connection that sent nothing for this many seconds (Redis's `timeout`; 0, the
    /// default as in Redis: never).
    #[serde(default)]
    pub timeout: u64,
    /// Largest single RESP request, in bytes (Redis's `client-query-buffer-limit`); a larger one
    /// closes the connection. Default: four times `kv.max_command_bytes`, at least 16 MiB.
    #[serde(default)]
    pub client_query_buffer_limit: Option<usize>,
    /// Most bytes of replies a RESP connection may leave unread before it is closed, and the
    /// largest `MGET` reply (Redis's `client-output-buffer-limit normal`, hard limit; 0: none).
    #[serde(default = "default_client_output_buffer_limit")]
    pub client_output_buffer_limit: usize,
    /// Most HTTP connections at once. Lowered at start, with a warning, to what the open-files
    /// limit leaves (see [`crate::front::budget`]).
    #[serde(default = "default_http_max_connections")]
    pub http_max_connections: usize,
    /// An HTTP connection must send a complete request head within this long of opening or of its
    /// previous response, or it is closed (slow headers, idle keep-alive). `0s`: never.
    #[serde(default = "default_http_idle_timeout", with = "serde_duration")]
    pub http_idle_timeout: Duration,
    /// Users with roles, for both front doors (`[[users]]` tables; see [`UserConfig`]). They live
    /// on this node only, as Redis's do: give every node the same list.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Names (DNS names or addresses) HTTP clients reach this node by, besides its own addresses
    /// and `localhost`: a request with another `Host` is refused (DNS rebinding).
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// A file holding the dashboard's token (first line), which `concord up` writes; without it
    /// the node makes a random one at start and logs the dashboard's URL with it.
    #[serde(default)]
    pub dashboard_token_file: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `concord_server=debug,info`).
    #[serde(default = "default_log")]
    pub log: String,
    /// Reads that do not ask for a consistency get this one.
    #[serde(default)]
    pub read_consistency: ReadMode,
    /// How long a client request may take, retries and forwarding included, before the client is
    /// told "timeout" (the outcome of a write is then unknown).
    #[serde(default = "default_request_timeout", with = "serde_duration")]
    pub request_timeout: Duration,
    /// Allow membership changes and backups through the HTTP admin endpoints without a credential.
    #[serde(default)]
    pub allow_admin: bool,
    /// Lab clusters only: the fault-injection endpoints (`POST /v1/faults/partition`, `/heal`, `/stop`,
    /// see [`crate::fault_injection`]) and the dashboard's buttons for them. Off by default (the endpoints then
    /// answer 403); when on, a request still needs a credential (the dashboard token, a cluster
    /// proof or an admin user), from loopback too.
    #[serde(default)]
    pub allow_fault_injection: bool,
    /// The control socket of the `concord up` that supervises this node (`up` sets it). With fault
    /// injection on, the dashboard's Restart button asks it to start a member again.
    #[serde(default)]
    pub supervisor: Option<PathBuf>,
    /// This node joins an existing cluster: it is not one of the initial voters, and waits until a
    /// leader adds it (`concord member add`).
    #[serde(default)]
    pub join: bool,
    #[serde(default)]
    pub wal: WalSettings,
    /// The strong mode's key-value state on disk (`DATA/state.redb`, see [`crate::redb_engine`]).
    #[serde(default)]
    pub state: StateSettings,
    /// Raft timing and limits. `voters` is always this node and its peers. A table naming
    /// `mutations` is refused (see [`raft_without_mutations`]).
    #[serde(default, deserialize_with = "raft_without_mutations")]
    pub raft: Option<RaftConfig>,
    /// A deliberate Raft bug to run with – ONLY for showing that `concord chaos` catches a broken
    /// build (`concord chaos --unsafe-mutation`, docs/chaos.md). Never read from a file (a key of
    /// this name is an unknown field): `concord serve` takes it from the environment variable
    /// [`UNSAFE_MUTATION_ENV`]. [`NodeConfig::validate`] refuses it unless the bugs are compiled in
    /// (concord-raft's `mutations` feature) and this is a debug build; the node logs an ERROR at
    /// start while it runs with one.
    #[serde(skip)]
    pub unsafe_mutation: Option<String>,
    /// Eventual mode: quorums, anti-entropy, hinted handoff and SWIM settings. Fields a `[dynamo]`
    /// table leaves out take [`server_dynamo_defaults`], not the simulator's defaults.
    #[serde(default, deserialize_with = "dynamo_over_server_defaults")]
    pub dynamo: Option<DynamoConfig>,
    /// Sharded mode: how many shards and replicas per shard (a `[shard]` table; every node of a
    /// cluster must have the same).
    #[serde(default)]
    pub shard: Option<ShardSettings>,
    /// The store's limits (must be equal on all nodes).
    #[serde(default)]
    pub kv: KvLimits,
    /// TLS on every port; `None` (the default): plaintext.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// The eventual mode's defaults on real machines. The simulator's defaults assume a quiet virtual
/// LAN; a real disk's `fdatasync` and a loaded scheduler need more slack before a replica is
/// replaced by a fallback or a member is suspected, and anti-entropy need not run five times a
/// second.
pub fn server_dynamo_defaults() -> DynamoConfig {
    DynamoConfig {
        request_timeout: Duration::from_secs(2),
        replica_timeout: Duration::from_millis(300),
        anti_entropy_interval: Duration::from_secs(1),
        handoff_interval: Duration::from_secs(1),
        tombstone_grace: Duration::from_secs(60),
        swim: concord_dynamo::swim::SwimConfig {
            period: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            suspicion_timeout: Duration::from_secs(3),
            ..Default::default()
        },
        ..DynamoConfig::default()
    }
}

/// Read a `[dynamo]` table over [`server_dynamo_defaults`] (sub-tables such as `[dynamo.swim]`
/// merge field by field too), so a file that sets only `n`, `r` and `w` keeps the server's timings.
fn dynamo_over_server_defaults<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DynamoConfig>, D::Error> {
    use serde::de::Error;
    fn merge(base: &mut toml::Table, over: toml::Table) {
        for (key, value) in over {
            match (base.get_mut(&key), value) {
                (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
                (_, value) => {
                    base.insert(key, value);
                }
            }
        }
    }
    let Some(over) = Option::<toml::Table>::deserialize(d)? else { return Ok(None) };
    let mut base = toml::Table::try_from(server_dynamo_defaults()).map_err(D::Error::custom)?;
    merge(&mut base, over);
    base.try_into().map(Some).map_err(D::Error::custom)
}

/// The error for a `[raft]` table that names the simulator's deliberate bugs.
/// The environment variable `concord serve` reads [`NodeConfig::unsafe_mutation`] from.
pub const UNSAFE_MUTATION_ENV: &str = "CONCORD_UNSAFE_MUTATION";

const MUTATIONS_REFUSED: &str =
    "raft: `mutations` are deliberate bugs for the simulator's tests; a node refuses to run with them";

/// Read a `[raft]` table, refusing one that names `mutations`. The check is on the raw TOML table,
/// not on `RaftConfig`: whether `RaftConfig` has a `mutations` field depends on concord-raft's
/// `mutations` feature, which Cargo's feature unification turns on in any build that also links
/// the simulator (the `concord` binary does). A node refuses the key in every build.
fn raft_without_mutations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RaftConfig>, D::Error> {
    use serde::de::Error;
    let Some(table) = Option::<toml::Table>::deserialize(d)? else { return Ok(None) };
    if table.contains_key("mutations") {
        return Err(D::Error::custom(MUTATIONS_REFUSED));
    }
    table.try_into().map(Some).map_err(D::Error::custom)
}

/// The cluster id a node has when none is configured (`concord join` then learns the real one).
pub fn default_cluster_id() -> String {
    "concord".into()
}
fn default_peer_addr() -> SocketAddr {
    "127.0.0.1:7379".parse().expect("valid address")
}
fn default_log() -> String {
    "info".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_maxclients() -> usize {
    10_000
}
fn default_client_output_buffer_limit() -> usize {
    64 * 1024 * 1024
}
fn default_http_max_connections() -> usize {
    1024
}
fn default_http_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

impl NodeConfig {
    /// A single-node configuration with every default (tests and `concord serve` without a file).
    pub fn new(id: u32, data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id,
            data_dir: data_dir.into(),
            mode: Mode::default(),
            cluster_id: default_cluster_id(),
            cluster_secret: None,
            cluster_secret_file: None,
            peer_addr: default_peer_addr(),
            redis_addr: None,
            http_addr: None,
            peers: Vec::new(),
            requirepass: None,
            maxclients: default_maxclients(),
            timeout: 0,
            client_query_buffer_limit: None,
            client_output_buffer_limit: default_client_output_buffer_limit(),
            http_max_connections: default_http_max_connections(),
            http_idle_timeout: default_http_idle_timeout(),
            users: Vec::new(),
            http_hosts: Vec::new(),
            dashboard_token_file: None,
            log: default_log(),
            read_consistency: ReadMode::default(),
            request_timeout: default_request_timeout(),
            allow_admin: false,
            allow_fault_injection: false,
            supervisor: None,
            join: false,
            wal: WalSettings::default(),
            state: StateSettings::default(),
            raft: None,
            unsafe_mutation: None,
            dynamo: None,
            shard: None,
            kv: KvLimits::default(),
            tls: None,
        }
    }

    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    pub fn node_id(&self) -> NodeId {
        NodeId(self.id)
    }

    /// The other members, without this node, ordered by id.
    pub fn other_peers(&self) -> Vec<PeerConfig> {
        let mut peers: Vec<PeerConfig> = self.peers.iter().filter(|p| p.id != self.id).cloned().collect();
        peers.sort_by_key(|p| p.id);
        peers
    }

    /// The Raft configuration with its voters filled in (and the [`NodeConfig::unsafe_mutation`],
    /// if one is set: [`NodeConfig::validate`] has checked it).
    pub fn raft_config(&self) -> RaftConfig {
        let mut raft = self.raft_config_as_configured();
        if let Some(name) = &self.unsafe_mutation {
            if let Err(e) = raft.enable_mutation(name) {
                tracing::error!("{UNSAFE_MUTATION_ENV}: {e}");
            }
        }
        raft
    }

    /// Whether an unsafe mutation may be switched on in this build, and is known: the reason
    /// it is refused, if it is.
    fn check_unsafe_mutation(&self, name: &str) -> Result<(), String> {
        let refused = |why: String| {
            Err(format!(
                "{UNSAFE_MUTATION_ENV}={name} refused: {why}. A deliberate bug is only for `concord chaos \
                 --unsafe-mutation` (docs/chaos.md); unset the variable to run a sound node"
            ))
        };
        if !concord_raft::Mutations::COMPILED {
            return refused(
                "this build has no deliberate bugs compiled in (concord-raft's `mutations` feature is off)"
                    .into(),
            );
        }
        if !cfg!(debug_assertions) {
            return refused("this is a release build; only a debug build runs with a deliberate bug".into());
        }
        if self.mode == Mode::Eventual {
            return refused("the eventual mode runs no Raft".into());
        }
        if !concord_raft::Mutations::NAMES.contains(&name) {
            return refused(format!(
                "unknown mutation; known: {}",
                concord_raft::Mutations::NAMES.join(", ")
            ));
        }
        Ok(())
    }

    /// The Raft configuration of the file and flags, voters filled in, without an unsafe mutation.
    fn raft_config_as_configured(&self) -> RaftConfig {
        let mut raft = self.raft.clone().unwrap_or_else(|| RaftConfig {
            // A real disk and a real scheduler are noisier than the simulator's LAN: a few more
            // milliseconds of slack keep elections rare on a loaded laptop.
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            heartbeat_interval: Duration::from_millis(75),
            clock_drift_bound: Duration::from_millis(30),
            // A snapshot checkpoints the state's database (one fsync of its dirty pages) and lets
            // the log go: every 20 000 entries bounds the WAL's memory and a restart's replay.
            snapshot_threshold_entries: 20_000,
            // A state of gigabytes takes seconds to send: large chunks (frames may be 64 MiB), and
            // no compaction while one is in flight.
            snapshot_chunk_bytes: 1 << 20,
            defer_snapshots_while_sending: true,
            // A follower a little behind when the leader compacts catches up from the log, not by
            // snapshot (etcd keeps 5 000 entries).
            snapshot_catchup_entries: 5_000,
            ..RaftConfig::default()
        });
        // The initial voters are always this node and its configured peers – only the peers for a
        // joining node – (a `voters` list in the `[raft]` table is overridden): one source of truth.
        let mut voters: Vec<NodeId> = self.other_peers().iter().map(|p| NodeId(p.id)).collect();
        if !self.join {
            voters.push(self.node_id());
        }
        voters.sort();
        raft.voters = voters;
        raft
    }

    /// The eventual mode's settings: the `[dynamo]` table, or [`server_dynamo_defaults`].
    pub fn dynamo_config(&self) -> DynamoConfig {
        self.dynamo.clone().unwrap_or_else(server_dynamo_defaults)
    }

    /// The sharded mode's layout (`None` outside that mode): the `[shard]` table, replicas capped
    /// at the number of nodes, Raft timing from [`NodeConfig::raft_config`].
    ///
    /// A joining node (`join`) is given the cluster *as it stands* – its peers, not itself – as
    /// the nodes: its metadata replica starts as a non-voter (the members add it, then promote
    /// it), it starts no group of the first map (whose placement it then computes as the members
    /// do), and replicas reach it only once the map places them there.
    pub fn sharded_config(&self) -> Option<concord_shard::ShardedConfig> {
        let settings = self.shard?;
        let nodes = if self.join {
            self.other_peers().iter().map(|p| NodeId(p.id)).collect()
        } else {
            self.cluster()
        };
        Some(concord_shard::ShardedConfig {
            replicas: settings.replicas.min(nodes.len()),
            nodes,
            shards: settings.shards,
            // Idle groups quiesce: with thousands of groups, their heartbeats were most of an idle
            // node's CPU (BENCHMARKS.md, "Sharding"). The node's host watches node liveness.
            raft: RaftConfig { quiesce: true, ..self.raft_config() },
            kv: self.kv.clone(),
            churn: None,
            shard_bug: concord_shard::ShardBug::None,
            mover_bug: concord_shard::MoverBug::None,
            // No pace of its own: the rebalancer runs while the map has it on (`concord shard
            // rebalance`, a change committed in the metadata group like any other).
            rebalance: None,
            ..concord_shard::ShardedConfig::default()
        })
    }

    /// The cluster as this node's configuration lists it: its peers and itself, ordered by id.
    pub fn cluster(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.other_peers().iter().map(|p| NodeId(p.id)).collect();
        all.push(self.node_id());
        all.sort();
        all
    }

    /// The RESP front door's settings: the store's limits, and the client limits above.
    /// `max_clients` is the configured `maxclients`; the node lowers it to its descriptor budget.
    pub fn resp_config(&self) -> concord_resp::RespConfig {
        let mut rc = concord_resp::RespConfig::for_kv_limits(&self.kv);
        rc.requirepass = self.requirepass.clone();
        rc.default_consistency = self.read_consistency.consistency();
        rc.max_clients = self.maxclients;
        rc.idle_timeout = (self.timeout > 0).then(|| Duration::from_secs(self.timeout));
        if let Some(bytes) = self.client_query_buffer_limit {
            rc.max_request_bytes = bytes;
        }
        rc.max_output_bytes =
            (self.client_output_buffer_limit > 0).then_some(self.client_output_buffer_limit);
        // Redis's persistence words for the WAL: an append-only log, fsynced on every Raft sync
        // (`always`) or left to the OS (`no`).
        rc.parameters = vec![
            ("appendonly".into(), "yes".into()),
            ("appendfsync".into(), if self.wal.fsync { "always" } else { "no" }.into()),
        ];
        rc
    }

    /// The HTTP door's idle timeout (`None`: off).
    pub fn http_idle(&self) -> Option<Duration> {
        (!self.http_idle_timeout.is_zero()).then_some(self.http_idle_timeout)
    }

    /// The cluster secret, from the setting or the file.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, Error> {
        self.secret_or_why().map_err(Error::Config)
    }

    fn secret_or_why(&self) -> Result<Option<Vec<u8>>, String> {
        match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(_), Some(_)) => Err("set cluster_secret or cluster_secret_file, not both".into()),
            (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read cluster_secret_file {}: {e}", path.display()))?;
                let secret = text.lines().next().unwrap_or("").trim().to_string();
                if secret.is_empty() {
                    return Err(format!("cluster_secret_file {} is empty", path.display()));
                }
                Ok(Some(secret.into_bytes()))
            }
            (None, None) => Ok(None),
        }
    }

    /// Check everything that can be checked before opening files and sockets.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_or_why().map_err(Error::Config)
    }

    fn validate_or_why(&self) -> Result<(), String> {
        // Client-session ids are `node << 20 | slot` in 32 bits (see `handle.rs`): ids below 4096.
        if self.id == 0 || self.id >= 4096 {
            return Err(format!("id {} is out of range: node ids are 1 to 4095", self.id));
        }
        if let Some(name) = &self.unsafe_mutation {
            self.check_unsafe_mutation(name)?;
        }
        let peers = self.other_peers();
        for (i, p) in peers.iter().enumerate() {
            if p.id == 0 || p.id >= 4096 {
                return Err(format!("peer id {} is out of range: node ids are 1 to 4095", p.id));
            }
            if peers[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("peer {} is listed twice", p.id));
            }
            if p.addr == self.peer_addr {
                return Err(format!("peer {} has this node's own peer address {}", p.id, p.addr));
            }
        }
        if !peers.is_empty() && self.secret_or_why()?.is_none() {
            return Err(
                "a cluster with peers needs cluster_secret or cluster_secret_file (peers authenticate each other with it)"
                    .into(),
            );
        }
        self.secret_or_why()?;
        for (i, user) in self.users.iter().enumerate() {
            user.resolve()?;
            if user.name == concord_resp::acl::DEFAULT_USER {
                return Err("users: `default` is the requirepass user; set requirepass instead".into());
            }
            if self.users[..i].iter().any(|u| u.name == user.name) {
                return Err(format!("users: {} is listed twice", user.name));
            }
        }
        if self.cluster_id.is_empty() || self.cluster_id.len() > 128 {
            return Err("cluster_id must be 1 to 128 bytes".into());
        }
        match self.mode {
            Mode::Strong | Mode::Eventual if self.shard.is_some() => {
                return Err(format!(
                    "the [shard] settings apply to mode = \"sharded\"; this node runs the {} mode",
                    self.mode.name()
                ));
            }
            Mode::Strong => {
                if self.dynamo.is_some() {
                    return Err(
                        "the [dynamo] settings apply to mode = \"eventual\"; this node runs Raft".into()
                    );
                }
                let raft = self.raft_config_as_configured();
                raft.validate().map_err(|e| format!("raft: {e}"))?;
                // The simulator's deliberate bugs (Figure 8 and friends) share RaftConfig: a file
                // cannot name them (`raft_without_mutations`), and a config built in code that
                // switched them on (only possible with the `mutations` feature) is refused here.
                if raft.mutations() != &concord_raft::Mutations::NONE {
                    return Err(MUTATIONS_REFUSED.into());
                }
            }
            Mode::Sharded => {
                if self.dynamo.is_some() {
                    return Err(
                        "the [dynamo] settings apply to mode = \"eventual\"; this node runs sharded Raft"
                            .into(),
                    );
                }
                if self.join && self.other_peers().is_empty() {
                    return Err("a joining node needs the cluster's members as --peer".into());
                }
                let Some(shard) = self.shard else {
                    return Err(
                        "the sharded mode needs its layout: a [shard] table with `shards` (or --shards)"
                            .into(),
                    );
                };
                if shard.shards == 0 || shard.shards > MAX_SHARDS {
                    return Err(format!(
                        "shard.shards = {} is out of range: 1 to {MAX_SHARDS}",
                        shard.shards
                    ));
                }
                if shard.replicas == 0 {
                    return Err("shard.replicas must be at least 1".into());
                }
                let raft = self.raft_config_as_configured();
                raft.validate().map_err(|e| format!("raft: {e}"))?;
                if raft.mutations() != &concord_raft::Mutations::NONE {
                    return Err(MUTATIONS_REFUSED.into());
                }
            }
            Mode::Eventual => {
                if self.raft.is_some() {
                    return Err(
                        "the [raft] settings apply to mode = \"strong\"; this node runs the eventual mode"
                            .into(),
                    );
                }
                if self.join {
                    return Err("join is for the strong mode: an eventual-mode cluster is the nodes it is started with".into());
                }
                let dynamo = self.dynamo_config();
                dynamo.validate().map_err(|e| format!("dynamo: {e}"))?;
                let nodes = self.cluster().len();
                if dynamo.n > nodes {
                    return Err(format!(
                        "dynamo: n = {} replicas per key, but the cluster has only {nodes} node(s)",
                        dynamo.n
                    ));
                }
            }
        }
        let mut addrs = vec![("peer_addr", self.peer_addr)];
        addrs.extend(self.redis_addr.map(|a| ("redis_addr", a)));
        addrs.extend(self.http_addr.map(|a| ("http_addr", a)));
        for (i, (name, a)) in addrs.iter().enumerate() {
            if let Some((other, _)) = addrs[..i].iter().find(|(_, b)| b == a && a.port() != 0) {
                return Err(format!("{name} and {other} are both {a}"));
            }
        }
        if self.join && peers.is_empty() {
            return Err("join needs the peers of the cluster to join (--peer ID=ADDR …)".into());
        }
        if self.request_timeout < Duration::from_millis(10) {
            return Err("request_timeout must be at least 10ms".into());
        }
        if self.maxclients == 0 || self.http_max_connections == 0 {
            return Err("maxclients and http_max_connections must be at least 1".into());
        }
        if self.client_query_buffer_limit.is_some_and(|b| b < 1024) {
            return Err("client_query_buffer_limit must be at least 1024 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_from_flags() {
        let p = PeerConfig::parse("2=127.0.0.1:7381,http=127.0.0.1:8082").unwrap();
        assert_eq!(p.id, 2);
        assert_eq!(p.http_addr, Some("127.0.0.1:8082".parse().unwrap()));
        let config_error = |text: &str| match PeerConfig::parse(text) {
            Err(Error::Config(message)) => message,
            other => panic!("{text}: {other:?}"),
        };
        assert!(config_error("2").contains("missing `=`"));
        assert!(config_error("x=1.2.3.4:5").contains("not a node id"));
        assert!(config_error("2=nowhere").contains("not an address"));
    }

    /// The sharded mode needs its layout, other modes refuse one, and the layout's numbers are
    /// checked; replicas are capped at the cluster's size.
    #[test]
    fn the_sharded_layout_is_validated() {
        // `mode` (a top-level key, or empty) and a `[shard]` table's body (or none).
        let config = |mode: &str, shard: Option<&str>| {
            let table = shard.map_or(String::new(), |body| format!("[shard]\n{body}\n"));
            let text = format!(
                "id = 1\ndata_dir = \"/tmp/x\"\ncluster_secret = \"s3cret\"\n{mode}\n{table}[[peers]]\nid = 2\naddr = \"127.0.0.1:7381\"\n"
            );
            toml::from_str::<NodeConfig>(&text).unwrap()
        };
        let refusal = |c: NodeConfig| c.validate().unwrap_err().to_string();
        let sharded = config("mode = \"sharded\"", Some("shards = 4"));
        sharded.validate().unwrap();
        let layout = sharded.sharded_config().unwrap();
        assert_eq!(
            (layout.shards, layout.replicas, layout.nodes.len()),
            (4, 2, 2),
            "replicas capped at 2 nodes"
        );
        assert!(refusal(config("mode = \"sharded\"", None)).contains("needs its layout"));
        assert!(refusal(config("", Some("shards = 4"))).contains("apply to mode = \"sharded\""));
        assert!(refusal(config("mode = \"sharded\"", Some("shards = 0"))).contains("out of range"));
        // As many shards as slots (10 000 is issue #13's idle benchmark), not one more.
        config("mode = \"sharded\"", Some("shards = 16384")).validate().unwrap();
        assert!(refusal(config("mode = \"sharded\"", Some("shards = 16385"))).contains("1 to 16384"));
        assert!(
            refusal(config("mode = \"sharded\"", Some("shards = 2\nreplicas = 0"))).contains("at least 1")
        );
        assert_eq!(Mode::parse("sharded").unwrap(), Mode::Sharded);
    }

    #[test]
    fn an_unsafe_mutation_only_runs_in_a_debug_build_with_the_bugs_and_never_comes_from_a_file() {
        let mut c = NodeConfig::new(1, "/tmp/x");
        c.unsafe_mutation = Some("read_from_deposed_leader".into());
        if concord_raft::Mutations::COMPILED && cfg!(debug_assertions) {
            c.validate().unwrap();
            assert!(c.raft_config().mutations().read_from_deposed_leader);
        } else {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("CONCORD_UNSAFE_MUTATION=read_from_deposed_leader refused"), "{err}");
            assert!(err.contains("compiled in") || err.contains("release build"), "{err}");
        }
        // Without it, the node runs none.
        c.unsafe_mutation = None;
        assert_eq!(c.raft_config().mutations(), &concord_raft::Mutations::NONE);
        c.unsafe_mutation = Some("no_such_bug".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("refused"), "{err}");
        c.unsafe_mutation = Some("read_from_deposed_leader".into());
        c.mode = Mode::Eventual;
        assert!(c.validate().unwrap_err().to_string().contains("refused"));
        // A file cannot name it.
        let text = "id = 1\ndata_dir = \"/tmp/x\"\nunsafe_mutation = \"read_from_deposed_leader\"\n";
        assert!(toml::from_str::<NodeConfig>(text).is_err());
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let text = r#"
            id = 1
            data_dir = "/tmp/x"
            cluster_secret = "s3cret"
            [[peers]]
            id = 2
            addr = "127.0.0.1:7381"
        "#;
        let c: NodeConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.raft_config().voters, vec![NodeId(1), NodeId(2)]);
        let mut no_secret = c.clone();
        no_secret.cluster_secret = None;
        assert!(matches!(no_secret.validate(), Err(Error::Config(m)) if m.contains("cluster_secret")));
        assert!(toml::from_str::<NodeConfig>("id = 1\ndata_dir = \"x\"\nport = 3").is_err());
    }

    #[test]
    fn a_node_refuses_the_simulators_deliberate_bugs() {
        // Refused whether or not concord-raft's `mutations` feature is on in this build.
        let text = "id = 1\ndata_dir = \"/tmp/x\"\n[raft.mutations]\ncommit_old_term_by_counting = true\n";
        let err = toml::from_str::<NodeConfig>(text).unwrap_err().to_string();
        assert!(err.contains("mutations") && err.contains("refuses"), "{err}");
        let text = "id = 1\ndata_dir = \"/tmp/x\"\n[raft]\nmutations = {}\n";
        let err = toml::from_str::<NodeConfig>(text).unwrap_err().to_string();
        assert!(err.contains("refuses"), "{err}");
    }

    #[test]
    fn a_dynamo_table_overrides_only_what_it_names() {
        let text = r#"
            id = 1
            data_dir = "/tmp/x"
            mode = "eventual"
            cluster_secret = "s3cret"
            [[peers]]
            id = 2
            addr = "127.0.0.1:7381"
            [dynamo]
            n = 2
            w = 1
            [dynamo.swim]
            period = "1s"
        "#;
        let c: NodeConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        let d = c.dynamo_config();
        let defaults = server_dynamo_defaults();
        assert_eq!((d.n, d.r, d.w), (2, 2, 1));
        assert_eq!(d.swim.period, Duration::from_secs(1));
        assert_eq!(d.swim.suspicion_timeout, defaults.swim.suspicion_timeout);
        assert_eq!(d.request_timeout, defaults.request_timeout);
        let unknown = text.replace("w = 1", "w = 1\nnope = 1");
        assert!(toml::from_str::<NodeConfig>(&unknown).unwrap_err().to_string().contains("nope"));

        let mut three = c.clone();
        three.dynamo.as_mut().unwrap().n = 3;
        assert!(
            three.validate().unwrap_err().to_string().contains("only 2 node(s)"),
            "{:?}",
            three.validate()
        );
        let mut strong = c.clone();
        strong.mode = Mode::Strong;
        assert!(matches!(strong.validate(), Err(Error::Config(m)) if m.contains("[dynamo] settings apply")));
    }
}
