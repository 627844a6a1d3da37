//! The fuzz targets, one module each. To add one: write a module with a `pub const TARGET:
//! Target` (seeds, a dictionary, limits and a `run` function that asserts the properties), list it
//! in [`ALL`], and add its short run to `tests/short.rs`.

use crate::driver::Target;

pub mod cache_resp;
pub mod handshake;
pub mod history;
pub mod http;
pub mod peer;
pub mod resp;
pub mod scenario;
pub mod snapshot;
pub mod wal;

/// Every target, in the order `--all` runs them.
pub const ALL: &[&Target] = &[
    &resp::TARGET,
    &http::TARGET,
    &peer::TARGET,
    &handshake::TARGET,
    &wal::TARGET,
    &snapshot::TARGET,
    &scenario::TARGET,
    &history::TARGET,
    &cache_resp::TARGET,
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    ALL.iter().copied().find(|t| t.name == name)
}

/// An outcome label from an error message: words holding a digit (numbers, checksums, offsets)
/// become `#`, and the text is cut short and before any quote, so that "bulk of 5 bytes" and "bulk of 6 bytes" are one
/// outcome, not two.
pub fn label(prefix: &str, message: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 64);
    out.push_str(prefix);
    out.push(':');
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    // Quoted text is usually a piece of the input: it ends the label.
    for c in message.chars().take(60).take_while(|c| !matches!(c, '"' | '\'' | '`')) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A small tokio runtime for targets that call async entry points: one thread, so that every
/// allocation happens on the thread the driver watches.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}
