//! Who may use a node's HTTP API, and the one check every HTTP request passes ([`guard`]).
//!
//! A node has one credential model for both its front doors: the users of
//! [`concord_resp::acl`] (the `default` user with `requirepass`, users with roles from node.toml's
//! `[[users]]` or `ACL SETUSER`). The RESP server checks them on `AUTH`; this module checks them
//! on HTTP, with the same [`Acl`] value. On top, three credentials only HTTP knows:
//!
//! | credential | how it is sent | what it may do |
//! |---|---|---|
//! | a user's password | `Authorization: Basic base64(user:password)`, or `Authorization: Bearer <password>` for `default` | what the user's role allows |
//! | a cluster proof | `Authorization: Concord-HMAC ts=…,nonce=…,mac=…` (below) | everything (nodes forwarding to each other, `concord member`/`backup`/`join`) |
//! | the dashboard token | `GET /?token=…` once, then a cookie; or `Authorization: Bearer <token>` | everything (the person who started the node) |
//!
//! The raw cluster secret as `Authorization: Bearer <secret>` is still accepted (what older
//! `concord` commands send), but nothing in this version sends it: it would cross the network in
//! plaintext without TLS. A proof is sent instead:
//!
//! ```text
//! Authorization: Concord-HMAC ts=<unix seconds>,nonce=<32 hex>,mac=<64 hex>
//! mac = HMAC-SHA256(secret, "concord-http-v1\n" METHOD "\n" PATH?QUERY "\n" ts "\n" nonce "\n" hex(SHA-256(body)))
//! ```
//!
//! A proof is good for one request: it must be at most [`PROOF_WINDOW`] old (or early), and its
//! nonce is remembered for that long, so a captured proof cannot be replayed, nor changed to
//! another method, path or body.
//!
//! ## What [`guard`] checks, in order
//! 1. **Host** – the name the client used must be one of the node's own: an IP literal that is a
//!    loopback address or one the node listens on (any IP when it listens on 0.0.0.0 or `::`),
//!    `localhost`, or a name in `http_hosts`. A DNS-rebinding page reaches the node under its own
//!    domain name and is refused here with 421.
//! 2. **Origin** – when a browser sends one, it must be the node's own origin (the request's Host):
//!    a page elsewhere cannot drive the API, not even another port on the same machine. 403.
//! 3. **Content type** – a `POST` with a body must say `application/json` (every POST body of the
//!    API is JSON); a form a foreign page submits as `text/plain` is refused with 415.
//! 4. **Credential** – a wrong one is refused with 401 whatever the route; none is anonymous.
//!    The dashboard's cookie is named after the node's port, but browsers send every port's
//!    cookies to each port of a host: any `concord_dashboard_*` cookie carrying this node's token
//!    counts (a member opened from another member's page, when they share the token).
//! 5. **Route** – [`classify`]: public (health, the dashboard page), data (reads or writes of keys,
//!    the cluster's state), admin (membership, backup) or lab (fault injection). Data routes take
//!    an anonymous client as `default` when `default` has no password (401 otherwise); admin and
//!    lab routes always need a credential (admin routes also open to all with `allow_admin`), even
//!    from loopback. A role that does not cover the route: 403.
//!
//! A 401 challenges with `Basic` (a browser's login prompt), except a page's script, which gets
//! `Bearer`: the prompt would hold its request instead of letting it read the error ([`challenge`]).

use crate::config::NodeConfig;
use crate::front::http::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use concord_resp::acl::{constant_time_eq, Acl, Denied, Need, Role, DEFAULT_USER};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old (or how far in the future) a cluster proof may be; also how long its nonce is kept.
pub const PROOF_WINDOW: Duration = Duration::from_secs(60);
/// Nonces remembered at most (one per proof in the last [`PROOF_WINDOW`]); beyond, proofs are
/// refused with 503 until old ones expire – a bound on memory, far above what forwarding needs.
pub const REPLAY_CACHE_MAX: usize = 100_000;

const PROOF_SCHEME: &str = "Concord-HMAC";
/// The dashboard cookie's name, before the node's HTTP port.
const COOKIE_PREFIX: &str = "concord_dashboard_";

/// The users of a node, from its configuration: `default` with `requirepass`, then `[[users]]`.
pub fn acl_of(config: &NodeConfig) -> Result<Acl, crate::Error> {
    let acl = Acl::new(config.requirepass.as_deref());
    for user in &config.users {
        let (digest, role) = user.resolve().map_err(crate::Error::Config)?;
        acl.add_user(&user.name, digest, role).map_err(crate::Error::Config)?;
    }
    Ok(acl)
}

/// Who a request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credential.
    Anonymous,
    /// A user who gave a password (or a `nopass` user named with any).
    User(String),
    /// A holder of the cluster secret (a proof, or the secret itself).
    Cluster,
    /// A holder of the dashboard token.
    Dashboard,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Anonymous => write!(f, "an anonymous client"),
            Principal::User(u) => write!(f, "user {u}"),
            Principal::Cluster => write!(f, "a holder of the cluster secret"),
            Principal::Dashboard => write!(f, "the dashboard token's holder"),
        }
    }
}

/// What a route is, for [`guard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Anyone: `/healthz` and the dashboard's page and assets (the page holds no data).
    Public,
    /// Keys and the cluster's state.
    Data(Need),
    /// Membership and backups (`allow_admin` opens them to everyone).
    Admin,
    /// Fault injection (`POST /v1/faults/…`).
    Lab,
}

/// The kind of a route: every HTTP route of both modes is in this one table.
pub fn classify(method: &Method, path: &str) -> Door {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/healthz" | "/" | "/dashboard" | "/dashboard/" | "/favicon.ico" if read => Door::Public,
        p if read && p.starts_with("/dashboard/") => Door::Public,
        "/v1/members" | "/v1/members/addresses" | "/v1/backup" => Door::Admin,
        // Sharded mode: moving slots or replicas and switching the rebalancer change the shard map
        // (admin); reading it is data.
        "/v1/cluster/moves"
        | "/v1/cluster/replicas"
        | "/v1/cluster/rebalance"
        | "/v1/cluster/nodes"
        | "/v1/cluster/decommission"
            if !read =>
        {
            Door::Admin
        }
        p if p.starts_with("/v1/faults/") && !read => Door::Lab,
        _ if read => Door::Data(Need::Read),
        _ => Door::Data(Need::Write),
    }
}

/// The state [`guard`] checks requests against (one per node).
pub struct Gate {
    acl: Arc<Acl>,
    secret: Option<Vec<u8>>,
    token: String,
    allow_admin: bool,
    /// Names the Host header may carry (lower case), besides IP literals.
    names: Vec<String>,
    /// IP addresses the node answers on (besides loopback), and whether it listens on all.
    ips: Vec<IpAddr>,
    any_ip: bool,
    /// The dashboard's cookie: named after the port, since browsers share cookies between the
    /// ports of one host and nodes may have tokens of their own (one name would make each
    /// node's cookie overwrite the others').
    cookie: String,
    tls: bool,
    body_limit: usize,
    seen: Mutex<Nonces>,
}

/// Nonces of recent proofs, with their expiry (unix seconds).
#[derive(Default)]
struct Nonces(HashMap<String, u64>);

impl Gate {
    /// The gate of a node whose HTTP API listens on `http_addr`.
    pub fn new(
        config: &NodeConfig,
        acl: Arc<Acl>,
        secret: Option<Vec<u8>>,
        http_addr: SocketAddr,
    ) -> Result<Gate, crate::Error> {
        let token = match &config.dashboard_token_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    crate::Error::Config(format!("cannot read dashboard_token_file {}: {e}", path.display()))
                })?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            None => random_hex(16),
        };
        if token.len() < 16 {
            return Err(crate::Error::Config("the dashboard token must have at least 16 characters".into()));
        }
        let mut names: Vec<String> = config.http_hosts.iter().map(|h| host_name(h).to_lowercase()).collect();
        names.push("localhost".into());
        let mut ips = vec![http_addr.ip()];
        ips.extend(
            config.peers.iter().filter(|p| p.id == config.id).filter_map(|p| p.http_addr.map(|a| a.ip())),
        );
        ips.extend(config.http_hosts.iter().filter_map(|h| host_name(h).parse::<IpAddr>().ok()));
        Ok(Gate {
            acl,
            secret,
            token,
            allow_admin: config.allow_admin,
            names,
            any_ip: http_addr.ip().is_unspecified(),
            ips,
            cookie: format!("{COOKIE_PREFIX}{}", http_addr.port()),
            tls: config.tls.is_some(),
            body_limit: crate::front::http::body_limit(
                config.kv.max_command_bytes.max(config.kv.max_value_bytes),
            ),
            seen: Mutex::new(Nonces::default()),
        })
    }

    /// The dashboard token (`concord serve` prints it in the dashboard's URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether `host` (a Host header's value) names this node; `Err` is the 421 message.
    fn check_host(&self, host: &str) -> Result<(), String> {
        let name = host_name(host).to_lowercase();
        let ok = match name.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || self.any_ip || self.ips.contains(&ip),
            Err(_) => self.names.contains(&name),
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "Host {host:?} is not a name of this node (its addresses, localhost, or http_hosts: {}); a page \
             reaching the node under a foreign name (DNS rebinding) is refused. If clients use this name, \
             add it with --http-host",
            self.names.join(", ")
        ))
    }

    /// Who the request's credential names; `Err` for a credential that is wrong (401).
    fn principal(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Principal, ApiError> {
        let unauthorized = |message: String| ApiError::new(StatusCode::UNAUTHORIZED, message);
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value =
                value.to_str().map_err(|_| unauthorized("the Authorization header is not text".into()))?;
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            return match scheme {
                PROOF_SCHEME => {
                    let Some(secret) = &self.secret else {
                        return Err(unauthorized("this node has no cluster secret to check a proof with".into()));
                    };
                    self.check_proof(secret, rest, method, path, body).map_err(unauthorized)?;
                    Ok(Principal::Cluster)
                }
                "Basic" => {
                    use base64::Engine;
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(rest.trim())
                        .map_err(|_| unauthorized("Basic credentials are not base64".into()))?;
                    let text = String::from_utf8_lossy(&decoded);
                    let (user, password) = text
                        .split_once(':')
                        .ok_or_else(|| unauthorized("Basic credentials must be user:password".into()))?;
                    self.acl.authenticate(user, password.as_bytes()).map_err(|why| unauthorized(format!("WRONGPASS {why}")))?;
                    Ok(Principal::User(user.to_string()))
                }
                "Bearer" => {
                    let given = rest.trim().as_bytes();
                    if constant_time_eq(self.token.as_bytes(), given) {
                        Ok(Principal::Dashboard)
                    } else if self.secret.as_deref().is_some_and(|s| constant_time_eq(s, given)) {
                        Ok(Principal::Cluster)
                    } else if !self.acl.is_nopass(DEFAULT_USER) && self.acl.authenticate(DEFAULT_USER, given).is_ok() {
                        Ok(Principal::User(DEFAULT_USER.into()))
                    } else {
                        Err(unauthorized(
                            "wrong bearer token: not the default user's password, the dashboard token or the cluster secret".into(),
                        ))
                    }
                }
                other => Err(unauthorized(format!(
                    "unknown Authorization scheme {other:?}: use Basic (user:password), Bearer or {PROOF_SCHEME}"
                ))),
            };
        }
        // Browsers send the cookies of every port of a host to each of its ports: a member's
        // dashboard opened through another member's page (its "open" link carries no token) gets
        // that member's cookie. The token is the credential, not the port in the cookie's name:
        // members sharing a token (`concord up`) take each other's; one with its own ignores the
        // others'. Only a wrong token under this node's own name is an error (a stale cookie).
        let mut stale = false;
        for (name, value) in cookies(headers).filter(|(name, _)| name.starts_with(COOKIE_PREFIX)) {
            if constant_time_eq(self.token.as_bytes(), value.as_bytes()) {
                return Ok(Principal::Dashboard);
            }
            stale |= name == self.cookie;
        }
        if stale {
            return Err(unauthorized(
                "the dashboard's token is from an earlier run of this node: open the URL it printed".into(),
            ));
        }
        Ok(Principal::Anonymous)
    }

    /// Check a cluster proof (the `Authorization` value after the scheme).
    fn check_proof(
        &self,
        secret: &[u8],
        fields: &str,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let mut ts = None;
        let mut nonce = None;
        let mut mac = None;
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("ts", v)) => ts = v.parse::<u64>().ok(),
                Some(("nonce", v)) => nonce = Some(v),
                Some(("mac", v)) => mac = Some(v),
                _ => {}
            }
        }
        let (Some(ts), Some(nonce), Some(mac)) = (ts, nonce, mac) else {
            return Err(format!("a {PROOF_SCHEME} proof needs ts=, nonce= and mac="));
        };
        if nonce.len() < 16 || nonce.len() > 64 {
            return Err("the proof's nonce must have 16 to 64 characters".into());
        }
        let now = unix_s();
        let window = PROOF_WINDOW.as_secs();
        if ts + window < now || ts > now + window {
            return Err(format!(
                "the proof is stale (made at {ts}, now {now}; at most {window} s apart): are the clocks in sync?"
            ));
        }
        let expected = proof_mac(secret, method.as_str(), path, ts, nonce, body);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err("wrong proof: not made with this cluster's secret for this request".into());
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.0.retain(|_, expiry| *expiry >= now);
        if seen.0.contains_key(nonce) {
            return Err("this proof was already used (a replay)".into());
        }
        if seen.0.len() >= REPLAY_CACHE_MAX {
            return Err("too many proofs in the last minute; retry shortly".into());
        }
        seen.0.insert(nonce.to_string(), ts + 2 * window);
        Ok(())
    }

    /// Whether `who` may use `door`; `Err` is the refusal (401 without a credential, 403 with one).
    fn authorize(&self, door: Door, who: &Principal) -> Result<(), ApiError> {
        let needs_credential = |what: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{what} need a credential, even from this machine: an admin user (Basic), the dashboard's \
                     token (open the URL the node printed) or a cluster proof (concord commands with the \
                     cluster secret file)"
                ),
            )
        };
        let check = |user: &str, need: Need| {
            self.acl.check(user, need).map_err(|denied| match denied {
                Denied::Gone(_) => ApiError::new(StatusCode::UNAUTHORIZED, denied.to_string()),
                Denied::NoPerm { .. } => ApiError::new(StatusCode::FORBIDDEN, format!("NOPERM {denied}")),
            })
        };
        match (door, who) {
            (Door::Public, _) | (_, Principal::Cluster | Principal::Dashboard) => Ok(()),
            (Door::Data(need), Principal::Anonymous) => {
                if self.acl.auth_required() {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "NOAUTH this node requires authentication: Authorization: Bearer <password> (the \
                         default user) or Basic (user:password)",
                    ));
                }
                check(DEFAULT_USER, need)
            }
            (Door::Data(need), Principal::User(user)) => check(user, need),
            (Door::Admin, _) if self.allow_admin => Ok(()),
            (Door::Admin, Principal::Anonymous) => Err(needs_credential("membership changes and backups")),
            (Door::Lab, Principal::Anonymous) => Err(needs_credential("fault-injection requests")),
            (Door::Admin | Door::Lab, Principal::User(user)) => {
                if self.acl.is_nopass(user) {
                    return Err(needs_credential("admin and fault-injection requests"));
                }
                check(user, Need::Admin)
            }
        }
    }
}

/// The middleware every HTTP request of a node passes through (see the module docs).
pub async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let challenge = challenge(request.headers());
    match admit(&gate, request).await {
        Ok(Admitted::Request(request)) => next.run(request).await,
        Ok(Admitted::Answer(response)) => response,
        Err(e) => {
            let status = e.status();
            let mut response = e.into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
    }
}

/// What a 401 answers in `WWW-Authenticate`. `Basic` makes a browser ask for a user name and a
/// password – what a person who opens an admin URL wants, but not what a page's script wants: the
/// browser holds the script's `fetch` (or `EventSource`) until someone answers a prompt, which a
/// headless browser never shows, so the page waits for ever instead of reading the 401's error.
/// A browser marks its scripts' requests with `Sec-Fetch-Mode` (anything but `navigate`); they are
/// challenged with `Bearer`, which no browser prompts for.
fn challenge(headers: &HeaderMap) -> HeaderValue {
    let from_script = headers.get("sec-fetch-mode").is_some_and(|mode| mode.as_bytes() != b"navigate");
    if from_script {
        HeaderValue::from_static("Bearer realm=\"concord\"")
    } else {
        HeaderValue::from_static("Basic realm=\"concord\", charset=\"UTF-8\"")
    }
}

enum Admitted {
    Request(Request),
    /// Answered here (the dashboard's token exchange).
    Answer(Response),
}

async fn admit(gate: &Gate, request: Request) -> Result<Admitted, ApiError> {
    let (mut parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("?").to_string())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    if let Some(host) = &host {
        gate.check_host(host).map_err(|m| ApiError::new(StatusCode::MISDIRECTED_REQUEST, m))?;
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let own = host.as_deref().is_some_and(|h| same_origin(origin, h));
        if !own {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request from {origin:?} refused: only pages this node serves ({}) may call its API",
                    host.as_deref().unwrap_or("?")
                ),
            ));
        }
    }
    let has_body = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map_or(true, |v| v.trim() != "0"))
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if parts.method == Method::POST && (has_body || parts.headers.contains_key(header::CONTENT_TYPE)) {
        let json = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST bodies are JSON: send Content-Type: application/json",
            ));
        }
    }
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_string();
    // A proof covers the body: read it (within the API's body limit) to check, then pass it on.
    let proof = parts
        .headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(PROOF_SCHEME.as_bytes()));
    let (body, bytes) = if proof {
        let bytes = axum::body::to_bytes(body, gate.body_limit).await.map_err(|e| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("cannot read the request body: {e}"))
        })?;
        (Body::from(bytes.clone()), bytes)
    } else {
        (body, Default::default())
    };
    let who = gate.principal(&parts.headers, &parts.method, &path, &bytes)?;
    let door = classify(&parts.method, parts.uri.path());
    if door == Door::Public && (parts.uri.path() == "/" || parts.uri.path().starts_with("/dashboard")) {
        if let Some(token) = query_param(parts.uri.query(), "token") {
            return exchange_token(gate, &token, parts.uri.path()).map(Admitted::Answer);
        }
    }
    gate.authorize(door, &who)?;
    parts.extensions.insert(who);
    Ok(Admitted::Request(Request::from_parts(parts, body)))
}

/// `GET /?token=…`: trade the URL's token for a cookie, then show the page without the token in
/// the address bar (nor in the browser's history).
///
/// A cookie rather than a token the page keeps in sessionStorage: the page's live updates come
/// through `EventSource`, which cannot send an `Authorization` header, and an `HttpOnly` cookie is
/// out of reach of scripts. `SameSite=Strict` keeps other sites' pages from sending it, and
/// [`guard`]'s Origin check refuses other pages on the same host (cookies do not tell ports apart).
fn exchange_token(gate: &Gate, token: &str, path: &str) -> Result<Response, ApiError> {
    if !constant_time_eq(gate.token.as_bytes(), token.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this dashboard link's token is wrong or from an earlier run: open the URL the node (or concord up) printed",
        ));
    }
    let secure = if gate.tls { "; Secure" } else { "" };
    let cookie = format!("{}={}; Path=/; HttpOnly; SameSite=Strict{secure}", gate.cookie, gate.token);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_str(path).unwrap_or(HeaderValue::from_static("/")));
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::bad_request(e.to_string()))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The value of `Authorization` that proves knowledge of `secret` for one request.
pub fn proof(secret: &[u8], method: &str, path: &str, body: &[u8]) -> String {
    let nonce = random_hex(16);
    let ts = unix_s();
    let mac = proof_mac(secret, method, path, ts, &nonce, body);
    format!("{PROOF_SCHEME} ts={ts},nonce={nonce},mac={mac}")
}

fn proof_mac(secret: &[u8], method: &str, path: &str, ts: u64, nonce: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    let body_hash = hex(&Sha256::digest(body));
    mac.update(format!("concord-http-v1\n{method}\n{path}\n{ts}\n{nonce}\n{body_hash}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the OS, in hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).expect("the OS random source works");
    hex(&bytes)
}

fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The name part of a Host value: `example.com:80` → `example.com`, `[::1]:80` → `::1`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More: an IPv6 address without brackets.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

/// Whether `origin` (`scheme://host[:port]`) is the origin of a page served from `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else { return false };
    authority.trim_end_matches('/').eq_ignore_ascii_case(host.trim())
}

/// Every `name=value` pair of the request's `Cookie` headers.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// What the RESP and HTTP doors call a role in messages.
pub fn role_name(role: Option<Role>) -> &'static str {
    role.map_or("no role", Role::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(configure: impl FnOnce(&mut NodeConfig)) -> Gate {
        let mut config = NodeConfig::new(1, "/tmp/unused");
        configure(&mut config);
        let acl = Arc::new(acl_of(&config).unwrap());
        Gate::new(&config, acl, Some(b"s3cret".to_vec()), "127.0.0.1:8080".parse().unwrap()).unwrap()
    }

    #[test]
    fn every_route_has_a_door() {
        assert_eq!(classify(&Method::GET, "/healthz"), Door::Public);
        assert_eq!(classify(&Method::GET, "/dashboard/dashboard.js"), Door::Public);
        assert_eq!(classify(&Method::GET, "/v1/kv/a"), Door::Data(Need::Read));
        assert_eq!(classify(&Method::GET, "/v1/events"), Door::Data(Need::Read));
        assert_eq!(classify(&Method::PUT, "/v1/kv/a"), Door::Data(Need::Write));
        assert_eq!(classify(&Method::POST, "/v1/txn"), Door::Data(Need::Write));
        assert_eq!(classify(&Method::POST, "/v1/members"), Door::Admin);
        assert_eq!(classify(&Method::GET, "/v1/backup"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/cluster/moves"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/cluster/replicas"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/cluster/rebalance"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/cluster/nodes"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/cluster/decommission"), Door::Admin);
        assert_eq!(classify(&Method::POST, "/v1/faults/nodes/2/stop"), Door::Lab);
        assert_eq!(classify(&Method::GET, "/v1/faults"), Door::Data(Need::Read));
    }

    #[test]
    fn hosts_are_the_nodes_own_names() {
        let g = gate(|c| c.http_hosts = vec!["db.example.com".into()]);
        for ok in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "db.example.com:443"] {
            assert_eq!(g.check_host(ok), Ok(()), "{ok}");
        }
        for refused in ["evil.example:8080", "10.0.0.5:8080", "127.0.0.1.nip.io:8080"] {
            let e = g.check_host(refused).unwrap_err();
            assert!(e.contains("DNS rebinding"), "{e}");
        }
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:9999", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
    }

    #[test]
    fn a_proof_is_good_once_for_its_request_only() {
        let g = gate(|_| {});
        let secret = b"s3cret";
        let header = proof(secret, "POST", "/v1/faults/stop", b"");
        let fields = header.strip_prefix("Concord-HMAC ").unwrap();
        // Another path, another method, another body, another secret: refused.
        assert!(g.check_proof(secret, fields, &Method::POST, "/v1/faults/heal", b"").is_err());
        assert!(g.check_proof(secret, fields, &Method::GET, "/v1/faults/stop", b"").is_err());
        assert!(g.check_proof(secret, fields, &Method::POST, "/v1/faults/stop", b"x").is_err());
        assert!(g.check_proof(b"other", fields, &Method::POST, "/v1/faults/stop", b"").is_err());
        assert_eq!(g.check_proof(secret, fields, &Method::POST, "/v1/faults/stop", b""), Ok(()));
        let replay = g.check_proof(secret, fields, &Method::POST, "/v1/faults/stop", b"").unwrap_err();
        assert!(replay.contains("replay"), "{replay}");
        // A proof from two minutes ago.
        let old = unix_s() - 120;
        let mac = proof_mac(secret, "GET", "/v1/backup", old, "0123456789abcdef", b"");
        let stale = format!("ts={old},nonce=0123456789abcdef,mac={mac}");
        assert!(g
            .check_proof(secret, &stale, &Method::GET, "/v1/backup", b"")
            .unwrap_err()
            .contains("stale"));
    }

    #[test]
    fn admin_and_lab_routes_need_a_credential_even_without_a_password() {
        let g = gate(|_| {});
        // No requirepass: anonymous clients read and write, as on Redis…
        assert!(g.authorize(Door::Data(Need::Write), &Principal::Anonymous).is_ok());
        // …but the lab and admin routes want a credential.
        assert_eq!(
            g.authorize(Door::Lab, &Principal::Anonymous).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            g.authorize(Door::Admin, &Principal::Anonymous).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(g.authorize(Door::Lab, &Principal::Dashboard).is_ok());
        assert!(g.authorize(Door::Lab, &Principal::Cluster).is_ok());
        let open = gate(|c| c.allow_admin = true);
        assert!(open.authorize(Door::Admin, &Principal::Anonymous).is_ok());
        assert!(open.authorize(Door::Lab, &Principal::Anonymous).is_err(), "allow_admin is not the lab");
    }
}
