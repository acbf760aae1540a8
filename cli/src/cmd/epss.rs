//! `backfill epss`: sync EPSS / CVE-enrichment exports into the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use backfill_engine::{new_run_id, run_epss, EpssConfig, EpssSource, RunInfo};

use crate::args::{self, GlobalArgs};
use crate::progress::Bar;

/// Arguments of `backfill epss`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["bucket", "csv"])))]
pub struct Args {
    /// Offline mirror of the GitLab export bucket (DIR/v2/cve_enrichment/<sequence>/<chunk>.ndjson,
    /// v2/epss/… too). Files are read in (sequence, chunk) order after the checkpoint.
    #[arg(long, value_name = "DIR")]
    bucket: Option<PathBuf>,
    /// A FIRST daily CSV (epss_scores-YYYY-MM-DD.csv or .csv.gz).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// End the run cleanly at the next batch boundary after this long (e.g. 4m, 90s, 1h).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    max_duration: Option<Duration>,
    /// Rows per batch: one store transaction and checkpoint each.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Worker threads for parsing (default: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Largest decompressed size accepted for a .gz input.
    #[arg(long, default_value = "4GiB", value_parser = args::byte_size, value_name = "SIZE")]
    max_decompressed_size: usize,
    /// Print the counters as one JSON object instead of the summary line.
    #[arg(long)]
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
            threads: self.threads,
            max_duration: self.max_duration,
            max_decompressed_bytes: self.max_decompressed_size as u64,
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
    let bar = Bar::new("bytes", global.quiet);
    let report = run_epss(&cfg, store.as_mut(), &run, &bar, &stop)
        .with_context(|| format!("epss run {} failed", run.run_id))?;
    bar.end(!report.stopped);
    if report.stopped {
        tracing::warn!(run_id = %report.run_id, "Stopped before the end; rerun to continue.");
    }
    args::print_counters(args.json, &report.stats, &report.run_id, report.stopped)?;
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
