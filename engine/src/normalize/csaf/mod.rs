//! CSAF 2.0 normalizer: `csaf_vex`, and any other CSAF category (e.g.
//! `csaf_security_advisory`) whose vulnerabilities carry `product_status`.
//!
//! The product tree (`branches[]` at any depth, `full_product_names[]`,
//! `relationships[]`, `product_groups[]`) is read into a map from product id
//! to name, purl and CPE. Every product id in a vulnerability's
//! `product_status` lists then yields one claim. Flags give the
//! justification, `impact` threats the detail, remediations the action, and
//! `scores[]` (else `document.aggregate_severity`) the severity.
//!
//! A product group id written where a product id is expected (a status
//! list, a flag's, threat's, remediation's or score's product list) is
//! expanded to its members, as `group_ids` are; claims made through a group
//! keep its id in metadata `productGroup`. A flag that names no product and
//! no group applies to no product (CSAF 3.2.3.5: one of them "MUST be
//! present"); a threat or remediation that names none applies to the whole
//! vulnerability (Red Hat's `impact` threats are written so).
//!
//! Entries (see the `normalize` module) are the elements of the status
//! lists, a group counting once per member. Skipped and counted, each with
//! a note: a vulnerability with neither `cve` nor an `ids[].text` (all its
//! entries), a `product_status` key that is no CSAF list (matched in any
//! letter case; all its entries), a list element that is not a non-empty
//! string, and a product id that the product tree does not define (CSAF
//! test 6.1.1), directly or as a group member. `recommended` states no
//! status and is not read.
//!
//! A product listed under two statuses of one vulnerability (which CSAF
//! test 6.1.6 forbids), or again under a repeated vulnerability, is one
//! claim: the status of highest precedence wins (affected > fixed >
//! under_investigation > not_affected), the others are listed in
//! `conflictingStatuses` and counted as contradictions.
//!
//! A document that breaks CSAF's semantic rules (the 6.1.x mandatory tests)
//! is still normalized. Only a structure that cannot be interpreted at all
//! (`vulnerabilities` not an array, `product_tree` not an object, branches
//! nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH)) is an error.

mod tree;

use simd_json::prelude::*;

use self::tree::{Keys, Scope, Target, Tree};
use super::{
    distinct_fields_into, elements, kind_of, non_empty, non_empty_str, push_unique, quoted,
    resolve_claims, scalar_string, Claim, DropReason, Drops, FastMap, Fields, Justification,
    Metadata, NormalizeError, NormalizedDocument, Rule, Status, Value,
};

/// The `product_status` lists that carry a status (`recommended` does not),
/// in the order they are read (so claims come out in a fixed order: JSON
/// objects are unordered). Precedence between them is
/// [`Status::precedence`], applied by [`resolve_claims`].
const STATUS_LISTS: [(&str, Status); 7] = [
    ("known_not_affected", Status::NotAffected),
    ("first_fixed", Status::Fixed),
    ("fixed", Status::Fixed),
    ("under_investigation", Status::UnderInvestigation),
    ("first_affected", Status::Affected),
    ("last_affected", Status::Affected),
    ("known_affected", Status::Affected),
];

/// Whether `key` names a CSAF `product_status` list (any letter case).
fn is_csaf_list(key: &str) -> bool {
    let key = key.trim();
    key.eq_ignore_ascii_case("recommended")
        || STATUS_LISTS.iter().any(|(name, _)| name.eq_ignore_ascii_case(key))
}

/// Normalizes one CSAF document.
pub fn normalize<'a>(doc: Value<'a>) -> Result<NormalizedDocument, NormalizeError> {
    let vulnerabilities = vulnerabilities(doc)?;
    let document = doc.field("document");
    let tracking = document.field("tracking");
    let document_id = tracking.and_then(|t| non_empty(t, "id")).map(str::to_owned);
    let revision = tracking.field("version").and_then(scalar_string);
    if vulnerabilities.is_empty() {
        // Nothing to claim (CSAF test 6.1.27.11 failing is not our concern);
        // the product tree need not even be read.
        return Ok(NormalizedDocument { document_id, revision, ..NormalizedDocument::default() });
    }
    let mut reader = Reader::new(doc, document, vulnerabilities.len() > 1)?;
    for (i, &v) in vulnerabilities.iter().enumerate() {
        reader.vulnerability(i, v);
    }
    Ok(reader.finish(document_id, revision))
}

/// The document's `vulnerabilities[]`: none when absent or null, an error
/// when it is anything else but an array.
fn vulnerabilities<'a>(doc: Value<'a>) -> Result<Vec<Value<'a>>, NormalizeError> {
    Ok(match doc.field("vulnerabilities") {
        None => Vec::new(),
        Some(v) if v.is_null() => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| NormalizeError("CSAF vulnerabilities is not an array".into()))?
            .iter()
            .collect(),
    })
}

/// One CSAF document being normalized: its product tree and what is
/// derived from it, read once, and the claims and drop report so far.
/// Each vulnerability is read by [`Reader::vulnerability`] into it.
struct Reader<'a> {
    tree: Tree<'a>,
    keys: Keys<'a>,
    /// `document.aggregate_severity.text`, the severity of a claim that
    /// no score covers.
    doc_severity: Option<&'a str>,
    /// Whether [`Reader::targets`] caches each product's target. Products
    /// are looked up once per document when several vulnerabilities name
    /// them; a map of every product is not worth its memory when one does
    /// (a Red Hat VEX file, one CVE on thousands).
    cache_targets: bool,
    targets: FastMap<&'a str, Target<'a>>,
    claims: Vec<Claim>,
    drops: Drops,
    /// One buffer for every `product_status`'s lists.
    lists: Vec<(&'a str, Value<'a>)>,
}

impl<'a> Reader<'a> {
    /// Reads the product tree of `doc` (an error when it is no object).
    fn new(
        doc: Value<'a>,
        document: Option<Value<'a>>,
        cache_targets: bool,
    ) -> Result<Reader<'a>, NormalizeError> {
        let tree = match doc.field("product_tree") {
            None => Tree::default(),
            Some(t) if t.is_null() => Tree::default(),
            Some(t) if t.is_object() => Tree::read(t)?,
            Some(_) => return Err(NormalizeError("CSAF product_tree is not an object".into())),
        };
        let doc_severity = document.field("aggregate_severity").and_then(|s| non_empty(s, "text"));
        let keys = Keys::new(&tree);
        Ok(Reader {
            tree,
            keys,
            doc_severity,
            cache_targets,
            targets: FastMap::default(),
            claims: Vec::new(),
            drops: Drops::default(),
            lists: Vec::new(),
        })
    }

    /// Reads vulnerability `i`: a claim for each product of its status
    /// lists; a vulnerability, `product_status` or list that cannot be
    /// read is a defect, counted with the entries it holds.
    fn vulnerability(&mut self, i: usize, v: Value<'a>) {
        let at = || format!("vulnerabilities[{i}]");
        if !v.is_object() {
            self.drops.defect(DropReason::NoVulnerabilityId, 1, at, || {
                format!("the vulnerability is {}, not an object", kind_of(v))
            });
            return;
        }
        let [ps, cve, ids, flags, threats, remediations, scores] =
            v.pick(["product_status", "cve", "ids", "flags", "threats", "remediations", "scores"]);
        let ps = ps.filter(|p| !p.is_null());
        let Some((id, id_system, aliases)) = identity(cve, ids) else {
            let entries = ps.map_or(0, |ps| self.tree.count_entries(ps)).max(1);
            self.drops.defect(DropReason::NoVulnerabilityId, entries, at, || {
                "the vulnerability has neither cve nor ids".to_owned()
            });
            return;
        };
        let Some(ps) = ps else { return };
        if !ps.is_object() {
            // An empty list states nothing; anything else is one defect.
            if ps.as_array().is_none_or(|a| !a.is_empty()) {
                self.drops.defect(
                    DropReason::UnknownStatus,
                    1,
                    || format!("vulnerabilities[{i}].product_status"),
                    || format!("product_status is {}, not an object", kind_of(ps)),
                );
            }
            return;
        }
        let vulnerability = Vulnerability {
            id,
            id_system,
            aliases,
            details: Details::read([flags, threats, remediations, scores], &self.tree),
            doc_severity: self.doc_severity,
        };
        // Sized once: a vector of millions of claims grown by doubling is
        // copied at each step, the old and the new both in memory.
        self.claims.reserve(usize::try_from(self.tree.count_entries(ps)).unwrap_or(0));
        distinct_fields_into(ps, &mut self.lists);
        self.status_lists(i, &vulnerability);
        self.unknown_lists(i);
    }

    /// The claims of the status lists of vulnerability `i` (the keys of its
    /// `product_status`, in [`Reader::lists`]), list by list in
    /// [`STATUS_LISTS`] order so claims come out in a fixed order.
    fn status_lists(&mut self, i: usize, vulnerability: &Vulnerability<'a>) {
        let (tree, keys, lists) = (&self.tree, &self.keys, &self.lists);
        let (targets, claims, drops) = (&mut self.targets, &mut self.claims, &mut self.drops);
        let cache_targets = self.cache_targets;
        for (name, status) in STATUS_LISTS {
            for &(key, list) in lists.iter().filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)) {
                let mut emit = |id: &'a str, group: Option<&'a str>| {
                    let computed;
                    let target = if cache_targets {
                        &*targets.entry(id).or_insert_with(|| tree.target(id, keys))
                    } else {
                        computed = tree.target(id, keys);
                        &computed
                    };
                    claims.push(vulnerability.claim(id, group, (name, status), target));
                };
                tree.read_list(i, key, list, drops, &mut emit);
            }
        }
    }

    /// Counts the entries of every `product_status` key of vulnerability
    /// `i` that names no CSAF list as dropped for an unknown status.
    fn unknown_lists(&mut self, i: usize) {
        for &(key, list) in self.lists.iter().filter(|(k, _)| !is_csaf_list(k)) {
            let entries = self.tree.count_list(list).max(1);
            self.drops.defect(
                DropReason::UnknownStatus,
                entries,
                || format!("vulnerabilities[{i}].product_status.{key}"),
                || format!("unknown product_status list {}", quoted(key)),
            );
        }
    }

    /// The normalized document: one claim per (vulnerability, product key)
    /// by status precedence, and the drop report.
    fn finish(
        mut self,
        document_id: Option<String>,
        revision: Option<String>,
    ) -> NormalizedDocument {
        NormalizedDocument {
            document_id,
            revision,
            claims: resolve_claims(self.claims, Rule::Precedence, &mut self.drops.dropped),
            dropped: self.drops.dropped,
            notes: self.drops.notes,
        }
    }
}

/// What every claim of one vulnerability shares: its identity, and the
/// details (flags, threats, remediations, scores) scoped to its products.
struct Vulnerability<'a> {
    /// The `cve`, else the first `ids[].text`.
    id: String,
    /// The `ids[]` system `id` came from, when it is not a CVE.
    id_system: Option<&'a str>,
    aliases: Vec<String>,
    details: Details<'a>,
    /// The document's aggregate severity (see [`Reader::doc_severity`]).
    doc_severity: Option<&'a str>,
}

impl Vulnerability<'_> {
    /// The claim that the vulnerability has `status` on product `id`, as
    /// status list `list` says (through product group `group`, when it
    /// names the group), keyed and described by the product's `target`.
    fn claim(
        &self,
        id: &str,
        group: Option<&str>,
        (list, status): (&'static str, Status),
        target: &Target<'_>,
    ) -> Claim {
        let mut claim = Claim::new(self.id.as_str(), target.key, status);
        // The product's, the status list and one detail; the rarer ones
        // grow it.
        claim.metadata = Metadata::with_capacity(target.metadata.len() + 2);
        claim.aliases.clone_from(&self.aliases);
        claim.purl = target.purl.map(str::to_owned);
        for &(k, val) in &target.metadata {
            claim.metadata.insert(k, val.to_owned());
        }
        claim.metadata.insert("productStatus", list.to_owned());
        if let Some(g) = group {
            claim.metadata.insert("productGroup", g.to_owned());
        }
        if let Some(system) = self.id_system {
            claim.metadata.insert("idSystem", system.to_owned());
        }
        self.details.apply(id, &mut claim, self.doc_severity);
        claim
    }
}

/// Vulnerability id, the `ids[]` system it came from (when it is not a CVE)
/// and aliases. The id is the `cve`, else the first `ids[].text`; every
/// other `ids[].text` is an alias. `None` when the entry has neither.
fn identity<'a>(
    cve: Option<Value<'a>>,
    ids: Option<Value<'a>>,
) -> Option<(String, Option<&'a str>, Vec<String>)> {
    let ids: Vec<(&str, Option<&str>)> = elements(ids)
        .filter_map(|i| {
            let [text, system] = i.pick(["text", "system_name"]);
            Some((non_empty_str(text)?, non_empty_str(system)))
        })
        .collect();
    let (id, system) = match non_empty_str(cve) {
        Some(cve) => (cve, None),
        None => {
            let &(text, system) = ids.first()?;
            (text, system)
        }
    };
    let mut aliases = Vec::new();
    for &(text, _) in &ids {
        if text != id {
            push_unique(&mut aliases, text);
        }
    }
    Some((id.to_owned(), system, aliases))
}

/// A vulnerability's flags (label), impact threats (details), remediations
/// (details, category) and scores (severity), each with its scope.
struct Details<'a> {
    flags: Vec<(Scope<'a>, &'a str)>,
    threats: Vec<(Scope<'a>, &'a str)>,
    remediations: Vec<(Scope<'a>, &'a str, Option<&'a str>)>,
    scores: Vec<(Scope<'a>, String)>,
}

fn covers(scope: &Scope, id: &str) -> bool {
    scope.as_ref().is_none_or(|ids| ids.contains(id))
}

impl<'a> Details<'a> {
    // A threat or remediation that names no product is read as
    // vulnerability-wide (Red Hat's unscoped `impact` threats are), rather
    // than dropped; a flag that names none applies to none.
    fn read(
        [flags, threats, remediations, scores]: [Option<Value<'a>>; 4],
        tree: &Tree<'a>,
    ) -> Details<'a> {
        // A flag that names no product applies to none (CSAF 3.2.3.5).
        let flags = elements(flags)
            .filter_map(|f| {
                let [products, groups, label] = f.pick(["product_ids", "group_ids", "label"]);
                let scope = tree.scope(products, groups)?;
                Some((Some(scope), non_empty_str(label)?))
            })
            .collect();
        let threats = elements(threats)
            .filter_map(|t| {
                let [category, products, groups, details] =
                    t.pick(["category", "product_ids", "group_ids", "details"]);
                if non_empty_str(category) != Some("impact") {
                    return None;
                }
                Some((tree.scope(products, groups), non_empty_str(details)?))
            })
            .collect();
        let remediations = elements(remediations)
            .filter_map(|r| {
                let [products, groups, details, category] =
                    r.pick(["product_ids", "group_ids", "details", "category"]);
                Some((
                    tree.scope(products, groups),
                    non_empty_str(details)?,
                    non_empty_str(category),
                ))
            })
            .collect();
        let scores = elements(scores)
            .filter_map(|s| {
                let [products, v3, v2] = s.pick(["products", "cvss_v3", "cvss_v2"]);
                Some((tree.scope(products, None), score_severity(v3, v2)?))
            })
            .collect();
        Details { flags, threats, remediations, scores }
    }

    fn apply(&self, id: &str, claim: &mut Claim, doc_severity: Option<&str>) {
        // The first flag naming the product gives its justification. The
        // five labels are "not affected" justifications: on a claim of any
        // other status (a contradiction in the document) the label is kept
        // in metadata only.
        if let Some((_, label)) = self.flags.iter().find(|(scope, _)| covers(scope, id)) {
            if claim.status == Status::NotAffected {
                claim.justification = Justification::from_cisa(label);
            }
            claim.metadata.insert("justification", (*label).to_owned());
        }
        let mut details = Vec::new();
        for (_, d) in self.threats.iter().filter(|(scope, _)| covers(scope, id)) {
            push_unique(&mut details, d);
        }
        claim.detail = (!details.is_empty()).then(|| details.join("\n"));
        let mut actions = Vec::new();
        let mut categories = Vec::new();
        for (_, d, category) in self.remediations.iter().filter(|(scope, _, _)| covers(scope, id)) {
            push_unique(&mut actions, d);
            if let Some(c) = category {
                push_unique(&mut categories, c);
            }
        }
        claim.action = (!actions.is_empty()).then(|| actions.join("\n"));
        if !categories.is_empty() {
            claim.metadata.insert("remediationCategory", categories.join(","));
        }
        claim.severity = self
            .scores
            .iter()
            .find(|(scope, _)| covers(scope, id))
            .map(|(_, s)| s.clone())
            .or_else(|| doc_severity.map(str::to_owned));
    }
}

/// Severity of one `scores[]` entry: CVSS v3 `baseSeverity` (derived from
/// `baseScore` by the CVSS v3 rating table if absent), else the CVSS v2
/// `baseScore` (v2 has no rating) as a string.
fn score_severity(v3: Option<Value<'_>>, v2: Option<Value<'_>>) -> Option<String> {
    if let Some(v3) = v3 {
        if let Some(sev) = non_empty(v3, "baseSeverity") {
            return Some(sev.to_owned());
        }
        if let Some(score) = v3.field("baseScore").and_then(|b| b.as_f64()) {
            let rating = match score {
                s if s <= 0.0 => "NONE",
                s if s < 4.0 => "LOW",
                s if s < 7.0 => "MEDIUM",
                s if s < 9.0 => "HIGH",
                _ => "CRITICAL",
            };
            return Some(rating.to_owned());
        }
    }
    v2.field("baseScore").and_then(scalar_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::MAX_DEPTH;

    fn try_run(json: &str) -> Result<NormalizedDocument, NormalizeError> {
        let mut b = json.as_bytes().to_vec();
        normalize(simd_json::to_tape(&mut b).unwrap().as_value())
    }

    fn run(json: &str) -> NormalizedDocument {
        try_run(json).unwrap()
    }

    /// A document with `product_tree` and `vulnerabilities` spliced in.
    fn doc(tree: &str, vulns: &str) -> String {
        format!(
            r#"{{"document":{{"category":"csaf_vex","csaf_version":"2.0",
            "tracking":{{"id":"T-1","version":"2"}}}},
            "product_tree":{tree},"vulnerabilities":{vulns}}}"#
        )
    }

    fn claim<'d>(d: &'d NormalizedDocument, vuln: &str, key: &str) -> &'d Claim {
        d.claims
            .iter()
            .find(|c| c.vulnerability_id == vuln && c.product_key == key)
            .unwrap_or_else(|| panic!("no claim {vuln} {key} in {:#?}", d.claims))
    }

    /// A product tree that defines `ids` and nothing else.
    fn defining(ids: &[String]) -> String {
        let names: Vec<String> = ids.iter().map(|i| format!(r#"{{"product_id":"{i}"}}"#)).collect();
        format!(r#"{{"full_product_names":[{}]}}"#, names.join(","))
    }

    const FLAT: &str = r#"{"full_product_names":[
        {"product_id":"A","name":"Product A"},{"product_id":"B","name":"Product B"},
        {"product_id":"C","name":"Product C"},{"product_id":"D","name":"Product D"}],
        "product_groups":[{"group_id":"G1","product_ids":["A","B"]}]}"#;

    #[test]
    fn every_status_list_maps_and_recommended_is_ignored() {
        let lists = [
            ("first_affected", Status::Affected),
            ("known_affected", Status::Affected),
            ("last_affected", Status::Affected),
            ("known_not_affected", Status::NotAffected),
            ("first_fixed", Status::Fixed),
            ("fixed", Status::Fixed),
            ("under_investigation", Status::UnderInvestigation),
        ];
        let ps: Vec<String> = lists.iter().map(|(l, _)| format!(r#""{l}":["P-{l}"]"#)).collect();
        let mut ids: Vec<String> = lists.iter().map(|(l, _)| format!("P-{l}")).collect();
        ids.push("P-rec".into());
        let json = doc(
            &defining(&ids),
            &format!(
                r#"[{{"cve":"CVE-1","product_status":{{{},"recommended":["P-rec"]}}}}]"#,
                ps.join(",")
            ),
        );
        let d = run(&json);
        assert_eq!(d.document_id.as_deref(), Some("T-1"));
        assert_eq!(d.revision.as_deref(), Some("2"));
        assert_eq!(d.claims.len(), lists.len());
        for (list, status) in lists {
            let c = claim(&d, "CVE-1", &format!("P-{list}"));
            assert_eq!(c.status, status, "{list}");
            assert_eq!(c.metadata["productStatus"], list);
        }
        assert!(!d.claims.iter().any(|c| c.product_key == "P-rec"));
    }

    #[test]
    fn contradicting_lists_resolve_by_precedence_and_keep_the_losers() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_affected":["A"],"fixed":["A","B"],
                "known_not_affected":["B","C"],"under_investigation":["C"]}}]"#,
        ));
        assert_eq!(d.claims.len(), 3);
        assert_eq!(claim(&d, "CVE-1", "A").status, Status::Affected);
        assert_eq!(claim(&d, "CVE-1", "A").metadata["conflictingStatuses"], "fixed");
        assert_eq!(claim(&d, "CVE-1", "B").status, Status::Fixed);
        assert_eq!(claim(&d, "CVE-1", "B").metadata["conflictingStatuses"], "not_affected");
        assert_eq!(claim(&d, "CVE-1", "C").status, Status::UnderInvestigation);
        assert_eq!(d.dropped.contradiction, 3);
        // SPEC precedence: fixed over under_investigation; a repeat of the
        // same status (first_fixed and fixed) is superseded.
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"under_investigation":["A"],"first_fixed":["A"],"fixed":["A"]}}]"#,
        ));
        let c = claim(&d, "CVE-1", "A");
        assert_eq!((c.status, c.metadata["productStatus"].as_str()), (Status::Fixed, "fixed"));
        assert_eq!(c.metadata["conflictingStatuses"], "under_investigation");
        assert_eq!((d.dropped.contradiction, d.dropped.superseded), (1, 1));
    }

    #[test]
    fn groups_expand_in_flags_threats_and_remediations() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_not_affected":["A","B","C"],"known_affected":["D"]},
              "flags":[{"label":"component_not_present","group_ids":["G1"]},
                       {"label":"vulnerable_code_not_present","product_ids":["C"]}],
              "threats":[{"category":"impact","details":"not shipped","group_ids":["G1","NOPE"]}],
              "remediations":[{"category":"no_fix_planned","details":"EOL","group_ids":["G1"]},
                              {"category":"vendor_fix","details":"update","product_ids":["D"]}]}]"#,
        ));
        for k in ["A", "B"] {
            let c = claim(&d, "CVE-1", k);
            assert_eq!(c.justification, Some(Justification::ComponentNotPresent));
            assert_eq!(c.detail.as_deref(), Some("not shipped"));
            assert_eq!(c.action.as_deref(), Some("EOL"));
            assert_eq!(c.metadata["remediationCategory"], "no_fix_planned");
        }
        let c = claim(&d, "CVE-1", "C");
        assert_eq!(c.justification, Some(Justification::VulnerableCodeNotPresent));
        assert_eq!(c.detail, None);
        assert_eq!(c.action, None);
        let c = claim(&d, "CVE-1", "D");
        assert_eq!(c.action.as_deref(), Some("update"));
        assert_eq!(c.metadata["remediationCategory"], "vendor_fix");
        assert_eq!(c.justification, None);
    }

    #[test]
    fn group_ids_where_product_ids_belong_are_expanded() {
        // SUSE-style: a group id written in product_status, a remediation's
        // product_ids and a flag's product_ids.
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_not_affected":["G1"],"known_affected":["C"]},
              "flags":[{"label":"vulnerable_code_not_present","product_ids":["G1"]}],
              "remediations":[{"category":"vendor_fix","details":"update","product_ids":["G1","C"]}]}]"#,
        ));
        let got: Vec<_> = d.claims.iter().map(|c| (c.product_key.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [("A", Status::NotAffected), ("B", Status::NotAffected), ("C", Status::Affected)]
        );
        for k in ["A", "B"] {
            let c = claim(&d, "CVE-1", k);
            assert_eq!(c.justification, Some(Justification::VulnerableCodeNotPresent));
            assert_eq!(c.action.as_deref(), Some("update"));
            assert_eq!(c.metadata["productGroup"], "G1");
        }
        assert!(d.dropped.is_empty());
    }

    #[test]
    fn a_flag_naming_no_product_applies_to_none() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_not_affected":["A"]},
              "flags":[{"label":"component_not_present"},{"label":"vulnerable_code_not_present","product_ids":[]}],
              "threats":[{"category":"impact","details":"applies to all"}]}]"#,
        ));
        let c = claim(&d, "CVE-1", "A");
        assert_eq!(c.justification, None);
        assert!(!c.metadata.contains_key("justification"));
        assert_eq!(c.detail.as_deref(), Some("applies to all"));
    }

    #[test]
    fn entries_without_id_or_known_list_are_counted_and_noted() {
        // Cisco-style: a vulnerability with neither cve nor ids, and lists
        // with names CSAF does not have (matched in any letter case).
        let d = run(&doc(
            FLAT,
            r#"[{"title":"no id","product_status":{"known_affected":["A","G1"],"fixed":["C"],"recommended":["D"]}},
                {"cve":"CVE-2","product_status":{"Known_Affected":["A"],"affected":["B","G1"],"not_affected":"C",
                  "fixed":"D","under_investigation":null}},
                {"cve":"CVE-3","product_status":[7]},
                {"cve":"CVE-4","product_status":[]}]"#,
        ));
        let got: Vec<_> = d
            .claims
            .iter()
            .map(|c| (c.vulnerability_id.as_str(), c.product_key.as_str()))
            .collect();
        assert_eq!(got, [("CVE-2", "A")]);
        assert_eq!(claim(&d, "CVE-2", "A").metadata["productStatus"], "known_affected");
        let want = crate::normalize::Dropped {
            no_vulnerability_id: 4,    // A, G1 = {A, B}, C; not `recommended`
            unknown_status: 3 + 1 + 1, // B, G1 = {A, B}; "C"; [7]
            no_product_id: 1,          // "fixed": "D"
            ..Default::default()
        };
        assert_eq!(d.dropped, want);
        let notes: Vec<_> =
            d.notes.iter().map(|n| (n.at.as_str(), n.detail.as_str(), n.entries)).collect();
        assert_eq!(
            notes,
            [
                ("vulnerabilities[0]", "the vulnerability has neither cve nor ids", 4),
                (
                    "vulnerabilities[1].product_status.fixed",
                    r#""fixed" is a string, not a list of product ids"#,
                    1
                ),
                (
                    "vulnerabilities[1].product_status.affected",
                    r#"unknown product_status list "affected""#,
                    3
                ),
                (
                    "vulnerabilities[1].product_status.not_affected",
                    r#"unknown product_status list "not_affected""#,
                    1
                ),
                (
                    "vulnerabilities[2].product_status",
                    "product_status is an array, not an object",
                    1
                ),
            ]
        );
    }

    #[test]
    fn repeated_keys_take_the_last_value_everywhere() {
        // The first `product_status`, `known_affected` and `product_id` of
        // each pair are decoys: a reader that took them would disagree with
        // JavaScript, Python, jq and serde_json.
        let d = run(r#"{"document":{"category":"csaf_vex","tracking":{"id":"first","id":"T-9"}},
          "product_tree":{"full_product_names":[{"product_id":"decoy","product_id":"A","name":"A"}]},
          "vulnerabilities":[{"cve":"CVE-0","cve":"CVE-1",
            "product_status":{"fixed":["A"]},
            "product_status":{"known_affected":["nope"],"known_affected":["A"]}}]}"#);
        assert_eq!(d.document_id.as_deref(), Some("T-9"));
        let got: Vec<_> = d
            .claims
            .iter()
            .map(|c| (c.vulnerability_id.as_str(), c.product_key.as_str(), c.status))
            .collect();
        assert_eq!(got, [("CVE-1", "A", Status::Affected)]);
        assert!(d.dropped.is_empty(), "{:?}", d.dropped);
    }

    const TWO_PLATFORMS: &str = r#"{"branches":[{"category":"vendor","name":"V","branches":[
        {"category":"product_name","name":"OS","branches":[
          {"category":"product_version","name":"8","product":{"product_id":"OS8","name":"OS 8",
            "product_identification_helper":{"cpe":"cpe:/o:v:os:8"}}},
          {"category":"product_version","name":"9","product":{"product_id":"OS9","name":"OS 9",
            "product_identification_helper":{"purl":"pkg:generic/v/os@9"}}}]},
        {"category":"product_name","name":"lib","branches":[
          {"category":"product_version","name":"1","product":{"product_id":"LIB1","name":"lib 1",
            "product_identification_helper":{"purl":"pkg:rpm/v/lib@1"}}}]}]}],
      "relationships":[
        {"category":"default_component_of","product_reference":"LIB1","relates_to_product_reference":"OS8",
         "full_product_name":{"product_id":"OS8:LIB1","name":"lib 1 on OS 8"}},
        {"category":"default_component_of","product_reference":"LIB1","relates_to_product_reference":"OS9",
         "full_product_name":{"product_id":"OS9:LIB1","name":"lib 1 on OS 9",
           "product_identification_helper":{"purl":"pkg:rpm/v/lib@1?distro=os9"}}}]}"#;

    #[test]
    fn relationship_on_two_platforms_is_two_claims() {
        let d = run(&doc(
            TWO_PLATFORMS,
            r#"[{"cve":"CVE-1","product_status":{"fixed":["OS8:LIB1"],"known_affected":["OS9:LIB1","LIB1"]}}]"#,
        ));
        assert_eq!(d.claims.len(), 3);
        let c = claim(&d, "CVE-1", "OS8:LIB1");
        assert_eq!(c.status, Status::Fixed);
        assert_eq!(c.purl.as_deref(), Some("pkg:rpm/v/lib@1"));
        assert_eq!(c.metadata["platform"], "OS8");
        assert_eq!(c.metadata["platformName"], "OS 8");
        assert_eq!(c.metadata["platformCpe"], "cpe:/o:v:os:8");
        assert!(!c.metadata.contains_key("platformPurl"));
        assert_eq!(c.metadata["component"], "LIB1");
        assert_eq!(c.metadata["relationship"], "default_component_of");
        assert_eq!(c.metadata["productName"], "lib 1 on OS 8");
        // The relationship's own helper purl is the more specific one.
        let c = claim(&d, "CVE-1", "OS9:LIB1");
        assert_eq!(c.status, Status::Affected);
        assert_eq!(c.purl.as_deref(), Some("pkg:rpm/v/lib@1?distro=os9"));
        assert_eq!(c.metadata["platformPurl"], "pkg:generic/v/os@9");
        // The bare component is a product of its own, keyed on its purl.
        let c = claim(&d, "CVE-1", "pkg:rpm/v/lib@1");
        assert_eq!(c.metadata["productId"], "LIB1");
        assert_eq!(c.metadata["productName"], "lib 1");
    }

    #[test]
    fn nested_relationships_and_cycles_resolve_without_hanging() {
        let d = run(&doc(
            r#"{"full_product_names":[{"product_id":"X","name":"x",
                  "product_identification_helper":{"purl":"pkg:npm/x@1"}}],
               "relationships":[
                 {"category":"installed_on","product_reference":"X","relates_to_product_reference":"P",
                  "full_product_name":{"product_id":"R1","name":"x on P"}},
                 {"category":"default_component_of","product_reference":"R1","relates_to_product_reference":"Q",
                  "full_product_name":{"product_id":"R2","name":"x on P in Q"}},
                 {"category":"default_component_of","product_reference":"C2","relates_to_product_reference":"Q",
                  "full_product_name":{"product_id":"C1","name":"cycle 1"}},
                 {"category":"default_component_of","product_reference":"C1","relates_to_product_reference":"Q",
                  "full_product_name":{"product_id":"C2","name":"cycle 2"}},
                 {"category":"default_component_of","product_reference":"X"}]}"#,
            r#"[{"cve":"CVE-1","product_status":{"known_affected":["R2","C1"]}}]"#,
        ));
        assert_eq!(claim(&d, "CVE-1", "R2").purl.as_deref(), Some("pkg:npm/x@1"));
        assert_eq!(claim(&d, "CVE-1", "R2").metadata["platform"], "Q");
        assert_eq!(claim(&d, "CVE-1", "C1").purl, None);
    }

    #[test]
    fn product_key_prefers_purl_then_cpe_then_id_and_never_collapses() {
        let d = run(&doc(
            r#"{"full_product_names":[
                {"product_id":"P1","product_identification_helper":{"purl":"pkg:npm/a@1","cpe":"cpe:2.3:a:x:a:1:*:*:*:*:*:*:*"}},
                {"product_id":"P2","product_identification_helper":{"cpe":"cpe:2.3:a:x:b:1:*:*:*:*:*:*:*"}},
                {"product_id":"P3"},
                {"product_id":"S1","name":"shared one","product_identification_helper":{"purl":"pkg:npm/s@1"}},
                {"product_id":"S2","name":"shared two","product_identification_helper":{"purl":"pkg:npm/s@1","cpe":"cpe:/a:x:s2"}},
                {"product_id":"S3","product_identification_helper":{"purl":"pkg:npm/s@1"}},
                {"product_id":"Q1","product_identification_helper":{"purl":"Q2"}},
                {"product_id":"Q2"}]}"#,
            r#"[{"cve":"CVE-1","product_status":{"known_affected":["P1","P2","P3","S1","S2","S3","Q1","Q2","GHOST"]}}]"#,
        ));
        assert_eq!(d.claims.len(), 8, "{:#?}", d.claims);
        let c = claim(&d, "CVE-1", "pkg:npm/a@1");
        assert_eq!(c.purl.as_deref(), Some("pkg:npm/a@1"));
        assert_eq!(c.metadata["cpe"], "cpe:2.3:a:x:a:1:*:*:*:*:*:*:*");
        assert_eq!(c.metadata["productId"], "P1");
        let c = claim(&d, "CVE-1", "cpe:2.3:a:x:b:1:*:*:*:*:*:*:*");
        assert_eq!(c.purl, None);
        assert!(!c.metadata.contains_key("cpe"));
        claim(&d, "CVE-1", "P3");
        // A purl shared by three ids: each keeps the purl but is keyed on its
        // next identifier (S2's own CPE, else the id).
        assert_eq!(claim(&d, "CVE-1", "S1").purl.as_deref(), Some("pkg:npm/s@1"));
        assert_eq!(claim(&d, "CVE-1", "cpe:/a:x:s2").purl.as_deref(), Some("pkg:npm/s@1"));
        assert_eq!(claim(&d, "CVE-1", "S3").purl.as_deref(), Some("pkg:npm/s@1"));
        // A purl equal to another product's id is not a key either.
        assert_eq!(claim(&d, "CVE-1", "Q1").purl.as_deref(), Some("Q2"));
        claim(&d, "CVE-1", "Q2");
        // Referenced but not in the tree (CSAF test 6.1.1): dropped, noted.
        assert!(!d.claims.iter().any(|c| c.product_key == "GHOST"));
        assert_eq!(d.dropped.unresolved_reference, 1);
        assert_eq!(d.notes[0].at, "vulnerabilities[0].product_status.known_affected[8]");
        assert_eq!(d.notes[0].detail, r#"product id "GHOST" is not defined in the product tree"#);
    }

    #[test]
    fn flags_give_justification_for_not_affected_only() {
        let labels = [
            ("component_not_present", Justification::ComponentNotPresent),
            ("vulnerable_code_not_present", Justification::VulnerableCodeNotPresent),
            ("vulnerable_code_not_in_execute_path", Justification::VulnerableCodeNotInExecutePath),
            (
                "vulnerable_code_cannot_be_controlled_by_adversary",
                Justification::VulnerableCodeCannotBeControlledByAdversary,
            ),
            ("inline_mitigations_already_exist", Justification::InlineMitigationsAlreadyExist),
        ];
        let flags: Vec<String> = labels
            .iter()
            .map(|(l, _)| format!(r#"{{"label":"{l}","product_ids":["N-{l}"]}}"#))
            .collect();
        let ids: Vec<String> = labels.iter().map(|(l, _)| format!(r#""N-{l}""#)).collect();
        let mut defined: Vec<String> = labels.iter().map(|(l, _)| format!("N-{l}")).collect();
        defined.extend(["N-odd".into(), "AFF".into()]);
        let d = run(&doc(
            &defining(&defined),
            &format!(
                r#"[{{"cve":"CVE-1","product_status":{{"known_not_affected":[{},"N-odd"],"known_affected":["AFF"]}},
                   "flags":[{},{{"label":"because","product_ids":["N-odd"]}},
                            {{"label":"component_not_present","product_ids":["AFF"]}}]}}]"#,
                ids.join(","),
                flags.join(",")
            ),
        ));
        for (label, j) in labels {
            let c = claim(&d, "CVE-1", &format!("N-{label}"));
            assert_eq!(c.justification, Some(j));
            assert_eq!(c.metadata["justification"], label);
        }
        let c = claim(&d, "CVE-1", "N-odd");
        assert_eq!(c.justification, None);
        assert_eq!(c.metadata["justification"], "because");
        let c = claim(&d, "CVE-1", "AFF");
        assert_eq!(c.justification, None);
        assert_eq!(c.metadata["justification"], "component_not_present");
    }

    #[test]
    fn impact_threats_give_detail_unscoped_ones_apply_to_all() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_not_affected":["A","C"],"fixed":["D"]},
              "threats":[{"category":"impact","details":"Moderate"},
                         {"category":"exploit_status","details":"none known","product_ids":["A"]},
                         {"category":"impact","details":"code removed","product_ids":["A"]},
                         {"category":"impact","details":"Moderate","product_ids":["A"]}]}]"#,
        ));
        assert_eq!(claim(&d, "CVE-1", "A").detail.as_deref(), Some("Moderate\ncode removed"));
        assert_eq!(claim(&d, "CVE-1", "C").detail.as_deref(), Some("Moderate"));
        assert_eq!(claim(&d, "CVE-1", "D").detail.as_deref(), Some("Moderate"));
    }

    #[test]
    fn remediations_join_in_document_order() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_affected":["A","B"]},
              "remediations":[{"category":"workaround","details":"disable X","product_ids":["A","B"]},
                              {"category":"vendor_fix","details":"update to 2","product_ids":["A"],"url":"https://x"},
                              {"category":"vendor_fix","details":"update to 3","group_ids":["G1"]},
                              {"category":"mitigation","product_ids":["A"]}]}]"#,
        ));
        let c = claim(&d, "CVE-1", "A");
        assert_eq!(c.action.as_deref(), Some("disable X\nupdate to 2\nupdate to 3"));
        assert_eq!(c.metadata["remediationCategory"], "workaround,vendor_fix");
        let c = claim(&d, "CVE-1", "B");
        assert_eq!(c.action.as_deref(), Some("disable X\nupdate to 3"));
    }

    #[test]
    fn severity_from_scores_else_aggregate() {
        let json = r#"{"document":{"category":"csaf_vex","aggregate_severity":{"text":"Important"}},
          "product_tree":{"full_product_names":[{"product_id":"A"},{"product_id":"B"},{"product_id":"C"},
            {"product_id":"D"}]},
          "vulnerabilities":[{"cve":"CVE-1","product_status":{"known_affected":["A","B","C","D"]},
            "scores":[{"products":["A"],"cvss_v3":{"baseScore":9.8,"baseSeverity":"CRITICAL"}},
                      {"products":["A","B"],"cvss_v2":{"baseScore":7.5}},
                      {"products":["C"],"cvss_v3":{"baseScore":5.3}},
                      {"products":["D"]}]}]}"#;
        let d = run(json);
        assert_eq!(claim(&d, "CVE-1", "A").severity.as_deref(), Some("CRITICAL"));
        assert_eq!(claim(&d, "CVE-1", "B").severity.as_deref(), Some("7.5"));
        assert_eq!(claim(&d, "CVE-1", "C").severity.as_deref(), Some("MEDIUM"));
        assert_eq!(claim(&d, "CVE-1", "D").severity.as_deref(), Some("Important"));
    }

    #[test]
    fn vulnerability_id_falls_back_to_ids_and_other_ids_are_aliases() {
        let d = run(&doc(
            FLAT,
            r#"[{"ids":[{"system_name":"GitHub","text":"GHSA-aaaa-bbbb-cccc"},{"system_name":"OSV","text":"OSV-1"},
                        {"system_name":"dup","text":"OSV-1"}],"product_status":{"fixed":["A"]}},
                {"cve":"CVE-2","ids":[{"system_name":"Bugzilla","text":"BZ-9"},{"text":"CVE-2"}],
                 "product_status":{"fixed":["A"]}},
                {"title":"no id at all","product_status":{"fixed":["A"]}},
                {"cve":"  ","ids":[{"system_name":"x","text":""}],"product_status":{"fixed":["A"]}}]"#,
        ));
        assert_eq!(d.claims.len(), 2);
        let c = claim(&d, "GHSA-aaaa-bbbb-cccc", "A");
        assert_eq!(c.aliases, vec!["OSV-1".to_owned()]);
        assert_eq!(c.metadata["idSystem"], "GitHub");
        let c = claim(&d, "CVE-2", "A");
        assert_eq!(c.aliases, vec!["BZ-9".to_owned()]);
        assert!(!c.metadata.contains_key("idSystem"));
    }

    #[test]
    fn no_vulnerabilities_is_zero_claims_not_an_error() {
        let d = run(
            r#"{"document":{"category":"csaf_security_advisory","tracking":{"id":"X","version":3}},
            "product_tree":{"full_product_names":[{"product_id":"A","name":"A"}]}}"#,
        );
        assert_eq!(d.claims.len(), 0);
        assert_eq!(d.document_id.as_deref(), Some("X"));
        assert_eq!(d.revision.as_deref(), Some("3"));
        assert!(run(r#"{"document":{},"vulnerabilities":[]}"#).claims.is_empty());
        assert!(run(r#"{"document":{},"vulnerabilities":null}"#).claims.is_empty());
        // No product_status anywhere (e.g. csaf_base), and a tree-less one.
        assert!(run(&doc(FLAT, r#"[{"cve":"CVE-1"},{"cve":"CVE-2","product_status":[]}]"#))
            .claims
            .is_empty());
        // No product tree at all: the one product id resolves to nothing,
        // so nothing in the document can be recognized.
        let e = super::super::normalize(
            super::super::Format::Csaf,
            simd_json::to_tape(
                &mut br#"{"vulnerabilities":[{"cve":"CVE-1","product_status":{"fixed":["A"]}}]}"#
                    .to_vec(),
            )
            .unwrap()
            .as_value(),
        )
        .unwrap_err();
        assert!(e.0.contains("unresolvedReference 1"), "{e}");
    }

    #[test]
    fn uninterpretable_structure_is_an_error() {
        assert!(try_run(r#"{"document":{},"vulnerabilities":{"cve":"CVE-1"}}"#).is_err());
        assert!(try_run(r#"{"document":{},"vulnerabilities":"x"}"#).is_err());
        assert!(
            try_run(&doc("[]", r#"[{"cve":"CVE-1","product_status":{"fixed":["A"]}}]"#)).is_err()
        );
    }

    #[test]
    fn unusable_entries_are_skipped() {
        let d = run(&doc(
            r#"{"branches":{"x":1},"full_product_names":[1,"a",{"name":"no id"},{"product_id":"A",
                "product_identification_helper":"junk"}],"relationships":[null,{"full_product_name":7}],
                "product_groups":[{"product_ids":["A"]},{"group_id":"G","product_ids":"A"}]}"#,
            r#"[1,null,"x",{"cve":"CVE-1","product_status":{"fixed":["A",3,"",null,{"a":1}],"known_affected":"A"},
                "flags":[{"label":7},{"product_ids":["A"]}],"threats":"x","remediations":[{"details":"d",
                "product_ids":"A"}],"scores":[7,{"products":["A"],"cvss_v3":"x"}]}]"#,
        ));
        assert_eq!(d.claims.len(), 1);
        let c = &d.claims[0];
        assert_eq!((c.product_key.as_str(), c.status), ("A", Status::Fixed));
        // "product_ids":"A" is not a list of products: treated as unscoped.
        assert_eq!(c.action.as_deref(), Some("d"));
    }

    fn nested_branches(levels: usize) -> String {
        let mut s = String::new();
        for i in 0..levels {
            s.push_str(&format!(r#"{{"category":"product_family","name":"L{i}","branches":["#));
        }
        s.push_str(r#"{"category":"product_version","name":"v","product":{"product_id":"DEEP"}}"#);
        for _ in 0..levels {
            s.push_str("]}");
        }
        doc(
            &format!(r#"{{"branches":[{s}]}}"#),
            r#"[{"cve":"CVE-1","product_status":{"fixed":["DEEP"]}}]"#,
        )
    }

    #[test]
    fn deep_branches_are_an_error_not_a_stack_overflow() {
        // MAX_DEPTH levels of branches (the top-level list is level 1).
        assert_eq!(run(&nested_branches(MAX_DEPTH - 1)).claims.len(), 1);
        assert!(try_run(&nested_branches(MAX_DEPTH)).is_err());
        // Far deeper: still the same error. (Much deeper input overflows
        // simd-json's own parser before it gets here; that is the parse
        // stage's to bound.)
        let mut b = nested_branches(2_000).into_bytes();
        let v = simd_json::to_tape(&mut b).unwrap();
        assert!(normalize(v.as_value()).unwrap_err().0.contains("deeper than"));
    }

    #[test]
    fn output_is_in_document_order_and_deterministic() {
        let json = doc(
            FLAT,
            r#"[{"cve":"CVE-2","product_status":{"known_affected":["D","C","B"]}},
                {"cve":"CVE-1","product_status":{"known_affected":["A"]}}]"#,
        );
        let d = run(&json);
        let order: Vec<(&str, &str)> = d
            .claims
            .iter()
            .map(|c| (c.vulnerability_id.as_str(), c.product_key.as_str()))
            .collect();
        assert_eq!(order, [("CVE-2", "D"), ("CVE-2", "C"), ("CVE-2", "B"), ("CVE-1", "A")]);
        for _ in 0..5 {
            assert_eq!(run(&json), d);
        }
    }

    /// Deterministic pseudo-random numbers (xorshift), no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Cuts arrays and objects short and swaps values for other JSON types,
    /// at random, so the normalizer sees valid JSON of the wrong shape.
    fn mutate(v: &mut serde_json::Value, rng: &mut Rng, depth: usize) {
        use serde_json::Value as J;
        if rng.below(12) == 0 {
            *v = match rng.below(6) {
                0 => J::Null,
                1 => J::from(rng.below(100)),
                2 => J::from("x"),
                3 => J::Array(vec![]),
                4 => J::Object(Default::default()),
                _ => J::Bool(true),
            };
            return;
        }
        if depth > 40 {
            return;
        }
        match v {
            J::Array(a) => {
                if !a.is_empty() && rng.below(4) == 0 {
                    let keep = rng.below(a.len());
                    a.truncate(keep);
                }
                for x in a.iter_mut() {
                    mutate(x, rng, depth + 1);
                }
            }
            J::Object(o) => {
                if !o.is_empty() && rng.below(6) == 0 {
                    let drop = rng.below(o.len());
                    if let Some(k) = o.keys().nth(drop).cloned() {
                        o.remove(&k);
                    }
                }
                for x in o.values_mut() {
                    mutate(x, rng, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn fuzz_inputs() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden/csaf");
        for dir in std::iter::once(golden).chain(crate::normalize::testutil::samples_dir("csaf")) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Small files only: the 1.2 MB Red Hat one adds nothing here.
                if name.ends_with(".json") && e.metadata().is_ok_and(|m| m.len() < 64 * 1024) {
                    out.push((name, std::fs::read(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out.push(("inline".into(), nested_branches(3).into_bytes()));
        out
    }

    #[test]
    fn truncated_and_mangled_documents_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (name, bytes) in fuzz_inputs() {
            // Byte truncations: mostly parse errors, which must be all.
            for _ in 0..60 {
                let mut cut = bytes[..rng.below(bytes.len())].to_vec();
                if let Ok(v) = simd_json::to_tape(&mut cut) {
                    let _ = normalize(v.as_value());
                };
            }
            // Structural truncations and type swaps of valid JSON.
            let Ok(original) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for _ in 0..200 {
                let mut m = original.clone();
                mutate(&mut m, &mut rng, 0);
                let mut text = serde_json::to_vec(&m).unwrap();
                let v = simd_json::to_tape(&mut text).unwrap();
                if let Err(e) = normalize(v.as_value()) {
                    assert!(!e.0.is_empty(), "{name}");
                }
            }
        }
    }

    #[test]
    fn shared_samples_normalize() {
        let Some(dir) = crate::normalize::testutil::samples_dir("csaf") else { return };
        let sample_counts = crate::normalize::testutil::sample_claims("csaf");
        let sample_dropped = crate::normalize::testutil::sample_dropped("csaf");
        let entries = std::fs::read_dir(dir).unwrap();
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        let mut seen = 0;
        for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(path).unwrap();
            let v = simd_json::to_tape(&mut bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                super::super::Format::detect(v.as_value()),
                Some(super::super::Format::Csaf),
                "{name}"
            );
            let d = normalize(v.as_value()).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("{name}: {} claims", d.claims.len());
            if let Some((_, n)) = sample_counts.iter().find(|(f, _)| *f == name) {
                assert_eq!(d.claims.len(), *n, "{name}");
                seen += 1;
            }
            if let Some((_, dropped)) = sample_dropped.iter().find(|(f, _)| *f == name) {
                assert_eq!(d.dropped, *dropped, "{name}");
            }
        }
        assert_eq!(seen, sample_counts.len(), "some listed samples are missing");
    }

    #[test]
    fn red_hat_sample_keys_every_platform_separately() {
        let Some(dir) = crate::normalize::testutil::samples_dir("csaf") else { return };
        let path = dir.join("go-vex__redhat_rhsa-2020_1358.json");
        let Ok(mut bytes) = std::fs::read(&path) else {
            eprintln!("skipping: {} not found", path.display());
            return;
        };
        let v = simd_json::to_tape(&mut bytes).unwrap();
        let d = normalize(v.as_value()).unwrap();
        assert_eq!(d.document_id.as_deref(), Some("RHSA-2020:1358"));
        assert!(d
            .claims
            .iter()
            .all(|c| c.status == Status::Fixed && c.metadata.contains_key("platform")));
        assert!(d.claims.iter().all(|c| c.severity.as_deref() == Some("MEDIUM")));
        let c = claim(&d, "CVE-2020-1711", "AppStream-8.1.0.Z.MAIN.EUS:SLOF-0:20171214-6.gitfa98132.module+el8.1.0+4066+0f1aadab.noarch");
        assert_eq!(c.metadata["platformCpe"], "cpe:/a:redhat:enterprise_linux:8::appstream");
        assert_eq!(
            c.aliases,
            vec!["https://bugzilla.redhat.com/show_bug.cgi?id=1794290".to_owned()]
        );
    }
}
