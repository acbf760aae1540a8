//! `backfill man`: the manual page (roff), generated from the clap
//! definition: `backfill man | man -l -` reads it without installing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::Usage;

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill man | man -l -
  backfill man statements | man -l -
  backfill man --out-dir ~/.local/share/man/man1";

/// Arguments of `backfill man`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The page of this subcommand (backfill-COMMAND(1)) instead of backfill(1).
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
    /// Write every page (backfill.1 and backfill-COMMAND.1 for each subcommand) into DIR
    /// instead, for packaging.
    #[arg(long, value_name = "DIR", env = "BACKFILL_OUT_DIR", conflicts_with = "command")]
    out_dir: Option<PathBuf>,
}

/// Runs the subcommand on the whole command line definition `cli`.
pub fn run(args: Args, cli: clap::Command) -> anyhow::Result<ExitCode> {
    // `backfill help` is not worth a page; and built first, so each
    // subcommand's display name is backfill-NAME.
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(cli, dir)
            .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let page = match &args.command {
        None => cli,
        Some(name) => cli
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| Usage(format!("no subcommand {name:?} (see `backfill --help`)")))?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    clap_mangen::Man::new(page).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
