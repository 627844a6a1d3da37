//! Starting and stopping a whole node: disk, Raft, driver, peer transport, front doors.
//!
//! [`Node::start`] does things in the order that makes failures clear and harmless:
//! 1. validate the configuration (no file or socket touched yet);
//! 2. open the WAL – which locks the data directory, so a second node on the same directory stops
//!    here – and boot Raft from the durable state it recovered;
//! 3. load the TLS files, if any (`crate::tls`: every PEM problem is reported here);
//! 4. raise the open-files limit and share it out ([`crate::front::budget`]: a reserve for the WAL,
//!    the state database and the peers, a capped share per client door), then bind every listener
//!    (peer, HTTP, RESP) – a port in use is reported with its address and a guess at the culprit –
//!    before anything is spawned;
//! 5. spawn the driver, the transport and the servers.
//!
//! [`Node::shutdown`] stops accepting, lets the driver finish its current batch (whose sync then
//! completes before its replies go out), and waits for it.

use crate::config::{Mode, NodeConfig, PeerConfig};
use crate::disk_space::DiskSpace;
use crate::driver::{Clock, Driver, Input, INPUT_QUEUE};
use crate::eventual::EventualHandle;
use crate::hosted::Hosted;
use crate::incarnation::{Incarnation, PeerBook, VoteGate};
use crate::metrics::Metrics;
use crate::peer_file::PeerFile;
use crate::redb_engine::RedbEngine;
use crate::sharded::{ShardServer, ShardedHandle};
use crate::storage::Disk;
use crate::strong::NodeHandle;
use crate::transport::{self, Identity, Inbound, Transport};
use crate::{Error, RaftKv};
use concord_core::{Durable, NodeId};
use concord_dynamo::DynamoNode;
use concord_kv::{Changes, KvStore};
use concord_raft::RaftNode;
use concord_resp::pubsub::Relay;
use concord_resp::Backend;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// A running node.
pub struct Node {
    front: Front,
    shutdown: watch::Sender<bool>,
    driver: JoinHandle<Result<(), Error>>,
    /// The HTTP API as it is served (see [`Node::http_router`]).
    http: axum::Router,
    pub peer_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub redis_addr: Option<SocketAddr>,
    /// The dashboard's token (`None` without an HTTP port): `GET /?token=…` opens the dashboard
    /// with the right to use its buttons (see [`crate::auth`]).
    pub dashboard_token: Option<String>,
}

/// Bind `addr`, turning "address in use" into a sentence that names the likely culprit.
pub async fn bind(addr: SocketAddr, what: &str, culprit: &str) -> Result<TcpListener, Error> {
    let what = what.to_string();
    TcpListener::bind(addr).await.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => Error::AddrInUse { addr, what, culprit: culprit.to_string() },
        std::io::ErrorKind::AddrNotAvailable => Error::AddrNotAvailable { addr, what, source },
        _ => Error::Listen { addr, what, source },
    })
}

/// The protocol a node booted, before its driver starts.
// Lives only between boot and handing the node to its driver: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Protocol {
    Strong(RaftKv),
    Eventual(DynamoNode),
    Sharded(ShardServer),
}

/// The client side of the running protocol.
pub enum Front {
    Strong(NodeHandle),
    Eventual(EventualHandle),
    Sharded(ShardedHandle),
}

/// What a consistency mode plugs into [`Node::start_with_disk`]: the process the driver hosts, the
/// client handle in front of it, and the front doors (peer inbox, HTTP routes, RESP backend).
/// Everything else – disk, listeners, transport, TLS, the driver itself – is the same for every
/// mode, and is done once, in [`Node::start_with_disk`]. The strong mode's impl is in
/// [`crate::strong`], the eventual mode's in [`crate::eventual`].
pub trait Served: Hosted + Sized + 'static {
    /// The client side (cheap to clone).
    type Handle: Clone + Send + Sync + 'static;

    /// The client side, over the driver's input queue and status.
    fn handle(parts: ModeParts<'_, Self>) -> Self::Handle;

    /// Where peers' frames, HTTP requests and RESP commands go.
    fn front_doors(handle: &Self::Handle, parts: &DoorParts<'_>) -> Result<FrontDoors, Error>;

    /// The handle as [`Node::handle`] and [`Node::eventual`] hand it out.
    fn front(handle: Self::Handle) -> Front;
}

/// What a mode's client handle is built from.
pub struct ModeParts<'a, P: Hosted> {
    pub me: NodeId,
    pub config: &'a NodeConfig,
    pub tx: mpsc::Sender<Input<P>>,
    pub status: watch::Receiver<P::Status>,
    pub transport: Option<Transport>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// Every member's addresses, this node's own (as bound) included.
    pub members: Vec<PeerConfig>,
    pub peer_file: PeerFile,
    /// Whether the data disk is full (the handle refuses writes while it is).
    pub disk_space: Arc<DiskSpace>,
}

/// What a mode's front doors may need beyond its handle.
pub struct DoorParts<'a> {
    pub config: &'a NodeConfig,
    pub secret: Option<Vec<u8>>,
    /// The node's shutdown switch (what SIGTERM flips) and its receiver.
    pub shutdown: &'a watch::Sender<bool>,
    pub shutdown_rx: &'a watch::Receiver<bool>,
    /// The keys each batch of the driver changed (`CLIENT TRACKING`'s source; only the strong
    /// mode's driver fills it).
    pub changes: broadcast::Sender<Arc<Changes>>,
}

/// A mode's front doors.
pub struct FrontDoors {
    /// Frames from authenticated peers.
    pub inbox: Arc<dyn Inbound>,
    /// The HTTP API.
    pub http: axum::Router,
    /// The RESP backend.
    pub resp: Arc<dyn Backend>,
}

/// The shared half of starting a node, once the protocol has booted.
struct Launch<'a> {
    config: &'a NodeConfig,
    disk: Box<dyn Disk>,
    transport: Option<Transport>,
    clock: Clock,
    metrics: Arc<Metrics>,
    members: Vec<PeerConfig>,
    peer_file: PeerFile,
    disk_space: Arc<DiskSpace>,
    secret: Option<Vec<u8>>,
    shutdown: &'a watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
}

type Launched = (Front, FrontDoors, JoinHandle<Result<(), Error>>);

/// Start `node`'s driver, its client handle and its front doors: one path for every mode.
fn launch<P: Served>(node: P, l: Launch<'_>) -> Result<Launched, Error> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let (status_tx, status_rx) = watch::channel(P::Status::default());
    let me = node.id();
    let handle = P::handle(ModeParts {
        me,
        config: l.config,
        tx,
        status: status_rx,
        transport: l.transport.clone(),
        clock: l.clock,
        metrics: l.metrics.clone(),
        members: l.members,
        peer_file: l.peer_file,
        disk_space: l.disk_space.clone(),
    });
    // Lagging listeners learn they lagged and flush what they track; 1 024 batches is seconds.
    let (changes, _) = broadcast::channel(1024);
    let driver = Driver::new(node, l.clock, l.disk, l.transport, rx, status_tx, l.metrics)
        .with_disk_space(l.disk_space)
        .with_change_feed(changes.clone());
    let driver = tokio::spawn(driver.run(l.shutdown_rx.clone()));
    let doors = P::front_doors(
        &handle,
        &DoorParts {
            config: l.config,
            secret: l.secret,
            shutdown: l.shutdown,
            shutdown_rx: &l.shutdown_rx,
            changes,
        },
    )?;
    Ok((P::front(handle), doors, driver))
}

/// A mode's routes as the HTTP port serves them: every layer every route shares is added here.
fn http_service(app: axum::Router) -> axum::Router {
    crate::front::http::with_json_errors(app)
}

/// Serve the HTTP API on `listener` until shutdown, over TLS when `tls` is given, with the HTTP
/// door's cap and idle timeout (see [`crate::front::listen`]).
fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    gate: Arc<crate::auth::Gate>,
    tls: Option<&Arc<crate::tls::NodeTls>>,
    limits: crate::front::listen::HttpLimits,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    // Every request – every route of both modes, unknown ones too – passes the one gate.
    let app = app.layer(axum::middleware::from_fn_with_state(gate, crate::auth::guard));
    let tls = tls.map(|t| t.client_acceptor.clone());
    tokio::spawn(crate::front::listen::serve_http(listener, app, tls, limits, metrics, stop));
}

/// Voters and learners, as node ids.
type Members = (Vec<u32>, Vec<u32>);

/// Keep the peer book's view of the membership current: it refuses changed incarnations of voters
/// only, and forgets the ids that left (see [`crate::incarnation`]). `members` reads the voters
/// and learners off a status: the group's (strong mode) or the metadata group's (sharded mode,
/// whose voters are every node that may hold a replica).
async fn follow_membership<S: Send + Sync + 'static>(
    mut status: watch::Receiver<S>,
    members: fn(&S) -> Option<Members>,
    book: Arc<PeerBook>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::collections::BTreeSet;
    let mut last: Option<Members> = None;
    loop {
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let Some(now) = members(&status.borrow_and_update()) else { continue };
        // A default status (before the driver's first batch) has no voters; Raft always has one.
        if now.0.is_empty() || last.as_ref() == Some(&now) {
            continue;
        }
        let ids = |list: &[u32]| list.iter().map(|&i| NodeId(i)).collect::<BTreeSet<_>>();
        if let Err(e) = book.set_membership(&ids(&now.0), &ids(&now.1)) {
            tracing::error!("{e}");
        }
        last = Some(now);
    }
}

impl Node {
    /// Start a node on its WAL in `config.data_dir`.
    pub async fn start(config: NodeConfig) -> Result<Node, Error> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Storage(format!("cannot create data directory {}: {e}", config.data_dir.display()))
        })?;
        crate::identity::check_log_not_lost(&config.data_dir)?;
        let (disk, durable) = crate::storage::open_wal(&config.data_dir, &config.wal)?;
        let identity = crate::identity::Identity {
            cluster_id: config.cluster_id.clone(),
            node: config.node_id().0,
            mode: config.mode.name().to_string(),
            incarnation: None,
            shard: config.shard.filter(|_| config.mode == Mode::Sharded),
        };
        let incarnation = crate::identity::check_or_claim(&config.data_dir, &identity, &durable)?;
        Self::start_inner(config, disk, durable, Some(incarnation)).await
    }

    /// Start a node on a given disk (the WAL, or an in-memory disk in tests). Without an identity
    /// file, the node is a new incarnation each time, and remembers its peers' only in memory.
    pub async fn start_with_disk(
        config: NodeConfig,
        disk: Box<dyn Disk>,
        durable: Durable,
    ) -> Result<Node, Error> {
        Self::start_inner(config, disk, durable, None).await
    }

    /// Start a node; `incarnation` is its data directory's (see [`crate::incarnation`]), whose
    /// peer book then lives in that directory.
    async fn start_inner(
        config: NodeConfig,
        disk: Box<dyn Disk>,
        durable: Durable,
        incarnation: Option<Incarnation>,
    ) -> Result<Node, Error> {
        config.validate()?;
        if let Some(name) = &config.unsafe_mutation {
            tracing::error!(
                "UNSAFE: this node runs with the deliberate Raft bug `{name}` ({}): it is BROKEN on \
                 purpose, for `concord chaos --unsafe-mutation` only – never keep data on it",
                crate::config::UNSAFE_MUTATION_ENV
            );
        }
        let me = config.node_id();
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(crate::tls::NodeTls::load(settings)?)),
            None => None,
        };
        let cannot_boot = |reason: String| Error::Boot { node: me, dir: config.data_dir.clone(), reason };
        let protocol = match config.mode {
            Mode::Strong => {
                let engine = RedbEngine::open(&config.data_dir, config.state.cache_mb << 20)?;
                let store = KvStore::with_engine(config.kv.clone(), engine);
                Protocol::Strong(
                    RaftNode::boot(me, config.raft_config(), store, &durable)
                        .map_err(|e| cannot_boot(e.to_string()))?,
                )
            }
            Mode::Eventual => Protocol::Eventual(
                DynamoNode::boot(me, &config.cluster(), config.dynamo_config(), &durable)
                    .map_err(cannot_boot)?,
            ),
            Mode::Sharded => {
                let layout =
                    config.sharded_config().ok_or_else(|| cannot_boot("no [shard] layout".into()))?;
                // Every group's state is rebuilt from its part of the WAL (see `crate::sharded`).
                Protocol::Sharded(ShardServer::new(
                    concord_shard::ShardedNode::boot(me, layout, &durable).map_err(cannot_boot)?,
                ))
            }
        };
        // The incarnations seen for each peer; only the strong mode refuses a changed one (Raft has
        // votes to protect). The book knows the membership before any peer connects.
        let enforce = config.mode != Mode::Eventual;
        let book = Arc::new(match incarnation {
            Some(_) => PeerBook::open(&config.data_dir, me, enforce)?,
            None => PeerBook::in_memory(me, enforce),
        });
        let membership = match &protocol {
            Protocol::Strong(raft) => Some(raft.current_membership().clone()),
            Protocol::Sharded(server) => Some(server.node().metadata().current_membership().clone()),
            Protocol::Eventual(_) => None,
        };
        if let Some(m) = membership {
            book.set_membership(&m.voters, &m.learners)?;
        }
        let incarnation = incarnation.unwrap_or_else(Incarnation::random);
        // Configured peers, plus those learned at run time by an earlier life of this node.
        let peer_file = crate::peer_file::PeerFile::open(&config.data_dir)?;
        let peers = peer_file.merge(me.0, &config.other_peers());

        // Client connections must never take the descriptors the WAL and the peers need.
        let open_files = crate::front::budget::raise_open_files_limit();
        let budget = crate::front::budget::FdBudget::new(open_files.soft, peers.len());
        let (caps, lowered) = budget
            .caps(
                config.http_addr.map(|_| config.http_max_connections),
                config.redis_addr.map(|_| config.maxclients),
            )
            .map_err(Error::Config)?;
        for warning in lowered {
            tracing::warn!("{warning}");
        }

        let peer_listener = if config.secret()?.is_none() {
            None
        } else {
            Some(bind(config.peer_addr, "peer port", "another concord node?").await?)
        };
        let http_listener = match config.http_addr {
            Some(a) => Some(bind(a, "HTTP port", "another concord or web server?").await?),
            None => None,
        };
        let redis_listener = match config.redis_addr {
            Some(a) => Some(bind(a, "RESP port", "another concord or redis-server?").await?),
            None => None,
        };
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let (peer_addr, http_addr, redis_addr) = (
            local(&peer_listener).unwrap_or(config.peer_addr),
            local(&http_listener),
            local(&redis_listener),
        );

        let metrics = Arc::new(Metrics::new());
        metrics.open_files_limit.set(i64::try_from(open_files.soft).unwrap_or(i64::MAX));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let clock = Clock::new();

        let secret = config.secret()?;
        let secret_for_gate = secret.clone();
        // One set of users for both doors.
        let acl = Arc::new(crate::auth::acl_of(&config)?);
        let mut identity = Identity::new(
            me,
            config.cluster_id.clone(),
            secret.clone().unwrap_or_default(),
            peers.iter().map(|p| (NodeId(p.id), p.addr)).collect(),
        );
        if let Some(tls) = &tls {
            identity = identity.with_tls(tls.clone());
        }
        let identity = Arc::new(identity.with_incarnation(incarnation, book.clone()));
        // With a secret, a node can take part in a cluster (even a one-node one that grows later).
        let transport = secret
            .is_some()
            .then(|| Transport::start(identity.clone(), metrics.clone(), shutdown_rx.clone()));
        // Every member's addresses, this node's own (as bound) included.
        let members: Vec<PeerConfig> = peers
            .iter()
            .cloned()
            .chain([PeerConfig { id: me.0, addr: peer_addr, http_addr, redis_addr }])
            .collect();

        // The protocol's half: its driver, the client side, and what its peers and clients reach.
        // The data disk's free space: measured now (a node started on a full disk refuses writes
        // from its first request) and then every second.
        let disk_space = Arc::new(DiskSpace::new(&config.data_dir, config.wal.reserve_mb << 20));
        if config.data_dir.is_dir() {
            if let Err(e) = disk_space.check() {
                tracing::warn!("cannot measure the free space of {}: {e}", config.data_dir.display());
            }
            tokio::spawn(disk_space.clone().watch(metrics.clone(), shutdown_rx.clone()));
        }
        let pubsub_transport = transport.clone();
        let launch_parts = Launch {
            config: &config,
            disk,
            transport,
            clock,
            metrics: metrics.clone(),
            members,
            peer_file,
            disk_space,
            secret,
            shutdown: &shutdown,
            shutdown_rx: shutdown_rx.clone(),
        };
        let (front, doors, driver) = match protocol {
            Protocol::Strong(raft) => launch(raft, launch_parts)?,
            Protocol::Eventual(node) => launch(node, launch_parts)?,
            Protocol::Sharded(node) => launch(node, launch_parts)?,
        };
        let FrontDoors { inbox: inbound, http: app, resp: backend } = doors;
        // No vote in or out until a majority of the voters accepted this node's incarnation.
        let inbound: Arc<dyn Inbound> = Arc::new(VoteGate::new(inbound, book.clone()));
        // Pub/Sub travels beside the mode's protocol, the same in every mode (`front::pubsub`).
        let relay = pubsub_transport
            .clone()
            .map(|transport| Arc::new(crate::front::pubsub::PeerRelay { transport }) as Arc<dyn Relay>);
        let pubsub = Arc::new(concord_resp::pubsub::Hub::new(relay));
        let inbound: Arc<dyn Inbound> = Arc::new(crate::front::pubsub::PubSubInbox {
            inner: inbound,
            hub: pubsub.clone(),
            transport: pubsub_transport,
        });
        match &front {
            Front::Strong(handle) => {
                let members = |s: &crate::hosted::Status| Some((s.voters.clone(), s.learners.clone()));
                tokio::spawn(follow_membership(handle.watch_status(), members, book, shutdown_rx.clone()));
            }
            Front::Sharded(handle) => {
                let members = |s: &crate::sharded::ShardedStatus| {
                    let meta = s.groups.iter().find(|g| g.group == 0)?;
                    Some((meta.voters.clone(), meta.learners.clone()))
                };
                tokio::spawn(follow_membership(handle.watch_status(), members, book, shutdown_rx.clone()));
            }
            Front::Eventual(_) => {}
        }

        if let Some(listener) = peer_listener {
            tokio::spawn(transport::accept_loop(
                listener,
                identity,
                inbound,
                metrics.clone(),
                shutdown_rx.clone(),
            ));
        }
        let http = http_service(app);
        let mut dashboard_token = None;
        if let (Some(listener), Some(addr)) = (http_listener, http_addr) {
            let gate = Arc::new(crate::auth::Gate::new(&config, acl.clone(), secret_for_gate, addr)?);
            dashboard_token = Some(gate.token().to_string());
            if config.dashboard_token_file.is_none() {
                // Like Jupyter: the person who started the node opens this URL (and gets a cookie).
                let scheme = if tls.is_some() { "https" } else { "http" };
                tracing::info!("dashboard: {scheme}://{addr}/?token={}", gate.token());
            }
            let limits = crate::front::listen::HttpLimits {
                max_connections: caps.http,
                idle_timeout: config.http_idle(),
            };
            serve_http(
                listener,
                http.clone(),
                gate,
                tls.as_ref(),
                limits,
                metrics.clone(),
                shutdown_rx.clone(),
            );
        }
        if let Some(listener) = redis_listener {
            let tls = tls.as_ref().map(|t| t.client_acceptor.clone());
            let door = Arc::new(crate::front::listen::Door::new("resp", metrics.clone(), caps.resp));
            let shared = crate::front::resp::NodeShared { acl, pubsub };
            crate::front::resp::spawn(listener, backend, &config, shared, tls, door, shutdown_rx.clone());
        }
        tracing::info!(
            "node {me} started in the {} mode: peers on {peer_addr}, HTTP{} on {}, RESP on {}{}, data in {}",
            config.mode.name(),
            if tls.is_some() { "S" } else { "" },
            http_addr.map_or("-".into(), |a| a.to_string()),
            redis_addr.map_or("-".into(), |a| a.to_string()),
            if tls.is_some() { " (TLS on every port)" } else { "" },
            config.data_dir.display()
        );
        Ok(Node { front, shutdown, driver, http, peer_addr, http_addr, redis_addr, dashboard_token })
    }

    /// The HTTP API exactly as the HTTP port serves it, to call in-process (`tower::ServiceExt::
    /// oneshot`): the fuzzer drives it this way. It is there even when the node has no HTTP port.
    /// Requests made this way carry no connection info: give them a
    /// `axum::extract::ConnectInfo<SocketAddr>` extension where a route needs the client's address.
    pub fn http_router(&self) -> axum::Router {
        self.http.clone()
    }

    /// The client side of a strong-mode node.
    ///
    /// # Panics
    /// If the node runs the eventual mode (use [`Node::eventual`]).
    pub fn handle(&self) -> NodeHandle {
        match &self.front {
            Front::Strong(handle) => handle.clone(),
            Front::Eventual(_) => {
                panic!("node {} runs the eventual mode: use Node::eventual", self.peer_addr)
            }
            Front::Sharded(_) => {
                panic!("node {} runs the sharded mode: use Node::sharded", self.peer_addr)
            }
        }
    }

    /// The client side of a sharded node (`None` in the other modes).
    pub fn sharded(&self) -> Option<ShardedHandle> {
        match &self.front {
            Front::Sharded(handle) => Some(handle.clone()),
            _ => None,
        }
    }

    /// The client side of an eventual-mode node (`None` in the strong mode).
    pub fn eventual(&self) -> Option<EventualHandle> {
        match &self.front {
            Front::Eventual(handle) => Some(handle.clone()),
            Front::Strong(_) | Front::Sharded(_) => None,
        }
    }

    /// Wait until the driver stops on its own (a disk failure); returns why.
    pub async fn wait(&mut self) -> Result<(), Error> {
        (&mut self.driver).await.map_err(|e| Error::Driver(format!("the driver task failed: {e}")))?
    }

    /// Whether the driver has stopped.
    pub fn is_stopped(&self) -> bool {
        self.driver.is_finished()
    }

    /// Stop accepting, finish the batch in progress (its sync completes), and wait for the driver.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        self.driver.await.map_err(|e| Error::Driver(format!("the driver task failed: {e}")))?
    }
}
