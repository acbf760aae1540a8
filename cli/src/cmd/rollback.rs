//! `backfill rollback`: the runbook's rollback, automated. Deletes the
//! statements and ledger entries a run (or a time window) wrote, lists the
//! digests to replay, and records itself as a run.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use backfill_engine::{new_run_id, recorded, RollbackReport, RollbackScope, RunInfo};
use clap::builder::BoolishValueParser;

use crate::args::{self, GlobalArgs};

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # What a run wrote, first without changing anything
  backfill rollback --run 20251019T120000Z-1a2b3c4d --dry-run
  backfill rollback --run 20251019T120000Z-1a2b3c4d

  # Everything written in a window, as JSON with the digests to replay
  backfill rollback --inserted-since 2025-10-19 --inserted-until 2025-10-20 --json";

/// Arguments of `backfill rollback`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["run", "inserted_since"])))]
pub struct Args {
    /// Roll back everything this run wrote (see `backfill runs`).
    #[arg(long, value_name = "RUN_ID", env = "BACKFILL_RUN")]
    run: Option<String>,
    /// Roll back everything written at or after this instant...
    #[arg(
        long,
        value_name = "T",
        value_parser = args::instant,
        requires = "inserted_until",
        env = "BACKFILL_INSERTED_SINCE"
    )]
    inserted_since: Option<i64>,
    /// ...and before this one.
    #[arg(
        long,
        value_name = "T",
        value_parser = args::instant,
        requires = "inserted_since",
        env = "BACKFILL_INSERTED_UNTIL"
    )]
    inserted_until: Option<i64>,
    /// Show what would be deleted; change nothing.
    #[arg(long, env = "BACKFILL_DRY_RUN", value_parser = BoolishValueParser::new())]
    dry_run: bool,
    /// Print the result as one JSON object (with the digests) instead of lines.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let scope = match (&args.run, args.inserted_since, args.inserted_until) {
        (Some(id), _, _) => RollbackScope::Run(id.clone()),
        (None, Some(since), Some(until)) => RollbackScope::Inserted { since, until },
        _ => unreachable!("clap requires --run or both --inserted-since and --inserted-until"),
    };
    let mut store = global.open_existing_store()?;
    if let RollbackScope::Run(id) = &scope {
        // "deleted 0" for a mistyped id would read as success.
        if !store.runs()?.iter().any(|r| &r.run_id == id) {
            anyhow::bail!("no run {id} in {} (see `backfill runs`)", store.describe());
        }
    }
    let run = RunInfo {
        run_id: new_run_id(),
        command: "rollback".into(),
        arguments: args::recorded_arguments(),
    };
    let report = if args.dry_run {
        // A dry run changes nothing, so it is not a run.
        store.rollback(&scope, true)
    } else {
        let mut report = RollbackReport::default();
        recorded(store.as_mut(), &run, |store, c: &mut serde_json::Value, _| {
            report = store.rollback(&scope, false)?;
            *c = serde_json::json!({
                "statementsDeleted": report.statements,
                "documents": report.digests.len(),
            });
            Ok(false)
        })
        .map(|_| report)
    }
    .context("rollback failed")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["dryRun"] = args.dry_run.into();
        if !args.dry_run {
            v["runId"] = run.run_id.clone().into();
        }
        writeln!(out, "{v}")?;
    } else {
        // The digests to replay, one per line, then the summary.
        for d in &report.digests {
            writeln!(out, "{d}")?;
        }
        let verb = if args.dry_run {
            "Rollback dry run: would delete"
        } else {
            "Rollback completed: deleted"
        };
        writeln!(
            out,
            "{verb} statements {}, documents {}.",
            report.statements,
            report.digests.len()
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
