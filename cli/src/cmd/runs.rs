//! `backfill runs`: the run history.

use std::io::Write;
use std::process::ExitCode;

use crate::args::GlobalArgs;

/// Arguments of `backfill runs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per run instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_store()?;
    let runs = store.runs()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        for r in &runs {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        writeln!(
            out,
            "{:<26} {:<11} {:<10} {:<21} {:<21} COUNTERS",
            "RUN", "COMMAND", "STATUS", "STARTED", "ENDED"
        )?;
        for r in &runs {
            writeln!(
                out,
                "{:<26} {:<11} {:<10} {:<21} {:<21} {}",
                r.run_id,
                r.command,
                r.status.as_str(),
                r.started_at.get(..19).unwrap_or(&r.started_at),
                r.ended_at.as_deref().map_or("-", |e| e.get(..19).unwrap_or(e)),
                r.counters
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
