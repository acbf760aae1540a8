//! `backfill enrich`: refresh statement signals (KEV, EPSS) from the `epss`
//! collection without re-normalizing: the schema-upgrade migration.

use std::io::Write;
use std::process::ExitCode;

use backfill_engine::{new_run_id, recorded, RunInfo};
use clap::builder::BoolishValueParser;

use crate::args::{self, GlobalArgs};

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill epss --csv epss_scores-current.csv.gz && backfill enrich
  backfill enrich --store mongodb://db:27017/vex --json";

/// Arguments of `backfill enrich`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print the result as one JSON object.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// Counters of an enrich run.
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Enriched {
    statements_changed: u64,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    let run = RunInfo {
        run_id: new_run_id(),
        command: "enrich".into(),
        arguments: args::recorded_arguments(),
    };
    let (done, _) = recorded(store.as_mut(), &run, |store, c: &mut Enriched, _| {
        c.statements_changed = store.enrich_statements()?;
        Ok(false)
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&done)?;
        v["runId"] = run.run_id.into();
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "Enrich completed: statements changed {}.", done.statements_changed)?;
    }
    Ok(ExitCode::SUCCESS)
}
