//! One credential model for both front doors (issue #23, findings 2, 5 and 9), on real nodes.
//!
//! * `requirepass` protects HTTP as it protects RESP: the old bypass (`curl -X PUT` without a
//!   password while `redis-cli SET` got NOAUTH) is a 401 now;
//! * users with the three roles, from node.toml's `[[users]]` and from `ACL SETUSER`, get the same
//!   answers through either door: NOPERM / 403 beyond their role, WRONGPASS / 401 for a wrong
//!   password;
//! * a page elsewhere cannot drive the API: a foreign Origin, a foreign Host (DNS rebinding) and a
//!   `text/plain` JSON body are refused, and delete nothing;
//! * admin requests between nodes carry a proof of the cluster secret, not the secret; a replayed
//!   proof is refused.

use concord_server::config::UserConfig;
use concord_server::testkit::{
    agreed_leader, http_with_headers, loopback_configs, HttpAnswer, Resp, TEST_SECRET,
};
use concord_server::{Node, NodeConfig};
use std::net::SocketAddr;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    http_with_headers(addr, method, path, headers, body, T).await.unwrap()
}

fn user(name: &str, password: &str, role: &str) -> UserConfig {
    UserConfig { name: name.into(), password: Some(password.into()), sha256: None, role: role.into() }
}

/// One node with `requirepass` and three users; its HTTP and RESP addresses.
async fn protected_node(dir: &std::path::Path) -> (Node, SocketAddr, SocketAddr) {
    let mut config: NodeConfig = loopback_configs(dir, 1).remove(0);
    config.requirepass = Some("rootpw".into());
    config.users = vec![
        user("reader", "r-pw", "read-only"),
        user("writer", "w-pw", "read-write"),
        // The digest form: sha256("a-pw").
        UserConfig {
            name: "boss".into(),
            password: None,
            sha256: Some(sha256_hex("a-pw")),
            role: "admin".into(),
        },
    ];
    let (http, redis) = (config.http_addr.unwrap(), config.redis_addr.unwrap());
    let node = Node::start(config).await.unwrap();
    agreed_leader(std::slice::from_ref(&node), T).await;
    (node, http, redis)
}

fn sha256_hex(text: &str) -> String {
    concord_resp::acl::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_protects_http_as_it_protects_resp() {
    let dir = tempfile::tempdir().unwrap();
    let (node, http, redis) = protected_node(dir.path()).await;

    // The old bypass: RESP said NOAUTH, HTTP wrote and read.
    let mut anonymous = Resp::connect(redis).await.unwrap();
    assert_eq!(anonymous.call(&["SET", "a", "x"]).await.unwrap(), "-NOAUTH Authentication required.");
    let put = call(http, "PUT", "/v1/kv/a", &[], b"x").await;
    assert_eq!(put.status, 401, "{}", put.text());
    assert!(put.text().contains("NOAUTH"), "{}", put.text());
    assert!(put.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    assert_eq!(call(http, "GET", "/v1/kv/a", &[], b"").await.status, 401);
    assert_eq!(call(http, "GET", "/v1/cluster", &[], b"").await.status, 401);
    // Liveness stays open.
    assert_eq!(call(http, "GET", "/healthz", &[], b"").await.status, 200);

    // Wrong passwords: the same refusal through both doors.
    assert!(anonymous.call(&["AUTH", "nope"]).await.unwrap().starts_with("-WRONGPASS"));
    assert!(anonymous.call(&["AUTH", "reader", "nope"]).await.unwrap().starts_with("-WRONGPASS"));
    let wrong = call(http, "GET", "/v1/kv/a", &[("authorization", "Bearer nope")], b"").await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    let wrong = call(http, "GET", "/v1/kv/a", &[("authorization", &basic("reader", "nope"))], b"").await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(wrong.text().contains("WRONGPASS"), "{}", wrong.text());

    // The default user's password: Bearer, or Basic with user `default`; AUTH pass on RESP.
    let put = call(http, "PUT", "/v1/kv/a", &[("authorization", "Bearer rootpw")], b"1").await;
    assert_eq!(put.status, 200, "{}", put.text());
    let got = call(http, "GET", "/v1/kv/a", &[("authorization", &basic("default", "rootpw"))], b"").await;
    assert_eq!((got.status, got.text().as_str()), (200, "1"));
    assert_eq!(anonymous.call(&["AUTH", "rootpw"]).await.unwrap(), "OK");
    assert_eq!(anonymous.call(&["ACL", "WHOAMI"]).await.unwrap(), "default");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_the_same_answers_through_both_doors() {
    let dir = tempfile::tempdir().unwrap();
    let (node, http, redis) = protected_node(dir.path()).await;
    let as_user = |u: &str, p: &str| basic(u, p);

    // read-only: reads, NOPERM / 403 on writes and on admin.
    let mut reader = Resp::connect(redis).await.unwrap();
    assert_eq!(reader.call(&["AUTH", "reader", "r-pw"]).await.unwrap(), "OK");
    assert_eq!(reader.call(&["ACL", "WHOAMI"]).await.unwrap(), "reader");
    assert_eq!(reader.call(&["GET", "k"]).await.unwrap(), "(nil)");
    assert_eq!(
        reader.call(&["SET", "k", "v"]).await.unwrap(),
        "-NOPERM User reader has no permissions to run the 'set' command"
    );
    assert!(reader.call(&["ACL", "LIST"]).await.unwrap().starts_with("-NOPERM"));
    let r = as_user("reader", "r-pw");
    assert_eq!(call(http, "GET", "/v1/kv/k", &[("authorization", &r)], b"").await.status, 404);
    let put = call(http, "PUT", "/v1/kv/k", &[("authorization", &r)], b"v").await;
    assert_eq!(put.status, 403, "{}", put.text());
    assert!(put.text().contains("NOPERM user reader (read-only)"), "{}", put.text());
    let txn = br#"{"success":[{"delete":{"key":"k"}}]}"#;
    let json = ("content-type", "application/json");
    assert_eq!(call(http, "POST", "/v1/txn", &[("authorization", &r), json], txn).await.status, 403);

    // read-write: reads and writes, not admin.
    let mut writer = Resp::connect(redis).await.unwrap();
    assert_eq!(writer.call(&["AUTH", "writer", "w-pw"]).await.unwrap(), "OK");
    assert_eq!(writer.call(&["SET", "k", "v"]).await.unwrap(), "OK");
    assert!(writer.call(&["ACL", "SETUSER", "x", "on"]).await.unwrap().starts_with("-NOPERM"));
    let w = as_user("writer", "w-pw");
    assert_eq!(call(http, "PUT", "/v1/kv/k2", &[("authorization", &w)], b"v").await.status, 200);
    let backup = call(http, "GET", "/v1/backup", &[("authorization", &w)], b"").await;
    assert_eq!(backup.status, 403, "{}", backup.text());

    // admin: everything, users included; a user made with ACL SETUSER works over HTTP at once.
    let mut boss = Resp::connect(redis).await.unwrap();
    assert_eq!(boss.call(&["AUTH", "boss", "a-pw"]).await.unwrap(), "OK");
    assert_eq!(boss.call(&["ACL", "SETUSER", "alice", "on", ">secret", "~*", "+@read"]).await.unwrap(), "OK");
    let refused = boss.call(&["ACL", "SETUSER", "alice", "+get"]).await.unwrap();
    assert!(refused.starts_with("-ERR Error in ACL SETUSER modifier '+get'"), "{refused}");
    let a = as_user("alice", "secret");
    assert_eq!(call(http, "GET", "/v1/kv/k", &[("authorization", &a)], b"").await.status, 200);
    assert_eq!(call(http, "PUT", "/v1/kv/k", &[("authorization", &a)], b"w").await.status, 403);
    let backup = call(http, "GET", "/v1/backup", &[("authorization", &as_user("boss", "a-pw"))], b"").await;
    assert_eq!(backup.status, 200, "{}", backup.text());
    // A deleted user is refused at once, on both doors.
    let mut alice = Resp::connect(redis).await.unwrap();
    assert_eq!(alice.call(&["AUTH", "alice", "secret"]).await.unwrap(), "OK");
    assert_eq!(boss.call(&["ACL", "DELUSER", "alice"]).await.unwrap(), "1");
    assert!(alice.call(&["GET", "k"]).await.unwrap().starts_with("-NOAUTH"));
    assert_eq!(call(http, "GET", "/v1/kv/k", &[("authorization", &a)], b"").await.status, 401);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_elsewhere_cannot_drive_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let config: NodeConfig = loopback_configs(dir.path(), 1).remove(0);
    let http = config.http_addr.unwrap();
    let node = Node::start(config).await.unwrap();
    agreed_leader(std::slice::from_ref(&node), T).await;
    assert_eq!(call(http, "PUT", "/v1/kv/victim", &[], b"here").await.status, 200);

    // The attack of the issue: a form-like text/plain POST of a txn from a foreign page.
    let txn = br#"{"success":[{"delete":{"key":"victim"}}]}"#;
    let evil = [("content-type", "text/plain"), ("origin", "http://evil.example")];
    let r = call(http, "POST", "/v1/txn", &evil, txn).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("cross-origin"), "{}", r.text());
    // Another port of this machine is another origin too.
    let other_port = [("content-type", "application/json"), ("origin", "http://127.0.0.1:1")];
    assert_eq!(call(http, "POST", "/v1/txn", &other_port, txn).await.status, 403);
    // Same origin but not JSON: 415.
    let own = format!("http://{http}");
    let plain = [("content-type", "text/plain"), ("origin", own.as_str())];
    let r = call(http, "POST", "/v1/txn", &plain, txn).await;
    assert_eq!(r.status, 415, "{}", r.text());
    // DNS rebinding: the node reached under a foreign name.
    let r = call(http, "GET", "/v1/kv/victim", &[("host", "rebind.evil.example:80")], b"").await;
    assert_eq!(r.status, 421, "{}", r.text());
    assert!(r.text().contains("DNS rebinding"), "{}", r.text());
    // Nothing was deleted.
    let got = call(http, "GET", "/v1/kv/victim", &[], b"").await;
    assert_eq!((got.status, got.text().as_str()), (200, "here"));
    // The node's own page may: same origin, JSON.
    let own_json = [("content-type", "application/json"), ("origin", own.as_str())];
    assert_eq!(call(http, "POST", "/v1/txn", &own_json, br#"{"success":[]}"#).await.status, 200);

    // The dashboard's token: exchanged once for an HttpOnly, SameSite=Strict cookie.
    let token = node.dashboard_token.clone().unwrap();
    let wrong = call(http, "GET", "/?token=0123456789abcdef0123", &[], b"").await;
    assert_eq!(wrong.status, 401);
    let exchange = call(http, "GET", &format!("/?token={token}"), &[], b"").await;
    assert_eq!(exchange.status, 303);
    assert_eq!(exchange.header("location"), Some("/"));
    let cookie = exchange.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    // Admin without a credential: 401, even from loopback; with the cookie: allowed.
    assert_eq!(call(http, "GET", "/v1/backup", &[], b"").await.status, 401);
    assert_eq!(call(http, "GET", "/v1/backup", &[("cookie", &pair)], b"").await.status, 200);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_carry_a_proof_that_cannot_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let config: NodeConfig = loopback_configs(dir.path(), 1).remove(0);
    let http = config.http_addr.unwrap();
    let node = Node::start(config).await.unwrap();
    agreed_leader(std::slice::from_ref(&node), T).await;
    let proof = concord_server::auth::proof(TEST_SECRET.as_bytes(), "GET", "/v1/backup", b"");
    assert!(!proof.contains(TEST_SECRET), "the secret itself is not sent");
    let first = call(http, "GET", "/v1/backup", &[("authorization", &proof)], b"").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let replay = call(http, "GET", "/v1/backup", &[("authorization", &proof)], b"").await;
    assert_eq!(replay.status, 401, "{}", replay.text());
    assert!(replay.text().contains("replay"), "{}", replay.text());
    // A proof for one request does not open another.
    let proof = concord_server::auth::proof(TEST_SECRET.as_bytes(), "GET", "/v1/backup", b"");
    let body = br#"{"op":"remove","id":1}"#;
    let other = [("authorization", proof.as_str()), ("content-type", "application/json")];
    assert_eq!(call(http, "POST", "/v1/members", &other, body).await.status, 401);
    // `concord member list` (MemberTarget) and backups sign their calls.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, TEST_SECRET).unwrap();
    let target = concord_server::membership::MemberTarget {
        http,
        secret_file: Some(secret_file),
        secret: None,
        tls_ca: None,
    };
    let backup = concord_server::backup::take(&target, &dir.path().join("backup.jsonl")).await;
    assert!(backup.is_ok(), "{backup:?}");
    node.shutdown().await.unwrap();
}

/// The request sequence of the dashboard's browser test that failed half the time: the page was
/// opened on one member with its token (a cookie named after that member's port), the person
/// followed the page's "open" link to another member's dashboard – no token in that link – and
/// clicked Stop there. The browser sends every port's cookies to every port of a host, so the
/// second member received the first one's cookie, looked only for its own and took the click for
/// an anonymous one: 401, and the stop never reached the member to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_dashboard_opened_from_anothers_page_can_use_its_buttons() {
    let dir = tempfile::tempdir().unwrap();
    // As `concord up` and the CLI's test clusters do: one token for every member.
    let token_file = dir.path().join("dashboard.token");
    std::fs::write(&token_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    let mut nodes = Vec::new();
    for mut config in loopback_configs(dir.path(), 3) {
        config.allow_fault_injection = true;
        config.dashboard_token_file = Some(token_file.clone());
        nodes.push(Node::start(config).await.unwrap());
    }
    agreed_leader(&nodes, T).await;
    let http: Vec<SocketAddr> = nodes.iter().map(|n| n.http_addr.unwrap()).collect();
    let token = nodes[0].dashboard_token.clone().unwrap();

    // Node 1's URL with the token: the cookie, named after node 1's port.
    let exchange = call(http[0], "GET", &format!("/?token={token}"), &[], b"").await;
    assert_eq!(exchange.status, 303, "{}", exchange.text());
    let set_cookie = exchange.header("set-cookie").unwrap();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    assert!(pair.starts_with(&format!("concord_dashboard_{}=", http[0].port())), "{pair}");

    // The link to node 2's dashboard: the browser brings node 1's cookie along (same host).
    let page = call(http[1], "GET", "/dashboard", &[("cookie", &pair)], b"").await;
    assert_eq!(page.status, 200, "{}", page.text());
    // Node 2's page clicks Stop on node 3: a same-origin fetch with that cookie.
    let origin = format!("http://{}", http[1]);
    let browser = [("cookie", pair.as_str()), ("origin", origin.as_str())];
    let stop = call(http[1], "POST", "/v1/faults/nodes/3/stop", &browser, b"").await;
    assert_eq!(stop.status, 200, "the stop click on node 2's page: {}", stop.text());
    assert_eq!(stop.json().unwrap()["stopping"], true, "{}", stop.text());
    // It reached node 3 (forwarded with a proof), which stops.
    let node3 = nodes.pop().unwrap();
    let deadline = std::time::Instant::now() + T;
    while !node3.is_stopped() {
        assert!(std::time::Instant::now() < deadline, "node 3 did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A cookie only counts for the token it carries: another token under another port's name is
    // no credential (anonymous: 401), and a stale token under this node's own name is told apart.
    // The page's refused click gets its 401 without a Basic challenge: with one, the browser held
    // the page's fetch for a login prompt that a headless browser never shows – the click hung
    // instead of showing the refusal.
    let foreign = format!("concord_dashboard_{}=ffffffffffffffffffffffffffffffff", http[0].port());
    let page = [("cookie", foreign.as_str()), ("origin", origin.as_str()), ("sec-fetch-mode", "cors")];
    let r = call(http[1], "POST", "/v1/faults/nodes/2/partition", &page, b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("need a credential"), "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"concord\""),
        "no login prompt for a script"
    );
    let stale = format!("concord_dashboard_{}=ffffffffffffffffffffffffffffffff", http[1].port());
    let r = call(http[1], "POST", "/v1/faults/nodes/2/partition", &[("cookie", &stale)], b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("earlier run"), "{}", r.text());
    // curl, or a person opening the URL, is still offered Basic.
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let navigate = [("sec-fetch-mode", "navigate")];
    let r = call(http[1], "GET", "/v1/backup", &navigate, b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").unwrap_or_default().starts_with("Basic "), "{:?}", r.headers);
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
