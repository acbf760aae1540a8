//! OpenVEX normalizer: v0.2.0 and the legacy v0.0.1 shapes.
//!
//! Legacy documents give `vulnerability` as a string and `products` as a
//! list of strings; current ones use objects (`{"name", "aliases"}` and
//! `{"@id", "identifiers", "subcomponents"}`). Both are read here. Each
//! subcomponent yields its own claim, keyed on its own id, with the parent
//! product in metadata. Within a document a later statement (by timestamp,
//! then position) about the same vulnerability and product replaces an
//! earlier one.

use simd_json::prelude::*;

use super::{
    dedupe_claims, elements, non_empty, push_unique, scalar_string, Claim, Justification,
    NormalizeError, NormalizedDocument, Status, Value, MAX_DEPTH,
};

/// Normalizes one OpenVEX document.
pub fn normalize(doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    let statements = match doc.get("statements") {
        None => return Err(NormalizeError("OpenVEX document has no statements".into())),
        Some(s) => s
            .as_array()
            .ok_or_else(|| NormalizeError("OpenVEX statements is not an array".into()))?,
    };
    let doc_time = non_empty(doc, "timestamp").map(parse_time);

    // (effective time, position, claim): sorted stably by time so that a
    // later statement wins in dedupe_claims; position breaks ties.
    let mut timed: Vec<(Option<i64>, usize, Claim)> = Vec::new();
    for (pos, st) in statements.iter().enumerate() {
        if !st.is_object() {
            return Err(NormalizeError(format!("OpenVEX statement {pos} is not an object")));
        }
        let time = non_empty(st, "timestamp").map(parse_time).or(doc_time);
        let (vuln_id, aliases) = vulnerability(st).ok_or_else(|| {
            NormalizeError(format!("OpenVEX statement {pos} has no vulnerability"))
        })?;
        let status_raw = non_empty(st, "status")
            .ok_or_else(|| NormalizeError(format!("OpenVEX statement {pos} has no status")))?;
        let status = Status::from_name(status_raw).ok_or_else(|| {
            NormalizeError(format!("OpenVEX statement {pos} has unknown status {status_raw:?}"))
        })?;
        let mut template = Claim::new(vuln_id, String::new(), status);
        template.aliases = aliases;
        if let Some(j) = non_empty(st, "justification") {
            template.justification = Justification::from_cisa(j);
            template.metadata.insert("justification", j.to_owned());
        }
        template.detail = non_empty(st, "impact_statement")
            .or_else(|| non_empty(st, "status_notes"))
            .or_else(|| non_empty(st, "statement"))
            .map(str::to_owned);
        template.action = non_empty(st, "action_statement").map(str::to_owned);
        if let Some(sn) = non_empty(st, "status_notes") {
            template.metadata.insert("statusNotes", sn.to_owned());
        }

        for product in elements(st.get("products")) {
            add_product(product, &template, None, 0, &mut |c| timed.push((time, pos, c)))?;
        }
    }
    // Stable sort by time (None first), then position is kept by stability.
    timed.sort_by_key(|(t, pos, _)| (*t, *pos));
    let claims = dedupe_claims(timed.into_iter().map(|(_, _, c)| c).collect());

    Ok(NormalizedDocument {
        document_id: non_empty(doc, "@id").map(str::to_owned),
        revision: doc.get("version").and_then(scalar_string),
        claims,
    })
}

/// The vulnerability id and aliases of a statement: `"CVE-…"` (legacy) or
/// `{"name", "@id", "aliases"}`.
fn vulnerability(st: Value<'_>) -> Option<(String, Vec<String>)> {
    let v = st.get("vulnerability")?;
    if let Some(s) = v.into_string() {
        let s = s.trim();
        return (!s.is_empty()).then(|| (s.to_owned(), Vec::new()));
    }
    let name = non_empty(v, "name").or_else(|| non_empty(v, "@id"))?;
    let mut aliases = Vec::new();
    for a in elements(v.get("aliases")) {
        if let Some(a) = a.into_string().map(str::trim).filter(|a| !a.is_empty() && *a != name) {
            push_unique(&mut aliases, a);
        }
    }
    if let Some(id) = non_empty(v, "@id").filter(|id| *id != name) {
        push_unique(&mut aliases, id);
    }
    Some((name.to_owned(), aliases))
}

/// Key and purl of a product: the purl (from `identifiers.purl` or an `@id`
/// that is one), else the CPE, else the `@id`.
fn product_identity(p: Value<'_>) -> Option<(String, Option<String>)> {
    if let Some(s) = p.into_string() {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let purl = s.starts_with("pkg:").then(|| s.to_owned());
        return Some((s.to_owned(), purl));
    }
    let id = non_empty(p, "@id");
    let ids = p.get("identifiers");
    let purl =
        ids.and_then(|i| non_empty(i, "purl")).or_else(|| id.filter(|s| s.starts_with("pkg:")));
    if let Some(purl) = purl {
        return Some((purl.to_owned(), Some(purl.to_owned())));
    }
    let cpe = ids
        .and_then(|i| non_empty(i, "cpe23").or_else(|| non_empty(i, "cpe22")))
        .or_else(|| id.filter(|s| s.starts_with("cpe:")));
    let key = cpe.or(id)?;
    Some((key.to_owned(), None))
}

fn add_product(
    p: Value<'_>,
    template: &Claim,
    parent: Option<&str>,
    depth: usize,
    emit: &mut dyn FnMut(Claim),
) -> Result<(), NormalizeError> {
    if depth > MAX_DEPTH {
        return Err(NormalizeError(format!(
            "OpenVEX subcomponents nested deeper than {MAX_DEPTH}"
        )));
    }
    // A product with no identity at all cannot be keyed; skip it rather
    // than invent a key.
    let Some((key, purl)) = product_identity(p) else {
        return Ok(());
    };
    let mut claim = template.clone();
    claim.product_key = key.clone();
    claim.purl = purl;
    if let Some(parent) = parent {
        claim.metadata.insert("parentProduct", parent.to_owned());
    }
    emit(claim);
    for sub in elements(p.get("subcomponents")) {
        add_product(sub, template, Some(&key), depth + 1, emit)?;
    }
    Ok(())
}

/// Statement time as Unix microseconds; an unparseable timestamp sorts as
/// absent rather than failing the document.
fn parse_time(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_micros()).unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: &str) -> NormalizedDocument {
        let mut b = json.as_bytes().to_vec();
        let v = simd_json::to_tape(&mut b).unwrap();
        normalize(v.as_value()).unwrap()
    }

    #[test]
    fn legacy_shape_string_vulnerability_and_products() {
        let d = run(r#"{"@context":"https://openvex.dev/ns","version":"1","statements":[
            {"vulnerability":"CVE-1","products":["pkg:apk/a@1","nginx"],"status":"fixed"}]}"#);
        assert_eq!(d.revision.as_deref(), Some("1"));
        assert_eq!(d.claims.len(), 2);
        assert_eq!(d.claims[0].purl.as_deref(), Some("pkg:apk/a@1"));
        assert_eq!(d.claims[1].product_key, "nginx");
        assert_eq!(d.claims[1].purl, None);
    }

    #[test]
    fn subcomponents_get_their_own_claims() {
        let d = run(r#"{"statements":[{"vulnerability":{"name":"CVE-1"},"status":"not_affected",
            "justification":"vulnerable_code_not_in_execute_path",
            "products":[{"@id":"pkg:oci/img","subcomponents":[{"@id":"pkg:apk/x@1"}]}]}]}"#);
        assert_eq!(d.claims.len(), 2);
        assert_eq!(d.claims[1].product_key, "pkg:apk/x@1");
        assert_eq!(d.claims[1].metadata["parentProduct"], "pkg:oci/img");
        assert_eq!(d.claims[1].justification, Some(Justification::VulnerableCodeNotInExecutePath));
    }

    #[test]
    fn later_statement_wins_by_timestamp_then_position() {
        let d = run(r#"{"timestamp":"2023-01-02T00:00:00Z","statements":[
            {"vulnerability":"CVE-1","products":["p"],"status":"fixed"},
            {"timestamp":"2023-01-01T00:00:00Z","vulnerability":"CVE-1","products":["p"],"status":"affected"},
            {"vulnerability":"CVE-2","products":["p"],"status":"affected"},
            {"vulnerability":"CVE-2","products":["p"],"status":"under_investigation"}]}"#);
        assert_eq!(d.claims.len(), 2);
        let by = |v: &str| d.claims.iter().find(|c| c.vulnerability_id == v).unwrap().status;
        // The statement dated 2023-01-01 is older than the document-dated one.
        assert_eq!(by("CVE-1"), Status::Fixed);
        assert_eq!(by("CVE-2"), Status::UnderInvestigation);
    }

    #[test]
    fn unknown_justification_kept_in_metadata_only() {
        let d = run(r#"{"statements":[{"vulnerability":"CVE-1","products":["p"],
            "status":"not_affected","justification":"because"}]}"#);
        assert_eq!(d.claims[0].justification, None);
        assert_eq!(d.claims[0].metadata["justification"], "because");
    }

    #[test]
    fn missing_statements_is_an_error() {
        let mut b = br#"{"@context":"https://openvex.dev/ns"}"#.to_vec();
        let v = simd_json::to_tape(&mut b).unwrap();
        assert!(normalize(v.as_value()).is_err());
    }
}
