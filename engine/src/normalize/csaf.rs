//! CSAF 2.0 normalizer: `csaf_vex`, and any other CSAF category (e.g.
//! `csaf_security_advisory`) whose vulnerabilities carry `product_status`.
//!
//! The product tree (`branches[]` at any depth, `full_product_names[]`,
//! `relationships[]`, `product_groups[]`) is read into a map from product id
//! to name, purl and CPE. Every product id in a vulnerability's
//! `product_status` lists then yields one claim. Flags give the
//! justification, `impact` threats the detail, remediations the action, and
//! `scores[]` (else `document.aggregate_severity`) the severity; group ids
//! are expanded wherever they are referenced.
//!
//! A document that breaks CSAF's semantic rules (the 6.1.x mandatory tests)
//! is still normalized; unusable entries are skipped. Only a structure that
//! cannot be interpreted at all (`vulnerabilities` not an array,
//! `product_tree` not an object, branches nested deeper than [`MAX_DEPTH`])
//! is an error.

use simd_json::prelude::*;

use super::{
    dedupe_claims, elements, non_empty, push_unique, scalar_string, Claim, FastMap, FastSet,
    Justification, NormalizeError, NormalizedDocument, Status, Value, MAX_DEPTH,
};

/// The `product_status` lists that carry a status (`recommended` does not),
/// in the order they are read. JSON objects are unordered, so the order is
/// fixed here rather than taken from the document. A product listed under
/// two statuses of one vulnerability (which CSAF test 6.1.6 forbids) keeps
/// the most cautious one, because [`dedupe_claims`] lets a later claim win:
/// affected over under_investigation over fixed over not_affected.
const STATUS_LISTS: [(&str, Status); 7] = [
    ("known_not_affected", Status::NotAffected),
    ("first_fixed", Status::Fixed),
    ("fixed", Status::Fixed),
    ("under_investigation", Status::UnderInvestigation),
    ("first_affected", Status::Affected),
    ("last_affected", Status::Affected),
    ("known_affected", Status::Affected),
];

/// Normalizes one CSAF document.
pub fn normalize(doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    let vulnerabilities: Vec<Value> = match doc.get("vulnerabilities") {
        None => Vec::new(),
        Some(v) if v.is_null() => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| NormalizeError("CSAF vulnerabilities is not an array".into()))?
            .iter()
            .collect(),
    };
    let document = doc.get("document");
    let tracking = document.and_then(|d| d.get("tracking"));
    let document_id = tracking.and_then(|t| non_empty(t, "id")).map(str::to_owned);
    let revision = tracking.and_then(|t| t.get("version")).and_then(scalar_string);
    if vulnerabilities.is_empty() {
        // Nothing to claim (CSAF test 6.1.27.11 failing is not our concern);
        // the product tree need not even be read.
        return Ok(NormalizedDocument { document_id, revision, claims: Vec::new() });
    }

    let tree = match doc.get("product_tree") {
        None => Tree::default(),
        Some(t) if t.is_null() => Tree::default(),
        Some(t) if t.is_object() => Tree::read(t)?,
        Some(_) => return Err(NormalizeError("CSAF product_tree is not an object".into())),
    };
    let doc_severity =
        document.and_then(|d| d.get("aggregate_severity")).and_then(|s| non_empty(s, "text"));

    // Every id a claim can be keyed on, so that a purl or CPE equal to some
    // other product's id is not used as a key (see `Keys`).
    let mut ids: FastSet<&str> =
        tree.products.keys().chain(tree.relationships.keys()).copied().collect();
    for &v in &vulnerabilities {
        if let Some(ps) = v.get("product_status") {
            for (list, _) in STATUS_LISTS {
                ids.extend(strings(ps.get(list)));
            }
        }
    }
    let keys = Keys::new(&tree, ids);

    let mut targets: FastMap<&str, Target> = FastMap::default();
    let mut claims = Vec::new();
    for &v in &vulnerabilities {
        let Some((vuln_id, id_system, aliases)) = identity(v) else {
            continue;
        };
        let Some(ps) = v.get("product_status").filter(|p| p.is_object()) else {
            continue;
        };
        let details = Details::read(v, &tree);
        for (list, status) in STATUS_LISTS {
            for id in strings(ps.get(list)) {
                let target = targets.entry(id).or_insert_with(|| tree.target(id, &keys));
                let mut claim = Claim::new(vuln_id.as_str(), target.key.as_str(), status);
                claim.aliases.clone_from(&aliases);
                claim.purl.clone_from(&target.purl);
                for (k, val) in &target.metadata {
                    claim.metadata.insert(*k, val.clone());
                }
                claim.metadata.insert("productStatus", list.to_owned());
                if let Some(system) = id_system {
                    claim.metadata.insert("idSystem", system.to_owned());
                }
                details.apply(id, &mut claim, doc_severity);
                claims.push(claim);
            }
        }
    }

    Ok(NormalizedDocument { document_id, revision, claims: dedupe_claims(claims) })
}

/// The trimmed, non-empty strings of an optional array (anything else in it
/// is skipped).
fn strings<'a>(v: Option<Value<'a>>) -> impl Iterator<Item = &'a str> {
    elements(v).filter_map(|s| s.into_string().map(str::trim).filter(|s| !s.is_empty()))
}

/// Vulnerability id, the `ids[]` system it came from (when it is not a CVE)
/// and aliases. The id is the `cve`, else the first `ids[].text`; every
/// other `ids[].text` is an alias. `None` when the entry has neither.
fn identity<'a>(v: Value<'a>) -> Option<(String, Option<&'a str>, Vec<String>)> {
    let ids: Vec<(&str, Option<&str>)> = elements(v.get("ids"))
        .filter_map(|i| Some((non_empty(i, "text")?, non_empty(i, "system_name"))))
        .collect();
    let (id, system) = match non_empty(v, "cve") {
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

/// What the product tree says about one product id.
#[derive(Clone, Copy, Default)]
struct Product<'a> {
    name: Option<&'a str>,
    purl: Option<&'a str>,
    cpe: Option<&'a str>,
}

impl<'a> Product<'a> {
    /// A `full_product_name_t` object: its id and what identifies it.
    fn read(v: Value<'a>) -> Option<(&'a str, Product<'a>)> {
        let id = non_empty(v, "product_id")?;
        let helper = v.get("product_identification_helper");
        Some((
            id,
            Product {
                name: non_empty(v, "name"),
                purl: helper.and_then(|h| non_empty(h, "purl")),
                cpe: helper.and_then(|h| non_empty(h, "cpe")),
            },
        ))
    }
}

/// A relationship product: "`component` as `category` of `platform`".
struct Relationship<'a> {
    /// The relationship's own `full_product_name`.
    product: Product<'a>,
    /// `product_reference`.
    component: Option<&'a str>,
    /// `relates_to_product_reference`.
    platform: Option<&'a str>,
    /// `category`, e.g. `default_component_of`.
    category: Option<&'a str>,
}

#[derive(Default)]
struct Tree<'a> {
    /// Products from `branches[]` and `full_product_names[]`.
    products: FastMap<&'a str, Product<'a>>,
    /// Products defined by `relationships[]`, by their own product id.
    relationships: FastMap<&'a str, Relationship<'a>>,
    /// `product_groups[]`: group id to member product ids.
    groups: FastMap<&'a str, Vec<&'a str>>,
}

impl<'a> Tree<'a> {
    fn read(pt: Value<'a>) -> Result<Tree<'a>, NormalizeError> {
        let mut tree = Tree::default();
        if let Some(branches) = pt.get("branches") {
            tree.walk_branches(branches, 1)?;
        }
        for p in elements(pt.get("full_product_names")) {
            if let Some((id, product)) = Product::read(p) {
                tree.add_product(id, product);
            }
        }
        for r in elements(pt.get("relationships")) {
            let Some((id, product)) = r.get("full_product_name").and_then(Product::read) else {
                continue;
            };
            // A repeated relationship id (CSAF test 6.1.2) keeps the first.
            tree.relationships.entry(id).or_insert(Relationship {
                product,
                component: non_empty(r, "product_reference"),
                platform: non_empty(r, "relates_to_product_reference"),
                category: non_empty(r, "category"),
            });
        }
        for g in elements(pt.get("product_groups")) {
            if let Some(gid) = non_empty(g, "group_id") {
                let members = tree.groups.entry(gid).or_default();
                for id in strings(g.get("product_ids")) {
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
            }
        }
        Ok(tree)
    }

    fn walk_branches(&mut self, branches: Value<'a>, depth: usize) -> Result<(), NormalizeError> {
        if depth > MAX_DEPTH {
            return Err(NormalizeError(format!("CSAF branches nested deeper than {MAX_DEPTH}")));
        }
        for b in elements(Some(branches)) {
            if let Some((id, product)) = b.get("product").and_then(Product::read) {
                self.add_product(id, product);
            }
            if let Some(sub) = b.get("branches") {
                self.walk_branches(sub, depth + 1)?;
            }
        }
        Ok(())
    }

    /// A product id defined twice (CSAF test 6.1.2) keeps its first
    /// definition; a later one only fills in what the first lacked.
    fn add_product(&mut self, id: &'a str, p: Product<'a>) {
        let e = self.products.entry(id).or_default();
        e.name = e.name.or(p.name);
        e.purl = e.purl.or(p.purl);
        e.cpe = e.cpe.or(p.cpe);
    }

    fn name_of(&self, id: &str) -> Option<&'a str> {
        match self.relationships.get(id) {
            Some(r) => r.product.name,
            None => self.products.get(id).and_then(|p| p.name),
        }
    }

    /// The purl of a product; for a relationship product its own helper
    /// purl, else its component's (followed through nested relationships,
    /// at most [`MAX_DEPTH`] steps so a cycle ends).
    fn purl_of(&self, id: &str) -> Option<&'a str> {
        let mut id = id;
        for _ in 0..MAX_DEPTH {
            if let Some(r) = self.relationships.get(id) {
                if r.product.purl.is_some() {
                    return r.product.purl;
                }
                id = r.component?;
            } else {
                return self.products.get(id).and_then(|p| p.purl);
            }
        }
        None
    }

    fn cpe_of(&self, id: &str) -> Option<&'a str> {
        match self.relationships.get(id) {
            Some(r) => r.product.cpe,
            None => self.products.get(id).and_then(|p| p.cpe),
        }
    }

    /// Product ids of a `product_ids` list plus the members of a
    /// `group_ids` list; `None` when the entry names no products or groups at
    /// all.
    fn scope(&self, entry: Value<'a>, products_key: &str, groups_key: Option<&str>) -> Scope<'a> {
        let listed =
            |k: &str| entry.get(k).and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty());
        if !listed(products_key) && !groups_key.is_some_and(listed) {
            return None;
        }
        let mut ids: FastSet<&'a str> = strings(entry.get(products_key)).collect();
        if let Some(gk) = groups_key {
            for gid in strings(entry.get(gk)) {
                if let Some(members) = self.groups.get(gid) {
                    ids.extend(members.iter().copied());
                }
            }
        }
        Some(ids)
    }

    /// How claims about product `id` are keyed and described.
    fn target(&self, id: &str, keys: &Keys) -> Target {
        let mut meta: Vec<(&'static str, String)> = Vec::new();
        let mut push = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                meta.push((k, v.to_owned()));
            }
        };
        if let Some(r) = self.relationships.get(id) {
            // Keyed on the relationship's own id: the same component on two
            // platforms is two products (SPEC).
            push("productName", r.product.name);
            push("cpe", r.product.cpe);
            push("relationship", r.category);
            push("component", r.component);
            push("platform", r.platform);
            if let Some(platform) = r.platform {
                push("platformName", self.name_of(platform));
                push("platformPurl", self.purl_of(platform));
                push("platformCpe", self.cpe_of(platform));
            }
            return Target {
                key: id.to_owned(),
                purl: self.purl_of(id).map(str::to_owned),
                metadata: meta,
            };
        }
        let Some(p) = self.products.get(id) else {
            // Referenced but never defined (CSAF test 6.1.1): still a claim.
            return Target { key: id.to_owned(), purl: None, metadata: meta };
        };
        let key = p
            .purl
            .filter(|purl| keys.usable(purl, id))
            .or_else(|| p.cpe.filter(|cpe| keys.usable(cpe, id)))
            .unwrap_or(id);
        push("productName", p.name);
        if key != id {
            push("productId", Some(id));
        }
        if p.cpe.is_some_and(|cpe| cpe != key) {
            push("cpe", p.cpe);
        }
        Target { key: key.to_owned(), purl: p.purl.map(str::to_owned), metadata: meta }
    }
}

/// Which purls and CPEs may serve as product keys.
///
/// SPEC: productKey "never collapses two products into one". CSAF product
/// ids are unique in a document, but purls and CPEs need not be: two
/// product ids with the same purl (say, one package listed under two
/// product families) would share a key and `dedupe_claims` would drop one
/// of them. So a purl or CPE is a key only for the one product id that
/// carries it; products sharing one fall back to their next identifier
/// (CPE, then product id), keeping the purl in `purl`. Likewise a purl or
/// CPE that equals some *other* product's id is not used, so no two
/// product ids in the document ever map to the same key.
struct Keys<'a> {
    /// purl or CPE value to the single product id carrying it, or `None`
    /// when several do.
    owners: FastMap<&'a str, Option<&'a str>>,
    /// Every product id defined or referenced by a status list.
    ids: FastSet<&'a str>,
}

impl<'a> Keys<'a> {
    fn new(tree: &Tree<'a>, ids: FastSet<&'a str>) -> Keys<'a> {
        let mut owners: FastMap<&'a str, Option<&'a str>> = FastMap::default();
        for (&id, p) in &tree.products {
            let idents = [p.purl, p.cpe.filter(|c| Some(*c) != p.purl)];
            for ident in idents.into_iter().flatten() {
                owners
                    .entry(ident)
                    .and_modify(|o| {
                        if *o != Some(id) {
                            *o = None;
                        }
                    })
                    .or_insert(Some(id));
            }
        }
        Keys { owners, ids }
    }

    fn usable(&self, ident: &str, id: &str) -> bool {
        self.owners.get(ident) == Some(&Some(id)) && (ident == id || !self.ids.contains(ident))
    }
}

/// Key, purl and product metadata of one product id (computed once per
/// document).
struct Target {
    key: String,
    purl: Option<String>,
    metadata: Vec<(&'static str, String)>,
}

/// The product ids a flag, threat, remediation or score covers; `None`
/// when the entry names no products, so it applies to the whole
/// vulnerability.
type Scope<'a> = Option<FastSet<&'a str>>;

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
    // CSAF requires flags and remediations to name products (tests 6.1.32,
    // 6.1.29) but not threats; an entry that names none is read as
    // vulnerability-wide for all three (Red Hat's unscoped `impact`
    // threats are), rather than dropped.
    fn read(v: Value<'a>, tree: &Tree<'a>) -> Details<'a> {
        let list = |k: &str| elements(v.get(k));
        let flags = list("flags")
            .filter_map(|f| {
                Some((tree.scope(f, "product_ids", Some("group_ids")), non_empty(f, "label")?))
            })
            .collect();
        let threats = list("threats")
            .filter(|t| non_empty(*t, "category") == Some("impact"))
            .filter_map(|t| {
                Some((tree.scope(t, "product_ids", Some("group_ids")), non_empty(t, "details")?))
            })
            .collect();
        let remediations = list("remediations")
            .filter_map(|r| {
                Some((
                    tree.scope(r, "product_ids", Some("group_ids")),
                    non_empty(r, "details")?,
                    non_empty(r, "category"),
                ))
            })
            .collect();
        let scores = list("scores")
            .filter_map(|s| Some((tree.scope(s, "products", None), score_severity(s)?)))
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
fn score_severity(s: Value<'_>) -> Option<String> {
    if let Some(v3) = s.get("cvss_v3") {
        if let Some(sev) = non_empty(v3, "baseSeverity") {
            return Some(sev.to_owned());
        }
        if let Some(score) = v3.get("baseScore").and_then(|b| b.as_f64()) {
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
    s.get("cvss_v2").and_then(|v2| v2.get("baseScore")).and_then(scalar_string)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let json = doc(
            r#"{}"#,
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
    fn contradicting_lists_keep_the_most_cautious_status() {
        let d = run(&doc(
            FLAT,
            r#"[{"cve":"CVE-1","product_status":{"known_affected":["A"],"fixed":["A","B"],
                "known_not_affected":["B","C"],"under_investigation":["C"]}}]"#,
        ));
        assert_eq!(d.claims.len(), 3);
        assert_eq!(claim(&d, "CVE-1", "A").status, Status::Affected);
        assert_eq!(claim(&d, "CVE-1", "B").status, Status::Fixed);
        assert_eq!(claim(&d, "CVE-1", "C").status, Status::UnderInvestigation);
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
        assert_eq!(d.claims.len(), 9, "{:#?}", d.claims);
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
        // Referenced but not in the tree: keyed on the id.
        let c = claim(&d, "CVE-1", "GHOST");
        assert_eq!(c.purl, None);
        assert!(c.metadata.keys().all(|k| k == "productStatus"));
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
        let d = run(&doc(
            "{}",
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
        assert_eq!(
            run(r#"{"vulnerabilities":[{"cve":"CVE-1","product_status":{"fixed":["A"]}}]}"#)
                .claims
                .len(),
            1
        );
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
