//! `concord cache`: one cache node in front of a Concord database. Here the flags are parsed into
//! `concord_cache_node::Options`; the node is `concord_cache_node::start` (its crate docs say what
//! every command does, and docs/cache.md how to use a tier).

use concord_cache::{KetamaRing, PlacementKind, PolicyKind};
use concord_cache_node::{Options, WritePolicy};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// `concord cache`: a cache node (RESP) in front of a Concord database.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheArgs {
    /// RESP port clients connect to.
    #[arg(long, default_value_t = 6400)]
    pub port: u16,
    /// The address the ports bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// HTTP port for /metrics, /v1/stats and the dashboard page (none if not given).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Every database node's RESP address, comma-separated (host:port,host:port,…).
    #[arg(long, required = true, value_delimiter = ',')]
    pub db: Vec<String>,
    /// The database's cluster id (its DATA/cluster.id; `concord up` passes it): a database that
    /// reports another is refused.
    #[arg(long)]
    pub cluster_id: String,
    /// Memory budget in MiB (keys + values + 64 bytes per entry).
    #[arg(long, default_value_t = 64)]
    pub budget_mb: u64,
    /// The largest entry in KiB (key + value + 64 bytes); larger values are refused.
    #[arg(long, default_value_t = 1024)]
    pub max_item_kb: u64,
    /// Eviction policy: lru or s3fifo.
    #[arg(long, default_value = "s3fifo", value_parser = parse_policy)]
    pub policy: PolicyKind,
    /// The longest an entry lives (the staleness bound if an invalidation is ever lost), e.g. 1h, 30s.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub max_ttl: Duration,
    /// How long a miss's lease stays valid, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease_period: Duration,
    /// Where SET leaves the cache: through (install the written value) or around (drop the key).
    #[arg(long, default_value = "through", value_parser = WritePolicy::parse)]
    pub write_policy: WritePolicy,
    /// Every cache node of the tier, this one included, comma-separated, in the same order on
    /// every node (default: this node alone).
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// How keys map to cache nodes: ketama, jump or rendezvous.
    #[arg(long, default_value = "ketama", value_parser = parse_placement)]
    pub placement: PlacementKind,
    /// Require clients of this node – and the tier's other nodes – to `AUTH` with this password
    /// (every node of the tier must get the same one). Default: no AUTH; the node listens on
    /// loopback unless --bind says otherwise.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// The database's client password (`AUTH`), if it requires one.
    #[arg(long)]
    pub db_password: Option<String>,
    /// The database user to authenticate as (with --db-password; default: Redis's `default`).
    #[arg(long)]
    pub db_user: Option<String>,
    /// Worker threads. 1 (the default) runs one event loop, as redis-server does: on a machine
    /// where the clients share the cores, the fastest at one request per round trip; more threads
    /// serve pipelined load and more cores better.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

fn parse_policy(text: &str) -> Result<PolicyKind, String> {
    match text.to_ascii_lowercase().as_str() {
        "lru" => Ok(PolicyKind::Lru),
        "s3fifo" | "s3-fifo" => Ok(PolicyKind::S3Fifo),
        other => Err(format!("unknown policy {other:?}: lru or s3fifo")),
    }
}

fn parse_placement(text: &str) -> Result<PlacementKind, String> {
    match text.to_ascii_lowercase().as_str() {
        "ketama" => Ok(PlacementKind::Ketama { vnodes: KetamaRing::DEFAULT_VNODES }),
        "jump" => Ok(PlacementKind::Jump),
        "rendezvous" => Ok(PlacementKind::Rendezvous),
        other => Err(format!("unknown placement {other:?}: ketama, jump or rendezvous")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    concord_core::time::parse_duration(text).map_err(|e| e.to_string())
}

fn resolve(list: &[String], what: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let addr = item
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("{what} {item:?} is not host:port: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{what} {item:?} resolves to no address"))?;
        out.push(addr);
    }
    Ok(out)
}

impl CacheArgs {
    pub fn to_options(&self) -> anyhow::Result<Options> {
        Ok(Options {
            bind: self.bind,
            port: self.port,
            http_port: self.http_port,
            db: resolve(&self.db, "--db")?,
            cluster_id: self.cluster_id.clone(),
            db_user: self.db_user.clone(),
            db_password: self.db_password.clone(),
            requirepass: self.requirepass.clone(),
            budget_bytes: self.budget_mb.saturating_mul(1 << 20),
            max_item_bytes: self.max_item_kb.saturating_mul(1 << 10),
            policy: self.policy,
            max_ttl: self.max_ttl,
            lease_period: self.lease_period,
            write_policy: self.write_policy,
            peers: resolve(&self.peers, "--peers")?,
            placement: self.placement,
        })
    }
}

pub fn run(args: &CacheArgs) -> anyhow::Result<ExitCode> {
    let options = args.to_options()?;
    // One thread: tokio's single-threaded scheduler (no work stealing, no cross-thread wakeups).
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    runtime.block_on(async {
        let running = concord_cache_node::start(options).await?;
        let o = &running.shared.options;
        println!(
            "concord cache: listening on {} (resp){}; database {} (cluster {}); budget {} MiB, items up to {} KiB, {}, write-{}, placement {} over {} node(s)",
            running.addr,
            running.http_addr.map(|a| format!(", http://{a}/")).unwrap_or_default(),
            o.db.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            o.cluster_id,
            o.budget_bytes >> 20,
            o.max_item_bytes >> 10,
            o.policy.name(),
            o.write_policy.name(),
            running.shared.tier.placement_name(),
            running.shared.tier.members.len(),
        );
        concord_cache_node::termination().await;
        println!("concord cache: stopping");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
