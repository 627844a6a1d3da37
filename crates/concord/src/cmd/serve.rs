//! `concord serve`: run one node. The logic lives in `concord_server::cli`.

use std::process::ExitCode;

pub use concord_server::cli::ServeArgs;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    concord_server::cli::serve(args)?;
    Ok(ExitCode::SUCCESS)
}
