//! Every input that ever failed a target, stored under `regressions/<target>/*.bin`, must now pass:
//! the bugs they found stay fixed. To add one by hand, put the bytes in that directory; the fuzzer
//! saves what it finds there itself.

use concord_fuzz::driver::{execute, regression_inputs, regressions_dir, replay_command};
use concord_fuzz::targets;
use std::time::Duration;

#[test]
fn every_stored_input_passes() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in targets::ALL {
        for (path, input) in regression_inputs(target.name) {
            count += 1;
            if let Err(message) = execute(target, &input, Duration::from_secs(30), false) {
                failures.push(format!("{}: {message}\n  replay: {}", path.display(), replay_command(&path)));
            }
        }
    }
    println!("{count} stored inputs replayed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_regression_directory_names_a_target() {
    for entry in std::fs::read_dir(regressions_dir()).expect("the regressions directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(targets::by_name(&name).is_some(), "regressions/{name}/ is not a target's name");
        }
    }
}
