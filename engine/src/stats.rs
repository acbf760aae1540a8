//! Run counters. They add up with `+=`, so per-batch or per-worker counts
//! merge without locks.

use std::fmt;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// Counters of a `statements` run. Invariant:
/// `evaluated == backfilled + skipped + failures`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementStats {
    /// Documents looked at.
    pub evaluated: u64,
    /// Documents normalized and written (recorded in the ledger).
    pub backfilled: u64,
    /// Statements (claims) written.
    pub claims_written: u64,
    /// Documents skipped because their digest was already processed.
    pub skipped: u64,
    /// Documents that failed (bad envelope, digest mismatch, bad JSON,
    /// unknown format, normalizer error, limit).
    pub failures: u64,
}

impl StatementStats {
    /// True when the counters satisfy the documented invariant.
    pub fn is_consistent(&self) -> bool {
        self.evaluated == self.backfilled + self.skipped + self.failures
    }
}

impl AddAssign for StatementStats {
    fn add_assign(&mut self, o: StatementStats) {
        self.evaluated += o.evaluated;
        self.backfilled += o.backfilled;
        self.claims_written += o.claims_written;
        self.skipped += o.skipped;
        self.failures += o.failures;
    }
}

impl fmt::Display for StatementStats {
    /// The runbook's summary line, exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Backfill completed: evaluated {}, backfilled {}, claims written {}, skipped {}, failures {}.",
            self.evaluated, self.backfilled, self.claims_written, self.skipped, self.failures
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_matches_runbook() {
        let s = StatementStats {
            evaluated: 450,
            backfilled: 180,
            claims_written: 320,
            skipped: 270,
            failures: 0,
        };
        assert_eq!(
            s.to_string(),
            "Backfill completed: evaluated 450, backfilled 180, claims written 320, skipped 270, failures 0."
        );
        assert!(s.is_consistent());
    }

    #[test]
    fn add_assign_sums_every_counter() {
        let mut a = StatementStats {
            evaluated: 3,
            backfilled: 1,
            claims_written: 5,
            skipped: 1,
            failures: 1,
        };
        a += a;
        assert_eq!(
            a,
            StatementStats {
                evaluated: 6,
                backfilled: 2,
                claims_written: 10,
                skipped: 2,
                failures: 2
            }
        );
    }
}
