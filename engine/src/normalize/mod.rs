//! Normalizers: one parsed VEX document in, a list of [`Claim`]s out, and
//! an account of every entry of the document that did not become one.
//!
//! Every normalizer is a pure function of the document (`Send + Sync`, no
//! state across documents), so the pipeline runs them on rayon over a batch.
//! A document that parses and has a recognizable shape is normalized even
//! when it breaks its format's semantic rules; only what cannot be
//! interpreted at all is a [`NormalizeError`].
//!
//! # Entries, and the drop report
//!
//! An *entry* is one (statement, product) pair the document states, after
//! the format's own expansion:
//!
//! - CSAF: one element of one status list of `product_status`
//!   (`known_affected`, `first_fixed`, ...; not `recommended`, which states
//!   no status) of one `vulnerabilities[]` item, a product group id counting
//!   once per member. A relationship product is one product (its own id).
//! - CycloneDX: one `affects[]` item of one `vulnerabilities[]` item, or,
//!   when that item has a non-empty `versions` array, one element of it. A
//!   vulnerability without `affects` (a bill of vulnerabilities) states no
//!   entry.
//! - OpenVEX: one product of one statement, and each of its
//!   `subcomponents` (at any depth) once more.
//!
//! A defective statement that names no product at all (no product list, an
//! empty one, or one of the wrong type), or a statement, vulnerability or
//! list that is not even an object or array where one is required, counts
//! as one entry. Every entry the document states ends up either as a claim
//! or counted once in [`NormalizedDocument::dropped`] under one
//! [`DropReason`]:
//!
//! `entries = claims.len() + dropped.total()`
//!
//! A defect (unknown or missing status, no vulnerability id, no product id,
//! a reference that resolves to nothing) skips only the entries it touches
//! and leaves a [`DropNote`] saying where. Two entries about the same
//! vulnerability and product key become one claim (see [`resolve_claims`]):
//! the other is `superseded` (a later statement, or a repeat of the same
//! status) or a `contradiction` (another status, losing by the format's
//! rule; the winner lists the losing statuses in metadata
//! `conflictingStatuses`). A document fails only when nothing in it can be
//! recognized: it has defects and yields no claim (see [`normalize`]); a
//! well-formed document that states no entry has zero claims and no error.
//!
//! A JSON object with a repeated key takes the last value, as JavaScript,
//! Python, jq and serde_json do: every lookup goes through [`Fields`].
//!
//! # Layout
//!
//! One module per format ([`csaf`], [`cyclonedx`], [`openvex`]), each a
//! `normalize` function over a parsed document. What they share sits
//! beside them and is re-exported here: the claim types (`claim`), the
//! drop report (`drops`), the lookups above and the value readers
//! (`fields`), format detection (`format`) and [`resolve_claims`]
//! (`resolve`).

pub mod csaf;
pub mod cyclonedx;
pub mod openvex;

mod claim;
mod drops;
mod fields;
mod format;
mod resolve;
#[cfg(test)]
pub(crate) mod testutil;

pub use claim::{push_unique, Claim, Justification, Metadata, NormalizedDocument, Status};
pub(crate) use drops::{kind_of, quoted, Drops};
pub use drops::{DropNote, DropReason, Dropped, MAX_DROP_NOTES};
pub(crate) use fields::{distinct_fields, distinct_fields_into};
pub use fields::{elements, non_empty, non_empty_str, scalar_str, scalar_string, Fields};
pub use format::Format;
pub use resolve::{resolve_claims, Rule};

/// A parsed document as the normalizers read it: a view into simd-json's
/// tape, whose strings borrow the document buffer. Unlike a DOM it builds
/// no per-object hash map and frees nothing per node; objects are small, so
/// a linear key lookup costs less than hashing.
pub type Value<'a> = simd_json::tape::Value<'a, 'a>;

/// Why a parsed document could not be normalized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NormalizeError(pub String);

/// Deepest nesting a normalizer follows (CSAF branches, OpenVEX
/// subcomponents) before giving up, so hostile input cannot overflow the
/// stack.
pub const MAX_DEPTH: usize = 64;

/// Normalizes a parsed document of a known format.
///
/// A document whose entries were all dropped for defects (and so yields no
/// claim) is an error naming the first defect: nothing in it could be
/// recognized, and the pipeline retries a failed document on the next run.
pub fn normalize(format: Format, doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    if !doc.is_object() {
        return Err(NormalizeError("document is not a JSON object".into()));
    }
    let d = match format {
        Format::Csaf => csaf::normalize(doc),
        Format::CycloneDx => cyclonedx::normalize(doc),
        Format::OpenVex => openvex::normalize(doc),
    }?;
    if d.claims.is_empty() && d.dropped.defects() > 0 {
        return Err(NormalizeError(nothing_recognized(&d)));
    }
    Ok(d)
}

/// The error of a document whose every entry was dropped for a defect.
fn nothing_recognized(d: &NormalizedDocument) -> String {
    use std::fmt::Write as _;
    let counts: Vec<String> = DropReason::ALL
        .into_iter()
        .filter(|&r| d.dropped.get(r) > 0)
        .map(|r| format!("{r} {}", d.dropped.get(r)))
        .collect();
    let mut s = format!(
        "no statement could be read ({} entries dropped: {})",
        d.dropped.total(),
        counts.join(", ")
    );
    if let Some(n) = d.notes.first() {
        let _ = write!(s, "; first at {}: {}", n.at, n.detail);
    }
    s
}

type Xxh3Build = std::hash::BuildHasherDefault<crate::dedupe::Xxh3Hasher>;

/// A hash map for the normalizers' per-document indexes: their keys are
/// the document's own strings, hashed many times per document, for which
/// xxh3 is much cheaper than the default SipHash (no DoS concern: a map
/// lives for one document).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Xxh3Build>;

/// The set counterpart of [`FastMap`].
pub(crate) type FastSet<T> = std::collections::HashSet<T, Xxh3Build>;

#[cfg(test)]
mod tests {
    use super::testutil::with_doc;
    use super::*;

    #[test]
    fn a_document_with_only_defects_fails_and_says_why() {
        let json = r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
            {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"},{"@id":"q"}],"status":"unknown"}]}"#;
        let e = with_doc(json, |d| normalize(Format::OpenVex, d)).unwrap_err();
        assert_eq!(
            e.0,
            r#"no statement could be read (2 entries dropped: unknownStatus 2); first at statements[0]: unknown status "unknown""#
        );
        // Zero statements, no defect: fine.
        let json = r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#;
        assert!(with_doc(json, |d| normalize(Format::OpenVex, d)).unwrap().claims.is_empty());
    }

    /// `v` with every object's keys in order, so blessed files read the
    /// same whichever serde_json features the build unified.
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::Object(m) => {
                let m: std::collections::BTreeMap<String, J> =
                    m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                J::Object(m.into_iter().collect())
            }
            J::Array(a) => J::Array(a.into_iter().map(sorted).collect()),
            other => other,
        }
    }

    /// Golden files: `testdata/golden/<format>/<name>.json` is normalized
    /// and compared with `<name>.expected.json` beside it. `BLESS=1`
    /// rewrites the expected files (review the diff before committing).
    #[test]
    fn golden_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden");
        let bless = std::env::var_os("BLESS").is_some();
        let mut checked = 0;
        let mut failed = Vec::new();
        for format in [Format::Csaf, Format::CycloneDx, Format::OpenVex] {
            let dir = root.join(format.as_str());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                if !name.ends_with(".json") || name.ends_with(".expected.json") {
                    continue;
                }
                let mut bytes = std::fs::read(&path).unwrap();
                let tape = simd_json::to_tape(&mut bytes)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let doc = tape.as_value();
                assert_eq!(
                    Format::detect(doc),
                    Some(format),
                    "{}: detected format",
                    path.display()
                );
                let actual = match normalize(format, doc) {
                    Ok(d) => serde_json::to_value(&d).unwrap(),
                    Err(e) => serde_json::json!({ "error": e.0 }),
                };
                let expected_path = path.with_file_name(name.replace(".json", ".expected.json"));
                if bless {
                    let text = serde_json::to_string_pretty(&sorted(actual)).unwrap() + "\n";
                    std::fs::write(&expected_path, text).unwrap();
                } else {
                    let text = std::fs::read_to_string(&expected_path)
                        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
                    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if expected != actual {
                        failed.push(format!(
                            "{}\n--- expected\n{}\n--- actual\n{}",
                            path.display(),
                            serde_json::to_string_pretty(&expected).unwrap(),
                            serde_json::to_string_pretty(&actual).unwrap()
                        ));
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 0, "no golden files under {}", root.display());
        assert!(failed.is_empty(), "golden mismatches:\n{}", failed.join("\n\n"));
    }
}
