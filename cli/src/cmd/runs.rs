//! `backfill runs`: the run history.

use std::io::Write;
use std::process::ExitCode;

use clap::builder::BoolishValueParser;

use backfill_engine::model::{RunRecord, RunStatus};

use crate::args::{self, GlobalArgs};

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill runs
  backfill runs --status failed --status abandoned --since 2026-12-01
  backfill runs --command epss --json | jq .counters";

/// Arguments of `backfill runs`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// One JSON object per run instead of a table.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
    /// Only runs with this status (running, completed, stopped, failed,
    /// abandoned); repeat for several.
    #[arg(long, value_name = "STATUS", value_parser = status, env = "BACKFILL_STATUS")]
    status: Vec<RunStatus>,
    /// Only runs started at or after this instant (UTC when no offset is
    /// given).
    #[arg(long, value_name = "ISO8601", value_parser = args::instant, env = "BACKFILL_SINCE")]
    since: Option<i64>,
    /// Only runs of this command (`statements`, `epss`, `enrich`,
    /// `rollback`, `checkpoints reset`, ...).
    #[arg(long, value_name = "COMMAND", env = "BACKFILL_COMMAND")]
    command: Option<String>,
}

/// Parses a run status for clap.
fn status(s: &str) -> Result<RunStatus, String> {
    let names = || RunStatus::ALL.map(RunStatus::as_str).join(", ");
    RunStatus::ALL
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("{s:?} is not a run status ({})", names()))
}

impl Args {
    /// Whether `r` passes the filters.
    fn keeps(&self, r: &RunRecord) -> bool {
        (self.status.is_empty() || self.status.contains(&r.status))
            && self.command.as_ref().is_none_or(|c| *c == r.command)
            && self.since.is_none_or(|since| {
                backfill_engine::parse_instant(&r.started_at).is_some_and(|t| t >= since)
            })
    }
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    // A run killed mid-way shows as abandoned, not as running forever.
    backfill_engine::reap_abandoned(store.as_mut())?;
    let mut runs = store.runs()?;
    runs.retain(|r| args.keeps(r));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        for r in &runs {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        // COMMAND fits `checkpoints reset`, the longest.
        writeln!(
            out,
            "{:<26} {:<17} {:<10} {:<21} {:<21} COUNTERS",
            "RUN", "COMMAND", "STATUS", "STARTED", "ENDED"
        )?;
        for r in &runs {
            writeln!(
                out,
                "{:<26} {:<17} {:<10} {:<21} {:<21} {}",
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
