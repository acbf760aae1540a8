//! Run counters. They add up with `+=`, so per-batch or per-worker counts
//! merge without locks.

use std::fmt;
use std::ops::AddAssign;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::normalize::{Dropped, Format, Status};
use crate::parse::DocumentWrite;

/// Counters of a `statements` run. Invariants:
/// `evaluated == backfilled + skipped + failures`, and the statements in
/// `written` add up to `claims_written`.
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
    /// The drop report: statements written by format and status...
    #[serde(default)]
    pub written: Written,
    /// ...and the entries of the backfilled documents that were not
    /// written, by reason.
    #[serde(default)]
    pub dropped: Dropped,
}

impl StatementStats {
    /// True when the counters satisfy the documented invariants.
    pub fn is_consistent(&self) -> bool {
        self.evaluated == self.backfilled + self.skipped + self.failures
            && self.written.total() == self.claims_written
    }

    /// Counts `doc` as backfilled: its statements and its drops.
    pub fn add_backfilled(&mut self, doc: &DocumentWrite) {
        self.backfilled += 1;
        self.claims_written += doc.claims.len() as u64;
        for c in &doc.claims {
            self.written.add(doc.format, c.status, 1);
        }
        self.dropped += doc.dropped;
    }
}

/// Statements written, by format and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written([[u64; 4]; 3]);

const FORMATS: [Format; 3] = [Format::Csaf, Format::CycloneDx, Format::OpenVex];
const STATUSES: [Status; 4] =
    [Status::Affected, Status::NotAffected, Status::Fixed, Status::UnderInvestigation];

impl Written {
    fn index(format: Format, status: Status) -> (usize, usize) {
        let f = FORMATS.iter().position(|&x| x == format).unwrap_or(0);
        let s = STATUSES.iter().position(|&x| x == status).unwrap_or(0);
        (f, s)
    }

    /// Counts `n` statements of `format` with `status`.
    pub fn add(&mut self, format: Format, status: Status, n: u64) {
        let (f, s) = Written::index(format, status);
        self.0[f][s] += n;
    }

    /// Statements of `format` with `status`.
    pub fn get(&self, format: Format, status: Status) -> u64 {
        let (f, s) = Written::index(format, status);
        self.0[f][s]
    }

    /// All statements.
    pub fn total(&self) -> u64 {
        self.0.iter().flatten().sum()
    }
}

impl AddAssign for Written {
    fn add_assign(&mut self, o: Written) {
        for f in FORMATS {
            for s in STATUSES {
                self.add(f, s, o.get(f, s));
            }
        }
    }
}

impl Serialize for Written {
    /// `{"csaf": {"affected": 3, ...}, ...}`, non-zero counts only.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut outer = serde_json::Map::new();
        for f in FORMATS {
            let mut inner = serde_json::Map::new();
            for s in STATUSES {
                if self.get(f, s) > 0 {
                    inner.insert(s.as_str().to_owned(), self.get(f, s).into());
                }
            }
            if !inner.is_empty() {
                outer.insert(f.as_str().to_owned(), inner.into());
            }
        }
        let mut map = serializer.serialize_map(Some(outer.len()))?;
        for (k, v) in &outer {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Written, D::Error> {
        let raw: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
            Deserialize::deserialize(d)?;
        let mut w = Written::default();
        for (f, by_status) in raw {
            let Some(format) = Format::from_name(&f) else { continue };
            for (s, n) in by_status {
                if let Some(status) = Status::from_name(&s) {
                    w.add(format, status, n);
                }
            }
        }
        Ok(w)
    }
}

impl AddAssign for StatementStats {
    fn add_assign(&mut self, o: StatementStats) {
        self.evaluated += o.evaluated;
        self.backfilled += o.backfilled;
        self.claims_written += o.claims_written;
        self.skipped += o.skipped;
        self.failures += o.failures;
        self.written += o.written;
        self.dropped += o.dropped;
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
            ..StatementStats::default()
        };
        assert_eq!(
            s.to_string(),
            "Backfill completed: evaluated 450, backfilled 180, claims written 320, skipped 270, failures 0."
        );
    }

    #[test]
    fn add_assign_sums_every_counter() {
        let mut a = StatementStats {
            evaluated: 3,
            backfilled: 1,
            claims_written: 5,
            skipped: 1,
            failures: 1,
            ..StatementStats::default()
        };
        a.written.add(Format::OpenVex, Status::Fixed, 5);
        a.dropped.add(crate::normalize::DropReason::UnknownStatus, 2);
        a += a;
        assert_eq!(
            a,
            StatementStats {
                evaluated: 6,
                backfilled: 2,
                claims_written: 10,
                skipped: 2,
                failures: 2,
                written: a.written,
                dropped: a.dropped,
            }
        );
        assert_eq!(a.written.get(Format::OpenVex, Status::Fixed), 10);
        assert_eq!(a.dropped.unknown_status, 4);
        assert!(a.is_consistent());
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json["written"], serde_json::json!({"openvex": {"fixed": 10}}));
        assert_eq!(json["dropped"], serde_json::json!({"unknownStatus": 4}));
        let back: StatementStats = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }
}
