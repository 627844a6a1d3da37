//! `concord member`: membership of a running cluster. The logic lives in `concord_server::cli`.

use std::process::ExitCode;

pub use concord_server::cli::MemberArgs;

pub fn run(args: &MemberArgs) -> anyhow::Result<ExitCode> {
    concord_server::cli::member(args)?;
    Ok(ExitCode::SUCCESS)
}
