//! `backfill checkpoints`: the resume points of `statements` and `epss`
//! runs, listed, and reset so that the next run over an input starts over.

use std::io::Write;
use std::process::ExitCode;

use backfill_engine::model::{Checkpoint, CheckpointState};
use backfill_engine::{new_run_id, recorded, RunInfo};
use clap::builder::BoolishValueParser;

use crate::args::{self, GlobalArgs};

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill checkpoints
  backfill checkpoints --json | jq 'select(.complete | not)'
  backfill checkpoints reset /data/epss/epss_scores-current.csv.gz";

/// Ends `reset --help`.
const RESET_EXAMPLES: &str = "\
Examples:
  # Read a FIRST CSV again from its start
  backfill checkpoints reset /data/epss/epss_scores-current.csv.gz
  # Only the statements checkpoint of an archive directory
  backfill checkpoints reset /data/raw --data-type statements";

/// Arguments of `backfill checkpoints`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES, disable_help_subcommand = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// One JSON object per checkpoint instead of text.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// What to do with the checkpoints; without one, list them.
#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Remove the checkpoints of one source, so the next run over it
    /// starts over (documents already in the ledger are still skipped
    /// unless --force).
    Reset(ResetArgs),
}

/// Arguments of `backfill checkpoints reset`.
#[derive(clap::Args, Debug)]
#[command(after_help = RESET_EXAMPLES)]
struct ResetArgs {
    /// The source as `backfill checkpoints` prints it (several inputs
    /// joined by "; "), or a path that resolves to it (an EPSS file, the
    /// one archive or directory a `statements` run was given).
    #[arg(value_name = "SOURCE")]
    source: String,
    /// Only the checkpoint of this data type (`statements`, `epss`,
    /// `epss_csv`, `cve_enrichment`); all of them by default.
    #[arg(long, value_name = "T", env = "BACKFILL_DATA_TYPE")]
    data_type: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        None => list(args.json, global),
        Some(Action::Reset(reset_args)) => reset(&reset_args, global),
    }
}

/// Prints every checkpoint.
fn list(json: bool, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    let checkpoints = store.checkpoints()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for c in &checkpoints {
        if json {
            // Through a `Value`: keys in sorted order, as `stats` prints.
            writeln!(out, "{}", serde_json::to_value(c)?)?;
        } else {
            write_state(&mut out, c)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Removes the checkpoints `args` name, as a recorded run.
fn reset(args: &ResetArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    let canonical = std::fs::canonicalize(&args.source).ok().map(|p| p.display().to_string());
    let matched: Vec<CheckpointState> = store
        .checkpoints()?
        .into_iter()
        .filter(|c| args.data_type.as_ref().is_none_or(|t| *t == c.checkpoint.data_type))
        .filter(|c| names(&c.checkpoint.source, &args.source, canonical.as_deref()))
        .collect();
    if matched.is_empty() {
        // "removed 0" for a mistyped source would read as success.
        let of_type = args.data_type.as_ref().map_or(String::new(), |t| format!(" of type {t}"));
        anyhow::bail!(
            "no checkpoint{of_type} of {} in {}; nothing removed (see `backfill checkpoints`)",
            args.source,
            store.describe()
        );
    }
    let mut sources: Vec<&str> = matched.iter().map(|c| c.checkpoint.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let run = RunInfo {
        run_id: new_run_id(),
        command: "checkpoints reset".into(),
        arguments: args::recorded_arguments(),
    };
    let (done, _) = recorded(store.as_mut(), &run, |store, c: &mut Reset, _| {
        for source in &sources {
            c.checkpoints_removed += store.remove_checkpoints(source, args.data_type.as_deref())?;
        }
        Ok(false)
    })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for c in &matched {
        write_state(&mut out, c)?;
    }
    writeln!(out, "Checkpoints reset: removed {}.", done.checkpoints_removed)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Counters of a reset run.
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Reset {
    checkpoints_removed: u64,
}

/// Whether `given` names the stored `source`: exactly, as printed (inputs
/// joined by "; "), or as a path that resolves to it (`canonical`).
fn names(source: &str, given: &str, canonical: Option<&str>) -> bool {
    source == given || source.replace('\n', "; ") == given || canonical == Some(source)
}

/// One line of the listing: the checkpoint and when it was saved.
fn write_state(out: &mut impl Write, c: &CheckpointState) -> std::io::Result<()> {
    writeln!(out, "{} saved {}", line(&c.checkpoint), c.updated_at)
}

/// A checkpoint as one line of text (without indent or newline): data type,
/// source, position, content identity. `stats` prints these too.
pub fn line(c: &Checkpoint) -> String {
    let source = c.source.replace('\n', "; ");
    let position = if c.complete && c.sequence.is_empty() && c.chunk.is_empty() {
        // A bucket checkpoint from before per-file ones, retired.
        "(retired: per-file checkpoints)".to_owned()
    } else {
        format!(
            "-> {} {} @{}{}",
            c.sequence,
            c.chunk,
            c.offset,
            if c.complete { " (complete)" } else { "" }
        )
    };
    let identity = match &c.identity {
        Some(id) => format!(
            " [{} bytes, modified {}, xxh3 {}]",
            id.size,
            backfill_engine::format_instant(id.mtime_ns.div_euclid(1000)),
            id.xxh3_hex()
        ),
        None => String::new(),
    };
    format!("{:<15} {source} {position}{identity}", c.data_type)
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn a_source_is_named_exactly_as_printed_or_by_its_path() {
        assert!(names("/a\n/b", "/a\n/b", None));
        assert!(names("/a\n/b", "/a; /b", None));
        assert!(names("/data/x.csv", "x.csv", Some("/data/x.csv")));
        assert!(!names("/a\n/b", "/a", Some("/a")));
        assert!(!names("/data/x.csv", "/data/y.csv", None));
    }
}
