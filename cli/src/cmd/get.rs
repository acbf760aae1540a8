//! `backfill get`: the runbook's post-run check, one statement per line.

use std::io::Write;
use std::process::ExitCode;

use std::str::FromStr;

use backfill_engine::model;
use packageurl::PackageUrl;

use crate::args::GlobalArgs;

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill get CVE-2021-44228 pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1
  backfill get CVE-2021-44228 --purl pkg:maven/org.apache.logging.log4j/log4j-core
  backfill get CVE-2025-1001 pkg:npm/left-pad@1.3.0 --store mongodb://db:27017/vex | jq .status";

/// Arguments of `backfill get`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Vulnerability id, e.g. CVE-2021-44228.
    vulnerability_id: String,
    /// Product key or package URL, matched exactly; without it (and
    /// without --purl), every statement about the vulnerability.
    product: Option<String>,
    /// Statements whose package URL is this product by OpenVEX's rules: a
    /// purl without a version matches every version, and the qualifiers it
    /// gives must match.
    #[arg(long, value_name = "PURL", conflicts_with = "product", value_parser = purl, env = "BACKFILL_PURL")]
    purl: Option<PackageUrl<'static>>,
}

/// Parses a package URL for clap.
fn purl(s: &str) -> Result<PackageUrl<'static>, String> {
    PackageUrl::from_str(s).map_err(|e| format!("{s:?} is not a package URL ({e})"))
}

/// Runs the subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut store = global.open_existing_store()?;
    let mut found = store.find_statements(&args.vulnerability_id, args.product.as_deref())?;
    if let Some(purl) = &args.purl {
        found.retain(|s| s.purl.as_deref().is_some_and(|c| model::purl_matches(purl, c)));
    }
    if found.is_empty() {
        // Like grep: nothing found is status 1, so a script can tell.
        crate::logger::note(
            format_args!(
                "no statement about {}{} in {}",
                args.vulnerability_id,
                args.product
                    .clone()
                    .or_else(|| args.purl.as_ref().map(ToString::to_string))
                    .map(|p| format!(" and {p}"))
                    .unwrap_or_default(),
                store.describe()
            ),
            false,
        );
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in found {
        writeln!(out, "{}", serde_json::to_value(&s)?)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
