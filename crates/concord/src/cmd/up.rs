//! `concord up`: a local cluster of `concord serve` processes. The logic lives in
//! `concord_server::cli`.

use std::process::ExitCode;

pub use concord_server::cli::UpArgs;

pub fn run(args: &UpArgs) -> anyhow::Result<ExitCode> {
    concord_server::cli::up(args)?;
    Ok(ExitCode::SUCCESS)
}
