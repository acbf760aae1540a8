//! `backfill export`: a whole collection as JSON lines, in key order, for
//! verification, diffing two stores, or moving data elsewhere.

use std::io::Write;
use std::process::ExitCode;

use backfill_engine::Export;

use crate::args::GlobalArgs;

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
  backfill export documents --store mongodb://db:27017/vex > ledger.ndjson";

/// Arguments of `backfill export`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Collection to export.
    #[arg(value_enum, default_value = "statements")]
    what: What,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    let what = match args.what {
        What::Statements => Export::Statements,
        What::Documents => Export::Documents,
        What::Epss => Export::Epss,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut io_error = None;
    store.export(what, &mut |v| {
        if io_error.is_none() {
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
