//! The Redis-door side of the `set`, `bank` and `list-append` workloads: one connection per
//! logical process, how long a call may take, and what an answer means for the history.
//!
//! A connection is opened lazily and switched to `CONSISTENCY linearizable`, so every read it
//! makes – also `SMEMBERS` and `LRANGE` – observes every write acknowledged before it was sent. A
//! call that does not answer within the workload's timeout leaves the connection in an unknown
//! state (a reply may still arrive), so the connection is dropped and the next call opens another.
//!
//! How an answer reads (the error words of `concord_resp::backend`):
//!
//! * `-TRYAGAIN …` (no leader, unavailable), `-READONLY …`, `-MISCONF …`, `-EXECABORT …` and a
//!   connection that could not be opened: the command was refused before it took effect – **fail**;
//! * `-TIMEOUT …`, `-UNKNOWN …`, a timeout of our own, a connection cut mid-call, any other error
//!   of a write: the write may or may not have happened – **info**;
//! * anything else: the command's answer, for the workload to read.

use concord_server::testkit::{Reply, Resp};
use std::net::SocketAddr;
use std::time::Duration;

/// What one call learned.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The reply (an error reply not listed as refused or unknown is returned here too, as text
    /// starting with `-`).
    Reply(Reply),
    /// Certainly not applied.
    Refused(String),
    /// Perhaps applied.
    Unknown(String),
}

/// An error reply's meaning: `Some(true)` refused, `Some(false)` unknown, `None` not an error.
pub fn classify_error(text: &str) -> Option<bool> {
    let word = text.strip_prefix('-')?.split_whitespace().next().unwrap_or("");
    Some(matches!(
        word,
        "TRYAGAIN" | "READONLY" | "MISCONF" | "EXECABORT" | "NOAUTH" | "MOVED" | "CLUSTERDOWN"
    ))
}

/// A lazily (re)opened connection to one node's Redis port.
pub struct Conn {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<Resp>,
}

impl Conn {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Conn {
        Conn { addr, timeout, conn: None }
    }

    async fn open(&mut self) -> Result<&mut Resp, Answer> {
        if self.conn.is_none() {
            let opened = tokio::time::timeout(self.timeout, async {
                let mut c = Resp::connect(self.addr).await?;
                match c.call(&["CONSISTENCY", "linearizable"]).await? {
                    ok if ok == "OK" => Ok(c),
                    other => Err(format!("CONSISTENCY linearizable answered {other}")),
                }
            })
            .await;
            match opened {
                Ok(Ok(c)) => self.conn = Some(c),
                // Nothing was sent that could change data.
                Ok(Err(e)) => return Err(Answer::Refused(e)),
                Err(_) => return Err(Answer::Refused(format!("connect {}: no answer", self.addr))),
            }
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    /// Send the commands one after another (a `MULTI … EXEC` is several) and return the last
    /// reply; an error reply before the last stops there. Errors are classified as described in
    /// the module's documentation; `writes` says whether the commands may change data (if not,
    /// every failure is a refusal: a read that did not complete changed nothing).
    pub async fn run(&mut self, commands: &[Vec<String>], writes: bool) -> Answer {
        let timeout = self.timeout;
        let conn = match self.open().await {
            Ok(c) => c,
            Err(a) => return a,
        };
        let exchange = async {
            let mut last = Reply::Text(String::new());
            for (i, command) in commands.iter().enumerate() {
                let args: Vec<&str> = command.iter().map(String::as_str).collect();
                let reply = conn.request(&args).await?;
                let is_error = matches!(&reply, Reply::Text(t) if t.starts_with('-'));
                last = reply;
                if is_error && i + 1 < commands.len() {
                    break;
                }
            }
            Ok::<Reply, String>(last)
        };
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Reply::Text(t))) if t.starts_with('-') => {
                // A transaction left open by an error before EXEC must not swallow the next call.
                self.conn = None;
                match classify_error(&t) {
                    Some(true) => Answer::Refused(t),
                    _ if !writes => Answer::Refused(t),
                    _ => Answer::Unknown(t),
                }
            }
            Ok(Ok(reply)) => Answer::Reply(reply),
            Ok(Err(e)) => {
                self.conn = None;
                if writes {
                    Answer::Unknown(e)
                } else {
                    Answer::Refused(e)
                }
            }
            Err(_) => {
                self.conn = None;
                let why = format!("no answer within {timeout:?}");
                if writes {
                    Answer::Unknown(why)
                } else {
                    Answer::Refused(why)
                }
            }
        };
        answer
    }
}

/// `["MULTI"], commands…, ["EXEC"]`.
pub fn multi(commands: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut all = vec![vec!["MULTI".to_string()]];
    all.extend(commands);
    all.push(vec!["EXEC".to_string()]);
    all
}

/// Words to a command.
pub fn cmd(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_refused_or_unknown() {
        assert_eq!(classify_error("-TRYAGAIN no leader is known"), Some(true));
        assert_eq!(classify_error("-READONLY this node is not the leader"), Some(true));
        assert_eq!(classify_error("-TIMEOUT the cluster did not answer in time"), Some(false));
        assert_eq!(classify_error("-UNKNOWN outcome unknown: x"), Some(false));
        assert_eq!(classify_error("OK"), None);
    }
}
