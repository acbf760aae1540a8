//! `backfill migrate`: upgrade an older SQLite store to the current layout
//! in place.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use backfill_engine::store::{is_mongodb_uri, is_postgres_uri, SqliteStore};
use clap::builder::BoolishValueParser;

use crate::args::GlobalArgs;
use crate::progress::Bar;

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # Upgrade a store written by an older backfill (kill it at any moment; rerun to finish)
  backfill migrate --store /data/backfill.db

  # The same, with the figures as JSON
  backfill migrate --store /data/backfill.db --json";

/// Arguments of `backfill migrate`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print the report as one JSON object instead of text.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if is_mongodb_uri(&global.store) {
        // Documents have no table layout: the shape is the contract.
        crate::logger::note("MongoDB stores have no table layout to migrate.", false);
        return Ok(ExitCode::SUCCESS);
    }
    if is_postgres_uri(&global.store) {
        // One layout so far, created (and checked) when a store is opened.
        crate::logger::note(
            "PostgreSQL stores have one table layout so far, created when a run opens them: \
             nothing to migrate.",
            false,
        );
        return Ok(ExitCode::SUCCESS);
    }
    let uri = &global.store;
    let path = uri.strip_prefix("sqlite://").or_else(|| uri.strip_prefix("sqlite:")).unwrap_or(uri);
    let bar = Bar::new("statements", global.no_progress());
    let report = SqliteStore::migrate(
        std::path::Path::new(path),
        &global.statements_collection,
        std::time::Duration::from_millis(global.busy_timeout),
        &bar,
    );
    bar.end(report.is_ok());
    let report = report.with_context(|| format!("cannot migrate {path}"))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_value(&report)?)?;
    } else if report.from == report.to {
        writeln!(out, "Migrate completed: the store already has layout {}.", report.to)?;
    } else {
        writeln!(
            out,
            "Migrate completed: layout {} -> {}, statements {}, texts {}, bytes {} -> {}.",
            report.from,
            report.to,
            report.statements,
            report.texts,
            report.bytes_before,
            report.bytes_after
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
