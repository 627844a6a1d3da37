//! Raft's histories carry witnesses (the store's revisions), and the checker verifies them: most
//! keys of a faulty run are decided without a search. The verdict never depends on them (the
//! checker's property test `witnesses_never_change_a_verdict`).

use concord_check::model::RegisterModel;
use concord_check::ops::prepare;
use concord_check::witness;
use concord_core::history::EventType;
use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn raft_histories_carry_witnesses_that_verify() {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/raft-faults.toml");
    let scenario = LoadedScenario::load(&lab).unwrap();
    let (mut keys, mut verified) = (0, 0);
    // A rate, so over enough keys to measure it: 3 seeds (12 keys) put it within one key of the
    // threshold either way once followers began to serve reads (batched ReadIndex, issue #14).
    for seed in 1..=12 {
        let history = scenario.run(RunOptions { seed, ..Default::default() }).history;
        let ok: Vec<_> = history.events.iter().filter(|e| e.kind == EventType::Ok).collect();
        assert!(
            !ok.is_empty() && ok.iter().all(|e| e.witness.is_some()),
            "seed {seed}: every ok op has a witness"
        );
        let ops = prepare(&history).unwrap();
        let mut by_key: BTreeMap<Option<&str>, Vec<_>> = BTreeMap::new();
        for op in &ops {
            by_key.entry(op.key.as_deref()).or_default().push(op);
        }
        let model = RegisterModel { with_delete_and_append: true };
        for part in by_key.values() {
            keys += 1;
            verified += usize::from(witness::verifies(&model, part));
        }
    }
    assert!(verified * 2 > keys, "only {verified} of {keys} keys verified by their witnesses");
}
