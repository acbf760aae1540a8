//! The retry budget the server stores share (MongoDB, PostgreSQL): how
//! long one operation is retried on transient errors before the run fails,
//! and the backoff between attempts.

use std::time::Duration;

/// How long one operation is retried on transient errors before the run
/// fails.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Environment variable that overrides [`RETRY_BUDGET`], in seconds
/// (fractions allowed). Meant for tests and impatient operators. The name
/// is MongoDB's, where it came first; the PostgreSQL store reads it too.
pub const RETRY_BUDGET_ENV: &str = "BACKFILL_MONGODB_RETRY_SECONDS";

/// First wait after a transient error; it doubles up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The budget in force: [`RETRY_BUDGET_ENV`] when it is a non-negative
/// number of seconds, else [`RETRY_BUDGET`].
pub(crate) fn budget() -> Duration {
    std::env::var(RETRY_BUDGET_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(RETRY_BUDGET, Duration::from_secs_f64)
}
