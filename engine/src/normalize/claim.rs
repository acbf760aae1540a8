//! What a normalizer produces: [`Claim`]s with their [`Status`],
//! [`Justification`] and [`Metadata`], gathered in a
//! [`NormalizedDocument`].

use std::borrow::Cow;
use std::ops::Index;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{DropNote, Dropped};

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

    /// Parses a stored or OpenVEX status value, in any letter case (some
    /// generators write `NOT_AFFECTED`).
    pub fn from_name(s: &str) -> Option<Status> {
        [Status::Affected, Status::NotAffected, Status::Fixed, Status::UnderInvestigation]
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Rank when one product has contradicting statuses in one document
    /// (SPEC): affected > fixed > under_investigation > not_affected.
    pub fn precedence(self) -> u8 {
        match self {
            Status::Affected => 3,
            Status::Fixed => 2,
            Status::UnderInvestigation => 1,
            Status::NotAffected => 0,
        }
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
    /// flag labels), in any letter case. Anything else is `None`.
    pub fn from_cisa(s: &str) -> Option<Justification> {
        [
            Justification::ComponentNotPresent,
            Justification::VulnerableCodeNotPresent,
            Justification::VulnerableCodeNotInExecutePath,
            Justification::VulnerableCodeCannotBeControlledByAdversary,
            Justification::InlineMitigationsAlreadyExist,
        ]
        .into_iter()
        .find(|j| j.as_str().eq_ignore_ascii_case(s))
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
    /// Empty, with room for `n` entries: a claim's metadata is built once
    /// and never grows after, so sizing it saves memory on documents of
    /// millions of claims (an unsized vector starts at four entries).
    pub fn with_capacity(n: usize) -> Metadata {
        Metadata(Vec::with_capacity(n))
    }

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

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(self.0.remove(i).1)
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
    /// Entries of the document that did not become a claim, by reason:
    /// every entry the document states is either in `claims` or counted
    /// here.
    #[serde(skip_serializing_if = "Dropped::is_empty")]
    pub dropped: Dropped,
    /// What was dropped for a defect, and where (the first
    /// [`MAX_DROP_NOTES`](super::MAX_DROP_NOTES); the rest are only counted), for the pipeline to
    /// log with the document's digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<DropNote>,
}

/// Pushes `s` onto `list` unless it is already there (keeps first-seen
/// order; lists here are short).
pub fn push_unique(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn status_and_justification_words_match_in_any_case() {
        assert_eq!(Status::from_name("NOT_AFFECTED"), Some(Status::NotAffected));
        assert_eq!(Status::from_name("Under_Investigation"), Some(Status::UnderInvestigation));
        assert_eq!(Status::from_name("unknown"), None);
        assert_eq!(Status::from_name("not affected"), None);
        assert_eq!(
            Justification::from_cisa("Component_Not_Present"),
            Some(Justification::ComponentNotPresent)
        );
    }
}
