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

/// Arguments of `backfill export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Collection to export.
    #[arg(value_enum, default_value = "statements")]
    what: What,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_store()?;
    let what = match args.what {
        What::Statements => Export::Statements,
        What::Documents => Export::Documents,
        What::Epss => Export::Epss,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut io_error = None;
    store.export(what, &mut |v| {
        if io_error.is_none() {
            io_error = writeln!(out, "{v}").err();
        }
        Ok(())
    })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
