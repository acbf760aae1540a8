//! Normalizers: one parsed VEX document in, a list of [`Claim`]s out.
//!
//! Every normalizer is a pure function of the document (`Send + Sync`, no
//! state across documents), so the pipeline runs them on rayon over a batch.
//! A document that parses and has a recognizable shape is normalized even
//! when it breaks its format's semantic rules; only what cannot be
//! interpreted at all is a [`NormalizeError`].

pub mod csaf;
pub mod cyclonedx;
pub mod openvex;

use std::borrow::Cow;
use std::fmt;
use std::ops::Index;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use simd_json::prelude::*;

/// A parsed document as the normalizers read it: a view into simd-json's
/// tape, whose strings borrow the document buffer. Unlike a DOM it builds
/// no per-object hash map and frees nothing per node; objects are small, so
/// a linear key lookup costs less than hashing.
pub type Value<'a> = simd_json::tape::Value<'a, 'a>;

/// The three VEX formats the engine understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CSAF 2.0 (`csaf_vex`, or any CSAF document with `product_status`).
    Csaf,
    /// CycloneDX 1.4–1.6 with `vulnerabilities[]`.
    CycloneDx,
    /// OpenVEX, v0.2.0 and the legacy v0.0.1 shapes.
    OpenVex,
}

impl Format {
    /// The name used in envelopes and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csaf => "csaf",
            Format::CycloneDx => "cyclonedx",
            Format::OpenVex => "openvex",
        }
    }

    /// Parses an envelope's `format` field (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        if name.eq_ignore_ascii_case("csaf") {
            Some(Format::Csaf)
        } else if name.eq_ignore_ascii_case("cyclonedx") {
            Some(Format::CycloneDx)
        } else if name.eq_ignore_ascii_case("openvex") {
            Some(Format::OpenVex)
        } else {
            None
        }
    }

    /// Detects the format from a parsed document: CycloneDX by `bomFormat`,
    /// OpenVEX by an `@context` under `openvex.dev/ns`, CSAF by a `document`
    /// object carrying `category` or `csaf_version`.
    pub fn detect(doc: Value<'_>) -> Option<Format> {
        if doc.get_str("bomFormat").is_some_and(|f| f.eq_ignore_ascii_case("cyclonedx")) {
            return Some(Format::CycloneDx);
        }
        if let Some(ctx) = doc.get("@context") {
            let is_openvex = |s: &str| s.contains("openvex.dev/ns");
            let hit = match ctx.as_str() {
                Some(s) => is_openvex(s),
                None => ctx.as_array().is_some_and(|a| {
                    a.iter().filter_map(ValueIntoString::into_string).any(is_openvex)
                }),
            };
            if hit {
                return Some(Format::OpenVex);
            }
        }
        if let Some(d) = doc.get("document") {
            if d.get("csaf_version").is_some() || d.get_str("category").is_some() {
                return Some(Format::Csaf);
            }
        }
        None
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalized VEX status of a product with respect to a vulnerability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The product is affected.
    Affected,
    /// The product is not affected.
    NotAffected,
    /// The product contains a fix.
    Fixed,
    /// The supplier is still investigating.
    UnderInvestigation,
}

impl Status {
    /// The value stored in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Affected => "affected",
            Status::NotAffected => "not_affected",
            Status::Fixed => "fixed",
            Status::UnderInvestigation => "under_investigation",
        }
    }

    /// Parses a stored or OpenVEX status value.
    pub fn from_name(s: &str) -> Option<Status> {
        Some(match s {
            "affected" => Status::Affected,
            "not_affected" => Status::NotAffected,
            "fixed" => Status::Fixed,
            "under_investigation" => Status::UnderInvestigation,
            _ => return None,
        })
    }
}

/// The five CISA "not affected" justifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    /// `component_not_present`
    ComponentNotPresent,
    /// `vulnerable_code_not_present`
    VulnerableCodeNotPresent,
    /// `vulnerable_code_not_in_execute_path`
    VulnerableCodeNotInExecutePath,
    /// `vulnerable_code_cannot_be_controlled_by_adversary`
    VulnerableCodeCannotBeControlledByAdversary,
    /// `inline_mitigations_already_exist`
    InlineMitigationsAlreadyExist,
}

impl Justification {
    /// The value stored in `justification`.
    pub fn as_str(self) -> &'static str {
        match self {
            Justification::ComponentNotPresent => "component_not_present",
            Justification::VulnerableCodeNotPresent => "vulnerable_code_not_present",
            Justification::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            Justification::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            Justification::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
        }
    }

    /// Parses one of the five CISA values (as used by OpenVEX and as CSAF
    /// flag labels). Anything else is `None`.
    pub fn from_cisa(s: &str) -> Option<Justification> {
        Some(match s {
            "component_not_present" => Justification::ComponentNotPresent,
            "vulnerable_code_not_present" => Justification::VulnerableCodeNotPresent,
            "vulnerable_code_not_in_execute_path" => Justification::VulnerableCodeNotInExecutePath,
            "vulnerable_code_cannot_be_controlled_by_adversary" => {
                Justification::VulnerableCodeCannotBeControlledByAdversary
            }
            "inline_mitigations_already_exist" => Justification::InlineMitigationsAlreadyExist,
            _ => return None,
        })
    }
}

/// One normalized statement: a document's claim about one vulnerability and
/// one product (or product version). The envelope fields (digest, provider,
/// source, retrieval time) are added by the pipeline, not the normalizer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// CVE or other vulnerability id.
    pub vulnerability_id: String,
    /// Other ids of the same vulnerability, in document order, no repeats.
    pub aliases: Vec<String>,
    /// What makes the claim unique within its document: the product's purl,
    /// else its CPE, else its id in the document (see SPEC).
    pub product_key: String,
    /// The package URL the claim is about, when one is known.
    pub purl: Option<String>,
    /// Normalized status.
    pub status: Status,
    /// CISA justification, when the source gives one that maps.
    pub justification: Option<Justification>,
    /// Free-text detail (impact statement, analysis detail, notes).
    pub detail: Option<String>,
    /// Action statement / remediation.
    pub action: Option<String>,
    /// Severity from the document (CVSS rating or vendor severity).
    pub severity: Option<String>,
    /// Source values kept verbatim (original justification, platform,
    /// parent product, ...). Sorted keys so output is deterministic.
    pub metadata: Metadata,
}

impl Claim {
    /// A claim with the required fields set and everything else empty.
    pub fn new(
        vulnerability_id: impl Into<String>,
        product_key: impl Into<String>,
        status: Status,
    ) -> Claim {
        Claim {
            vulnerability_id: vulnerability_id.into(),
            aliases: Vec::new(),
            product_key: product_key.into(),
            purl: None,
            status,
            justification: None,
            detail: None,
            action: None,
            severity: None,
            metadata: Metadata::default(),
        }
    }
}

/// A claim's source values by name, in key order (so output is
/// deterministic). A sorted vector rather than a `BTreeMap`: a claim holds
/// a handful of entries whose names are constants, so this is one
/// allocation instead of a tree node plus one string per name, on the
/// hottest path of a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(Vec<(Cow<'static, str>, String)>);

impl Metadata {
    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: String) -> Option<String> {
        let key = key.into();
        match self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref())) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).map(String::as_str)
    }

    fn find(&self, key: &str) -> Option<&String> {
        let i = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(&self.0[i].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        <[_]>::iter(&self.0).map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        <[_]>::iter(&self.0).map(|(k, _)| k.as_ref())
    }
}

impl Index<&str> for Metadata {
    type Output = String;

    /// The value of `key`; panics when it has none (as `BTreeMap` does).
    fn index(&self, key: &str) -> &String {
        self.find(key).unwrap_or_else(|| panic!("no metadata {key:?}"))
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// What a normalizer returns for one document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NormalizedDocument {
    /// The document's own id (CSAF `tracking.id`, CycloneDX `serialNumber`,
    /// OpenVEX `@id`).
    pub document_id: Option<String>,
    /// The document's revision (CSAF `tracking.version`, CycloneDX
    /// `version`, OpenVEX `version`).
    pub revision: Option<String>,
    /// One claim per (vulnerability, product key), unique on that pair.
    pub claims: Vec<Claim>,
}

/// Why a parsed document could not be normalized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NormalizeError(pub String);

/// Deepest nesting a normalizer follows (CSAF branches, OpenVEX
/// subcomponents) before giving up, so hostile input cannot overflow the
/// stack.
pub const MAX_DEPTH: usize = 64;

/// Normalizes a parsed document of a known format.
pub fn normalize(format: Format, doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    if !doc.is_object() {
        return Err(NormalizeError("document is not a JSON object".into()));
    }
    match format {
        Format::Csaf => csaf::normalize(doc),
        Format::CycloneDx => cyclonedx::normalize(doc),
        Format::OpenVex => openvex::normalize(doc),
    }
}

/// Renders a scalar JSON value (string, number, bool) as a string; `None`
/// for null, arrays and objects. Versions and revisions come as either.
pub fn scalar_string(v: Value<'_>) -> Option<String> {
    scalar_str(v).map(Cow::into_owned)
}

/// [`scalar_string`], borrowing a string value from the document.
pub fn scalar_str(v: Value<'_>) -> Option<Cow<'_, str>> {
    if let Some(s) = v.into_string() {
        return Some(Cow::Borrowed(s));
    }
    if v.is_null() || v.is_array() || v.is_object() {
        return None;
    }
    Some(Cow::Owned(v.encode()))
}

/// The elements of an optional array; nothing when it is absent or not an
/// array.
pub fn elements<'a>(v: Option<Value<'a>>) -> impl Iterator<Item = Value<'a>> {
    v.and_then(|v| v.as_array()).into_iter().flat_map(|a| a.iter())
}

/// A non-empty string field of an object.
pub fn non_empty<'a>(v: Value<'a>, key: &str) -> Option<&'a str> {
    v.get(key).and_then(ValueIntoString::into_string).map(str::trim).filter(|s| !s.is_empty())
}

/// Pushes `s` onto `list` unless it is already there (keeps first-seen
/// order; lists here are short).
pub fn push_unique(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_owned());
    }
}

/// Keeps one claim per (vulnerability, product key): a later claim replaces
/// an earlier one at the earlier one's position. Normalizers call this last
/// so no claim is ever lost to the store's unique key.
pub fn dedupe_claims(mut claims: Vec<Claim>) -> Vec<Claim> {
    // For each claim, the index of the last claim with its key; keys are
    // borrowed, not cloned (this runs for every document).
    let mut last: Vec<usize> = (0..claims.len()).collect();
    {
        let mut index: std::collections::HashMap<(&str, &str), usize, Xxh3Build> =
            std::collections::HashMap::with_capacity_and_hasher(claims.len(), Xxh3Build::default());
        for (i, c) in claims.iter().enumerate() {
            match index.entry((c.vulnerability_id.as_str(), c.product_key.as_str())) {
                std::collections::hash_map::Entry::Occupied(o) => last[*o.get()] = i,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        if index.len() == claims.len() {
            return claims; // the common case: nothing repeated
        }
        // Flag first occurrences; the others are dropped below.
        for &first in index.values() {
            last[first] |= FIRST;
        }
    }
    let mut slots: Vec<Option<Claim>> = claims.drain(..).map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for &l in &last {
        if l & FIRST != 0 {
            if let Some(c) = slots[l & !FIRST].take() {
                out.push(c);
            }
        }
    }
    out
}

/// High bit marking a first occurrence in [`dedupe_claims`].
const FIRST: usize = 1 << (usize::BITS - 1);

type Xxh3Build = std::hash::BuildHasherDefault<crate::dedupe::Xxh3Hasher>;

/// A hash map for the normalizers' per-document indexes: their keys are
/// the document's own strings, hashed many times per document, for which
/// xxh3 is much cheaper than the default SipHash (no DoS concern: a map
/// lives for one document).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Xxh3Build>;

/// The set counterpart of [`FastMap`].
pub(crate) type FastSet<T> = std::collections::HashSet<T, Xxh3Build>;

/// Test helpers shared by the normalizers' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::PathBuf;

    /// `../shared/samples/<format>`, read in place; `None`, saying so, when
    /// it is absent.
    pub fn samples_dir(format: &str) -> Option<PathBuf> {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples").join(format);
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("SKIPPED: sample folder {} is absent", dir.display());
            None
        }
    }

    /// The statements expected from each sample of `format`, from
    /// `testdata/sample_claims.tsv` (where each number is justified).
    pub fn sample_claims(format: &str) -> Vec<(String, usize)> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample_claims.tsv");
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| f[0] == format)
            .map(|f| (f[1].to_owned(), f[2].parse().unwrap()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` of the parsed `json`.
    fn with_doc<T>(json: &str, f: impl FnOnce(Value<'_>) -> T) -> T {
        let mut bytes = json.as_bytes().to_vec();
        f(simd_json::to_tape(&mut bytes).unwrap().as_value())
    }

    #[test]
    fn metadata_keeps_key_order_and_last_value_like_a_sorted_map() {
        let mut m = Metadata::default();
        let mut reference = std::collections::BTreeMap::new();
        for (k, v) in [("ref", "a"), ("state", "b"), ("componentName", "c"), ("ref", "d")] {
            assert_eq!(m.insert(k, v.to_owned()), reference.insert(k, v.to_owned()));
        }
        m.insert(String::from("dynamic"), "e".to_owned());
        reference.insert("dynamic", "e".to_owned());
        assert_eq!(serde_json::to_string(&m).unwrap(), serde_json::to_string(&reference).unwrap());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["componentName", "dynamic", "ref", "state"]);
        assert_eq!((m.len(), m["ref"].as_str(), m.get("nope")), (4, "d", None));
        assert!(m.contains_key("state") && !Metadata::default().contains_key("state"));
    }

    #[test]
    fn detects_each_format() {
        let detect = |json| with_doc(json, Format::detect);
        assert_eq!(detect(r#"{"bomFormat":"CycloneDX"}"#), Some(Format::CycloneDx));
        assert_eq!(
            detect(r#"{"@context":"https://openvex.dev/ns/v0.2.0"}"#),
            Some(Format::OpenVex)
        );
        assert_eq!(detect(r#"{"document":{"category":"csaf_vex"}}"#), Some(Format::Csaf));
        assert_eq!(detect("{}"), None);
        assert_eq!(detect(r#"{"@context":"https://schema.org"}"#), None);
    }

    #[test]
    fn dedupe_keeps_position_of_first_and_value_of_last() {
        let a = Claim::new("CVE-1", "p", Status::Affected);
        let b = Claim::new("CVE-2", "p", Status::Affected);
        let c = Claim::new("CVE-1", "p", Status::Fixed);
        let out = dedupe_claims(vec![a, b, c]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status, Status::Fixed);
        assert_eq!(out[1].vulnerability_id, "CVE-2");
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
                    let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
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

    #[test]
    fn scalar_string_renders_numbers() {
        let v = |json| with_doc(json, |d| scalar_string(d.get("v").unwrap()));
        assert_eq!(v(r#"{"v":1}"#), Some("1".into()));
        assert_eq!(v(r#"{"v":"2"}"#), Some("2".into()));
        assert_eq!(v(r#"{"v":null}"#), None);
    }
}
