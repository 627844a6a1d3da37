//! `concord serve`: run one node. Here the flags are parsed and laid over the node's TOML file
//! into a [`NodeConfig`]; running it is `concord_server::serve::run`.

use anyhow::{anyhow, bail};
use concord_server::cluster::Quorums;
use concord_server::config::{Mode, NodeConfig, PeerConfig, ReadMode, TlsSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    concord_server::serve::run(args.to_config()?)?;
    Ok(ExitCode::SUCCESS)
}

/// `concord serve`: run one node until SIGINT/SIGTERM.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML node configuration (flags given as well override its settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (1, 2, 3, …).
    #[arg(long)]
    pub id: Option<u32>,
    /// Data directory (the write-ahead log).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Raft port for peers [default: 127.0.0.1:7379].
    #[arg(long)]
    pub peer_addr: Option<SocketAddr>,
    /// RESP (Redis protocol) address.
    #[arg(long)]
    pub redis_addr: Option<SocketAddr>,
    /// HTTP API address.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// A peer: ID=PEER_ADDR[,http=ADDR][,redis=ADDR]. Repeat for each peer.
    #[arg(long = "peer", value_name = "SPEC")]
    pub peers: Vec<String>,
    /// The cluster's id: every member must have the same (peers with another are refused). A data
    /// directory remembers it; `concord join` learns it from the cluster when not given.
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// The cluster secret (prefer --cluster-secret-file: command lines are visible in `ps`).
    #[arg(long)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret (what `concord up` writes to DATA/cluster.secret): the
    /// members authenticate each other with it, and admin requests carry it.
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// The default user's password: RESP clients must AUTH with it, HTTP clients send it as
    /// `Authorization: Bearer <password>`. Users with roles go in the file's [[users]].
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Most RESP connections at once [default: 10000, lowered to what the open-files limit
    /// leaves]; one more gets `-ERR max number of clients reached` (Redis's maxclients).
    #[arg(long, value_name = "N")]
    pub maxclients: Option<usize>,
    /// Close RESP connections idle this many seconds; 0 (the default): never (Redis's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Largest RESP request in bytes; a larger one closes the connection (Redis's
    /// client-query-buffer-limit) [default: 4 × the largest command, at least 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub client_query_buffer_limit: Option<usize>,
    /// Most bytes of replies a RESP client may leave unread before it is disconnected, and the
    /// largest MGET reply; 0: no limit (Redis's client-output-buffer-limit normal) [default: 64 MiB].
    #[arg(long, value_name = "BYTES")]
    pub client_output_buffer_limit: Option<usize>,
    /// Most HTTP connections at once [default: 1024, lowered to what the open-files limit leaves].
    #[arg(long, value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// Close an HTTP connection that sends no complete request head within this long of opening
    /// or of its last response (slow headers, idle keep-alive); 0s: never [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = concord_core::time::parse_duration)]
    pub http_idle_timeout: Option<Duration>,
    /// A name HTTP clients reach this node by (besides its addresses and localhost); other Host
    /// headers are refused (DNS rebinding). Repeat for each.
    #[arg(long = "http-host", value_name = "NAME")]
    pub http_hosts: Vec<String>,
    /// Set by `concord up`: the file holding the dashboard's token (without it the node makes one
    /// and logs the dashboard's URL with it).
    #[arg(long, hide = true, value_name = "PATH")]
    pub dashboard_token_file: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long)]
    pub log: Option<String>,
    /// Default read consistency: linearizable, lease or stale.
    #[arg(long)]
    pub read_consistency: Option<String>,
    /// Do not fdatasync the WAL (survives kill -9, not power loss). For benchmarks.
    #[arg(long)]
    pub no_fsync: bool,
    /// Free space (MiB) the data disk keeps in reserve: below it, writes are refused (HTTP 507,
    /// RESP -MISCONF) and reads still served, until space is freed. Default 64; 0 turns it off.
    #[arg(long, value_name = "MIB")]
    pub disk_reserve_mb: Option<u64>,
    /// Allow membership changes and backups through the HTTP admin endpoints without a credential.
    #[arg(long)]
    pub allow_admin: bool,
    /// Lab clusters only: let the dashboard (opened with its token) or curl (with a credential)
    /// partition, heal and stop this node through `POST /v1/faults/...`.
    #[arg(long)]
    pub allow_fault_injection: bool,
    /// Set by `concord up`: its control socket, through which the dashboard's Restart button (with
    /// --allow-fault-injection) starts a stopped member again.
    #[arg(long, hide = true, value_name = "SOCKET")]
    pub supervisor: Option<std::path::PathBuf>,
    /// Join an existing cluster (its nodes are the --peer list) instead of forming a new one;
    /// then run `concord member add` against the cluster.
    #[arg(long)]
    pub join: bool,
    /// Total time a client request may take (e.g. 5s).
    #[arg(long, value_parser = concord_core::time::parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Strong mode: take a Raft snapshot – checkpoint the state's database and compact the log –
    /// every this many applied entries (default 20 000; etcd's `--snapshot-count`).
    #[arg(long, value_name = "ENTRIES")]
    pub snapshot_count: Option<u64>,
    /// Strong mode: the state database's page cache in MiB (default 64): how much of the state is
    /// kept in memory; the state itself may be far larger.
    #[arg(long, value_name = "MIB")]
    pub state_cache_mb: Option<usize>,
    /// How the cluster replicates: strong (Raft) or eventual (Dynamo-style N/R/W quorums). Every
    /// node of a cluster runs the same mode.
    #[arg(long, value_name = "MODE", value_parser = Mode::parse)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub quorums: QuorumArgs,
    /// Sharded mode: how many shards the 16 384 slots are split into (implies --mode sharded).
    /// Every node of the cluster must be given the same --shards and --replicas.
    #[arg(long, value_name = "S")]
    pub shards: Option<u32>,
    /// Sharded mode: replicas per shard (default 3, at most the number of nodes).
    #[arg(long = "replicas", id = "shard_replicas", value_name = "R")]
    pub shard_replicas: Option<usize>,
    /// TLS on every port: this node's certificate (PEM). Needs --tls-key and --tls-ca too.
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs every node's certificate: peers must present one it signed.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// The node configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<NodeConfig> {
        let mut c = match &self.config {
            Some(path) => NodeConfig::from_file(path).map_err(|e| anyhow!(e))?,
            None => {
                let id = self.id.ok_or_else(|| anyhow!("give --config FILE, or at least --id and --data"))?;
                let data = self
                    .data
                    .clone()
                    .ok_or_else(|| anyhow!("give --data DIR (the node's data directory)"))?;
                NodeConfig::new(id, data)
            }
        };
        if let Some(id) = self.id {
            c.id = id;
        }
        if let Some(d) = &self.data {
            c.data_dir = d.clone();
        }
        if let Some(a) = self.peer_addr {
            c.peer_addr = a;
        }
        if self.redis_addr.is_some() {
            c.redis_addr = self.redis_addr;
        }
        if self.http_addr.is_some() {
            c.http_addr = self.http_addr;
        }
        for spec in &self.peers {
            c.peers.push(PeerConfig::parse(spec).map_err(|e| anyhow!(e))?);
        }
        if let Some(id) = &self.cluster_id {
            c.cluster_id = id.clone();
        }
        if self.cluster_secret.is_some() {
            c.cluster_secret = self.cluster_secret.clone();
        }
        if self.cluster_secret_file.is_some() {
            c.cluster_secret_file = self.cluster_secret_file.clone();
        }
        if self.requirepass.is_some() {
            c.requirepass = self.requirepass.clone();
        }
        if let Some(n) = self.maxclients {
            c.maxclients = n;
        }
        if let Some(seconds) = self.timeout {
            c.timeout = seconds;
        }
        if self.client_query_buffer_limit.is_some() {
            c.client_query_buffer_limit = self.client_query_buffer_limit;
        }
        if let Some(bytes) = self.client_output_buffer_limit {
            c.client_output_buffer_limit = bytes;
        }
        if let Some(n) = self.http_max_connections {
            c.http_max_connections = n;
        }
        if let Some(t) = self.http_idle_timeout {
            c.http_idle_timeout = t;
        }
        c.http_hosts.extend(self.http_hosts.iter().cloned());
        if self.dashboard_token_file.is_some() {
            c.dashboard_token_file = self.dashboard_token_file.clone();
        }
        if let Some(l) = &self.log {
            c.log = l.clone();
        }
        if let Some(r) = &self.read_consistency {
            c.read_consistency = ReadMode::parse(r).map_err(|e| anyhow!(e))?;
        }
        if self.no_fsync {
            c.wal.fsync = false;
        }
        if let Some(mb) = self.disk_reserve_mb {
            c.wal.reserve_mb = mb;
        }
        if self.allow_admin {
            c.allow_admin = true;
        }
        if self.allow_fault_injection {
            c.allow_fault_injection = true;
        }
        if let Some(socket) = &self.supervisor {
            c.supervisor = Some(socket.clone());
        }
        if self.join {
            c.join = true;
        }
        if let Some(t) = self.request_timeout {
            c.request_timeout = t;
        }
        if let Some(mode) = self.mode {
            c.mode = mode;
        }
        if self.shards.is_some() || self.shard_replicas.is_some() {
            if self.mode.is_none() && self.shards.is_some() {
                c.mode = Mode::Sharded;
            }
            if c.mode != Mode::Sharded {
                bail!(
                    "--shards and --replicas are the sharded mode's layout (this node runs the {} mode)",
                    c.mode.name()
                );
            }
            let file = c.shard;
            let Some(shards) = self.shards.or(file.map(|f| f.shards)) else {
                bail!("--replicas needs --shards (or a [shard] table with shards)");
            };
            let replicas = self.shard_replicas.or(file.map(|f| f.replicas)).unwrap_or(3);
            c.shard = Some(concord_server::config::ShardSettings { shards, replicas });
        }
        if let Some(n) = self.snapshot_count {
            let mut raft = c.raft_config();
            raft.snapshot_threshold_entries = n;
            // The catch-up tail scales with it (5 000 of the default 20 000).
            raft.snapshot_catchup_entries = n / 4;
            c.raft = Some(raft);
        }
        if let Some(mb) = self.state_cache_mb {
            c.state.cache_mb = mb;
        }
        let quorums = self.quorums.to_options();
        if quorums.any() {
            quorums.only_for(c.mode)?;
            let mut d = c.dynamo_config();
            d.n = quorums.replicas.unwrap_or(d.n);
            d.r = quorums.read_quorum.unwrap_or(d.r);
            d.w = quorums.write_quorum.unwrap_or(d.w);
            c.dynamo = Some(d);
        }
        if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_ca.is_some() {
            // Flags override the file's [tls] table one path at a time.
            let file = c.tls.take();
            let pick =
                |flag: &Option<PathBuf>, from_file: Option<&PathBuf>| flag.clone().or(from_file.cloned());
            c.tls = TlsSettings::from_flags(
                pick(&self.tls_cert, file.as_ref().map(|t| &t.cert)),
                pick(&self.tls_key, file.as_ref().map(|t| &t.key)),
                pick(&self.tls_ca, file.as_ref().map(|t| &t.ca)),
            )
            .map_err(|e| anyhow!(e))?;
        }
        c.validate().map_err(|e| anyhow!(e))?;
        Ok(c)
    }
}

/// The eventual mode's quorum sizes, for `concord serve` and `concord up` alike.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct QuorumArgs {
    /// Eventual mode: replicas per key (N) [default: 3; `up`: at most --nodes].
    #[arg(long = "n", value_name = "N")]
    pub replicas: Option<usize>,
    /// Eventual mode: replies a read waits for (R) [default: 2]; clients may override it.
    #[arg(long = "r", value_name = "R")]
    pub read_quorum: Option<usize>,
    /// Eventual mode: acknowledgements a write waits for (W) [default: 2]; clients may override it.
    #[arg(long = "w", value_name = "W")]
    pub write_quorum: Option<usize>,
}

impl QuorumArgs {
    /// The quorum sizes these flags give (unset ones are left to the mode's defaults).
    pub fn to_options(&self) -> Quorums {
        Quorums { replicas: self.replicas, read_quorum: self.read_quorum, write_quorum: self.write_quorum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use concord_server::cluster::{up_node_args, UpOptions};
    use std::path::Path;

    #[test]
    fn serve_flags_build_a_valid_config() {
        let args = ServeArgs {
            id: Some(1),
            data: Some("/tmp/d1".into()),
            peers: vec!["2=127.0.0.1:7381".into()],
            cluster_secret: Some("s".into()),
            ..ServeArgs::default()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.other_peers().len(), 1);
        assert_eq!(c.raft_config().snapshot_threshold_entries, 20_000);
        let every_500 = ServeArgs {
            id: Some(1),
            data: Some("/tmp/d1".into()),
            peers: vec!["2=127.0.0.1:7381".into()],
            cluster_secret: Some("s".into()),
            snapshot_count: Some(500),
            ..ServeArgs::default()
        }
        .to_config()
        .unwrap();
        assert_eq!(every_500.raft_config().snapshot_threshold_entries, 500);
        assert_eq!(every_500.raft_config().voters, c.raft_config().voters);
        let err = ServeArgs { id: Some(1), ..ServeArgs::default() }.to_config().unwrap_err();
        assert!(err.to_string().contains("--data"), "{err}");
        let half_tls = ServeArgs { tls_cert: Some("/c.pem".into()), tls_key: Some("/k.pem".into()), ..args };
        let err = half_tls.to_config().unwrap_err().to_string();
        assert!(err.contains("missing --tls-ca"), "{err}");
        let tls = ServeArgs { tls_ca: Some("/ca.pem".into()), ..half_tls };
        assert_eq!(tls.to_config().unwrap().tls.unwrap().ca, PathBuf::from("/ca.pem"));
        let no_secret =
            ServeArgs { cluster_secret: None, tls_cert: None, tls_key: None, tls_ca: None, ..tls };
        assert!(no_secret.to_config().unwrap_err().to_string().contains("cluster_secret"));
    }

    /// docs/node.toml names its keys after the flags: the file and the flags make the same node.
    #[test]
    fn the_example_file_and_the_flags_make_the_same_node() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        for file in ["cluster.secret", "tls/node1.pem", "tls/node1.key", "tls/ca.pem"] {
            std::fs::write(dir.path().join(file), "s").unwrap();
        }
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/node.toml");
        let text = std::fs::read_to_string(example).unwrap().replace("./concord-data", &root);
        let file = dir.path().join("node.toml");
        std::fs::write(&file, text).unwrap();
        let parse = |argv: Vec<String>| {
            ServeArgsParser::try_parse_from(std::iter::once("serve".to_string()).chain(argv))
                .unwrap()
                .args
                .to_config()
        };
        let from_file = parse(vec!["--config".into(), file.display().to_string()]).unwrap();
        let flags = [
            "--id",
            "1",
            "--data",
            &format!("{root}/node1"),
            "--mode",
            "strong",
            "--cluster-id",
            "concord-2f9a",
            "--cluster-secret-file",
            &format!("{root}/cluster.secret"),
            "--peer-addr",
            "127.0.0.1:7379",
            "--redis-addr",
            "127.0.0.1:6379",
            "--http-addr",
            "127.0.0.1:8080",
            "--requirepass",
            "s3cret",
            "--maxclients",
            "10000",
            "--timeout",
            "0",
            "--client-query-buffer-limit",
            "16777216",
            "--client-output-buffer-limit",
            "67108864",
            "--http-max-connections",
            "1024",
            "--http-idle-timeout",
            "30s",
            "--http-host",
            "db.example.com",
            "--read-consistency",
            "linearizable",
            "--request-timeout",
            "2s",
            "--log",
            "info",
            "--peer",
            "2=127.0.0.1:7380,http=127.0.0.1:8081,redis=127.0.0.1:6380",
            "--peer",
            "3=127.0.0.1:7381,http=127.0.0.1:8082",
            "--state-cache-mb",
            "64",
            "--disk-reserve-mb",
            "32",
            "--tls-cert",
            &format!("{root}/tls/node1.pem"),
            "--tls-key",
            &format!("{root}/tls/node1.key"),
            "--tls-ca",
            &format!("{root}/tls/ca.pem"),
        ];
        let from_flags = parse(flags.iter().map(|s| s.to_string()).collect()).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{from_flags:?}"));
    }

    /// The arguments `concord up` gives each node parse as `concord serve` flags.
    #[test]
    fn up_node_args_are_serve_flags() {
        let options = UpOptions { data: "/tmp/c".into(), snapshot_count: Some(500), ..UpOptions::default() };
        let argv = up_node_args(&options, 1, "c1", Path::new("/tmp/c/cluster.secret")).unwrap();
        let serve = ServeArgsParser::try_parse_from(
            std::iter::once("serve".to_string()).chain(argv.into_iter().skip(1)),
        )
        .unwrap();
        assert_eq!(serve.args.id, Some(2));
        assert_eq!(serve.args.snapshot_count, Some(500));
        // The flags parse; the secret file does not exist here, and the error says so.
        let err = serve.args.to_config().unwrap_err().to_string();
        assert!(err.contains("cannot read cluster_secret_file"), "{err}");
    }

    #[derive(clap::Parser)]
    struct ServeArgsParser {
        #[command(flatten)]
        args: ServeArgs,
    }
}
