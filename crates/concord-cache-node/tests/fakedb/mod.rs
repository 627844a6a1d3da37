//! A fake Concord database for the cache node's tests: the RESP a cache node needs (`GETREV`,
//! `SET`, `DEL`, `INFO server` with `concord_cluster_id`, `HELLO 3`, `CLIENT TRACKING ON BCAST
//! REVISIONS` with `>3 invalidate [keys] [revs]` pushes), and knobs a real cluster does not offer:
//! drop every feed connection, write without telling the feeds, slow reads, count reads.

use bytes::BytesMut;
use concord_cache_node::proto;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What a feed connection is sent: a key and its revision, or `None` to close.
type FeedMessage = Option<(Vec<u8>, u64)>;

#[derive(Default)]
pub struct State {
    map: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    revision: u64,
    feeds: Vec<mpsc::UnboundedSender<FeedMessage>>,
}

pub struct FakeDb {
    pub addr: SocketAddr,
    pub cluster_id: String,
    state: Mutex<State>,
    pub getrevs: AtomicU64,
    /// Added to every GETREV (to make fills overlap).
    pub read_delay_ms: AtomicU64,
    /// Refuse new feed subscriptions (they are answered with an error).
    pub refuse_feeds: AtomicBool,
}

impl FakeDb {
    pub async fn start(cluster_id: &str) -> Arc<FakeDb> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let db = Arc::new(FakeDb {
            addr: listener.local_addr().unwrap(),
            cluster_id: cluster_id.to_string(),
            state: Mutex::new(State::default()),
            getrevs: AtomicU64::new(0),
            read_delay_ms: AtomicU64::new(0),
            refuse_feeds: AtomicBool::new(false),
        });
        let server = db.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().connection(stream));
            }
        });
        db
    }

    /// A write by some other client of the database: the feeds hear of it.
    pub fn write(&self, key: &[u8], value: &[u8]) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.revision += 1;
        let rev = state.revision;
        state.map.insert(key.to_vec(), (value.to_vec(), rev));
        state.feeds.retain(|feed| feed.send(Some((key.to_vec(), rev))).is_ok());
        rev
    }

    /// A write whose invalidation is lost.
    pub fn write_silently(&self, key: &[u8], value: &[u8]) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.revision += 1;
        let rev = state.revision;
        state.map.insert(key.to_vec(), (value.to_vec(), rev));
        rev
    }

    /// Close every feed connection (as a database node's restart would).
    pub fn drop_feeds(&self) {
        let mut state = self.state.lock().unwrap();
        for feed in state.feeds.drain(..) {
            let _ = feed.send(None);
        }
    }

    async fn connection(self: Arc<Self>, mut stream: TcpStream) {
        let mut buf = BytesMut::new();
        let mut parser = proto::RequestParser::new(1 << 30);
        let mut resp3 = false;
        let (feed_tx, mut feed_rx) = mpsc::unbounded_channel::<FeedMessage>();
        let mut subscribed = false;
        loop {
            tokio::select! {
                read = stream.read_buf(&mut buf) => {
                    if !matches!(read, Ok(n) if n > 0) { return; }
                }
                push = feed_rx.recv(), if subscribed => {
                    let Some(Some((key, rev))) = push else { return };
                    let mut out = BytesMut::new();
                    out.extend_from_slice(b">3\r\n");
                    proto::bulk(&mut out, b"invalidate");
                    proto::array(&mut out, 1);
                    proto::bulk(&mut out, &key);
                    proto::array(&mut out, 1);
                    proto::int(&mut out, rev as i64);
                    if stream.write_all(&out).await.is_err() { return; }
                    continue;
                }
            }
            let mut out = BytesMut::new();
            let mut pos = 0;
            while let proto::Parsed::Multibulk { end } = parser.parse(&buf, pos) {
                let argv: Vec<Vec<u8>> = parser.args().iter().map(|r| buf[r.clone()].to_vec()).collect();
                pos = end;
                let name = String::from_utf8_lossy(&argv[0]).to_uppercase();
                match name.as_str() {
                    "HELLO" => {
                        resp3 = argv.get(1).map(|v| v.as_slice()) == Some(b"3");
                        out.extend_from_slice(b"%1\r\n+proto\r\n:3\r\n");
                    }
                    "INFO" => proto::bulk(
                        &mut out,
                        format!(
                            "# Server\r\nredis_version:7.0.0\r\nconcord_cluster_id:{}\r\n",
                            self.cluster_id
                        )
                        .as_bytes(),
                    ),
                    "PING" => proto::simple(&mut out, "PONG"),
                    "CLIENT" => {
                        if self.refuse_feeds.load(Ordering::SeqCst) {
                            proto::error(&mut out, "ERR syntax error");
                        } else {
                            assert!(resp3, "tracking asked for on a RESP2 connection");
                            self.state.lock().unwrap().feeds.push(feed_tx.clone());
                            subscribed = true;
                            proto::simple(&mut out, "OK");
                        }
                    }
                    "GETREV" => {
                        self.getrevs.fetch_add(1, Ordering::SeqCst);
                        let delay = self.read_delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        let found = self.state.lock().unwrap().map.get(&argv[1]).cloned();
                        proto::array(&mut out, 2);
                        match found {
                            Some((value, rev)) => {
                                proto::bulk(&mut out, &value);
                                proto::int(&mut out, rev as i64);
                            }
                            None => {
                                proto::null(&mut out, proto::Version::Resp2);
                                proto::int(&mut out, 0);
                            }
                        }
                    }
                    "SET" => {
                        self.write(&argv[1], &argv[2]);
                        proto::simple(&mut out, "OK");
                    }
                    "DEL" => {
                        let mut state = self.state.lock().unwrap();
                        let existed = state.map.remove(&argv[1]).is_some();
                        state.revision += 1;
                        let rev = state.revision;
                        let key = argv[1].clone();
                        state.feeds.retain(|feed| feed.send(Some((key.clone(), rev))).is_ok());
                        proto::int(&mut out, existed as i64);
                    }
                    other => proto::error(&mut out, &format!("ERR unknown command '{other}'")),
                }
            }
            bytes::Buf::advance(&mut buf, pos);
            parser.consumed(pos);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}
