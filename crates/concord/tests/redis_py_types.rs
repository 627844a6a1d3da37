//! redis-py's own APIs for hashes, lists, sets and sorted sets against real `concord serve`
//! processes, in RESP2 and RESP3 (redis-py parses each protocol's reply shapes itself: nested
//! score pairs, maps, sets), plus a transaction of every type. The checks are in
//! `redis_py_types.py`, which passes against redis-server too; on a 3-node cluster every follower
//! must then hold the same keys, types and values as the leader.

mod local_cluster;
use local_cluster::{redis_py_available, LocalCluster as Cluster};

#[test]
fn redis_py_data_types_on_a_single_node() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Cluster::start(dir.path(), 1, |o| o.no_fsync = true).run_python("redis_py_types.py");
}

#[test]
fn redis_py_data_types_on_a_three_node_cluster() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Cluster::start(dir.path(), 3, |o| o.no_fsync = true).run_python("redis_py_types.py");
}
