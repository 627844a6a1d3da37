//! Redis scripting against real `concord serve` processes, through redis-py's own features:
//! `Lock` (acquire, extend, reacquire, release – Lua scripts sent with `EVALSHA`), `Script`
//! (which reloads itself after `NOSCRIPT`), `EVAL`, `EVAL_RO`, `SCRIPT LOAD/EXISTS/FLUSH`.
//! The checks themselves are in `redis_scripts.py`, which passes against redis-server too, up to
//! its last part: on a 3-node cluster every follower must hold what the scripts wrote – including
//! a value a script computed with `math.random` and `tostring`, which each replica computed
//! itself (see `concord_kv::script`).

mod local_cluster;
use local_cluster::{redis_py_available, LocalCluster as Cluster};

#[test]
fn redis_py_lock_and_scripts_on_a_single_node() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Cluster::start(dir.path(), 1, |o| o.no_fsync = true).run_python("redis_scripts.py");
}

#[test]
fn redis_py_lock_and_scripts_on_a_three_node_cluster() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Cluster::start(dir.path(), 3, |o| o.no_fsync = true).run_python("redis_scripts.py");
}
