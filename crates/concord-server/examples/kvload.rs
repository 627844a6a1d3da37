//! A small HTTP write-load generator for comparing Concord with etcd (bench/raft-vs-etcd.sh).
//!
//! Each client task holds one keep-alive HTTP/1.1 connection and issues puts back to back, one at
//! a time (closed loop), to the endpoints in turn. Output: one JSON line with writes/s and latency
//! percentiles, plus a human summary on stderr.
//!
//! ```text
//! cargo run --release -p concord-server --example kvload -- \
//!     --target concord --endpoints 127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082 --clients 32 --duration 10s
//! cargo run --release -p concord-server --example kvload -- \
//!     --target etcd --endpoints 127.0.0.1:2379 --clients 32 --duration 10s
//! ```
//!
//! Concord: `PUT /v1/kv/{key}` with the raw value. etcd: `POST /v3/kv/put` with
//! `{"key": base64, "value": base64}` (the v3 JSON gateway).

use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// `concord` or `etcd`.
    #[arg(long)]
    target: String,
    /// Comma-separated host:port list of HTTP endpoints.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<SocketAddr>,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = concord_core::time::parse_duration)]
    duration: Duration,
    /// Bytes per value.
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Distinct keys written (round-robin).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// One keep-alive connection.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<u16, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            s.set_nodelay(true).ok();
            self.stream = Some(BufReader::new(s));
        }
        let r = self.exchange(method, path, body).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> Result<u16, String> {
        let s = self.stream.as_mut().expect("connected");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        s.get_mut().write_all(&req).await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        s.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|x| x.parse().ok()).ok_or("bad status line")?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            s.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = value.parse().map_err(|_| "bad content-length")?,
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => close = value == "close",
                _ => {}
            }
        }
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line).await.map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
                let mut skip = vec![0u8; n + 2];
                s.read_exact(&mut skip).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut skip = vec![0u8; length];
            s.read_exact(&mut skip).await.map_err(|e| e.to_string())?;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(!args.endpoints.is_empty(), "give --endpoints");
    assert!(args.target == "concord" || args.target == "etcd", "--target is concord or etcd");
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let value = vec![b'x'; args.value_bytes];
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (stop, errors, value) = (stop.clone(), errors.clone(), value.clone());
        let endpoint = args.endpoints[c % args.endpoints.len()];
        let (target, keys) = (args.target.clone(), args.keys);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn { addr: endpoint, stream: None };
            let mut latencies_us = Vec::new();
            let mut n = c as u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("bench-{}", n % keys);
                n += 1;
                let start = Instant::now();
                let r = if target == "concord" {
                    conn.request("PUT", &format!("/v1/kv/{key}"), &value).await
                } else {
                    let body =
                        format!(r#"{{"key":"{}","value":"{}"}}"#, base64(key.as_bytes()), base64(&value));
                    conn.request("POST", "/v3/kv/put", body.as_bytes()).await
                };
                match r {
                    Ok(200) => latencies_us.push(start.elapsed().as_micros() as u64),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            latencies_us
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let ms = |us: u64| us as f64 / 1000.0;
    let writes_per_s = all.len() as f64 / elapsed;
    eprintln!(
        "{}: {} writes in {elapsed:.1}s = {writes_per_s:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors ({} clients)",
        args.target,
        all.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(all.last().copied().unwrap_or(0)),
        errors.load(Ordering::Relaxed),
        args.clients
    );
    println!(
        "{}",
        serde_json::json!({
            "target": args.target, "clients": args.clients, "writes": all.len(), "seconds": elapsed,
            "writes_per_s": writes_per_s, "p50_ms": ms(pct(0.5)), "p99_ms": ms(pct(0.99)),
            "max_ms": ms(all.last().copied().unwrap_or(0)), "errors": errors.load(Ordering::Relaxed),
        })
    );
}
