//! `backfill export`: a collection as JSON lines, in key order, for
//! verification, diffing two stores, or moving data elsewhere; whole, or
//! narrowed to one run, one provider or what was written since a time.
//!
//! The filters are applied to the records as they stream from the store:
//! one pass over the collection, whatever the filter.

use std::io::Write;
use std::process::ExitCode;

use backfill_engine::model::ExportFilter;
use backfill_engine::Export;

use crate::args::{self, GlobalArgs};

/// What to export.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum What {
    /// The statements collection.
    Statements,
    /// The documents ledger.
    Documents,
    /// The epss collection.
    Epss,
}

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # Compare two stores
  diff <(backfill export --store a.db) <(backfill export --store b.db)

  # What one run wrote, or one provider's statements written since a date
  backfill export --run 20261203T181500Z-4f2a9c1e --store mongodb://db:27017/vex > run.ndjson
  backfill export --provider suse --since 2026-11-01 > suse-november.ndjson";

/// Arguments of `backfill export`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Collection to export.
    #[arg(value_enum, default_value = "statements")]
    what: What,
    /// Only what this run wrote (see `backfill runs`); statements and documents.
    #[arg(long = "run", value_name = "ID", env = "BACKFILL_RUN")]
    run_id: Option<String>,
    /// Only this provider's (providerId); statements and documents.
    #[arg(long, value_name = "ID", env = "BACKFILL_PROVIDER")]
    provider: Option<String>,
    /// Only what was written at or after this instant (UTC when no offset is given):
    /// statements by insertedAt, documents by processedAt, epss rows by updatedAt.
    #[arg(long, value_name = "ISO8601", value_parser = args::instant, env = "BACKFILL_SINCE")]
    since: Option<i64>,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.what, What::Epss) && (args.run_id.is_some() || args.provider.is_some()) {
        let why = "epss rows have no run or provider: --run and --provider export statements \
                   or documents";
        return Err(backfill_engine::Error::Usage(why.into()).into());
    }
    let filter =
        ExportFilter { run_id: args.run_id, provider_id: args.provider, since: args.since };
    let mut store = global.open_existing_store()?;
    let what = match args.what {
        What::Statements => Export::Statements,
        What::Documents => Export::Documents,
        What::Epss => Export::Epss,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut io_error = None;
    store.export(what, &mut |v| {
        if io_error.is_none() && filter.keeps(&v) {
            // Through a JSON value: its keys print sorted, one stable
            // shape whatever the store.
            io_error = serde_json::to_value(&v)
                .map_err(std::io::Error::from)
                .and_then(|v| writeln!(out, "{v}"))
                .err();
        }
        Ok(())
    })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
