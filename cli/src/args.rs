//! Arguments shared by every subcommand, and the one place where command
//! line values become engine configuration.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use backfill_engine::store::{self, redact_uri};
use backfill_engine::{Error, Store, StoreOptions};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::logger::LogFormat;

/// Options every subcommand takes.
///
/// Every option, here and in each subcommand, has a `BACKFILL_<FLAG>`
/// environment fallback (for containers and CI). Boolean flags read theirs
/// with `BoolishValueParser`, so `BACKFILL_FORCE=false` (or 0, no, off) is
/// not force, and a value that is neither is a usage error.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Store: a SQLite file path (default ./backfill.db), a mongodb:// or
    /// mongodb+srv:// URI, or a postgres:// or postgresql:// URI (MongoDB
    /// and PostgreSQL need the cargo features `mongodb` and `postgres`, on
    /// by default; a --no-default-features build is SQLite-only).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "BACKFILL_STORE",
        // A URI may hold a password: --help must not print it.
        hide_env_values = true,
        default_value = "./backfill.db",
        value_name = "URI"
    )]
    pub store: String,
    /// Name of the statements collection (table).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "vex.statements",
        value_name = "NAME",
        env = "BACKFILL_STATEMENTS_COLLECTION"
    )]
    pub statements_collection: String,
    /// Name of the raw documents collection.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "vex.raw",
        value_name = "NAME",
        env = "BACKFILL_RAW_COLLECTION"
    )]
    pub raw_collection: String,
    /// MongoDB: the WiredTiger block compressor of a statements collection the run
    /// creates (zstd, snappy, zlib), or none for the server's default; ignored by servers
    /// without WiredTiger and by existing collections.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "zstd",
        value_parser = ["zstd", "snappy", "zlib", "none"],
        value_name = "NAME",
        env = "BACKFILL_MONGODB_COMPRESSOR"
    )]
    pub mongodb_compressor: String,
    /// How long a SQLite write waits for another process's lock before failing, in
    /// milliseconds.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value_t = 60_000,
        value_name = "MS",
        env = "BACKFILL_BUSY_TIMEOUT"
    )]
    pub busy_timeout: u64,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        action = ArgAction::Count,
        env = "BACKFILL_VERBOSE"
    )]
    pub verbose: u8,
    /// Only errors on stderr; no progress bar.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        env = "BACKFILL_QUIET",
        value_parser = BoolishValueParser::new()
    )]
    pub quiet: bool,
    /// Log lines on stderr as text, or as JSON objects (one per line, for log pipelines; no
    /// progress bar then).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value_t,
        value_name = "FORMAT",
        env = "BACKFILL_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

impl GlobalArgs {
    /// Whether to hide the progress bar: with `--quiet`, and with JSON
    /// logs, where a bar's redraws would break the one-object-per-line
    /// stream.
    pub fn no_progress(&self) -> bool {
        self.quiet || self.log_format == LogFormat::Json
    }

    /// Opens the selected store, creating it if needed (for commands that
    /// load data).
    pub fn open_store(&self) -> anyhow::Result<Box<dyn Store>> {
        self.open(true)
    }

    /// Opens the selected store, which must exist (for commands that read
    /// or change what is there).
    pub fn open_existing_store(&self) -> anyhow::Result<Box<dyn Store>> {
        self.open(false)
    }

    fn open(&self, create: bool) -> anyhow::Result<Box<dyn Store>> {
        let opts = StoreOptions {
            statements_collection: self.statements_collection.clone(),
            raw_collection: self.raw_collection.clone(),
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout),
            create,
            block_compressor: (self.mongodb_compressor != "none")
                .then(|| self.mongodb_compressor.clone()),
        };
        // The engine's error names the store, credentials redacted.
        match store::open(&self.store, &opts) {
            Ok(s) => Ok(s),
            // Says everything already, in one line.
            Err(e @ (Error::Usage(_) | Error::NoStore(_))) => Err(e.into()),
            Err(e) => Err(anyhow::Error::new(e).context("cannot open the store")),
        }
    }
}

/// A usage error found after parsing (exit status 2, like clap's own).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Whether `err` is a usage error: ours, or the engine's.
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|c| c.is::<Usage>() || matches!(c.downcast_ref::<Error>(), Some(Error::Usage(_))))
}

/// `err` with a tip naming the `BACKFILL_*` variable its bad value or
/// conflict came from, when it came from the environment: clap's message
/// names only the flag, which the user did not type.
pub fn name_env_source(mut err: clap::Error, cli: &clap::Command) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let mut named: Vec<&str> = Vec::new();
    for kind in [ContextKind::InvalidArg, ContextKind::PriorArg] {
        match err.get(kind) {
            Some(ContextValue::String(s)) => named.push(s),
            Some(ContextValue::Strings(v)) => named.extend(v.iter().map(String::as_str)),
            _ => {}
        }
    }
    let typed: Vec<String> =
        std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let mut tips = Vec::new();
    for name in named {
        // "--batch-size <N>" or "--force": the flag is the first word.
        let first = name.split_whitespace().next().unwrap_or_default();
        // A counted flag shows as "--verbose...".
        let Some(long) = first.trim_end_matches("...").strip_prefix("--") else { continue };
        let flag = format!("--{long}");
        if typed.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}="))) {
            continue;
        }
        let env = all_args(cli)
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .filter(|env| std::env::var_os(env).is_some());
        if let Some(env) = env {
            let env = env.to_string_lossy();
            tips.push(format!("{flag} is set by the environment variable {env}").into());
        }
    }
    if !tips.is_empty() {
        if let Some(ContextValue::StyledStrs(before)) = err.get(ContextKind::Suggested) {
            tips.extend(before.iter().cloned());
        }
        err.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    }
    err
}

/// Every argument of `cmd` and of its subcommands, depth first.
fn all_args(cmd: &clap::Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(cmd.get_arguments().chain(cmd.get_subcommands().flat_map(all_args)))
}

/// Worker threads for `--threads N`: 0 is one per core; more than
/// [`THREADS_PER_CORE`] per core only costs memory and start-up (a thread
/// stack each; `--threads 100000` was killed for memory), so it is capped
/// with a warning.
pub fn worker_threads(requested: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = cores * THREADS_PER_CORE;
    if requested > cap {
        tracing::warn!(
            requested,
            cores,
            using = cap,
            "--threads {requested} is more than {THREADS_PER_CORE} per core; using {cap}."
        );
        return cap;
    }
    requested
}

/// The most worker threads per core `--threads` gets.
pub const THREADS_PER_CORE: usize = 4;

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
    // Lossy: a non-UTF-8 path is recorded readably rather than refused.
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| if a.contains("://") { redact_uri(&a) } else { a })
        .collect()
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
