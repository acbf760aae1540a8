//! The drop report's vocabulary: why an entry did not become a claim
//! ([`DropReason`]), the counts by reason ([`Dropped`]), the notes saying
//! where ([`DropNote`]), and [`Drops`], which a normalizer fills as it
//! reads a document.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use simd_json::prelude::*;

use super::Value;

/// Why an entry of a document (one product of one statement) was not
/// written as a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DropReason {
    /// The status is missing, not a string, or not a known word: an
    /// OpenVEX `status`, a CSAF `product_status` list name (or a
    /// `product_status` that is no object), a CycloneDX `analysis.state` or
    /// version `status`.
    UnknownStatus,
    /// The statement names no vulnerability id (or is not even an object):
    /// an OpenVEX `vulnerability`, a CSAF `cve`/`ids`, a CycloneDX
    /// `id`/`references`.
    NoVulnerabilityId,
    /// The product has no usable id (empty, missing, not a string), or the
    /// statement names no product: an OpenVEX product or `products`, a CSAF
    /// status list element (or a list that is no array), a CycloneDX
    /// `affects[].ref`, a version entry with neither `version` nor `range`.
    NoProductId,
    /// A reference (CSAF product id or group member, CycloneDX `ref`)
    /// resolves to nothing in the document.
    UnresolvedReference,
    /// A later statement about the same vulnerability and product replaced
    /// it (OpenVEX by timestamp, then position).
    Superseded,
    /// The same product had another status in the same document, which
    /// won by precedence (recorded in `conflictingStatuses`).
    Contradiction,
}

impl DropReason {
    /// Every reason, in report order.
    pub const ALL: [DropReason; 6] = [
        DropReason::UnknownStatus,
        DropReason::NoVulnerabilityId,
        DropReason::NoProductId,
        DropReason::UnresolvedReference,
        DropReason::Superseded,
        DropReason::Contradiction,
    ];

    /// The name used in reports and JSON (`unknownStatus`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownStatus => "unknownStatus",
            DropReason::NoVulnerabilityId => "noVulnerabilityId",
            DropReason::NoProductId => "noProductId",
            DropReason::UnresolvedReference => "unresolvedReference",
            DropReason::Superseded => "superseded",
            DropReason::Contradiction => "contradiction",
        }
    }

    /// Whether the reason is a defect of the document (logged), rather
    /// than a rule of the format resolving two entries into one.
    pub fn is_defect(self) -> bool {
        !matches!(self, DropReason::Superseded | DropReason::Contradiction)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Entries not written, counted by [`DropReason`]. Adds up with `+=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Dropped {
    /// [`DropReason::UnknownStatus`].
    pub unknown_status: u64,
    /// [`DropReason::NoVulnerabilityId`].
    pub no_vulnerability_id: u64,
    /// [`DropReason::NoProductId`].
    pub no_product_id: u64,
    /// [`DropReason::UnresolvedReference`].
    pub unresolved_reference: u64,
    /// [`DropReason::Superseded`].
    pub superseded: u64,
    /// [`DropReason::Contradiction`].
    pub contradiction: u64,
}

impl Dropped {
    /// Counts `n` entries dropped for `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let slot = match reason {
            DropReason::UnknownStatus => &mut self.unknown_status,
            DropReason::NoVulnerabilityId => &mut self.no_vulnerability_id,
            DropReason::NoProductId => &mut self.no_product_id,
            DropReason::UnresolvedReference => &mut self.unresolved_reference,
            DropReason::Superseded => &mut self.superseded,
            DropReason::Contradiction => &mut self.contradiction,
        };
        *slot += n;
    }

    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::UnknownStatus => self.unknown_status,
            DropReason::NoVulnerabilityId => self.no_vulnerability_id,
            DropReason::NoProductId => self.no_product_id,
            DropReason::UnresolvedReference => self.unresolved_reference,
            DropReason::Superseded => self.superseded,
            DropReason::Contradiction => self.contradiction,
        }
    }

    /// All entries dropped, whatever the reason.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }

    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Entries dropped for a defect of the document (everything but
    /// superseded and contradiction).
    pub fn defects(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| r.is_defect()).map(|&r| self.get(r)).sum()
    }
}

impl std::ops::AddAssign for Dropped {
    fn add_assign(&mut self, o: Dropped) {
        for r in DropReason::ALL {
            self.add(r, o.get(r));
        }
    }
}

impl Serialize for Dropped {
    /// The non-zero counts only, by reason name: `{"unknownStatus": 1}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let nonzero: Vec<DropReason> =
            DropReason::ALL.into_iter().filter(|&r| self.get(r) > 0).collect();
        let mut map = serializer.serialize_map(Some(nonzero.len()))?;
        for r in nonzero {
            map.serialize_entry(r.as_str(), &self.get(r))?;
        }
        map.end()
    }
}

/// One defect a normalizer skipped, for the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DropNote {
    /// Why.
    pub reason: DropReason,
    /// Where in the document, e.g. `statements[2]` or
    /// `vulnerabilities[0].product_status.fixed[3]`.
    pub at: String,
    /// What is wrong, e.g. `unknown status "NOT_AFFECTED"`.
    pub detail: String,
    /// How many entries (products) the defect dropped.
    pub entries: u64,
}

/// Notes kept per document; further defects are only counted.
pub const MAX_DROP_NOTES: usize = 20;

/// The drop report of one document as a normalizer builds it.
#[derive(Debug, Default)]
pub(crate) struct Drops {
    pub dropped: Dropped,
    pub notes: Vec<DropNote>,
}

impl Drops {
    /// Counts `entries` dropped for a defect and, while there is room,
    /// notes where and why. `at` and `detail` run only then, so nothing is
    /// formatted for a defect past [`MAX_DROP_NOTES`].
    pub fn defect(
        &mut self,
        reason: DropReason,
        entries: u64,
        at: impl FnOnce() -> String,
        detail: impl FnOnce() -> String,
    ) {
        debug_assert!(reason.is_defect());
        self.dropped.add(reason, entries);
        if self.notes.len() < MAX_DROP_NOTES {
            self.notes.push(DropNote { reason, at: at(), detail: detail(), entries });
        }
    }
}

/// `s` quoted for a note, cut at 80 characters (a hostile document can put
/// megabytes in a status).
pub(crate) fn quoted(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// What a JSON value is, for a note (`a number`, `an object`, ...).
pub(crate) fn kind_of(v: Value<'_>) -> &'static str {
    if v.is_null() {
        "null"
    } else if v.is_array() {
        "an array"
    } else if v.is_object() {
        "an object"
    } else if v.as_str().is_some() {
        "a string"
    } else if v.as_bool().is_some() {
        "a boolean"
    } else {
        "a number"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_stop_at_the_limit_but_counts_do_not() {
        let mut drops = Drops::default();
        for i in 0..MAX_DROP_NOTES + 5 {
            drops.defect(DropReason::NoProductId, 2, || format!("x[{i}]"), || "d".into());
        }
        assert_eq!(drops.notes.len(), MAX_DROP_NOTES);
        assert_eq!(drops.dropped.no_product_id, 2 * (MAX_DROP_NOTES as u64 + 5));
        assert_eq!(quoted(&"a".repeat(100)), format!("{:?}...", "a".repeat(80)));
    }
}
