//! placeholder while the simulator is written
