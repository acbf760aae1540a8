//! The drop report adds up: for every document, the entries it states (as
//! the `normalize` module docs define them) equal the claims written plus
//! the entries dropped. Checked three ways:
//!
//! - over the public samples (read in place from `../shared/samples`) and
//!   this repository's golden fixtures, against an entry count written here
//!   independently of the normalizers, and against `testdata/sample_claims.tsv`;
//! - over generated documents of each format with injected defects, whose
//!   entries and defects are known by construction (a property test over
//!   seeds, with the engine's own deterministic `Rng`);
//! - a reader that took the first of two repeated keys would disagree: every
//!   object of every document gets a decoy copy of each key in front, and the
//!   result must not change.

use std::path::{Path, PathBuf};

use backfill_engine::gen::Rng;
use backfill_engine::{parse_document, DropReason, Dropped, Format, NormalizedDocument, Scratch};
use serde_json::{json, Value as J};

// ---------------------------------------------------------------------------
// Entries, counted from the definition (not from the normalizers' code).

/// The entries of a parsed document of `format`.
fn entries(format: Format, doc: &J) -> u64 {
    match format {
        Format::Csaf => csaf_entries(doc),
        Format::CycloneDx => cyclonedx_entries(doc),
        Format::OpenVex => openvex_entries(doc),
    }
}

fn array(v: Option<&J>) -> &[J] {
    v.and_then(J::as_array).map_or(&[], Vec::as_slice)
}

/// OpenVEX: each product and each subcomponent at any depth; a statement
/// that names no product (or is not an object) counts once.
fn openvex_entries(doc: &J) -> u64 {
    fn nodes(p: &J) -> u64 {
        1 + array(p.get("subcomponents")).iter().map(nodes).sum::<u64>()
    }
    array(doc.get("statements"))
        .iter()
        .map(|st| array(st.get("products")).iter().map(nodes).sum::<u64>().max(1))
        .sum()
}

/// CSAF: each element of each `product_status` list but `recommended`, a
/// group counting once per member; a vulnerability that is no object, or
/// has no id and states nothing, counts once; so does a non-list value.
fn csaf_entries(doc: &J) -> u64 {
    let groups: std::collections::HashMap<&str, usize> =
        array(doc.pointer("/product_tree/product_groups"))
            .iter()
            .filter_map(|g| Some((g.get("group_id")?.as_str()?, array(g.get("product_ids")).len())))
            .collect();
    let defined = defined_csaf_ids(doc);
    let list_entries = |list: &J| -> u64 {
        match list {
            J::Null => 0,
            J::Array(items) => items
                .iter()
                .map(|el| match el.as_str().map(str::trim) {
                    Some(id) if !defined.contains(id) => {
                        groups.get(id).map_or(1, |n| (*n as u64).max(1))
                    }
                    _ => 1,
                })
                .sum(),
            _ => 1,
        }
    };
    let mut total = 0;
    for v in array(doc.get("vulnerabilities")) {
        let Some(v) = v.as_object() else {
            total += 1;
            continue;
        };
        let has_id = v.get("cve").and_then(J::as_str).is_some_and(|s| !s.trim().is_empty())
            || array(v.get("ids"))
                .iter()
                .any(|i| i.get("text").and_then(J::as_str).is_some_and(|s| !s.trim().is_empty()));
        let n = match v.get("product_status") {
            None | Some(J::Null) => 0,
            Some(J::Object(lists)) => lists
                .iter()
                .filter(|(k, _)| !k.trim().eq_ignore_ascii_case("recommended"))
                .map(|(_, l)| list_entries(l))
                .sum(),
            Some(J::Array(a)) if a.is_empty() => 0,
            Some(_) => 1,
        };
        total += if has_id { n } else { n.max(1) };
    }
    total
}

fn defined_csaf_ids(doc: &J) -> std::collections::HashSet<&str> {
    fn walk<'a>(b: &'a J, out: &mut std::collections::HashSet<&'a str>) {
        for b in array(Some(b)) {
            if let Some(id) = b.pointer("/product/product_id").and_then(J::as_str) {
                out.insert(id.trim());
            }
            if let Some(sub) = b.get("branches") {
                walk(sub, out);
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    if let Some(b) = doc.pointer("/product_tree/branches") {
        walk(b, &mut out);
    }
    for p in array(doc.pointer("/product_tree/full_product_names")) {
        out.extend(p.get("product_id").and_then(J::as_str).map(str::trim));
    }
    for r in array(doc.pointer("/product_tree/relationships")) {
        out.extend(r.pointer("/full_product_name/product_id").and_then(J::as_str).map(str::trim));
    }
    out
}

/// CycloneDX: each `affects` item, or each element of its non-empty
/// `versions`; a vulnerability that is no object, or has no id and states
/// nothing, counts once; a non-list `affects` counts once.
fn cyclonedx_entries(doc: &J) -> u64 {
    let affect = |a: &J| array(a.get("versions")).len().max(1) as u64;
    array(doc.get("vulnerabilities"))
        .iter()
        .map(|v| {
            let Some(o) = v.as_object() else { return 1 };
            let has_id = o.get("id").and_then(J::as_str).is_some_and(|s| !s.trim().is_empty())
                || array(o.get("references"))
                    .iter()
                    .any(|r| r.get("id").and_then(J::as_str).is_some_and(|s| !s.trim().is_empty()));
            let n = match o.get("affects") {
                None | Some(J::Null) => 0,
                Some(J::Array(a)) => a.iter().map(affect).sum(),
                Some(_) => 1,
            };
            if has_id {
                n
            } else {
                n.max(1)
            }
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Documents on disk.

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    out.sort();
    out
}

/// Every sample and golden document, by format folder.
fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    let samples = root.join("../../shared/samples");
    if !samples.is_dir() {
        eprintln!("note: {} is absent; golden fixtures only", samples.display());
    }
    for format in ["csaf", "cyclonedx", "openvex"] {
        paths.extend(json_files(&samples.join(format)));
        paths.extend(json_files(&root.join("../testdata/golden").join(format)));
    }
    paths.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// `bytes` without a UTF-8 byte-order mark, as serde_json reads them.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn assert_adds_up(what: &str, format: Format, doc: &J, d: &NormalizedDocument) {
    let n = entries(format, doc);
    assert_eq!(
        d.claims.len() as u64 + d.dropped.total(),
        n,
        "{what}: {} claims + {:?} dropped != {n} entries",
        d.claims.len(),
        d.dropped
    );
    let defects: u64 = d.notes.iter().map(|n| n.entries).sum();
    if d.notes.len() < backfill_engine::normalize::MAX_DROP_NOTES {
        assert_eq!(defects, d.dropped.defects(), "{what}: notes cover every defect");
    }
    for note in &d.notes {
        assert!(note.reason.is_defect() && note.entries > 0, "{what}: {note:?}");
    }
}

#[test]
fn every_sample_and_golden_document_adds_up() {
    let mut scratch = Scratch::default();
    let mut checked = 0;
    for (path, bytes) in corpus() {
        let what = path.display().to_string();
        let Ok((format, d)) = parse_document(&bytes, None, &mut scratch) else { continue };
        let doc: J = serde_json::from_slice(strip_bom(&bytes)).unwrap();
        assert_adds_up(&what, format, &doc, &d);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} documents checked");
}

/// `unknownStatus=2,superseded=1` (or `-`) as counts.
fn parse_dropped(s: &str) -> Dropped {
    let mut d = Dropped::default();
    for part in s.split(',').filter(|p| *p != "-" && !p.is_empty()) {
        let (name, n) = part.split_once('=').unwrap();
        let r = DropReason::ALL.into_iter().find(|r| r.as_str() == name).unwrap();
        d.add(r, n.parse().unwrap());
    }
    d
}

#[test]
fn samples_write_and_drop_what_sample_claims_tsv_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let samples = root.join("../../shared/samples");
    if !samples.is_dir() {
        eprintln!("SKIPPED: sample folder {} is absent", samples.display());
        return;
    }
    let table = std::fs::read_to_string(root.join("../testdata/sample_claims.tsv")).unwrap();
    let mut scratch = Scratch::default();
    let mut rows = 0;
    for line in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let bytes = std::fs::read(samples.join(f[0]).join(f[1])).unwrap();
        let (format, d) = parse_document(&bytes, None, &mut scratch)
            .unwrap_or_else(|e| panic!("{}: {}", f[1], e.reason));
        assert_eq!(format.as_str(), f[0], "{}", f[1]);
        assert_eq!(d.claims.len(), f[2].parse::<usize>().unwrap(), "{}: claims", f[1]);
        assert_eq!(d.dropped, parse_dropped(f[3]), "{}: dropped", f[1]);
        rows += 1;
    }
    // 54 samples: two fail (truncated JSON, `{}`), the rest are listed.
    assert_eq!(rows, 52);
}

// ---------------------------------------------------------------------------
// Generated documents with injected defects.

/// What a generated document should yield: entries it states, the defects
/// injected (by reason), and the entries left to become claims (some of
/// which collapse into others: superseded or contradiction).
#[derive(Debug, Default)]
struct Expect {
    entries: u64,
    defects: Dropped,
    candidates: u64,
}

impl Expect {
    fn defect(&mut self, reason: DropReason, n: u64) {
        self.entries += n;
        self.defects.add(reason, n);
    }

    fn candidate(&mut self) {
        self.entries += 1;
        self.candidates += 1;
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

const STATUSES: [&str; 4] = ["affected", "not_affected", "fixed", "under_investigation"];

fn gen_openvex(rng: &mut Rng) -> (J, Expect) {
    let mut e = Expect::default();
    let mut statements = Vec::new();
    for _ in 0..1 + rng.below(8) {
        // Small pools, so statements repeat products and vulnerabilities.
        let vuln = format!("CVE-2024-{}", rng.below(3));
        let defect = rng.below(10);
        let mut nodes = 0;
        let mut good = Vec::new();
        let products: Vec<J> = (0..1 + rng.below(3))
            .map(|_| {
                let subs: Vec<J> = (0..rng.below(3))
                    .map(|_| {
                        nodes += 1;
                        good.push(true);
                        json!({"@id": format!("pkg:apk/wolfi/lib{}@1", rng.below(3))})
                    })
                    .collect();
                nodes += 1;
                // An empty @id drops the product alone (defect 6).
                let empty = defect == 6 && rng.chance(0.5);
                good.push(!empty);
                let id = if empty { String::new() } else { format!("pkg:oci/img{}", rng.below(3)) };
                json!({"@id": id, "subcomponents": subs})
            })
            .collect();
        let mut st = json!({"vulnerability": {"name": vuln}, "products": products,
            "status": pick(rng, &STATUSES)});
        if rng.chance(0.5) {
            st["timestamp"] = json!(format!("2024-0{}-01T00:00:00Z", 1 + rng.below(3)));
        }
        match defect {
            0 => {
                st["status"] = json!("NOT-AFFECTED");
                e.defect(DropReason::UnknownStatus, nodes);
            }
            1 => {
                st.as_object_mut().unwrap().remove("status");
                e.defect(DropReason::UnknownStatus, nodes);
            }
            2 => {
                st["vulnerability"] = json!({"name": " "});
                e.defect(DropReason::NoVulnerabilityId, nodes);
            }
            3 => {
                st["products"] = json!([]);
                e.defect(DropReason::NoProductId, 1);
            }
            4 => {
                st["status"] = json!(pick(rng, &STATUSES).to_uppercase());
                good.iter().for_each(|_| e.candidate());
            }
            _ => {
                for g in good {
                    if g {
                        e.candidate();
                    } else {
                        e.defect(DropReason::NoProductId, 1);
                    }
                }
            }
        }
        statements.push(st);
    }
    let doc = json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "gen",
        "timestamp": "2024-01-15T00:00:00Z", "statements": statements});
    (doc, e)
}

fn gen_csaf(rng: &mut Rng) -> (J, Expect) {
    let mut e = Expect::default();
    // P0..P3 defined, G = {P0, P1}, R0 a relationship product.
    let tree = json!({
        "full_product_names": (0..4).map(|i| json!({"product_id": format!("P{i}"), "name": format!("p{i}")}))
            .collect::<Vec<_>>(),
        "relationships": [{"category": "default_component_of", "product_reference": "P0",
            "relates_to_product_reference": "P3", "full_product_name": {"product_id": "R0", "name": "r0"}}],
        "product_groups": [{"group_id": "G", "product_ids": ["P0", "P1"]}],
    });
    let lists =
        ["known_affected", "known_not_affected", "fixed", "first_fixed", "under_investigation"];
    let mut vulns = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let no_id = rng.chance(0.1);
        let mut ps = serde_json::Map::new();
        let mut vuln_entries = 0;
        let mut local = Expect::default();
        for _ in 0..1 + rng.below(3) {
            let unknown = rng.chance(0.1);
            let key = if unknown { "affected" } else { pick(rng, &lists) };
            if ps.contains_key(key) {
                continue; // one list per key (repeated keys are tested apart)
            }
            let mut items = Vec::new();
            let mut list_entries = 0;
            for _ in 0..1 + rng.below(4) {
                let (item, n, reason): (J, u64, Option<DropReason>) = match rng.below(10) {
                    0 => (json!("GHOST"), 1, Some(DropReason::UnresolvedReference)),
                    1 => (json!(""), 1, Some(DropReason::NoProductId)),
                    2 => (json!("G"), 2, None),
                    3 => (json!("R0"), 1, None),
                    _ => (json!(format!("P{}", rng.below(4))), 1, None),
                };
                items.push(item);
                list_entries += n;
                if !unknown {
                    match reason {
                        Some(r) => local.defect(r, n),
                        None => (0..n).for_each(|_| local.candidate()),
                    }
                }
            }
            if unknown {
                local.defect(DropReason::UnknownStatus, list_entries);
            }
            vuln_entries += list_entries;
            ps.insert(key.to_owned(), J::Array(items));
        }
        if rng.chance(0.1) {
            ps.insert("recommended".into(), json!(["P0"]));
        }
        let mut v = json!({"product_status": ps});
        if no_id {
            e.defect(DropReason::NoVulnerabilityId, vuln_entries.max(1));
        } else {
            v["cve"] = json!(format!("CVE-2024-{}", rng.below(3)));
            e.entries += local.entries;
            e.candidates += local.candidates;
            for r in DropReason::ALL {
                e.defects.add(r, local.defects.get(r));
            }
        }
        vulns.push(v);
    }
    let doc = json!({"document": {"category": "csaf_vex", "csaf_version": "2.0",
        "tracking": {"id": "gen", "version": "1"}}, "product_tree": tree, "vulnerabilities": vulns});
    (doc, e)
}

fn gen_cyclonedx(rng: &mut Rng) -> (J, Expect) {
    let mut e = Expect::default();
    let components: Vec<J> = (0..3)
        .map(|i| json!({"bom-ref": format!("c{i}"), "name": format!("c{i}"), "purl": format!("pkg:npm/c{i}@1")}))
        .collect();
    let states = ["exploitable", "not_affected", "resolved", "in_triage", "false_positive"];
    let mut vulns = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let no_id = rng.chance(0.1);
        let bad_state = rng.chance(0.1);
        let analysed = rng.chance(0.8);
        let mut local = Expect::default();
        let mut affects = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let r = rng.below(10);
            let mut versions = Vec::new();
            let mut version_outcomes = Vec::new();
            if rng.chance(0.5) {
                for k in 0..1 + rng.below(3) {
                    let mut v = serde_json::Map::new();
                    let shape = rng.below(10);
                    match shape {
                        0 => {}
                        1 => {
                            v.insert("range".into(), json!(format!("vers:npm/>={k}")));
                        }
                        _ => {
                            v.insert("version".into(), json!(format!("{}", rng.below(3))));
                        }
                    }
                    let status = pick(rng, &["affected", "unaffected", "unknown", "bogus", "-"]);
                    if status != "-" {
                        v.insert("status".into(), json!(status));
                    }
                    let outcome = if shape == 0 {
                        Some(DropReason::NoProductId)
                    } else if status == "bogus"
                        || ((status == "affected" || status == "-") && analysed && bad_state)
                    {
                        // An unknown version status, or an affected version
                        // whose verdict is an unknown analysis state.
                        Some(DropReason::UnknownStatus)
                    } else {
                        None
                    };
                    version_outcomes.push(outcome);
                    versions.push(J::Object(v));
                }
            }
            let n = versions.len().max(1) as u64;
            let mut affect = serde_json::Map::new();
            match r {
                0 => local.defect(DropReason::NoProductId, n),
                1 => {
                    affect.insert("ref".into(), json!("nowhere"));
                    local.defect(DropReason::UnresolvedReference, n);
                }
                _ => {
                    let target = match rng.below(3) {
                        0 => "pkg:npm/direct@2".to_owned(),
                        1 => format!("urn:cdx:other/1#c{}", rng.below(3)),
                        _ => format!("c{}", rng.below(3)),
                    };
                    affect.insert("ref".into(), json!(target));
                    if versions.is_empty() {
                        if analysed && bad_state {
                            local.defect(DropReason::UnknownStatus, 1);
                        } else {
                            local.candidate();
                        }
                    } else {
                        for o in version_outcomes {
                            match o {
                                Some(r) => local.defect(r, 1),
                                None => local.candidate(),
                            }
                        }
                    }
                }
            }
            if !versions.is_empty() {
                affect.insert("versions".into(), J::Array(versions));
            }
            affects.push(J::Object(affect));
        }
        let mut v = json!({"affects": affects});
        if analysed {
            let state = if bad_state { "under_review" } else { pick(rng, &states) };
            v["analysis"] = json!({"state": state, "detail": "d"});
        }
        if no_id {
            e.defect(DropReason::NoVulnerabilityId, local.entries.max(1));
        } else {
            v["id"] = json!(format!("CVE-2024-{}", rng.below(3)));
            e.entries += local.entries;
            e.candidates += local.candidates;
            for r in DropReason::ALL {
                e.defects.add(r, local.defects.get(r));
            }
        }
        vulns.push(v);
    }
    let doc = json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "components": components, "vulnerabilities": vulns});
    (doc, e)
}

#[test]
fn generated_documents_with_injected_defects_add_up() {
    let seeds: u64 = std::env::var("BACKFILL_ACCOUNTING_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut scratch = Scratch::default();
    let mut failed_docs = 0;
    let mut seen = Dropped::default();
    for seed in 0..seeds {
        let mut rng = Rng::new(seed + 1);
        let (format, (doc, expect)) = match seed % 3 {
            0 => (Format::OpenVex, gen_openvex(&mut rng)),
            1 => (Format::Csaf, gen_csaf(&mut rng)),
            _ => (Format::CycloneDx, gen_cyclonedx(&mut rng)),
        };
        let what = format!("seed {seed} ({format}): {doc}");
        // The generators agree with the definition of an entry.
        assert_eq!(entries(format, &doc), expect.entries, "{what}");
        let bytes = serde_json::to_vec(&doc).unwrap();
        let d = match parse_document(&bytes, None, &mut scratch) {
            Ok((f, d)) => {
                assert_eq!(f, format, "{what}");
                d
            }
            Err(e) => {
                // Only a document whose every entry is a defect may fail.
                assert_eq!(expect.candidates, 0, "{what}: {}", e.reason);
                assert!(e.reason.contains("no statement could be read"), "{what}: {}", e.reason);
                failed_docs += 1;
                continue;
            }
        };
        assert_adds_up(&what, format, &doc, &d);
        for r in DropReason::ALL.into_iter().filter(|r| r.is_defect()) {
            assert_eq!(d.dropped.get(r), expect.defects.get(r), "{what}: {r}");
        }
        let resolved = d.dropped.superseded + d.dropped.contradiction;
        assert_eq!(d.claims.len() as u64 + resolved, expect.candidates, "{what}");
        seen += d.dropped;
    }
    eprintln!("{seeds} documents, {failed_docs} failed as wholly defective, dropped {seen:?}");
    assert!(failed_docs < seeds / 4, "{failed_docs} of {seeds} generated documents failed");
    // Every reason occurred, so each rule was exercised.
    for r in DropReason::ALL {
        assert!(seen.get(r) > 0, "no {r} in {seeds} generated documents");
    }
}

// ---------------------------------------------------------------------------
// Repeated keys: the last value wins everywhere.

/// `v` as JSON text with, in every object, a decoy copy of each key (value
/// `null`, or `"decoy"` where the real value is null) written before the
/// real one.
fn with_decoys(v: &J, out: &mut String) {
    match v {
        J::Object(m) => {
            out.push('{');
            for (k, val) in m {
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(if val.is_null() { ":\"decoy\"," } else { ":null," });
            }
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                with_decoys(val, out);
            }
            out.push('}');
        }
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                with_decoys(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[test]
fn a_decoy_before_every_key_changes_nothing() {
    let mut scratch = Scratch::default();
    let mut checked = 0;
    for (path, bytes) in corpus() {
        let Ok(doc) = serde_json::from_slice::<J>(strip_bom(&bytes)) else { continue };
        // Compare with the same document re-serialized (same key order).
        let plain = serde_json::to_vec(&doc).unwrap();
        let Ok((format, want)) = parse_document(&plain, None, &mut scratch) else { continue };
        let mut text = String::new();
        with_decoys(&doc, &mut text);
        let (f, got) = parse_document(text.as_bytes(), None, &mut scratch)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.reason));
        assert_eq!(f, format, "{}", path.display());
        assert_eq!(got, want, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} documents checked");
}
