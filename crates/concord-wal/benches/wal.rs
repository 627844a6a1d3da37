//! WAL benchmarks (being written).
fn main() {}
