//! CycloneDX normalizer: `vulnerabilities[]` of CycloneDX 1.4–1.6, whether
//! embedded in an SBOM or in a standalone VEX BOM.
//!
//! Rules (SPEC "Outputs (stores)", plus the decisions documented here where
//! the SPEC is silent):
//!
//! - A BOM without `vulnerabilities` (or with `null` or `[]`) is a plain SBOM:
//!   zero claims, not an error. `vulnerabilities` of any other non-array type
//!   is an error. A vulnerability without `affects` (a bill of
//!   vulnerabilities) states no entry.
//! - Entries (see the `normalize` module): each `affects[]` item, or each
//!   element of its `versions` when that is a non-empty array. Skipped and
//!   counted, each with a note: a vulnerability without an id (all its
//!   entries); an `affects` item without a `ref`, or whose `ref` resolves to
//!   nothing (all its entries); a version entry with neither `version` nor
//!   `range`, or with an unknown `status`; an entry whose status comes from
//!   an `analysis.state` that is not a known word.
//! - `bom-ref`s are indexed from `metadata.component`, `components[]` and
//!   `services[]`, following nested `components`/`services` up to
//!   [`MAX_DEPTH`] levels (deeper is a [`NormalizeError`], so hostile input
//!   cannot overflow the stack). The first definition of a `bom-ref` wins.
//! - `affects[].ref` is resolved through that index. A BOM-Link
//!   (`urn:cdx:<serial>/<version>#<bom-ref>`) is resolved by its fragment
//!   (as written, then percent-decoded) against the same index; a fragment
//!   that is itself a purl is used as the purl verbatim (it is *not*
//!   percent-decoded: `%2B` is part of a canonical purl); a BOM-Link into
//!   another BOM is a reference in its own right. A plain ref that is no
//!   `bom-ref` here, no purl (`pkg:`) and no CPE (`cpe:`) resolves to
//!   nothing. productKey = purl, else CPE, else the ref exactly as written
//!   (a whole BOM-Link stays whole, so equal fragments of different BOMs
//!   never collapse). The raw ref is kept in metadata `ref`.
//! - Status comes from `analysis.state` (see `map_state`, any letter case).
//!   Without an analysis or a state the vulnerability has not been
//!   analysed: the claim is `under_investigation` with metadata
//!   `state: "absent"`. The raw state is always kept in metadata `state`
//!   (it tells `false_positive` from `not_affected` and
//!   `resolved_with_pedigree` from `resolved`).
//! - `affects[].versions[]`: when an `affects` item has version entries,
//!   each becomes its own claim and the ref-level claim is NOT emitted. The
//!   key is `<ref key>#version=<v>` or `<ref key>#range=<vers range>`: the
//!   ref key may be a purl that already carries `@version` (or a BOM-Link
//!   with its own `#`), so `@` would be ambiguous; the version suffix always
//!   starts at the last `#`. `purl` stays the resolved purl of the ref.
//!   A version entry's `status` says whether the vulnerability is present
//!   in that version; `analysis` is the author's VEX verdict about it
//!   (SPEC). So an entry whose status is `affected`, or absent (the schema
//!   default), takes the status, justification, detail and response from
//!   `analysis`, and is `affected` only when there is no analysis state:
//!   `not_affected` with `code_not_reachable` over affected ranges is
//!   `not_affected`, as in the specification's own examples. `unaffected`
//!   is `not_affected` (the vulnerability is not present in that version)
//!   with justification `vulnerable_code_not_present`; `unknown` is
//!   `under_investigation`. Such an entry keeps the analysis's detail and
//!   response only when its status is the analysis verdict's (a
//!   `not_affected` analysis explaining unaffected versions); otherwise
//!   they explain a verdict that is not this entry's, and the entry takes
//!   the vulnerability's own description, recommendation and workaround.
//!   The entry's status, as written, is kept in metadata `versionStatus`.
//! - The CISA `justification` is set only on `not_affected` claims (see
//!   `map_justification` for the table); the source value of
//!   `analysis.justification` is always kept in metadata `justification`.
//! - detail = `analysis.detail`, else the vulnerability's `description`,
//!   else its `detail`. action = `analysis.response[]` joined with ", ", then
//!   the vulnerability's `recommendation`, then its `workaround`, the
//!   non-empty parts joined with "; " (all three say what to do about the
//!   vulnerability); the responses alone are also kept in metadata
//!   `response`.
//! - severity: the highest `ratings[].severity` (critical > high > medium >
//!   low > info > none); if no rating has one of those, the highest
//!   `ratings[].score` as written; else an `unknown` (or unrecognized)
//!   severity as written.
//! - aliases: `references[].id` in order, without repeats and without the
//!   id itself. A vulnerability without `id` takes its first reference id.
//! - document_id = `serialNumber`, revision = `version`. Claims are emitted
//!   in document order (vulnerability, affects, version). A BOM's
//!   vulnerabilities carry no time to order them by, so two claims about
//!   the same vulnerability and key are resolved by status precedence
//!   (SPEC: affected > fixed > under_investigation > not_affected), the
//!   losing statuses kept in `conflictingStatuses`; a repeat of the same
//!   status is superseded by the later one (see [`resolve_claims`]).

use std::borrow::Cow;

use simd_json::prelude::*;

use super::{
    elements, kind_of, non_empty, non_empty_str, push_unique, quoted, resolve_claims, scalar_str,
    scalar_string, Claim, DropReason, Drops, FastMap, Fields, Justification, NormalizeError,
    NormalizedDocument, Rule, Status, Value, MAX_DEPTH,
};

/// What a `bom-ref` points at, borrowed from the document (most
/// components are never referenced by a vulnerability).
#[derive(Default)]
struct Target<'v> {
    purl: Option<&'v str>,
    cpe: Option<&'v str>,
    name: Option<&'v str>,
    version: Option<Cow<'v, str>>,
}

type Index<'v> = FastMap<&'v str, Target<'v>>;

/// Normalizes one CycloneDX document.
pub fn normalize(doc: Value<'_>) -> Result<NormalizedDocument, NormalizeError> {
    let document_id = non_empty(doc, "serialNumber").map(str::to_owned);
    let revision = doc.field("version").and_then(scalar_string);
    let vulnerabilities =
        match doc.field("vulnerabilities") {
            None => None,
            Some(v) if v.is_null() => None,
            Some(v) => Some(v.as_array().ok_or_else(|| {
                NormalizeError("CycloneDX vulnerabilities is not an array".into())
            })?),
        };
    let mut reader = Reader::default();
    if let Some(vulnerabilities) = vulnerabilities.filter(|v| !v.is_empty()) {
        reader.index = build_index(doc)?;
        for (i, vuln) in vulnerabilities.iter().enumerate() {
            reader.vulnerability(i, vuln);
        }
    }
    Ok(reader.finish(document_id, revision))
}

/// One CycloneDX document being normalized: its `bom-ref` index (built
/// only when it has vulnerabilities), and the claims and drop report so
/// far. Each vulnerability is read by [`Reader::vulnerability`] into it.
#[derive(Default)]
struct Reader<'v> {
    index: Index<'v>,
    claims: Vec<Claim>,
    drops: Drops,
}

impl<'v> Reader<'v> {
    /// Reads vulnerability `i`: a claim for each entry of its `affects`
    /// (see the module docs); a vulnerability or entry that cannot be read
    /// is a defect, counted with the entries it holds.
    fn vulnerability(&mut self, i: usize, vuln: Value<'v>) {
        let at = || format!("vulnerabilities[{i}]");
        if !vuln.is_object() {
            self.drops.defect(DropReason::NoVulnerabilityId, 1, at, || {
                format!("the vulnerability is {}, not an object", kind_of(vuln))
            });
            return;
        }
        let [id, references, analysis, affects, description, detail, recommendation, workaround, ratings, source] =
            vuln.pick([
                "id",
                "references",
                "analysis",
                "affects",
                "description",
                "detail",
                "recommendation",
                "workaround",
                "ratings",
                "source",
            ]);
        let affects = affects.filter(|a| !a.is_null());
        let Some((id, aliases)) = identity(id, references) else {
            let entries = count_affects(affects).max(1);
            self.drops.defect(DropReason::NoVulnerabilityId, entries, at, || {
                "the vulnerability has no id and no reference id".to_owned()
            });
            return;
        };
        let Some(affects) = affects else { return };
        let Some(affects) = affects.as_array() else {
            self.drops.defect(DropReason::NoProductId, 1, at, || {
                format!("affects is {}, not a list", kind_of(affects))
            });
            return;
        };
        if affects.is_empty() {
            return;
        }
        let vulnerability = Vulnerability::read(
            (i, id, aliases),
            analysis,
            [description, detail, recommendation, workaround, ratings, source],
        );
        for (j, affect) in affects.iter().enumerate() {
            self.affect(&vulnerability, j, affect);
        }
    }

    /// Reads `affects[j]` of vulnerability `v`: the claim about its `ref`,
    /// or, when it has version entries, one claim per entry instead.
    fn affect(&mut self, v: &Vulnerability<'_>, j: usize, affect: Value<'v>) {
        let i = v.i;
        let a_at = || format!("vulnerabilities[{i}].affects[{j}]");
        let [affect_ref, versions] = affect.pick(["ref", "versions"]);
        let versions = versions.and_then(|v| v.as_array()).filter(|v| !v.is_empty());
        let entries = affects_entries(versions);
        let Some(raw_ref) = non_empty_str(affect_ref) else {
            self.drops.defect(DropReason::NoProductId, entries, a_at, || match affect_ref {
                _ if !affect.is_object() => {
                    format!("the affects entry is {}, not an object", kind_of(affect))
                }
                None => "the affects entry has no ref".to_owned(),
                Some(r) if r.as_str().is_some() => "the affects entry's ref is empty".to_owned(),
                Some(r) => format!("the affects entry's ref is {}, not a string", kind_of(r)),
            });
            return;
        };
        let mut base = v.template.clone();
        let Some((key, purl)) = resolve(raw_ref, &self.index, &mut base) else {
            self.drops.defect(DropReason::UnresolvedReference, entries, a_at, || {
                format!(
                    "ref {} is no bom-ref of this BOM, no BOM-Link, purl or CPE",
                    quoted(raw_ref)
                )
            });
            return;
        };
        base.product_key = key;
        base.purl = purl;
        base.metadata.insert("ref", raw_ref.to_owned());

        let Some(versions) = versions else {
            match &v.verdict {
                Ok(status) => {
                    let status = status.unwrap_or(Status::UnderInvestigation);
                    self.claims.push(v.with_status(base, status));
                }
                Err(detail) => {
                    self.drops.defect(DropReason::UnknownStatus, 1, a_at, || detail.clone());
                }
            }
            return;
        };
        for (k, entry) in versions.iter().enumerate() {
            self.version(v, &base, (j, k), entry);
        }
    }

    /// Reads version entry `k` of `affects[j]`: the claim `base` about the
    /// ref, keyed on the entry's version (or range), with the status its
    /// own `status` and the analysis give (see the module docs).
    fn version(
        &mut self,
        v: &Vulnerability<'_>,
        base: &Claim,
        (j, k): (usize, usize),
        entry: Value<'_>,
    ) {
        let i = v.i;
        let v_at = || format!("vulnerabilities[{i}].affects[{j}].versions[{k}]");
        let [version, range, status_raw] = entry.pick(["version", "range", "status"]);
        let version = version.and_then(scalar_string);
        let version = version.as_deref().map(str::trim).filter(|v| !v.is_empty());
        let range = non_empty_str(range);
        let suffix = match (version, range) {
            (Some(v), _) => format!("#version={v}"),
            (None, Some(r)) => format!("#range={r}"),
            (None, None) => {
                self.drops.defect(DropReason::NoProductId, 1, v_at, || {
                    "the version entry has neither version nor range".to_owned()
                });
                return;
            }
        };
        let status_raw = status_raw.filter(|s| !s.is_null());
        let version_status = version_status(status_raw);
        let mut claim = match v.version_claim(base.clone(), version_status) {
            Ok(claim) => claim,
            Err(detail) => {
                self.drops.defect(DropReason::UnknownStatus, 1, v_at, || detail.into_owned());
                return;
            }
        };
        claim.product_key.push_str(&suffix);
        if let Some(v) = version {
            claim.metadata.insert("version", v.to_owned());
        }
        if let Some(r) = range {
            claim.metadata.insert("range", r.to_owned());
        }
        if let Some(s) = status_raw.and_then(|s| s.into_string()) {
            claim.metadata.insert("versionStatus", s.trim().to_owned());
        }
        self.claims.push(claim);
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

/// A version entry's own `status` (absent is `affected`, the schema
/// default), or what is wrong with it.
fn version_status(status: Option<Value<'_>>) -> Result<Status, String> {
    match status {
        None => Ok(Status::Affected),
        Some(s) => match s.into_string() {
            Some(w) => map_version_status(w.trim())
                .ok_or_else(|| format!("unknown version status {}", quoted(w))),
            None => Err(format!("the version status is {}, not a string", kind_of(s))),
        },
    }
}

/// What every claim of one vulnerability shares: the claim its entries
/// start from, and its analysis, which decides their status.
struct Vulnerability<'v> {
    /// Where it is: `vulnerabilities[i]`.
    i: usize,
    /// Id, aliases, detail, action, severity and the analysis's metadata;
    /// each entry sets the key, purl and status.
    template: Claim,
    /// The status `analysis.state` gives (`None`: not analysed), or what
    /// is wrong with the state.
    verdict: Result<Option<Status>, String>,
    /// The analysis's CISA justification, for its `not_affected` claims.
    justification: Option<Justification>,
    /// Whether the vulnerability has an `analysis` object.
    analysed: bool,
    /// The detail and action of the vulnerability itself, without the
    /// analysis: what a version entry whose status departs from the
    /// verdict says.
    plain_detail: Option<&'v str>,
    plain_action: Option<String>,
}

impl<'v> Vulnerability<'v> {
    /// Reads what the claims of vulnerability `i` (with `id` and
    /// `aliases`) share from its `analysis` and its other fields.
    fn read(
        (i, id, aliases): (usize, String, Vec<String>),
        analysis: Option<Value<'v>>,
        [description, detail, recommendation, workaround, ratings, source]: [Option<Value<'v>>; 6],
    ) -> Vulnerability<'v> {
        let analysis = analysis.filter(|a| a.is_object());
        let [state, analysis_justification, response, analysis_detail] =
            analysis.pick(["state", "justification", "response", "detail"]);
        let verdict = verdict(state);
        let state = state.and_then(|s| s.into_string()).map(str::trim);
        let justification_raw = non_empty_str(analysis_justification);
        let justification = justification_raw.and_then(map_justification);
        let responses: Vec<&str> = elements(response)
            .filter_map(|r| r.into_string().map(str::trim).filter(|r| !r.is_empty()))
            .collect();
        let plain_detail = non_empty_str(description).or_else(|| non_empty_str(detail));
        let (recommendation, workaround) =
            (non_empty_str(recommendation), non_empty_str(workaround));

        let mut template = Claim::new(id, String::new(), Status::UnderInvestigation);
        template.aliases = aliases;
        template.detail = non_empty_str(analysis_detail).or(plain_detail).map(str::to_owned);
        let response = (!responses.is_empty()).then(|| responses.join(", "));
        let action: Vec<&str> =
            [response.as_deref(), recommendation, workaround].into_iter().flatten().collect();
        template.action = (!action.is_empty()).then(|| action.join("; "));
        template.severity = severity(ratings);
        let meta = &mut template.metadata;
        meta.insert("state", state.filter(|s| !s.is_empty()).unwrap_or("absent").to_owned());
        if let Some(j) = justification_raw {
            meta.insert("justification", j.to_owned());
        }
        if let Some(r) = response {
            meta.insert("response", r);
        }
        if let Some(source) = source.and_then(|s| non_empty(s, "name")) {
            meta.insert("source", source.to_owned());
        }

        let plain_action = match (recommendation, workaround) {
            (Some(r), Some(w)) => Some(format!("{r}; {w}")),
            (r, w) => r.or(w).map(str::to_owned),
        };
        Vulnerability {
            i,
            template,
            verdict,
            justification,
            analysed: analysis.is_some(),
            plain_detail,
            plain_action,
        }
    }

    /// `claim` with `status`; the analysis's justification goes on its
    /// `not_affected` claims only.
    fn with_status(&self, mut claim: Claim, status: Status) -> Claim {
        claim.status = status;
        claim.justification = self.justification.filter(|_| status == Status::NotAffected);
        claim
    }

    /// The claim of a version entry whose own status is `version_status`,
    /// from `claim`, the ref's; `Err` says why it has no status.
    fn version_claim(
        &self,
        mut claim: Claim,
        version_status: Result<Status, String>,
    ) -> Result<Claim, Cow<'_, str>> {
        match version_status {
            Ok(Status::Affected) => match &self.verdict {
                Ok(status) => Ok(self.with_status(claim, status.unwrap_or(Status::Affected))),
                Err(detail) => Err(Cow::Borrowed(detail)),
            },
            Ok(Status::NotAffected) => {
                claim.status = Status::NotAffected;
                claim.justification = Some(Justification::VulnerableCodeNotPresent);
                self.without_analysis(&mut claim);
                Ok(claim)
            }
            Ok(status) => {
                claim.status = status;
                claim.justification = None;
                self.without_analysis(&mut claim);
                Ok(claim)
            }
            Err(detail) => Err(Cow::Owned(detail)),
        }
    }

    /// What a version entry whose own status departs from the analysis
    /// verdict says without the analysis: its detail, response and
    /// justification explain the verdict, not this entry.
    fn without_analysis(&self, claim: &mut Claim) {
        let verdict_status = self.verdict.as_ref().ok().copied().flatten();
        if self.analysed && Some(claim.status) != verdict_status {
            claim.detail = self.plain_detail.map(str::to_owned);
            claim.action.clone_from(&self.plain_action);
            claim.metadata.remove("justification");
            claim.metadata.remove("response");
        }
    }
}

/// Indexes every `bom-ref` of the document's components and services.
fn build_index<'v>(doc: Value<'v>) -> Result<Index<'v>, NormalizeError> {
    let mut index = Index::default();
    if let Some(c) = doc.field("metadata").and_then(|m| m.field("component")) {
        index_node(c, 0, &mut index)?;
    }
    for key in ["components", "services"] {
        for c in array(doc, key) {
            index_node(c, 0, &mut index)?;
        }
    }
    Ok(index)
}

fn index_node<'v>(
    node: Value<'v>,
    depth: usize,
    index: &mut Index<'v>,
) -> Result<(), NormalizeError> {
    if depth > MAX_DEPTH {
        return Err(NormalizeError(format!("CycloneDX components nested deeper than {MAX_DEPTH}")));
    }
    if !node.is_object() {
        return Ok(());
    }
    let [bom_ref, purl, cpe, name, version, components, services] =
        node.pick(["bom-ref", "purl", "cpe", "name", "version", "components", "services"]);
    if let Some(bom_ref) = non_empty_str(bom_ref) {
        index.entry(bom_ref).or_insert_with(|| Target {
            purl: non_empty_str(purl),
            cpe: non_empty_str(cpe),
            name: non_empty_str(name),
            version: version.and_then(scalar_str).filter(|v| !v.trim().is_empty()),
        });
    }
    for child in elements(components).chain(elements(services)) {
        index_node(child, depth + 1, index)?;
    }
    Ok(())
}

/// The elements of an array field, or nothing when it is absent or not an
/// array.
fn array<'v>(v: Value<'v>, key: &str) -> impl Iterator<Item = Value<'v>> {
    elements(v.field(key))
}

/// `analysis.state` → status. The six CycloneDX states per SPEC; the four
/// OpenVEX/CISA status names are accepted too (a lenient reading of a
/// document written with the wrong vocabulary). Case-insensitive.
fn map_state(state: &str) -> Option<Status> {
    const STATES: [(&str, Status); 6] = [
        ("exploitable", Status::Affected),
        ("not_affected", Status::NotAffected),
        ("false_positive", Status::NotAffected),
        ("resolved", Status::Fixed),
        ("resolved_with_pedigree", Status::Fixed),
        ("in_triage", Status::UnderInvestigation),
    ];
    STATES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(state))
        .map(|&(_, s)| s)
        .or_else(|| Status::from_name(state))
}

/// `affects[].versions[].status` → status (case-insensitive).
fn map_version_status(status: &str) -> Option<Status> {
    [
        ("affected", Status::Affected),
        ("unaffected", Status::NotAffected),
        ("unknown", Status::UnderInvestigation),
    ]
    .into_iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(status))
    .map(|(_, s)| s)
}

/// `analysis.justification` → CISA justification.
///
/// CycloneDX has nine values, CISA five, and there is no normative mapping
/// (tools disagree), so this one follows the definitions:
///
/// | CycloneDX                         | CISA                                                |
/// |-----------------------------------|-----------------------------------------------------|
/// | `code_not_present`                | `vulnerable_code_not_present`                       |
/// | `code_not_reachable`              | `vulnerable_code_not_in_execute_path`               |
/// | `requires_configuration`          | `vulnerable_code_cannot_be_controlled_by_adversary` |
/// | `requires_dependency`             | `vulnerable_code_cannot_be_controlled_by_adversary` |
/// | `requires_environment`            | `vulnerable_code_cannot_be_controlled_by_adversary` |
/// | `protected_by_compiler`           | `inline_mitigations_already_exist`                  |
/// | `protected_at_runtime`            | `inline_mitigations_already_exist`                  |
/// | `protected_at_perimeter`          | `inline_mitigations_already_exist`                  |
/// | `protected_by_mitigating_control` | `inline_mitigations_already_exist`                  |
///
/// - `code_not_present` is not `component_not_present`: the BOM names the
///   component (the `affects` ref is it), only the vulnerable code is gone.
/// - `requires_*` ("exploitability requires a configuration / dependency /
///   environment that is not present") say the vulnerable code is in the
///   component and may well run, but the preconditions an exploit needs are
///   absent, so an adversary cannot drive it: CISA's
///   `vulnerable_code_cannot_be_controlled_by_adversary` ("vulnerable code is
///   used in such a way that an attacker cannot mount any anticipated
///   attack"). They do not say the code is outside the execute path, and
///   `requires_dependency` is NOT `component_not_present`: the missing
///   dependency is some other package the exploit needs, while the
///   vulnerable component itself is present. This is also the most common
///   choice among converters we surveyed.
/// - `protected_*` all say the code is present and reachable but a control
///   (compiler hardening, runtime protection, perimeter filtering, other
///   mitigating control) stops exploitation: CISA's
///   `inline_mitigations_already_exist` ("built-in inline controls or
///   mitigations prevent an adversary from leveraging the vulnerability").
///   `protected_at_perimeter` is the loosest fit (the control may sit outside
///   the product), but it is still a mitigation, not a property of the code.
///
/// A CISA value written directly (not schema-valid, but unambiguous) is
/// accepted as is. Anything else maps to `None`; the source value is always
/// kept in metadata either way.
fn map_justification(j: &str) -> Option<Justification> {
    use Justification::*;
    const TABLE: [(&str, Justification); 9] = [
        ("code_not_present", VulnerableCodeNotPresent),
        ("code_not_reachable", VulnerableCodeNotInExecutePath),
        ("requires_configuration", VulnerableCodeCannotBeControlledByAdversary),
        ("requires_dependency", VulnerableCodeCannotBeControlledByAdversary),
        ("requires_environment", VulnerableCodeCannotBeControlledByAdversary),
        ("protected_by_compiler", InlineMitigationsAlreadyExist),
        ("protected_at_runtime", InlineMitigationsAlreadyExist),
        ("protected_at_perimeter", InlineMitigationsAlreadyExist),
        ("protected_by_mitigating_control", InlineMitigationsAlreadyExist),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(j))
        .map(|&(_, just)| just)
        .or_else(|| Justification::from_cisa(j))
}

/// Rank of a CycloneDX severity; `None` for `unknown` and anything
/// unrecognized.
fn severity_rank(s: &str) -> Option<(u8, &'static str)> {
    ["none", "info", "low", "medium", "high", "critical"]
        .into_iter()
        .zip(1..)
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(name, rank)| (rank, name))
}

/// The vulnerability's severity from `ratings[]` (see module docs).
fn severity(ratings: Option<Value<'_>>) -> Option<String> {
    let mut best: Option<(u8, &'static str)> = None;
    let mut best_score: Option<(f64, String)> = None;
    let mut other: Option<&str> = None;
    for rating in elements(ratings) {
        let [severity, score] = rating.pick(["severity", "score"]);
        if let Some(s) = non_empty_str(severity) {
            match severity_rank(s) {
                Some(r) if best.is_none_or(|b| r.0 > b.0) => best = Some(r),
                Some(_) => {}
                None => {
                    other.get_or_insert(s);
                }
            }
        }
        if let Some(text) = score.and_then(scalar_string) {
            if let Ok(score) = text.trim().parse::<f64>() {
                if score.is_finite() && best_score.as_ref().is_none_or(|b| score > b.0) {
                    best_score = Some((score, text.trim().to_owned()));
                }
            }
        }
    }
    best.map(|b| b.1.to_owned()).or(best_score.map(|s| s.1)).or(other.map(str::to_owned))
}

/// The id and aliases of a vulnerability (see module docs).
fn identity<'a>(
    id: Option<Value<'a>>,
    references: Option<Value<'a>>,
) -> Option<(String, Vec<String>)> {
    let ref_ids: Vec<&str> = elements(references).filter_map(|r| non_empty(r, "id")).collect();
    let id = non_empty_str(id).or_else(|| ref_ids.first().copied())?;
    let mut aliases = Vec::new();
    for a in ref_ids.into_iter().filter(|a| *a != id) {
        push_unique(&mut aliases, a);
    }
    Some((id.to_owned(), aliases))
}

/// The entries of an `affects` list (what a skipped vulnerability drops).
fn count_affects(affects: Option<Value<'_>>) -> u64 {
    elements(affects).map(|a| affects_entries(versions_of(a))).sum()
}

/// The version entries of an `affects` item, when it has any.
fn versions_of(affect: Value<'_>) -> Option<simd_json::tape::Array<'_, '_>> {
    affect.field("versions").and_then(|v| v.as_array()).filter(|v| !v.is_empty())
}

fn affects_entries(versions: Option<simd_json::tape::Array<'_, '_>>) -> u64 {
    versions.map_or(1, |v| v.len() as u64)
}

/// The analysis verdict from its `state`: a status, none (not analysed),
/// or what is wrong with the state.
fn verdict(state: Option<Value<'_>>) -> Result<Option<Status>, String> {
    let Some(state) = state.filter(|s| !s.is_null()) else {
        return Ok(None);
    };
    let Some(word) = state.into_string() else {
        return Err(format!("analysis.state is {}, not a string", kind_of(state)));
    };
    let word = word.trim();
    if word.is_empty() {
        return Ok(None);
    }
    map_state(word).map(Some).ok_or_else(|| format!("unknown analysis.state {}", quoted(word)))
}

/// Resolves an `affects[].ref` to (productKey, purl), recording the
/// component's name and version in the claim's metadata when the ref
/// resolves to a component of this document; `None` when it resolves to
/// nothing (see the module docs).
fn resolve(raw: &str, index: &Index<'_>, claim: &mut Claim) -> Option<(String, Option<String>)> {
    let is_link = raw.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("urn:cdx:"));
    // A BOM-Link without a fragment names a whole BOM: nothing to look up.
    let lookup = if is_link { raw.split_once('#').map(|(_, f)| f.trim()) } else { Some(raw) };
    let lookup = lookup.filter(|l| !l.is_empty());
    let target = lookup.and_then(|l| {
        index.get(l).or_else(|| percent_decode(l).and_then(|d| index.get(d.as_str())))
    });
    if let Some(t) = target {
        if let Some(name) = t.name {
            claim.metadata.insert("componentName", name.to_owned());
        }
        if let Some(version) = &t.version {
            claim.metadata.insert("componentVersion", version.clone().into_owned());
        }
    }
    let purl = target.and_then(|t| t.purl).or_else(|| lookup.filter(|l| l.starts_with("pkg:")));
    let cpe = target.and_then(|t| t.cpe).or_else(|| lookup.filter(|l| l.starts_with("cpe:")));
    if target.is_none() && !is_link && purl.is_none() && cpe.is_none() {
        return None;
    }
    let key = purl.or(cpe).unwrap_or(raw).to_owned();
    Some((key, purl.map(str::to_owned)))
}

/// Percent-decodes `s`; `None` when it has no escapes or the result is not
/// UTF-8. Malformed escapes are kept literally.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn parse_and<T>(json: &str, f: impl FnOnce(Value<'_>) -> T) -> T {
        let mut b = json.as_bytes().to_vec();
        let v = simd_json::to_tape(&mut b).unwrap();
        f(v.as_value())
    }

    fn run(json: &str) -> NormalizedDocument {
        parse_and(json, |v| normalize(v).unwrap())
    }

    fn run_err(json: &str) -> NormalizeError {
        parse_and(json, |v| normalize(v).unwrap_err())
    }

    fn find<'a>(d: &'a NormalizedDocument, vuln: &str, key: &str) -> &'a Claim {
        d.claims
            .iter()
            .find(|c| c.vulnerability_id == vuln && c.product_key == key)
            .unwrap_or_else(|| panic!("no claim ({vuln}, {key}) in {:#?}", d.claims))
    }

    /// One vulnerability with the given `analysis` against one component.
    fn with_analysis(analysis: &str) -> NormalizedDocument {
        run(&format!(
            r#"{{"bomFormat":"CycloneDX","components":[{{"bom-ref":"c","purl":"pkg:npm/c@1"}}],
                "vulnerabilities":[{{"id":"CVE-1",{analysis}"affects":[{{"ref":"c"}}]}}]}}"#
        ))
    }

    #[test]
    fn every_state_maps() {
        let cases = [
            ("exploitable", Status::Affected),
            ("not_affected", Status::NotAffected),
            ("false_positive", Status::NotAffected),
            ("resolved", Status::Fixed),
            ("resolved_with_pedigree", Status::Fixed),
            ("in_triage", Status::UnderInvestigation),
            // Lenient extras: OpenVEX names, other case, unknown values.
            ("affected", Status::Affected),
            ("Exploitable", Status::Affected),
            ("NOT_AFFECTED", Status::NotAffected),
        ];
        for (state, want) in cases {
            let d = with_analysis(&format!(r#""analysis":{{"state":"{state}"}},"#));
            assert_eq!(d.claims.len(), 1, "{state}");
            assert_eq!(d.claims[0].status, want, "{state}");
            assert_eq!(d.claims[0].metadata["state"], state);
        }
    }

    #[test]
    fn unknown_state_drops_what_depends_on_it() {
        // The ref-level entry and an affected version take the verdict:
        // dropped. The unaffected version does not need it: kept.
        let d = run(
            r#"{"bomFormat":"CycloneDX","components":[{"bom-ref":"c","purl":"pkg:npm/c@1"}],
            "vulnerabilities":[{"id":"CVE-1","analysis":{"state":"no_such_state"},"affects":[
              {"ref":"c"},
              {"ref":"c","versions":[{"version":"1","status":"affected"},{"version":"2","status":"unaffected"}]}]},
              {"id":"CVE-2","analysis":{"state":7},"affects":[{"ref":"c"}]}]}"#,
        );
        let keys: Vec<_> = d.claims.iter().map(|c| (c.product_key.as_str(), c.status)).collect();
        assert_eq!(keys, [("pkg:npm/c@1#version=2", Status::NotAffected)]);
        assert_eq!(d.dropped.unknown_status, 3);
        let notes: Vec<_> = d.notes.iter().map(|n| (n.at.as_str(), n.detail.as_str())).collect();
        assert_eq!(
            notes,
            [
                ("vulnerabilities[0].affects[0]", r#"unknown analysis.state "no_such_state""#),
                (
                    "vulnerabilities[0].affects[1].versions[0]",
                    r#"unknown analysis.state "no_such_state""#
                ),
                ("vulnerabilities[1].affects[0]", "analysis.state is a number, not a string"),
            ]
        );
    }

    #[test]
    fn absent_analysis_or_state_is_under_investigation() {
        for analysis in ["", r#""analysis":{"detail":"started"},"#, r#""analysis":"bogus","#] {
            let d = with_analysis(analysis);
            assert_eq!(d.claims[0].status, Status::UnderInvestigation, "{analysis}");
            assert_eq!(d.claims[0].metadata["state"], "absent", "{analysis}");
        }
    }

    #[test]
    fn every_justification_maps() {
        use Justification::*;
        let cases = [
            ("code_not_present", Some(VulnerableCodeNotPresent)),
            ("code_not_reachable", Some(VulnerableCodeNotInExecutePath)),
            ("requires_configuration", Some(VulnerableCodeCannotBeControlledByAdversary)),
            ("requires_dependency", Some(VulnerableCodeCannotBeControlledByAdversary)),
            ("requires_environment", Some(VulnerableCodeCannotBeControlledByAdversary)),
            ("protected_by_compiler", Some(InlineMitigationsAlreadyExist)),
            ("protected_at_runtime", Some(InlineMitigationsAlreadyExist)),
            ("protected_at_perimeter", Some(InlineMitigationsAlreadyExist)),
            ("protected_by_mitigating_control", Some(InlineMitigationsAlreadyExist)),
            ("component_not_present", Some(ComponentNotPresent)),
            ("inline_mitigations_already_exist", Some(InlineMitigationsAlreadyExist)),
            ("because", None),
        ];
        for (j, want) in cases {
            let d = with_analysis(&format!(
                r#""analysis":{{"state":"not_affected","justification":"{j}"}},"#
            ));
            assert_eq!(d.claims[0].justification, want, "{j}");
            assert_eq!(d.claims[0].metadata["justification"], j);
        }
    }

    #[test]
    fn justification_only_on_not_affected_claims() {
        for state in ["exploitable", "resolved", "in_triage"] {
            let d = with_analysis(&format!(
                r#""analysis":{{"state":"{state}","justification":"code_not_present"}},"#
            ));
            assert_eq!(d.claims[0].justification, None, "{state}");
            assert_eq!(d.claims[0].metadata["justification"], "code_not_present");
        }
        let d = with_analysis(
            r#""analysis":{"state":"false_positive","justification":"code_not_present"},"#,
        );
        assert_eq!(d.claims[0].justification, Some(Justification::VulnerableCodeNotPresent));
    }

    #[test]
    fn bom_refs_resolve_through_metadata_and_nested_components() {
        let d = run(r#"{"bomFormat":"CycloneDX","serialNumber":"urn:uuid:x","version":4,
            "metadata":{"component":{"bom-ref":"root","name":"Root","version":"9",
                "components":[{"bom-ref":"inner","purl":"pkg:npm/inner@1"}]}},
            "components":[{"bom-ref":"a","purl":"pkg:npm/a@1","components":[
                {"bom-ref":"b","cpe":"cpe:2.3:a:x:b:1:*:*:*:*:*:*:*","components":[
                    {"bom-ref":"c","purl":"pkg:npm/c@3"}]}]},
                {"bom-ref":"a","purl":"pkg:npm/shadowed@1"}],
            "services":[{"bom-ref":"svc","name":"API","services":[{"bom-ref":"svc2","name":"Inner API"}]}],
            "vulnerabilities":[{"id":"CVE-1","analysis":{"state":"exploitable"},"affects":[
                {"ref":"root"},{"ref":"inner"},{"ref":"a"},{"ref":"b"},{"ref":"c"},{"ref":"svc2"},
                {"ref":"nowhere"},{"ref":"pkg:npm/direct@2"},{"ref":" "},{"ref":7},{}]}]}"#);
        assert_eq!(d.document_id.as_deref(), Some("urn:uuid:x"));
        assert_eq!(d.revision.as_deref(), Some("4"));
        let keys: Vec<_> = d.claims.iter().map(|c| c.product_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "root",
                "pkg:npm/inner@1",
                "pkg:npm/a@1",
                "cpe:2.3:a:x:b:1:*:*:*:*:*:*:*",
                "pkg:npm/c@3",
                "svc2",
                "pkg:npm/direct@2"
            ]
        );
        // "nowhere" is no bom-ref, BOM-Link, purl or CPE; the last three
        // have no usable ref.
        assert_eq!((d.dropped.unresolved_reference, d.dropped.no_product_id), (1, 3));
        let notes: Vec<_> = d.notes.iter().map(|n| (n.at.as_str(), n.detail.as_str())).collect();
        assert_eq!(
            notes,
            [
                (
                    "vulnerabilities[0].affects[6]",
                    r#"ref "nowhere" is no bom-ref of this BOM, no BOM-Link, purl or CPE"#
                ),
                ("vulnerabilities[0].affects[8]", "the affects entry's ref is empty"),
                (
                    "vulnerabilities[0].affects[9]",
                    "the affects entry's ref is a number, not a string"
                ),
                ("vulnerabilities[0].affects[10]", "the affects entry has no ref"),
            ]
        );
        let root = find(&d, "CVE-1", "root");
        assert_eq!(root.purl, None);
        assert_eq!(root.metadata["componentName"], "Root");
        assert_eq!(root.metadata["componentVersion"], "9");
        assert_eq!(root.metadata["ref"], "root");
        assert_eq!(find(&d, "CVE-1", "pkg:npm/c@3").purl.as_deref(), Some("pkg:npm/c@3"));
        assert_eq!(find(&d, "CVE-1", "cpe:2.3:a:x:b:1:*:*:*:*:*:*:*").purl, None);
        assert_eq!(find(&d, "CVE-1", "svc2").metadata["componentName"], "Inner API");
        assert_eq!(find(&d, "CVE-1", "pkg:npm/direct@2").purl.as_deref(), Some("pkg:npm/direct@2"));
    }

    #[test]
    fn bom_links_resolve_by_fragment() {
        let d = run(r#"{"bomFormat":"CycloneDX","serialNumber":"urn:uuid:s",
            "components":[{"bom-ref":"comp 1","purl":"pkg:npm/comp@1"}],
            "vulnerabilities":[{"id":"CVE-1","affects":[
                {"ref":"urn:cdx:s/1#comp%201"},
                {"ref":"URN:CDX:other/2#comp 1"},
                {"ref":"urn:cdx:other/1#pkg:deb/ubuntu/libstdc%2B%2B6@12?arch=amd64"},
                {"ref":"urn:cdx:one/1#product"},
                {"ref":"urn:cdx:two/1#product"},
                {"ref":"urn:cdx:two/1"},
                {"ref":"urn:cdx:two/1#"}]}]}"#);
        let keys: Vec<_> = d.claims.iter().map(|c| c.product_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pkg:npm/comp@1",
                "pkg:deb/ubuntu/libstdc%2B%2B6@12?arch=amd64",
                "urn:cdx:one/1#product",
                "urn:cdx:two/1#product",
                "urn:cdx:two/1",
                "urn:cdx:two/1#"
            ]
        );
        // Both links to "comp 1" became one claim; the later ref is kept.
        assert_eq!(d.claims[0].metadata["ref"], "URN:CDX:other/2#comp 1");
        assert_eq!(
            d.claims[1].purl.as_deref(),
            Some("pkg:deb/ubuntu/libstdc%2B%2B6@12?arch=amd64")
        );
        assert_eq!(d.claims[2].purl, None);
    }

    #[test]
    fn version_status_says_presence_and_analysis_gives_the_verdict() {
        let d = run(
            r#"{"bomFormat":"CycloneDX","components":[{"bom-ref":"p","purl":"pkg:maven/g/p@9"}],
            "vulnerabilities":[
              {"id":"CVE-1","analysis":{"state":"exploitable","detail":"upgrade"},"affects":[{"ref":"p","versions":[
                {"version":"2.4","status":"affected"},{"range":"vers:generic/>=2.9|<=4.1","status":"affected"}]}]},
              {"id":"CVE-1","analysis":{"state":"not_affected","justification":"code_not_reachable","detail":"never called",
                "response":["will_not_fix"]},
               "affects":[{"ref":"p","versions":[
                {"version":"2.5","status":"unaffected"},{"range":"vers:generic/>=1.0|<=2.3"},
                {"version":"2.7","status":"AFFECTED"},{"version":"2.8","status":"unknown"}]}]},
              {"id":"CVE-2","affects":[{"ref":"p","versions":[{"version":"1.0","status":"affected"},{"version":"1.1"}]}]}]}"#,
        );
        assert_eq!(d.claims.len(), 8, "no ref-level claim besides the version claims");
        let c = find(&d, "CVE-1", "pkg:maven/g/p@9#version=2.4");
        assert_eq!((c.status, c.justification), (Status::Affected, None));
        assert_eq!(c.purl.as_deref(), Some("pkg:maven/g/p@9"));
        assert_eq!(c.metadata["version"], "2.4");
        let c = find(&d, "CVE-1", "pkg:maven/g/p@9#range=vers:generic/>=2.9|<=4.1");
        assert_eq!(c.status, Status::Affected);
        assert_eq!(c.metadata["range"], "vers:generic/>=2.9|<=4.1");
        // unaffected: the vulnerability is not in that version.
        let c = find(&d, "CVE-1", "pkg:maven/g/p@9#version=2.5");
        assert_eq!(c.status, Status::NotAffected);
        assert_eq!(c.justification, Some(Justification::VulnerableCodeNotPresent));
        assert_eq!(c.detail.as_deref(), Some("never called"));
        assert_eq!(c.metadata["versionStatus"], "unaffected");
        assert_eq!(c.metadata["justification"], "code_not_reachable");
        // No status (the schema default, affected) and affected in any
        // case: present, and the analysis says not exploitable.
        for key in ["pkg:maven/g/p@9#range=vers:generic/>=1.0|<=2.3", "pkg:maven/g/p@9#version=2.7"]
        {
            let c = find(&d, "CVE-1", key);
            assert_eq!(c.status, Status::NotAffected, "{key}");
            assert_eq!(
                c.justification,
                Some(Justification::VulnerableCodeNotInExecutePath),
                "{key}"
            );
            assert_eq!(c.detail.as_deref(), Some("never called"), "{key}");
            assert_eq!(c.action.as_deref(), Some("will_not_fix"), "{key}");
        }
        assert!(!find(&d, "CVE-1", "pkg:maven/g/p@9#range=vers:generic/>=1.0|<=2.3")
            .metadata
            .contains_key("versionStatus"));
        let c = find(&d, "CVE-1", "pkg:maven/g/p@9#version=2.8");
        assert_eq!((c.status, c.justification), (Status::UnderInvestigation, None));
        // No analysis at all: affected versions are affected.
        assert_eq!(find(&d, "CVE-2", "pkg:maven/g/p@9#version=1.0").status, Status::Affected);
        assert_eq!(find(&d, "CVE-2", "pkg:maven/g/p@9#version=1.1").status, Status::Affected);
        assert!(d.dropped.is_empty());
    }

    #[test]
    fn version_entry_edge_cases() {
        let refs: Vec<String> =
            ["a", "b", "c", "d", "e"].iter().map(|r| format!(r#"{{"bom-ref":"{r}"}}"#)).collect();
        let d = run(&format!(
            r#"{{"bomFormat":"CycloneDX","components":[{}],"vulnerabilities":[
            {{"id":"CVE-1","affects":[
                {{"ref":"a","versions":[{{"version":"1"}},{{"version":2}},{{"version":"3","status":"bogus"}}]}},
                {{"ref":"b","versions":[]}},
                {{"ref":"c","versions":[{{"status":"affected"}},{{"version":""}}]}},
                {{"ref":"d","versions":[{{"version":"5","range":"vers:npm/>=5|<6"}}]}},
                {{"ref":"e","versions":"junk"}}]}}]}}"#,
            refs.join(",")
        ));
        let keys: Vec<_> = d.claims.iter().map(|c| (c.product_key.as_str(), c.status)).collect();
        assert_eq!(
            keys,
            [
                // No status and no analysis: the schema default, affected.
                ("a#version=1", Status::Affected),
                ("a#version=2", Status::Affected),
                // No version entry: the ref-level claim, not analysed.
                ("b", Status::UnderInvestigation),
                ("d#version=5", Status::Affected),
                ("e", Status::UnderInvestigation),
            ]
        );
        assert_eq!(d.claims[3].metadata["range"], "vers:npm/>=5|<6");
        // An unknown version status, and two entries with neither version
        // nor range: skipped, each noted.
        assert_eq!((d.dropped.unknown_status, d.dropped.no_product_id), (1, 2));
        let notes: Vec<_> = d.notes.iter().map(|n| (n.at.as_str(), n.detail.as_str())).collect();
        assert_eq!(
            notes,
            [
                ("vulnerabilities[0].affects[0].versions[2]", r#"unknown version status "bogus""#),
                (
                    "vulnerabilities[0].affects[2].versions[0]",
                    "the version entry has neither version nor range"
                ),
                (
                    "vulnerabilities[0].affects[2].versions[1]",
                    "the version entry has neither version nor range"
                ),
            ]
        );
    }

    #[test]
    fn ratings_give_highest_severity_else_score() {
        let sev = |ratings: &str| {
            with_analysis(&format!(r#""ratings":{ratings},"#)).claims[0].severity.clone()
        };
        assert_eq!(
            sev(
                r#"[{"severity":"low"},{"severity":"High","score":7.5},{"severity":"none"},{"severity":"unknown"}]"#
            ),
            Some("high".into())
        );
        assert_eq!(
            sev(r#"[{"severity":"info"},{"severity":"critical"}]"#),
            Some("critical".into())
        );
        assert_eq!(sev(r#"[{"severity":"none","score":0.0}]"#), Some("none".into()));
        assert_eq!(sev(r#"[{"score":4.2},{"score":9.1},{"score":"bad"}]"#), Some("9.1".into()));
        assert_eq!(sev(r#"[{"severity":"unknown","score":6}]"#), Some("6".into()));
        assert_eq!(sev(r#"[{"severity":"unknown"}]"#), Some("unknown".into()));
        assert_eq!(sev(r#"[{"severity":"moderate"}]"#), Some("moderate".into()));
        assert_eq!(sev("[]"), None);
        assert_eq!(sev(r#""junk""#), None);
    }

    #[test]
    fn aliases_detail_and_action() {
        let d = run(r#"{"bomFormat":"CycloneDX","vulnerabilities":[
            {"id":"CVE-1","references":[{"id":"GHSA-1"},{"id":"CVE-1"},{"id":"GHSA-1"},{"id":"OSV-1","source":{}},{"url":"x"}],
             "description":"desc","detail":"vdetail","recommendation":"Upgrade to 2.","workaround":"Turn it off.",
             "analysis":{"state":"exploitable","response":["update","rollback"]},
             "affects":[{"ref":"pkg:npm/p@1"}]},
            {"references":[{"id":"GHSA-2"},{"id":"CVE-2"}],"detail":"vdetail","affects":[{"ref":"pkg:npm/p@1"}]},
            {"description":"no id","affects":[{"ref":"pkg:npm/p@1"},{"ref":"pkg:npm/q@1"}]}]}"#);
        assert_eq!(d.claims.len(), 2);
        // The vulnerability without any id: both its entries, one note.
        assert_eq!(d.dropped.no_vulnerability_id, 2);
        assert_eq!(d.notes.len(), 1);
        assert_eq!(d.notes[0].at, "vulnerabilities[2]");
        assert_eq!(d.notes[0].entries, 2);
        let c = &d.claims[0];
        assert_eq!(c.aliases, ["GHSA-1", "OSV-1"]);
        assert_eq!(c.detail.as_deref(), Some("desc"));
        assert_eq!(c.action.as_deref(), Some("update, rollback; Upgrade to 2.; Turn it off."));
        assert_eq!(c.metadata["response"], "update, rollback");
        let c = &d.claims[1];
        assert_eq!(c.vulnerability_id, "GHSA-2");
        assert_eq!(c.aliases, ["CVE-2"]);
        assert_eq!(c.detail.as_deref(), Some("vdetail"));
        assert_eq!(c.action, None);
        let d = with_analysis(
            r#""description":"desc","analysis":{"state":"in_triage","detail":"adetail"},"#,
        );
        assert_eq!(d.claims[0].detail.as_deref(), Some("adetail"));
    }

    #[test]
    fn sbom_without_vulnerabilities_has_no_claims() {
        for doc in [
            r#"{"bomFormat":"CycloneDX","serialNumber":"urn:uuid:s","version":1,"components":[{"bom-ref":"x"}]}"#,
            r#"{"bomFormat":"CycloneDX","vulnerabilities":null}"#,
            r#"{"bomFormat":"CycloneDX","vulnerabilities":[]}"#,
        ] {
            assert!(run(doc).claims.is_empty(), "{doc}");
        }
        let d = run(r#"{"bomFormat":"CycloneDX","serialNumber":"urn:uuid:s","version":1}"#);
        assert_eq!(d.document_id.as_deref(), Some("urn:uuid:s"));
        assert_eq!(d.revision.as_deref(), Some("1"));
    }

    #[test]
    fn vulnerabilities_not_an_array_is_an_error() {
        for v in [r#"{}"#, r#""x""#, "1", "true"] {
            let e = run_err(&format!(r#"{{"bomFormat":"CycloneDX","vulnerabilities":{v}}}"#));
            assert!(e.0.contains("not an array"), "{v}: {e}");
        }
    }

    fn nested(levels: usize) -> String {
        let mut s = String::from(r#"{"bom-ref":"leaf","purl":"pkg:npm/leaf@1"}"#);
        for i in 0..levels {
            s = format!(r#"{{"bom-ref":"n{i}","components":[{s}]}}"#);
        }
        format!(
            r#"{{"bomFormat":"CycloneDX","components":[{s}],
                "vulnerabilities":[{{"id":"CVE-1","affects":[{{"ref":"leaf"}}]}}]}}"#
        )
    }

    #[test]
    fn nesting_is_bounded() {
        // The leaf sits at depth MAX_DEPTH: still followed.
        let d = run(&nested(MAX_DEPTH));
        assert_eq!(d.claims[0].product_key, "pkg:npm/leaf@1");
        let e = run_err(&nested(MAX_DEPTH + 1));
        assert!(e.0.contains("deeper than"), "{e}");
        // Far deeper: still an error, and normalize itself stays within a
        // small stack (it never follows more than MAX_DEPTH levels); only
        // normalize runs on the small one.
        let deep = nested(2_000);
        let outer = std::thread::Builder::new().stack_size(64 << 20).spawn(move || {
            parse_and(&deep, |v| {
                std::thread::scope(|s| {
                    std::thread::Builder::new()
                        .stack_size(128 << 10)
                        .spawn_scoped(s, || normalize(v).is_err())
                        .unwrap()
                        .join()
                        .unwrap()
                })
            })
        });
        assert!(outer.unwrap().join().unwrap());
    }

    #[test]
    fn repeated_statements_resolve_by_precedence() {
        // A BOM's vulnerabilities carry no time: two statuses for one
        // vulnerability and ref are a contradiction, decided by precedence.
        let d = run(r#"{"bomFormat":"CycloneDX","vulnerabilities":[
            {"id":"CVE-1","analysis":{"state":"resolved"},"affects":[{"ref":"pkg:npm/a@1"},{"ref":"pkg:npm/b@1"}]},
            {"id":"CVE-2","analysis":{"state":"exploitable"},"affects":[{"ref":"pkg:npm/a@1"}]},
            {"id":"CVE-1","analysis":{"state":"exploitable"},"affects":[{"ref":"pkg:npm/a@1"}]},
            {"id":"CVE-1","analysis":{"state":"false_positive"},"affects":[{"ref":"pkg:npm/a@1"}]},
            {"id":"CVE-1","analysis":{"state":"resolved","detail":"again"},"affects":[{"ref":"pkg:npm/b@1"}]}]}"#);
        let got: Vec<_> = d
            .claims
            .iter()
            .map(|c| (c.vulnerability_id.as_str(), c.product_key.as_str(), c.status))
            .collect();
        assert_eq!(
            got,
            [
                ("CVE-1", "pkg:npm/a@1", Status::Affected),
                ("CVE-1", "pkg:npm/b@1", Status::Fixed),
                ("CVE-2", "pkg:npm/a@1", Status::Affected)
            ]
        );
        assert_eq!(d.claims[0].metadata["conflictingStatuses"], "fixed,not_affected");
        // The same status again: the later statement, superseding.
        assert_eq!(d.claims[1].detail.as_deref(), Some("again"));
        assert!(!d.claims[1].metadata.contains_key("conflictingStatuses"));
        assert_eq!((d.dropped.contradiction, d.dropped.superseded), (2, 1));
    }

    #[test]
    fn percent_decode_handles_malformed_escapes() {
        assert_eq!(percent_decode("a%20b"), Some("a b".into()));
        assert_eq!(percent_decode("a%2"), Some("a%2".into()));
        assert_eq!(percent_decode("%+1%zz%"), Some("%+1%zz%".into()));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("plain"), None);
    }

    /// Where the shared sample documents live (read in place, never copied).
    fn samples_dir() -> Option<PathBuf> {
        crate::normalize::testutil::samples_dir("cyclonedx")
    }

    fn json_files(dir: &Path) -> Vec<PathBuf> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        paths.sort();
        paths
    }

    /// Every document to stress: the golden fixtures plus the samples.
    fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden/cyclonedx");
        let mut files = json_files(&golden);
        files.extend(samples_dir().map(|d| json_files(&d)).unwrap_or_default());
        files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
    }

    #[test]
    fn every_sample_normalizes() {
        let Some(dir) = samples_dir() else { return };
        // Pinned claim counts (one per vulnerability × affects ref, or per
        // version entry where `versions[]` is given, after dedupe), shared
        // with the CLI tests; a new file only has to normalize.
        let expected = crate::normalize::testutil::sample_claims("cyclonedx");
        let dropped = crate::normalize::testutil::sample_dropped("cyclonedx");
        for path in json_files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            let doc = simd_json::to_tape(&mut bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let d = normalize(doc.as_value()).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("{name}: {} claims", d.claims.len());
            if let Some((_, n)) = expected.iter().find(|(f, _)| f == &name) {
                assert_eq!(d.claims.len(), *n, "{name}");
            }
            if let Some((_, dropped)) = dropped.iter().find(|(f, _)| f == &name) {
                assert_eq!(d.dropped, *dropped, "{name}");
            }
        }
    }

    #[test]
    fn sample_semantics() {
        let Some(dir) = samples_dir() else { return };
        let load = |name: &str| {
            let mut bytes = std::fs::read(dir.join(name)).unwrap();
            let doc = simd_json::to_tape(&mut bytes).unwrap();
            normalize(doc.as_value()).unwrap()
        };
        let d = load("trivy__pkg_vex_testdata_cyclonedx.json");
        let c = find(&d, "CVE-2021-44228", "pkg:maven/org.springframework.boot/spring-boot@2.6.0");
        assert_eq!(c.status, Status::NotAffected);
        assert_eq!(c.justification, Some(Justification::VulnerableCodeNotInExecutePath));
        let purl =
            "pkg:deb/ubuntu/libstdc%2B%2B6@12.3.0-1ubuntu1~22.04?arch=amd64&distro=ubuntu-22.04";
        let c = find(&d, "CVE-2022-27943", &format!("{purl}#version=12.3.0-1ubuntu1~22.04"));
        // The version status says the vulnerability is present in 12.3.0;
        // the analysis says it is not exploitable there.
        assert_eq!(c.status, Status::NotAffected);
        assert_eq!(c.justification, None, "the analysis gives no justification");
        assert_eq!(c.purl.as_deref(), Some(purl));
        assert_eq!(c.metadata["state"], "not_affected");
        assert_eq!(c.metadata["versionStatus"], "affected");

        let d = load("bom-examples__VEX_CISA-Use-Cases_Case-8_vex.json");
        let abc = "urn:cdx:cbb2cd68-2857-43b8-a10b-e8c03d277d18/1#product-ABC";
        let jkl = "urn:cdx:e4c3eedc-4978-470c-ad02-6ffff63738ff/1#product-JKL";
        assert_eq!(
            find(&d, "CVE-2021-44228", &format!("{abc}#version=2.4")).status,
            Status::Affected
        );
        assert_eq!(
            find(&d, "CVE-2021-44228", &format!("{abc}#version=2.5")).status,
            Status::NotAffected
        );
        assert_eq!(find(&d, "CVE-2021-44228", &format!("{jkl}#version=5.1")).status, Status::Fixed);
        assert_eq!(
            find(&d, "CVE-2021-45105", &format!("{jkl}#version=5.1")).status,
            Status::Affected
        );
        // Said unaffected, and resolved elsewhere in the document: a
        // contradiction, fixed by precedence, the other status kept.
        let c = find(&d, "CVE-2021-45105", &format!("{jkl}#version=5.2"));
        assert_eq!(c.status, Status::Fixed);
        assert_eq!(c.metadata["conflictingStatuses"], "not_affected");
        // Only per-version claims: no ref-level claim for either product.
        assert!(d
            .claims
            .iter()
            .all(|c| c.product_key.contains("#version=") || c.product_key.contains("#range=")));

        let d = load("bom-examples__VEX_vex.json");
        let c = &d.claims[0];
        assert_eq!(
            c.product_key,
            "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0?type=jar"
        );
        assert_eq!(c.aliases, ["SNYK-JAVA-COMFASTERXMLJACKSONCORE-1048302"]);
        assert_eq!(c.severity.as_deref(), Some("high"));
    }

    #[test]
    fn truncations_never_panic() {
        for (_, bytes) in corpus() {
            for cut in (0..bytes.len()).step_by(64) {
                let mut prefix = bytes[..cut].to_vec();
                if let Ok(doc) = simd_json::to_tape(&mut prefix) {
                    let _ = normalize(doc.as_value());
                };
            }
        }
    }

    /// Replaces every node of each document, one at a time, with values of
    /// other types; normalizing the result must never panic.
    #[test]
    fn type_mutations_never_panic() {
        fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, c) in m {
                        let k = k.replace('~', "~0").replace('/', "~1");
                        pointers(c, format!("{at}/{k}"), out);
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, c) in a.iter().enumerate() {
                        pointers(c, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
            out.push(at);
        }
        let replacements = [
            serde_json::json!(null),
            serde_json::json!(-1.5),
            serde_json::json!(""),
            serde_json::json!([]),
            serde_json::json!({}),
        ];
        for (path, bytes) in corpus() {
            let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let mut at = Vec::new();
            pointers(&original, String::new(), &mut at);
            for p in at.iter().filter(|p| !p.is_empty()) {
                for r in &replacements {
                    let mut doc = original.clone();
                    *doc.pointer_mut(p).unwrap() = r.clone();
                    let mut text = serde_json::to_vec(&doc).unwrap();
                    let v = simd_json::to_tape(&mut text).unwrap();
                    let result = std::panic::catch_unwind(|| {
                        normalize(v.as_value()).map(|d| d.claims.len())
                    });
                    assert!(result.is_ok(), "{}: panic with {p} = {r}", path.display());
                }
            }
        }
    }
}
