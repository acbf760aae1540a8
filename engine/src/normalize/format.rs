//! The three formats, and detecting one from a parsed document by the
//! marker each format requires.

use std::fmt;

use serde::Serialize;
use simd_json::prelude::*;

use super::{elements, Fields, Value};

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

    /// Detects the format from a parsed document, by the marker each format
    /// requires, in this order: CycloneDX by `bomFormat`; OpenVEX by an
    /// `@context` under `openvex.dev/ns`, at the top or in a top-level
    /// `metadata` object (Canonical's feed wraps the document fields so);
    /// CSAF by a `document` object carrying `category` or `csaf_version`.
    /// Only a document with none of the three markers is recognized by
    /// structure: OpenVEX when `statements` holds an object carrying
    /// `vulnerability`, `products` and `status` (some generators write
    /// `"@context": ""`). So a document of one format that also carries
    /// another's fields is still its own format: a CycloneDX BOM with an
    /// OpenVEX `@context`, or a CSAF document with `statements`.
    pub fn detect(doc: Value<'_>) -> Option<Format> {
        if doc.field_str("bomFormat").is_some_and(|f| f.trim().eq_ignore_ascii_case("cyclonedx")) {
            return Some(Format::CycloneDx);
        }
        let openvex_context = |v: Value<'_>| v.field("@context").is_some_and(is_openvex_context);
        if openvex_context(doc) || doc.field("metadata").is_some_and(openvex_context) {
            return Some(Format::OpenVex);
        }
        if let Some(d) = doc.field("document") {
            if d.field("csaf_version").is_some() || d.field_str("category").is_some() {
                return Some(Format::Csaf);
            }
        }
        let statement = |s: Value<'_>| {
            ["vulnerability", "products", "status"].iter().all(|k| s.field(k).is_some())
        };
        if elements(doc.field("statements")).any(statement) {
            return Some(Format::OpenVex);
        }
        None
    }
}

/// Whether an `@context` (a string, or a list of them) names the OpenVEX
/// namespace.
fn is_openvex_context(ctx: Value<'_>) -> bool {
    let is_openvex = |s: &str| s.contains("openvex.dev/ns");
    match ctx.as_str() {
        Some(s) => is_openvex(s),
        None => ctx
            .as_array()
            .is_some_and(|a| a.iter().filter_map(ValueIntoString::into_string).any(is_openvex)),
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::with_doc;

    fn detect(json: &str) -> Option<Format> {
        with_doc(json, Format::detect)
    }

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(r#"{"bomFormat":"CycloneDX"}"#), Some(Format::CycloneDx));
        assert_eq!(
            detect(r#"{"@context":"https://openvex.dev/ns/v0.2.0"}"#),
            Some(Format::OpenVex)
        );
        assert_eq!(detect(r#"{"document":{"category":"csaf_vex"}}"#), Some(Format::Csaf));
        assert_eq!(detect("{}"), None);
        assert_eq!(detect(r#"{"@context":"https://schema.org"}"#), None);
        // Canonical's wrapper, and an empty context with OpenVEX statements.
        assert_eq!(
            detect(r#"{"metadata":{"@context":"https://openvex.dev/ns/v0.2.0"},"statements":[]}"#),
            Some(Format::OpenVex)
        );
        let st = r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"}],"status":"fixed"}"#;
        assert_eq!(
            detect(&format!(r#"{{"@context":"","statements":[1,{st}]}}"#)),
            Some(Format::OpenVex)
        );
        // Statements that lack one of the three keys are not OpenVEX.
        assert_eq!(detect(r#"{"statements":[{"vulnerability":"CVE-1","status":"fixed"}]}"#), None);
        assert_eq!(detect(r#"{"statements":{"vulnerability":1,"products":2,"status":3}}"#), None);
    }

    #[test]
    fn detection_is_unambiguous_against_look_alikes() {
        let st = r#"{"vulnerability":"CVE-1","products":["p"],"status":"fixed"}"#;
        // A CycloneDX BOM carrying an OpenVEX context, statements and a CSAF
        // `document`: its required bomFormat decides.
        assert_eq!(
            detect(&format!(
                r#"{{"bomFormat":"CycloneDX","@context":"https://openvex.dev/ns/v0.2.0",
                    "document":{{"category":"csaf_vex"}},"statements":[{st}]}}"#
            )),
            Some(Format::CycloneDx)
        );
        // An OpenVEX document with a CSAF-like `document` object.
        assert_eq!(
            detect(&format!(
                r#"{{"@context":"https://openvex.dev/ns/v0.2.0","document":{{"csaf_version":"2.0"}},
                    "statements":[{st}]}}"#
            )),
            Some(Format::OpenVex)
        );
        // A CSAF document with OpenVEX-shaped statements and a metadata
        // object (no OpenVEX context): CSAF.
        assert_eq!(
            detect(&format!(
                r#"{{"document":{{"category":"csaf_vex"}},"metadata":{{"@context":""}},
                    "statements":[{st}]}}"#
            )),
            Some(Format::Csaf)
        );
        // bomFormat with another value is not CycloneDX.
        assert_eq!(
            detect(r#"{"bomFormat":"SPDX","document":{"category":"x"}}"#),
            Some(Format::Csaf)
        );
    }
}
