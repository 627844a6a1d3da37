//! A single-process Concord speaking the Redis protocol, on the in-memory backend.
//!
//! ```text
//! cargo run -p concord-resp --example resp_memory -- 127.0.0.1:6380 [--requirepass SECRET]
//! redis-cli -p 6380 set greeting hello
//! redis-benchmark -p 6380 -t set,get -n 100000 -q
//! ```
//!
//! No Raft, no replication, nothing on disk: the store lives in this process (see
//! `concord_resp::memory`). Ctrl-C stops it.

use concord_kv::KvLimits;
use concord_resp::{serve, MemoryBackend, RespConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:6380".to_string();
    let mut requirepass = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requirepass" => requirepass = Some(args.next().ok_or("--requirepass needs a password")?),
            "-h" | "--help" => {
                println!("usage: resp_memory [ADDRESS (default 127.0.0.1:6380)] [--requirepass PASSWORD]");
                return Ok(());
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}; try --help").into()),
            _ => addr = arg,
        }
    }
    let limits = KvLimits::default();
    let backend = Arc::new(MemoryBackend::new(limits.clone()));
    let config = RespConfig { requirepass, ..RespConfig::for_kv_limits(&limits) };
    let listener =
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("concord-resp (memory backend) listening on {}", listener.local_addr()?);
    serve(listener, backend, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
