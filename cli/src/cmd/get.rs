//! `backfill get`: the runbook's post-run check, one statement per line.

use std::io::Write;
use std::process::ExitCode;

use crate::args::GlobalArgs;

/// Arguments of `backfill get`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Vulnerability id, e.g. CVE-2021-44228.
    vulnerability_id: String,
    /// Product key or package URL.
    product: String,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_store()?;
    let found = store.find_statements(&args.vulnerability_id, &args.product)?;
    if found.is_empty() {
        tracing::warn!(vulnerability = %args.vulnerability_id, product = %args.product, "No statements match.");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in found {
        writeln!(out, "{s}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
