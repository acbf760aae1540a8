//! `backfill statements`: replay raw VEX documents into statements.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use backfill_engine::{
    new_run_id, run_statements, Limits, LooseFileDefaults, RunInfo, Shard, StatementsConfig,
    StdinSpool,
};
use clap::builder::BoolishValueParser;

use crate::args::{self, GlobalArgs};
use crate::progress::{Bar, Reporter};

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # Backfill the bundled sample into ./backfill.db; run it again and all is skipped
  backfill statements --archive testdata/raw

  # Years of archives into MongoDB, every failure listed for triage
  backfill statements --archive /data/vex-raw/ --store mongodb://db/vex --failures failed.ndjson

  # Validate an archive without writing anything
  backfill statements --archive 2025.ndjson.gz --dry-run";

/// Arguments of `backfill statements`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// NDJSON archives (*.ndjson, *.jsonl), raw JSON documents, or
    /// directories to walk for both; `-` alone reads one NDJSON archive
    /// (plain or gzip) from standard input, spooled to a temporary file.
    #[arg(
        long,
        required_unless_present = "source",
        num_args = 1..,
        value_name = "PATH",
        env = "BACKFILL_ARCHIVE"
    )]
    archive: Vec<PathBuf>,
    /// Read the raw documents from a MongoDB raw collection instead (mongodb://HOST/DB; the
    /// collection is --raw-collection), spooled to a temporary archive first. Needs the
    /// cargo feature `mongodb` (on by default).
    #[arg(
        long,
        value_name = "URI",
        conflicts_with = "archive",
        env = "BACKFILL_SOURCE",
        // A URI may hold a password: --help must not print it.
        hide_env_values = true
    )]
    source: Option<String>,
    /// In directories, read only files whose path (relative to the directory given) matches
    /// GLOB; `*` also crosses `/`, `**` spans directories. Repeat for several. Files named on
    /// the command line are always read.
    #[arg(long, value_name = "GLOB", env = "BACKFILL_GLOB", value_delimiter = ',')]
    glob: Vec<String>,
    /// In directories, leave out files whose relative path matches GLOB (wins over --glob).
    #[arg(long, value_name = "GLOB", env = "BACKFILL_EXCLUDE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Name the inputs in `checkpoints` instead of their canonical paths (default for
    /// `--archive -`: stdin), so that a stopped run resumes under this name; a stream is
    /// resumed only when the same bytes are piped again.
    #[arg(long, value_name = "NAME", env = "BACKFILL_SOURCE_NAME")]
    source_name: Option<String>,
    /// Keep only documents retrieved on or after this instant (UTC when no
    /// offset is given).
    #[arg(
        long,
        value_name = "ISO8601",
        value_parser = args::instant,
        env = "BACKFILL_RETRIEVED_SINCE"
    )]
    retrieved_since: Option<i64>,
    /// retrievedAt for loose *.json documents (default: file modification
    /// time).
    #[arg(
        long,
        value_name = "ISO8601",
        value_parser = args::instant,
        env = "BACKFILL_RETRIEVED_AT"
    )]
    retrieved_at: Option<i64>,
    /// providerId for loose *.json documents.
    #[arg(long, default_value = "local", value_name = "ID", env = "BACKFILL_PROVIDER")]
    provider: String,
    /// Re-process documents already in the ledger from earlier runs,
    /// replacing (never duplicating) their statements.
    #[arg(long, env = "BACKFILL_FORCE", value_parser = BoolishValueParser::new())]
    force: bool,
    /// Documents per batch; each batch is one store transaction.
    #[arg(
        long,
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "N",
        env = "BACKFILL_BATCH_SIZE"
    )]
    batch_size: u64,
    /// Evaluate at most N documents (in evaluation order).
    #[arg(long, value_name = "N", env = "BACKFILL_MAX_DOCUMENTS")]
    max_documents: Option<u64>,
    /// Worker threads for parsing and normalizing (default: one per core).
    #[arg(
        long,
        default_value_t = 0,
        hide_default_value = true,
        value_name = "N",
        env = "BACKFILL_THREADS"
    )]
    threads: usize,
    /// Largest document accepted (e.g. 64MiB).
    #[arg(
        long,
        default_value = "64MiB",
        value_parser = args::byte_size,
        value_name = "SIZE",
        env = "BACKFILL_MAX_DOCUMENT_SIZE"
    )]
    max_document_size: usize,
    /// Largest decompressed size of one .gz input; a bigger one is a failed document.
    #[arg(
        long,
        default_value = "16GiB",
        value_parser = args::byte_size,
        value_name = "SIZE",
        env = "BACKFILL_MAX_DECOMPRESSED_SIZE"
    )]
    max_decompressed_size: usize,
    /// Take only shard I of N (I/N, 0-based) of the documents, by digest hash; run N workers
    /// against one store for a sharded replay.
    #[arg(long, value_name = "I/N", conflicts_with = "shards", env = "BACKFILL_SHARD")]
    shard: Option<Shard>,
    /// Number of shards, with this worker's index from JOB_COMPLETION_INDEX (as set by a
    /// Kubernetes Indexed Job).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        env = "BACKFILL_SHARDS"
    )]
    shards: Option<u32>,
    /// Evaluate and count everything as if the store were empty, but write nothing (no
    /// store is opened): validates an archive and measures parsing.
    #[arg(long, env = "BACKFILL_DRY_RUN", value_parser = BoolishValueParser::new())]
    dry_run: bool,
    /// Write every failed document, and every defect that dropped entries of a written
    /// one, to FILE as JSON lines (input, line, offset, digest, kind, reason), for triage
    /// and replay. The log shows only the first 20 of each per input.
    #[arg(long, value_name = "FILE", env = "BACKFILL_FAILURES")]
    failures: Option<PathBuf>,
    /// Exit with status 1 when more than N documents failed (after writing everything
    /// else), so a CI job or a pipeline can gate on it.
    #[arg(long, value_name = "N", env = "BACKFILL_MAX_FAILURES")]
    max_failures: Option<u64>,
    /// Print the counters as one JSON object instead of the summary line.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

impl Args {
    /// This worker's shard: `--shard I/N`, or `--shards N` with
    /// `JOB_COMPLETION_INDEX`.
    fn shard(&self) -> anyhow::Result<Option<Shard>> {
        if let Some(s) = self.shard {
            return Ok(Some(s));
        }
        let Some(count) = self.shards else { return Ok(None) };
        let index = std::env::var("JOB_COMPLETION_INDEX")
            .context("--shards needs JOB_COMPLETION_INDEX (or use --shard I/N)")?;
        let shard: Shard = format!("{index}/{count}")
            .parse()
            .map_err(|e: String| anyhow::anyhow!("JOB_COMPLETION_INDEX: {e}"))?;
        Ok(Some(shard))
    }

    /// The engine configuration these arguments describe.
    fn config(&self) -> anyhow::Result<StatementsConfig> {
        let limits = Limits {
            max_document_bytes: self.max_document_size,
            // A base64 line is 4/3 of its document plus the envelope.
            max_line_bytes: self.max_document_size.saturating_mul(3) / 2 + (1 << 20),
            max_decompressed_bytes: self.max_decompressed_size as u64,
        };
        Ok(StatementsConfig {
            archives: self.archive.clone(),
            batch_size: usize::try_from(self.batch_size).unwrap_or(usize::MAX),
            threads: args::worker_threads(self.threads),
            force: self.force,
            retrieved_since: self.retrieved_since,
            max_documents: self.max_documents,
            limits,
            loose: LooseFileDefaults {
                provider_id: self.provider.clone(),
                retrieved_at: self.retrieved_at,
            },
            shard: self.shard()?,
            identity: self.source_name.clone(),
            content: None,
            glob: self.glob.clone(),
            exclude: self.exclude.clone(),
        })
    }
}

/// Spools the raw collection at `uri` (`--source`) to a temporary archive,
/// which `cfg` then reads; the archive is deleted when the spool is dropped.
#[cfg(feature = "mongodb")]
fn spool(
    uri: &str,
    global: &GlobalArgs,
    cfg: &mut StatementsConfig,
) -> anyhow::Result<backfill_engine::RawSpool> {
    let spool =
        backfill_engine::RawSpool::create(uri, &global.raw_collection).with_context(|| {
            format!("cannot read raw documents from {}", backfill_engine::store::redact_uri(uri))
        })?;
    cfg.archives = vec![spool.path().to_owned()];
    // The spool's path is new each run; the source is what resumes.
    cfg.identity =
        Some(format!("{} {}", backfill_engine::store::redact_uri(uri), global.raw_collection));
    Ok(spool)
}

/// `--source` in a build without MongoDB: a usage error (exit 2).
#[cfg(not(feature = "mongodb"))]
fn spool(uri: &str, _global: &GlobalArgs, _cfg: &mut StatementsConfig) -> anyhow::Result<()> {
    Err(backfill_engine::store::without_mongodb("--source", uri).into())
}

/// `--archive -`: spools standard input to a temporary archive, which
/// `cfg` then reads (named `stdin` in checkpoints unless `--source-name`
/// says otherwise, and resumed only by the same bytes).
fn read_stdin(cfg: &mut StatementsConfig, stop: &AtomicBool) -> anyhow::Result<Option<StdinSpool>> {
    let dash = Path::new("-");
    if !cfg.archives.iter().any(|p| p == dash) {
        return Ok(None);
    }
    if cfg.archives.len() > 1 {
        let why = "--archive - (standard input) cannot be combined with other paths";
        return Err(backfill_engine::Error::Usage(why.into()).into());
    }
    if std::io::stdin().is_terminal() {
        let why = "--archive - reads an NDJSON archive from standard input, which is a terminal; \
                   pipe one in (e.g. zstdcat 2024.ndjson.zst | backfill statements --archive -)";
        return Err(backfill_engine::Error::Usage(why.into()).into());
    }
    let cap = cfg.limits.max_decompressed_bytes;
    let spool = StdinSpool::create(std::io::stdin().lock(), cap, stop)
        .context("cannot read the archive on standard input")?;
    tracing::info!(bytes = spool.identity().size, "Standard input spooled.");
    cfg.archives = vec![spool.path().to_owned()];
    cfg.identity.get_or_insert_with(|| "stdin".into());
    cfg.content = Some(spool.identity());
    Ok(Some(spool))
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = match args.config() {
        Ok(cfg) => cfg,
        // A bad shard index (from the environment) is a usage error: an
        // orchestrator must not retry it.
        Err(e) => {
            crate::logger::error(format_args!("{e:#}"));
            return Ok(ExitCode::from(2));
        }
    };
    // First, so that a stop signal during start-up is a clean stop too.
    let stop = args::stop_flag()?;
    let _spool = match &args.source {
        Some(uri) => Some(spool(uri, global, &mut cfg)?),
        None => None,
    };
    let _stdin = read_stdin(&mut cfg, &stop)?;
    // A dry run writes to a sink that keeps nothing, and records no run.
    let mut sink: Box<dyn backfill_engine::store::StatementSink> =
        if args.dry_run { Box::new(backfill_engine::DryRun) } else { global.open_store()? };
    let mut arguments = args::recorded_arguments();
    if let (Some(shard), None) = (cfg.shard, args.shard) {
        // The index came from the environment: record it, so each shard's
        // run can be told apart in `backfill runs`.
        arguments.push(format!("--shard={}/{}", shard.index, shard.count));
    }
    let run = RunInfo { run_id: new_run_id(), command: "statements".into(), arguments };
    let reporter =
        Reporter::new(Bar::new("documents", global.no_progress()), args.failures.as_deref())?;
    let report = run_statements(&cfg, sink.as_mut(), &run, &reporter, &stop)
        .with_context(|| format!("statements run {} failed", run.run_id))?;
    reporter.end(!report.stopped)?;
    if report.stopped || stop.load(Ordering::Relaxed) {
        tracing::warn!(run_id = %report.run_id, "Stopped by signal; rerun to continue.");
    }
    args::print_counters(args.json, &report.stats, &report.run_id, report.stopped)?;
    if let Some(max) = args.max_failures.filter(|&max| report.stats.failures > max) {
        crate::logger::error(format_args!(
            "{} documents failed, more than --max-failures {max}",
            report.stats.failures
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
