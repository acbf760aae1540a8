//! `backfill stats`: post-run verification figures.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use backfill_engine::model::Stats;
use clap::builder::BoolishValueParser;

use crate::args::GlobalArgs;

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill stats
  backfill stats --json --store mongodb://db:27017/vex | jq .statements";

/// Arguments of `backfill stats`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long, env = "BACKFILL_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    // A run killed mid-way shows as abandoned, not as running forever.
    backfill_engine::reap_abandoned(store.as_mut())?;
    let stats = store.stats()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        // Through a `Value`: keys in sorted order, as always printed.
        writeln!(out, "{}", serde_json::to_value(&stats)?)?;
    } else {
        write_text(&mut out, &stats)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The figures as aligned text.
fn write_text(out: &mut impl Write, stats: &Stats) -> std::io::Result<()> {
    writeln!(out, "statements   {}", stats.statements)?;
    for (title, counts) in [
        ("  by provider", &stats.by_provider),
        ("  by status", &stats.by_status),
        ("  by format", &stats.by_format),
    ] {
        writeln!(out, "{title}")?;
        write_counts(out, counts)?;
    }
    writeln!(out, "documents    {}", stats.documents)?;
    writeln!(
        out,
        "dropped      {} entries of those documents not written{}",
        stats.dropped.values().sum::<i64>(),
        if stats.dropped.is_empty() { "" } else { ", by reason:" }
    )?;
    write_counts(out, &stats.dropped)?;
    writeln!(
        out,
        "epss rows    {} ({} known exploited)",
        stats.epss.rows, stats.epss.known_exploited
    )?;
    writeln!(out, "checkpoints")?;
    for c in &stats.checkpoints {
        writeln!(out, "    {}", super::checkpoints::line(&c.checkpoint))?;
    }
    writeln!(out, "runs")?;
    write_counts(out, &stats.runs)
}

fn write_counts(out: &mut impl Write, counts: &BTreeMap<String, i64>) -> std::io::Result<()> {
    for (k, v) in counts {
        writeln!(out, "    {k:<24} {v}")?;
    }
    Ok(())
}
