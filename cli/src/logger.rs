//! Structured logs to stderr. Only the binary installs a subscriber; the
//! engine just emits `tracing` events.

use std::fmt::Display;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// How log lines on stderr are written (`--log-format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line per event, colored on a terminal.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line (tracing's JSON formatter).
    Json,
}

/// The format `init` installed, for the lines the binary writes itself.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Default level is `warn` (document failures are warnings); each `-v`
/// raises it, `-q` lowers it to errors only. `RUST_LOG` wins when set.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = FORMAT.set(format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).try_init()
        }
        // Fields stay nested under "fields", as the formatter writes them.
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Whether logs are JSON: then stderr carries nothing else (no progress
/// bar, no plain lines), so a log pipeline can parse every line.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// A fatal error: `backfill: error: MSG`, or an `error` event in JSON.
pub fn error(msg: impl Display) {
    if is_json() {
        tracing::error!("{msg}");
    } else {
        eprintln!("backfill: error: {msg}");
    }
}

/// A line for the user that is no log event in text mode (`backfill:
/// MSG`, or MSG alone when `bare`); a `warn` event in JSON, so it shows at
/// the default level.
pub fn note(msg: impl Display, bare: bool) {
    if is_json() {
        tracing::warn!("{msg}");
    } else if bare {
        eprintln!("{msg}");
    } else {
        eprintln!("backfill: {msg}");
    }
}
