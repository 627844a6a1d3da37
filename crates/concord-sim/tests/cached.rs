//! The cache tier in the simulator (`[protocol.cached]`, `scenarios/cache.toml`).

use concord_sim::protocols::cached::{measure_scenario, CacheMutation, CachedScenario};
use concord_sim::Scenario;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CACHE: &str = include_str!("../../../scenarios/cache.toml");

fn scenario(edit: impl FnOnce(&mut toml::Table)) -> Arc<Scenario<CachedScenario>> {
    let mut table: toml::Table = toml::from_str(CACHE).unwrap();
    edit(&mut table);
    let text = toml::to_string(&table).unwrap();
    Arc::new(
        concord_sim::protocols::cached::measure::parse(Path::new("scenarios/cache.toml"), &text).unwrap(),
    )
}

#[test]
fn one_seed_prints_its_measurements() {
    let s = scenario(|_| {});
    let m = measure_scenario(s, 1, Duration::from_millis(500));
    eprintln!("{m:#?}");
}
