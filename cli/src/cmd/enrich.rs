//! `backfill enrich`: refresh statement signals (KEV, EPSS) from the `epss`
//! collection without re-normalizing: the schema-upgrade migration.

use std::io::Write;
use std::process::ExitCode;

use backfill_engine::{format_timestamp, new_run_id, RunRecord, RunStatus};

use crate::args::{self, GlobalArgs};

/// Arguments of `backfill enrich`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_store()?;
    let now = || format_timestamp(chrono::Utc::now().timestamp_micros());
    let mut record = RunRecord {
        run_id: new_run_id(),
        command: "enrich".into(),
        arguments: args::recorded_arguments(),
        started_at: now(),
        ended_at: None,
        status: RunStatus::Running,
        counters: serde_json::json!({}),
        error: None,
    };
    store.record_run(&record)?;
    let result = store.enrich_statements();
    record.ended_at = Some(now());
    match result {
        Ok(changed) => {
            record.status = RunStatus::Completed;
            record.counters = serde_json::json!({ "statementsChanged": changed });
            store.record_run(&record)?;
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "statementsChanged": changed, "runId": record.run_id })
                )?;
            } else {
                writeln!(out, "Enrich completed: statements changed {changed}.")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
            let _ = store.record_run(&record);
            Err(e.into())
        }
    }
}
