//! Arguments shared by every subcommand, and the one place where command
//! line values become engine configuration.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use backfill_engine::store::{self, redact_uri};
use backfill_engine::{Store, StoreOptions};
use clap::{ArgAction, Args};

/// Options every subcommand takes.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Store: a SQLite file path (default ./backfill.db), or a mongodb:// or
    /// mongodb+srv:// URI.
    #[arg(
        long,
        global = true,
        env = "BACKFILL_STORE",
        default_value = "./backfill.db",
        value_name = "URI"
    )]
    pub store: String,
    /// Name of the statements collection (table).
    #[arg(long, global = true, default_value = "vex.statements", value_name = "NAME")]
    pub statements_collection: String,
    /// Name of the raw documents collection.
    #[arg(long, global = true, default_value = "vex.raw", value_name = "NAME")]
    pub raw_collection: String,
    /// How long a SQLite write waits for another process's lock before failing, in
    /// milliseconds.
    #[arg(long, global = true, default_value_t = 60_000, value_name = "MS")]
    pub busy_timeout: u64,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl GlobalArgs {
    /// Opens the selected store.
    pub fn open_store(&self) -> anyhow::Result<Box<dyn Store>> {
        let opts = StoreOptions {
            statements_collection: self.statements_collection.clone(),
            raw_collection: self.raw_collection.clone(),
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout),
        };
        // The engine's error names the store, credentials redacted.
        store::open(&self.store, &opts).context("cannot open the store")
    }
}

/// Parses an instant for clap: RFC 3339, or date-time / date in UTC.
pub fn instant(s: &str) -> Result<i64, String> {
    backfill_engine::parse_instant(s).ok_or_else(|| {
        format!("{s:?} is not an ISO 8601 instant (e.g. 2025-10-19T12:00:00Z or 2025-10-19)")
    })
}

/// Parses a byte size: `1048576`, `64KiB`, `64MiB`, `1GiB` (also KB/MB/GB,
/// K/M/G, all binary).
pub fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 64MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// The command line as recorded in `runs`: anything that looks like a URI
/// has its credentials replaced by `***`.
pub fn recorded_arguments() -> Vec<String> {
    std::env::args().skip(1).map(|a| if a.contains("://") { redact_uri(&a) } else { a }).collect()
}

/// A flag set by SIGINT or SIGTERM. A second signal while the first is
/// being handled exits at once (status 130), for a user who really means
/// it.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))
            .context("cannot install signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot install signal handler")?;
    }
    Ok(flag)
}

/// Prints a run's counters: the summary line (their `Display`), or with
/// `json` one JSON object with `runId` and `stopped` added.
pub fn print_counters<C>(
    json: bool,
    counters: &C,
    run_id: &str,
    stopped: bool,
) -> anyhow::Result<()>
where
    C: serde::Serialize + std::fmt::Display,
{
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(counters)?;
        v["runId"] = run_id.into();
        v["stopped"] = stopped.into();
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{counters}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size("10"), Ok(10));
        assert_eq!(byte_size("2k"), Ok(2048));
        assert!(byte_size("lots").is_err());
        assert!(byte_size("5 parsecs").is_err());
    }
}
