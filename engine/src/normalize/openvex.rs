//! OpenVEX normalizer: v0.2.0 and the legacy v0.0.1 shapes.
//!
//! Legacy documents give `vulnerability` as a string and `products` as a
//! list of strings; current ones use objects (`{"name", "aliases"}` and
//! `{"@id", "identifiers", "subcomponents"}`). Both are read here. The
//! document fields (`@id`, `version`, `timestamp`) are read at the top, as
//! the specification places them, else from a top-level `metadata` object,
//! where Canonical's feed puts them. Timestamps are RFC 3339, or a date and
//! time without offset (UTC, with or without a ` UTC` suffix, as Canonical
//! writes them); an unreadable statement timestamp falls back to the
//! document's, as an absent one does.
//!
//! Each product, and each of its subcomponents, is one entry (see the
//! `normalize` module) and yields its own claim, keyed on its own purl,
//! else CPE, else `@id`, with the parent product in metadata. Status words
//! match in any letter case. A statement whose vulnerability has no id,
//! whose status is missing, not a string or unknown, or that names no
//! product, is skipped (all its entries counted, one note); a product
//! without any identifier is skipped alone. Within a document a later
//! statement (by timestamp, then position) about the same vulnerability
//! and product replaces an earlier one; when both have the same timestamp
//! and different statuses that is a contradiction: the later position still
//! wins, the other status is kept in `conflictingStatuses`.

use std::fmt::Write as _;

use simd_json::prelude::*;

use super::{
    elements, kind_of, non_empty_str, push_unique, quoted, resolve_claims, scalar_string, Claim,
    DropReason, Drops, Fields, Justification, NormalizeError, NormalizedDocument, Rule, Status,
    Value, MAX_DEPTH,
};

/// Normalizes one OpenVEX document.
pub fn normalize(doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    let statements = match doc.field("statements") {
        None => return Err(NormalizeError("OpenVEX document has no statements".into())),
        Some(s) => s
            .as_array()
            .ok_or_else(|| NormalizeError("OpenVEX statements is not an array".into()))?,
    };
    let metadata = doc.field("metadata").filter(|m| m.is_object());
    let doc_field = |k: &str| doc.field(k).or_else(|| metadata.field(k));
    let doc_time = doc_field("timestamp").and_then(|t| t.into_string()).and_then(parse_time);

    let mut reader =
        Reader { doc_time, claims: Vec::new(), times: Vec::new(), drops: Drops::default() };
    for (pos, st) in statements.iter().enumerate() {
        reader.statement(pos, st)?;
    }
    let Reader { claims, times, mut drops, .. } = reader;
    let claims = resolve_claims(claims, Rule::Latest(&times), &mut drops.dropped);

    Ok(NormalizedDocument {
        document_id: doc_field("@id")
            .and_then(|v| v.into_string())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        revision: doc_field("version").and_then(scalar_string),
        claims,
        dropped: drops.dropped,
        notes: drops.notes,
    })
}

/// One OpenVEX document being normalized: the claims so far, the time of
/// each, and the drop report. Each statement is read by
/// [`Reader::statement`] into it.
struct Reader {
    /// The document's `timestamp`: the time of a statement without one
    /// (or with one that cannot be read).
    doc_time: Option<i64>,
    claims: Vec<Claim>,
    /// The time of each claim, for `Rule::Latest`.
    times: Vec<Option<i64>>,
    drops: Drops,
}

impl Reader {
    /// Reads statement `pos`: a claim for each of its products and each of
    /// their subcomponents. A statement that cannot be read is a defect,
    /// counted with all the entries it names; only products nested deeper
    /// than [`MAX_DEPTH`] are an error.
    fn statement(&mut self, pos: usize, st: Value<'_>) -> Result<(), NormalizeError> {
        let at = || format!("statements[{pos}]");
        if !st.is_object() {
            self.drops.defect(DropReason::NoVulnerabilityId, 1, at, || {
                format!("statement is {}, not an object", kind_of(st))
            });
            return Ok(());
        }
        let [vulnerability, products, status, justification, impact, notes, statement, action, timestamp] =
            st.pick([
                "vulnerability",
                "products",
                "status",
                "justification",
                "impact_statement",
                "status_notes",
                "statement",
                "action_statement",
                "timestamp",
            ]);
        let Some((vuln_id, aliases)) = vulnerability.and_then(vulnerability_id) else {
            let entries = count_products(products)?.max(1);
            self.drops.defect(DropReason::NoVulnerabilityId, entries, at, || {
                "the statement names no vulnerability".to_owned()
            });
            return Ok(());
        };
        let status = match statement_status(status) {
            Ok(status) => status,
            Err(detail) => {
                let entries = count_products(products)?.max(1);
                self.drops.defect(DropReason::UnknownStatus, entries, at, || detail);
                return Ok(());
            }
        };
        let Some(list) = products.and_then(|p| p.as_array()).filter(|l| !l.is_empty()) else {
            self.drops.defect(DropReason::NoProductId, 1, at, || match products {
                None => "the statement names no product".to_owned(),
                Some(p) if p.is_array() => "the statement names no product".to_owned(),
                Some(p) => format!("products is {}, not a list", kind_of(p)),
            });
            return Ok(());
        };
        let time = non_empty_str(timestamp).and_then(parse_time).or(self.doc_time);
        let template = statement_template(
            (vuln_id, aliases, status),
            [justification, impact, notes, statement, action],
        );

        let (claims, times) = (&mut self.claims, &mut self.times);
        let mut emit = |c: Claim| {
            claims.push(c);
            times.push(time);
        };
        for (k, product) in list.iter().enumerate() {
            let path = |s: &mut String| {
                let _ = write!(s, "statements[{pos}].products[{k}]");
            };
            add_product(product, &template, None, 1, &path, &mut self.drops, &mut emit)?;
        }
        Ok(())
    }
}

/// The claim every product of a statement starts from: the vulnerability
/// (id and aliases), the status, and the statement's justification,
/// detail and action; each product sets its key and purl.
fn statement_template(
    (vuln_id, aliases, status): (String, Vec<String>, Status),
    [justification, impact, notes, statement, action]: [Option<Value<'_>>; 5],
) -> Claim {
    let notes = non_empty_str(notes);
    let mut template = Claim::new(vuln_id, String::new(), status);
    template.aliases = aliases;
    if let Some(j) = non_empty_str(justification) {
        template.justification = Justification::from_cisa(j);
        template.metadata.insert("justification", j.to_owned());
    }
    template.detail =
        non_empty_str(impact).or(notes).or_else(|| non_empty_str(statement)).map(str::to_owned);
    template.action = non_empty_str(action).map(str::to_owned);
    if let Some(sn) = notes {
        template.metadata.insert("statusNotes", sn.to_owned());
    }
    template
}

/// The status of a statement, or what is wrong with it.
fn statement_status(status: Option<Value<'_>>) -> Result<Status, String> {
    let Some(v) = status else {
        return Err("the statement has no status".to_owned());
    };
    let Some(word) = v.into_string() else {
        return Err(format!("status is {}, not a string", kind_of(v)));
    };
    Status::from_name(word.trim()).ok_or_else(|| format!("unknown status {}", quoted(word)))
}

/// The vulnerability id and aliases of a statement's `vulnerability`:
/// `"CVE-…"` (legacy) or `{"name", "@id", "aliases"}`.
fn vulnerability_id(v: Value<'_>) -> Option<(String, Vec<String>)> {
    if let Some(s) = v.into_string() {
        let s = s.trim();
        return (!s.is_empty()).then(|| (s.to_owned(), Vec::new()));
    }
    let [name, id, alias_list] = v.pick(["name", "@id", "aliases"]);
    let id = non_empty_str(id);
    let name = non_empty_str(name).or(id)?;
    let mut aliases = Vec::new();
    for a in elements(alias_list) {
        if let Some(a) = a.into_string().map(str::trim).filter(|a| !a.is_empty() && *a != name) {
            push_unique(&mut aliases, a);
        }
    }
    if let Some(id) = id.filter(|id| *id != name) {
        push_unique(&mut aliases, id);
    }
    Some((name.to_owned(), aliases))
}

/// Key and purl of a product (its `@id` and `identifiers` given): the purl
/// (from `identifiers.purl` or an `@id` that is one), else the CPE, else
/// the `@id`. A legacy product is a string, its id.
fn product_identity<'a>(
    p: Value<'a>,
    id: Option<Value<'a>>,
    identifiers: Option<Value<'a>>,
) -> Option<(String, Option<String>)> {
    if let Some(s) = p.into_string() {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let purl = s.starts_with("pkg:").then(|| s.to_owned());
        return Some((s.to_owned(), purl));
    }
    let id = non_empty_str(id);
    let [purl, cpe23, cpe22] = identifiers.pick(["purl", "cpe23", "cpe22"]);
    let purl = non_empty_str(purl).or_else(|| id.filter(|s| s.starts_with("pkg:")));
    if let Some(purl) = purl {
        return Some((purl.to_owned(), Some(purl.to_owned())));
    }
    let cpe = non_empty_str(cpe23)
        .or_else(|| non_empty_str(cpe22))
        .or_else(|| id.filter(|s| s.starts_with("cpe:")));
    let key = cpe.or(id)?;
    Some((key.to_owned(), None))
}

/// Entries of a `products` list: each product and each subcomponent at any
/// depth (what a skipped statement drops).
fn count_products(products: Option<Value<'_>>) -> Result<u64, NormalizeError> {
    fn count(p: Value<'_>, depth: usize) -> Result<u64, NormalizeError> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut n = 1;
        for sub in elements(p.field("subcomponents")) {
            n += count(sub, depth + 1)?;
        }
        Ok(n)
    }
    elements(products).map(|p| count(p, 1)).sum()
}

fn too_deep() -> NormalizeError {
    NormalizeError(format!("OpenVEX subcomponents nested deeper than {MAX_DEPTH}"))
}

/// Emits the claim of product `p` and of each of its subcomponents; a
/// product without any identifier is dropped (its subcomponents still
/// count on their own). `path` writes where `p` is, for a note.
fn add_product(
    p: Value<'_>,
    template: &Claim,
    parent: Option<&str>,
    depth: usize,
    path: &dyn Fn(&mut String),
    drops: &mut Drops,
    emit: &mut dyn FnMut(Claim),
) -> Result<(), NormalizeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let [id, identifiers, subcomponents] = p.pick(["@id", "identifiers", "subcomponents"]);
    let subcomponents = subcomponents.and_then(|s| s.as_array()).filter(|s| !s.is_empty());
    // The key, kept for the subcomponents' claims when there are any.
    let mut own_key = None;
    match product_identity(p, id, identifiers) {
        Some((key, purl)) => {
            let mut claim = template.clone();
            claim.product_key = match subcomponents {
                Some(_) => own_key.insert(key).clone(),
                None => key,
            };
            claim.purl = purl;
            if let Some(parent) = parent {
                claim.metadata.insert("parentProduct", parent.to_owned());
            }
            emit(claim);
        }
        None => drops.defect(
            DropReason::NoProductId,
            1,
            || {
                let mut s = String::new();
                path(&mut s);
                s
            },
            || match p.into_string() {
                Some(_) => "the product id is empty".to_owned(),
                None if p.is_object() => "the product has no @id and no identifiers".to_owned(),
                None => format!("the product is {}, not an object", kind_of(p)),
            },
        ),
    }
    let parent = own_key.as_deref();
    for (j, sub) in subcomponents.into_iter().flat_map(|s| s.iter()).enumerate() {
        let sub_path = |s: &mut String| {
            path(s);
            let _ = write!(s, ".subcomponents[{j}]");
        };
        add_product(sub, template, parent, depth + 1, &sub_path, drops, emit)?;
    }
    Ok(())
}

/// A statement or document time as Unix microseconds (see module docs);
/// `None` when unreadable.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix("UTC").map_or(s, str::trim_end);
    crate::time::parse_instant(s)
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
    fn one_bad_statement_skips_only_itself() {
        // Modeled on Canonical's feed: three statements, the second with a
        // status no OpenVEX version has; the other two are written.
        let d = run(
            r#"{"metadata":{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://ex/CVE-1",
            "timestamp":"2024-12-18T16:54:46.792568","version":3},
          "statements":[
            {"vulnerability":{"name":"CVE-1"},"timestamp":"2019-10-23 18:15:00 UTC",
             "products":[{"@id":"pkg:deb/ubuntu/a@1"},{"@id":"pkg:deb/ubuntu/b@1"}],"status":"fixed"},
            {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:deb/ubuntu/c@1"},{"@id":"pkg:deb/ubuntu/d@1"}],
             "status":"unknown"},
            {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:deb/ubuntu/e@1"}],"status":"NOT_AFFECTED",
             "justification":"Vulnerable_Code_Not_Present"}]}"#,
        );
        assert_eq!(d.document_id.as_deref(), Some("https://ex/CVE-1"));
        assert_eq!(d.revision.as_deref(), Some("3"));
        let got: Vec<_> = d.claims.iter().map(|c| (c.product_key.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                ("pkg:deb/ubuntu/a@1", Status::Fixed),
                ("pkg:deb/ubuntu/b@1", Status::Fixed),
                ("pkg:deb/ubuntu/e@1", Status::NotAffected)
            ]
        );
        assert_eq!(d.claims[2].justification, Some(Justification::VulnerableCodeNotPresent));
        assert_eq!(d.dropped.unknown_status, 2);
        assert_eq!(d.notes.len(), 1);
        assert_eq!(
            (d.notes[0].at.as_str(), d.notes[0].detail.as_str(), d.notes[0].entries),
            ("statements[1]", r#"unknown status "unknown""#, 2)
        );
    }

    #[test]
    fn every_statement_defect_is_counted_with_its_entries() {
        let d = run(r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
            {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p","subcomponents":[{"@id":"s1"},{"@id":"s2"}]}]},
            {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"}],"status":7},
            {"vulnerability":{"name":""},"products":[{"@id":"p"},{"@id":"q"}],"status":"fixed"},
            {"products":[{"@id":"p"}],"status":"fixed"},
            {"vulnerability":"CVE-2","status":"fixed"},
            {"vulnerability":"CVE-2","products":"p","status":"fixed"},
            {"vulnerability":"CVE-2","products":[{"@id":""},"",{"identifiers":{}},7,
               {"@id":"","subcomponents":[{"@id":"pkg:apk/wolfi/x@1"}]}],"status":"fixed"},
            "not a statement",
            {"vulnerability":"CVE-3","products":["ok"],"status":"affected"}]}"#);
        let got: Vec<_> = d.claims.iter().map(|c| c.product_key.as_str()).collect();
        assert_eq!(got, ["pkg:apk/wolfi/x@1", "ok"]);
        // The subcomponent of a product without an id has no parent.
        assert!(!d.claims[0].metadata.contains_key("parentProduct"));
        let want = crate::normalize::Dropped {
            // Product p and its two subcomponents; one product.
            unknown_status: 3 + 1,
            // Two products; one product; not an object.
            no_vulnerability_id: 2 + 1 + 1,
            // No products; not a list; five products without an id.
            no_product_id: 1 + 1 + 5,
            ..Default::default()
        };
        assert_eq!(d.dropped, want);
        let notes: Vec<_> = d.notes.iter().map(|n| (n.at.as_str(), n.detail.as_str())).collect();
        assert_eq!(
            notes,
            [
                ("statements[0]", "the statement has no status"),
                ("statements[1]", "status is a number, not a string"),
                ("statements[2]", "the statement names no vulnerability"),
                ("statements[3]", "the statement names no vulnerability"),
                ("statements[4]", "the statement names no product"),
                ("statements[5]", "products is a string, not a list"),
                ("statements[6].products[0]", "the product has no @id and no identifiers"),
                ("statements[6].products[1]", "the product id is empty"),
                ("statements[6].products[2]", "the product has no @id and no identifiers"),
                ("statements[6].products[3]", "the product is a number, not an object"),
                ("statements[6].products[4]", "the product has no @id and no identifiers"),
                ("statements[7]", "statement is a string, not an object"),
            ]
        );
    }

    #[test]
    fn same_time_disagreement_is_a_contradiction_later_time_supersedes() {
        let d = run(r#"{"timestamp":"2024-03-01T00:00:00Z","statements":[
            {"vulnerability":"CVE-1","products":["p"],"status":"affected"},
            {"vulnerability":"CVE-1","products":["p"],"status":"not_affected","justification":"component_not_present"},
            {"vulnerability":"CVE-2","products":["p"],"status":"affected","timestamp":"2024-01-01T00:00:00Z"},
            {"vulnerability":"CVE-2","products":["p"],"status":"fixed","timestamp":"2024-02-01T00:00:00Z"},
            {"vulnerability":"CVE-3","products":["p"],"status":"fixed","timestamp":"not a time"},
            {"vulnerability":"CVE-3","products":["p"],"status":"fixed"}]}"#);
        let by = |v: &str| d.claims.iter().find(|c| c.vulnerability_id == v).unwrap();
        // Same (document) time: the later position wins, the other status
        // is kept and counted as a contradiction.
        assert_eq!(by("CVE-1").status, Status::NotAffected);
        assert_eq!(by("CVE-1").metadata["conflictingStatuses"], "affected");
        // Different times: superseded, no conflict recorded.
        assert_eq!(by("CVE-2").status, Status::Fixed);
        assert!(!by("CVE-2").metadata.contains_key("conflictingStatuses"));
        // An unreadable timestamp inherits the document's: a repeat.
        assert_eq!((d.dropped.contradiction, d.dropped.superseded), (1, 2));
    }

    #[test]
    fn canonical_timestamps_parse() {
        assert_eq!(parse_time("2019-10-23 18:15:00 UTC"), parse_time("2019-10-23T18:15:00Z"));
        assert_eq!(
            parse_time("2024-12-18T16:54:46.792568"),
            parse_time("2024-12-18T16:54:46.792568Z")
        );
        assert!(parse_time("2024-12-18T16:54:46.792568").is_some());
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn missing_statements_is_an_error() {
        let mut b = br#"{"@context":"https://openvex.dev/ns"}"#.to_vec();
        let v = simd_json::to_tape(&mut b).unwrap();
        assert!(normalize(v.as_value()).is_err());
    }
}
