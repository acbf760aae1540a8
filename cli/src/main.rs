//! `backfill`: replay raw VEX documents into normalized statements and sync
//! EPSS scores, into an embedded SQLite store or MongoDB.

mod args;
mod cmd;
mod logger;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::GlobalArgs;

// Parsing allocates many small strings on every worker thread; mimalloc's
// per-thread heaps keep that off the critical path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ends `--help`: the quick start, and where to go next.
const EXAMPLES: &str = "\
Examples:
  # The bundled sample into ./backfill.db, then what is in it
  backfill statements --archive testdata/raw
  backfill stats

  # EPSS scores, then onto the statements
  backfill epss --csv epss_scores-current.csv.gz && backfill enrich

  backfill COMMAND --help shows each command's options and examples.";

/// Data-parallel batch engine for vulnerability intelligence.
///
/// Replays raw VEX documents (CSAF, CycloneDX, OpenVEX) into normalized
/// statements, deduplicated by document digest, into an embedded SQLite file
/// (default ./backfill.db) or MongoDB (--store mongodb://...).
#[derive(Parser, Debug)]
#[command(name = "backfill", version, rename_all = "kebab-case", propagate_version = true)]
#[command(after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[command(rename_all = "kebab-case")]
enum Command {
    /// Normalize raw VEX documents from archives into statements.
    ///
    /// Documents are evaluated in ascending (retrievedAt, digest) order. A
    /// digest already in the documents ledger, or seen earlier in the run, is
    /// skipped unless --force (which replaces the statements of digests from
    /// earlier runs). The last line on stdout is the summary.
    Statements(cmd::statements::Args),
    /// Print the statements about a vulnerability and a product key or purl,
    /// one JSON object per line.
    Get(cmd::get::Args),
    /// List recorded runs: id, command, start, end, status, counters.
    Runs(cmd::runs::Args),
    /// Sync EPSS / CVE-enrichment exports (GitLab bucket or FIRST CSV) into the epss
    /// collection, resuming after the last checkpoint.
    Epss(cmd::epss::Args),
    /// Refresh signals.kev and signals.epss of existing statements from the epss collection.
    Enrich(cmd::enrich::Args),
    /// Write deterministic synthetic data (raw archives, EPSS exports) at any scale.
    Gen(cmd::gen::Args),
    /// Delete what a run (or a time window) wrote: statements and ledger entries; lists the
    /// digests to replay.
    Rollback(cmd::rollback::Args),
    /// Post-run verification: statements by provider, status and format; epss rows;
    /// checkpoints; runs.
    Stats(cmd::stats::Args),
    /// List the checkpoints of statements and EPSS runs, or reset one source's so the
    /// next run over it starts over.
    Checkpoints(cmd::checkpoints::Args),
    /// Print a collection (statements, the documents ledger or epss) as JSON
    /// lines in key order, whole or narrowed by run, provider or time.
    Export(cmd::export::Args),
    /// Upgrade a SQLite store written by an older backfill (layout 2 or 3) in place;
    /// crash-safe: rerun it after any interruption.
    Migrate(cmd::migrate::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(cmd::completions::Args),
    /// Print the manual page (roff): `backfill man | man -l -`.
    Man(cmd::man::Args),
}

impl Command {
    fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Command::Statements(a) => cmd::statements::run(a, global),
            Command::Get(a) => cmd::get::run(a, global),
            Command::Runs(a) => cmd::runs::run(a, global),
            Command::Export(a) => cmd::export::run(a, global),
            Command::Epss(a) => cmd::epss::run(a, global),
            Command::Enrich(a) => cmd::enrich::run(a, global),
            Command::Gen(a) => cmd::gen::run(a, global),
            Command::Rollback(a) => cmd::rollback::run(a, global),
            Command::Stats(a) => cmd::stats::run(a, global),
            Command::Checkpoints(a) => cmd::checkpoints::run(a, global),
            Command::Migrate(a) => cmd::migrate::run(a, global),
            Command::Completions(a) => cmd::completions::run(a, Cli::command()),
            Command::Man(a) => cmd::man::run(a, Cli::command()),
        }
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on a usage error and 0 for --help/--version.
    let cli = Cli::try_parse().unwrap_or_else(|e| args::name_env_source(e, &Cli::command()).exit());
    logger::init(cli.global.verbose, cli.global.quiet, cli.global.log_format);
    match cli.command.run(&cli.global) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`backfill get ... | head`) is not an error.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            logger::error(format_args!("{err:#}"));
            ExitCode::from(if args::is_usage(&err) { 2 } else { 1 })
        }
    }
}
