//! What the headless-Chromium tests share (`tests/viewer.rs`, `tests/dashboard.rs`): finding the
//! browser, and failing instead of skipping under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `None` when everything the browser tests need is installed; otherwise what is missing.
pub fn missing_browser() -> Option<String> {
    let mut missing = Vec::new();
    for (tool, env) in [("chromium", "CHROMIUM"), ("chromedriver", "CHROMEDRIVER")] {
        let path = std::env::var(env).unwrap_or_else(|_| format!("/usr/bin/{tool}"));
        if !Path::new(&path).exists() {
            missing.push(format!("{tool} (looked at {path}; set ${env})"));
        }
    }
    let selenium = Command::new("python3").args(["-c", "import selenium"]).output();
    if !selenium.map(|o| o.status.success()).unwrap_or(false) {
        missing.push("python3 with the selenium package".to_string());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Whether to run; panics in CI when the browser is missing.
pub fn browser_available(test: &str) -> bool {
    match missing_browser() {
        None => true,
        Some(what) => {
            let ci = std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false);
            assert!(!ci, "{test}: CI is set but the browser tests cannot run: missing {what}");
            eprintln!("SKIPPED {test}: missing {what} (install chromium chromium-driver python3-selenium)");
            false
        }
    }
}
