//! Structured logs to stderr. Only the binary installs a subscriber; the
//! engine just emits `tracing` events.

use tracing_subscriber::EnvFilter;

/// Default level is `warn` (document failures are warnings); each `-v`
/// raises it, `-q` lowers it to errors only. `RUST_LOG` wins when set.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
