//! `concord member` and `concord join`: membership of a running cluster. The logic lives in
//! `concord_server::cli`.

use std::process::ExitCode;

pub use concord_server::cli::{JoinArgs, MemberArgs};

pub fn run(args: &MemberArgs) -> anyhow::Result<ExitCode> {
    concord_server::cli::member(args)?;
    Ok(ExitCode::SUCCESS)
}

/// `concord join`: start a node and have the cluster add it.
pub fn join(args: &JoinArgs) -> anyhow::Result<ExitCode> {
    concord_server::cli::join(args)?;
    Ok(ExitCode::SUCCESS)
}
