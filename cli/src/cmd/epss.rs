//! `backfill epss`: sync EPSS / CVE-enrichment exports into the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use backfill_engine::{new_run_id, run_epss, EpssConfig, EpssSource, RunInfo};
use clap::builder::BoolishValueParser;

use crate::args::{self, GlobalArgs};
use crate::progress::Bar;

/// How checkpoints work, for `--help`.
const CHECKPOINTS_HELP: &str = "\
Checkpoints:
  Every file has its own checkpoint: how far it was read, and its size, modification time
  and a content hash (xxh3 of the bytes read; decompressed bytes for .gz). So a file
  replaced at the same path (epss_scores-current.csv.gz, a bucket chunk rewritten in place)
  is read again, and rows are upserted only where a value changed.
  - finished, same size and mtime: skipped without being opened
  - finished, new size or mtime, same content hash (downloaded again): skipped
  - finished, other content: read again from the start
  - stopped part-way: resumed where it stopped if the bytes before still hash the same
    (a file that grew is resumed); otherwise read again from the start, with a warning
  `files` in the summary counts the files whose rows were read. --force reads every file
  from the start. A bucket checkpoint from an earlier version is honoured for files it
  covers (they are hashed once and get their own checkpoint, not re-applied).

Failures:
  A file that cannot be read to its end (cannot be opened, damaged gzip data) keeps the
  rows before the damage, is listed in the run record, and the other files are still read;
  the run is recorded as failed and the exit code is 1. Once the file is replaced, the next
  run reads it again. An empty file is read as having no rows, with a warning.";

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # Today's FIRST scores, read again only when the file changed
  backfill epss --csv epss_scores-current.csv.gz

  # An offline bucket mirror, in slices of at most four minutes (a CronJob)
  backfill epss --bucket /mirror/epss --max-duration 4m --json";

/// Arguments of `backfill epss`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["bucket", "csv"])))]
#[command(after_help = EXAMPLES, after_long_help = format!("{CHECKPOINTS_HELP}\n\n{EXAMPLES}"))]
pub struct Args {
    /// Offline mirror of the GitLab export bucket (DIR/v2/cve_enrichment/<sequence>/<chunk>.ndjson,
    /// v2/epss/… too). Files are read in (sequence, chunk) order; each resumes after its own
    /// checkpoint, and a chunk rewritten in place is read again.
    #[arg(long, value_name = "DIR", env = "BACKFILL_BUCKET")]
    bucket: Option<PathBuf>,
    /// A FIRST daily CSV (epss_scores-YYYY-MM-DD.csv or .csv.gz). A file replaced at the same
    /// path (e.g. epss_scores-current.csv.gz, fetched daily) is read again when its content
    /// changed.
    #[arg(long, value_name = "FILE", env = "BACKFILL_CSV")]
    csv: Option<PathBuf>,
    /// Read every file from the start, ignoring checkpoints (rows still change only where a
    /// value changed).
    #[arg(long, env = "BACKFILL_FORCE", value_parser = BoolishValueParser::new())]
    force: bool,
    /// End the run cleanly at the next batch boundary after this long (e.g. 4m, 90s, 1h).
    #[arg(long, value_name = "DUR", value_parser = duration, env = "BACKFILL_MAX_DURATION")]
    max_duration: Option<Duration>,
    /// Rows per batch: one store transaction and checkpoint each.
    #[arg(
        long,
        default_value_t = 50_000,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "N",
        env = "BACKFILL_BATCH_SIZE"
    )]
    batch_size: u64,
    /// Worker threads for parsing (default: one per core).
    #[arg(
        long,
        default_value_t = 0,
        hide_default_value = true,
        value_name = "N",
        env = "BACKFILL_THREADS"
    )]
    threads: usize,
    /// Largest decompressed size accepted for a .gz input.
    #[arg(
        long,
        default_value = "4GiB",
        value_parser = args::byte_size,
        value_name = "SIZE",
        env = "BACKFILL_MAX_DECOMPRESSED_SIZE"
    )]
    max_decompressed_size: usize,
    /// Print the counters as one JSON object instead of the summary line.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// Parses `90s`, `4m`, `1h`, `1h30m` or plain seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 90s, 4m, 1h30m)");
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        total += num.parse::<u64>().map_err(|_| bad())?;
    }
    Ok(Duration::from_secs(total))
}

impl Args {
    fn config(&self) -> EpssConfig {
        let source = match (&self.bucket, &self.csv) {
            (Some(b), _) => EpssSource::Bucket(b.clone()),
            (None, Some(c)) => EpssSource::Csv(c.clone()),
            (None, None) => unreachable!("clap requires --bucket or --csv"),
        };
        EpssConfig {
            source,
            batch_rows: usize::try_from(self.batch_size).unwrap_or(usize::MAX),
            threads: args::worker_threads(self.threads),
            max_duration: self.max_duration,
            max_decompressed_bytes: self.max_decompressed_size as u64,
            force: self.force,
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config();
    // First, so that a stop signal during start-up is a clean stop too.
    let stop = args::stop_flag()?;
    let mut store = global.open_store()?;
    let run = RunInfo {
        run_id: new_run_id(),
        command: "epss".into(),
        arguments: args::recorded_arguments(),
    };
    let bar = Bar::new("bytes", global.no_progress());
    let report = run_epss(&cfg, store.as_mut(), &run, &bar, &stop)
        .with_context(|| format!("epss run {} failed", run.run_id))?;
    let failure = report.stats.failure_line();
    bar.end(!report.stopped && failure.is_none());
    if report.stopped {
        tracing::warn!(run_id = %report.run_id, "Stopped before the end; rerun to continue.");
    }
    args::print_counters(args.json, &report.stats, &report.run_id, report.stopped)?;
    // The other files' rows are in; the failed file is read again by the
    // next run once it is replaced.
    if let Some(line) = failure {
        anyhow::bail!("epss run {} failed: {line}", report.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert!(duration("4 parsecs").is_err());
    }
}
