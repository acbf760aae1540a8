//! `backfill stats`: post-run verification figures.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value as Json;

use crate::args::GlobalArgs;

/// Arguments of `backfill stats`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_store()?;
    let stats = store.stats()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        writeln!(out, "{stats}")?;
    } else {
        let n = |v: &Json| v.as_i64().unwrap_or(0);
        writeln!(out, "statements   {}", n(&stats["statements"]))?;
        for (title, key) in [
            ("  by provider", "byProvider"),
            ("  by status", "byStatus"),
            ("  by format", "byFormat"),
        ] {
            writeln!(out, "{title}")?;
            if let Some(m) = stats[key].as_object() {
                for (k, v) in m {
                    writeln!(out, "    {k:<24} {}", n(v))?;
                }
            }
        }
        writeln!(out, "documents    {}", n(&stats["documents"]))?;
        writeln!(
            out,
            "epss rows    {} ({} known exploited)",
            n(&stats["epss"]["rows"]),
            n(&stats["epss"]["knownExploited"])
        )?;
        writeln!(out, "checkpoints")?;
        for c in stats["checkpoints"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let source = c["source"].as_str().unwrap_or_default().replace('\n', "; ");
            writeln!(
                out,
                "    {:<15} {} -> {} {} @{}{}",
                c["dataType"].as_str().unwrap_or_default(),
                source,
                c["sequence"].as_str().unwrap_or_default(),
                c["chunk"].as_str().unwrap_or_default(),
                n(&c["offset"]),
                if c["complete"].as_bool().unwrap_or(false) { " (complete)" } else { "" }
            )?;
        }
        writeln!(out, "runs")?;
        if let Some(m) = stats["runs"].as_object() {
            for (k, v) in m {
                writeln!(out, "    {k:<24} {}", n(v))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
