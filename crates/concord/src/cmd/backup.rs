//! `concord backup` and `concord restore`: flags here; the work is `concord_server::backup`.

use super::member::MemberTarget;
use std::path::PathBuf;
use std::process::ExitCode;

/// `concord backup --to FILE`: a consistent, checksummed copy of every key.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup (JSON lines with a SHA-256 checksum).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub target: MemberTarget,
}

/// `concord restore FILE`: write a backup's keys into a new, empty cluster.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup file `concord backup` wrote.
    pub file: PathBuf,
    #[command(flatten)]
    pub target: MemberTarget,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

pub fn backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let (keys, read) =
        runtime()?.block_on(concord_server::backup::take(&args.target.to_target(), &args.to))?;
    println!("backed up {keys} keys to {} ({read}, checksummed)", args.to.display());
    Ok(ExitCode::SUCCESS)
}

pub fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let keys = runtime()?.block_on(concord_server::backup::restore(&args.target.to_target(), &args.file))?;
    println!("restored {keys} keys from {} into the cluster at {}", args.file.display(), args.target.http);
    Ok(ExitCode::SUCCESS)
}
