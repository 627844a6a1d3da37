//! Fault injection on real processes, for a `concord chaos` command to come (issue #18). So far:
//! [`docker`], faults on the containers of a deployment such as `deploy/compose.yaml`.

pub mod docker;
