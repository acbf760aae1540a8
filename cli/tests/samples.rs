//! The public sample documents in `../shared/samples`, read in place (never
//! copied into the repository).

use std::path::Path;

use crate::util::{samples, sha256, Summary, Workdir};

/// Statements expected from each sample of `format`, from
/// `testdata/sample_claims.tsv` (where each number is justified from the
/// document; the normalizer unit tests read the same file, and
/// `engine/tests/accounting.rs` checks its `dropped` column too).
///
/// Changes made by the normalization-fidelity rules, one only: the go-vex
/// CSAF sample (`go-vex__pkg_csaf_testdata_csaf.json`) now writes 2
/// statements, not 4. Its `known_affected` product `ABC:CSAFPID-0002` is
/// defined nowhere in its product tree (CSAF test 6.1.1), and an
/// unresolvable reference skips its entry (SPEC, "Leniency per entry"):
/// dropped once per CVE, as unresolvedReference. Every other count is
/// unchanged; the 54 documents are still 52 backfilled and 2 failures.
/// Statuses changed without changing counts: the Trivy CycloneDX sample's
/// libstdc++ version entry (status `affected` under a `not_affected`
/// analysis) is now not_affected; the CycloneDX Case-8 sample's JKL 5.2
/// for CVE-2021-45105 (unaffected, and resolved elsewhere) is fixed by
/// precedence, as it was by document order.
fn claims(format: &str) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(crate::util::testdata("sample_claims.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == format)
        .map(|f| (f[1].to_owned(), f[2].parse().unwrap()))
        .collect()
}

/// The two OpenVEX samples that must fail, and the reason given.
const OPENVEX_FAILURES: &[(&str, &str)] = &[
    ("synthetic__malformed_truncated.json", "not valid JSON"),
    ("trivy__edge_unknown_format_empty_object.json", "unknown format"),
];

fn expected_openvex() -> Summary {
    let openvex = claims("openvex");
    let total = openvex.iter().map(|(_, n)| n).sum();
    let ok = openvex.len() as u64;
    let failed = OPENVEX_FAILURES.len() as u64;
    Summary::new(ok + failed, ok, total, 0, failed)
}

fn check_openvex_ledger(wd: &Workdir, dir: &Path) {
    let ledger = wd.ledger();
    let openvex = claims("openvex");
    assert_eq!(ledger.len(), openvex.len());
    for (name, claims) in &openvex {
        let digest = sha256(&std::fs::read(dir.join(name)).unwrap());
        let row = ledger
            .iter()
            .find(|d| d["digest"] == digest.as_str())
            .unwrap_or_else(|| panic!("{name} not backfilled"));
        assert_eq!(row["statements"], *claims, "{name}");
        assert_eq!(row["format"], "openvex", "{name}");
    }
}

crate::store_tests! {
    fn openvex_samples_as_a_directory(kind) {
        let Some(samples) = samples() else { return };
        let dir = samples.join("openvex");
        let wd = Workdir::with(kind);
        let out = wd.run(&["statements", "--archive", dir.to_str().unwrap()]);
        assert_eq!(Summary::parse(&out), expected_openvex());
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (name, reason) in OPENVEX_FAILURES {
            let line =
                stderr.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {stderr}"));
            assert!(line.contains(reason), "{line}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        check_openvex_ledger(&wd, &dir);
    }
}

crate::store_tests! {
    fn openvex_samples_as_one_ndjson_archive(kind) {
        let Some(samples) = samples() else { return };
        let dir = samples.join("openvex");
        let wd = Workdir::with(kind);
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        let lines: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let bytes = std::fs::read(p).unwrap();
                let uri =
                    format!("https://samples.invalid/{}", p.file_name().unwrap().to_str().unwrap());
                crate::util::envelope(
                    &bytes,
                    &format!("2024-01-{:02}T00:00:00Z", i + 1),
                    "samples",
                    &uri,
                )
            })
            .collect();
        let archive = wd.write("openvex.ndjson", lines.join("\n") + "\n");
        let s = wd.statements(&["--archive", archive.to_str().unwrap()]);
        assert_eq!(s, expected_openvex());
        check_openvex_ledger(&wd, &dir);
        // The later statement wins within a document (trivy multiple: affected
        // then not_affected).
        let got =
            wd.run(&["get", "CVE-2021-44228", "pkg:maven/org.springframework.boot/spring-boot@2.6.0"]);
        let got = crate::util::json_lines(&got.stdout);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["status"], "not_affected");
    }
}

crate::store_tests! {
    fn all_54_sample_documents_per_format_counts_and_no_claim_lost(kind) {
        let Some(samples) = samples() else { return };
        let wd = crate::util::Workdir::with(kind);
        let dirs: Vec<String> = ["csaf", "cyclonedx", "openvex"]
            .iter()
            .map(|d| samples.join(d).display().to_string())
            .collect();
        let mut args = vec!["statements", "--archive"];
        args.extend(dirs.iter().map(String::as_str));
        let out = wd.run(&args);
        let tables: Vec<(&str, Vec<(String, u64)>)> =
            ["csaf", "cyclonedx", "openvex"].into_iter().map(|f| (f, claims(f))).collect();
        let sum = |t: &[(String, u64)]| t.iter().map(|(_, n)| n).sum::<u64>();
        let docs = tables.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
        let total = tables.iter().map(|(_, t)| sum(t)).sum::<u64>();
        let failed = OPENVEX_FAILURES.len() as u64;
        assert_eq!(docs + failed, 54);
        assert_eq!(Summary::parse(&out), Summary::new(54, docs, total, 0, failed));
        let v: serde_json::Value = serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        for (format, table) in &tables {
            assert_eq!(v["byFormat"][format], sum(table), "{format}");
        }

        // Per document: the ledger's count is what the document states, and
        // the store holds exactly that many statements for its digest.
        let ledger = wd.ledger();
        let statements = wd.export();
        for (dir, table) in &tables {
            for (name, n) in table {
                let digest = sha256(&std::fs::read(samples.join(dir).join(name)).unwrap());
                let row = ledger.iter().find(|d| d["digest"] == digest.as_str()).unwrap_or_else(|| panic!("{name}"));
                assert_eq!(row["statements"], *n, "{name}: ledger");
                let stored = statements.iter().filter(|s| s["document"]["digest"] == digest.as_str()).count();
                assert_eq!(stored as u64, *n, "{name}: statements in the store");
            }
        }
        // The 1.2 MB Red Hat advisory: a component on two platforms stays
        // two statements (keyed on the relationship ids), never one.
        let mut platforms: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
            Default::default();
        for s in statements.iter().filter(|s| s["document"]["documentId"] == "RHSA-2020:1358") {
            let component = s["metadata"]["component"].as_str().unwrap();
            platforms.entry(component).or_default().insert(s["metadata"]["platform"].as_str().unwrap());
        }
        assert_eq!(platforms.values().map(|p| p.len()).sum::<usize>(), 737);
        assert!(platforms.values().any(|p| p.len() == 2), "a component on both platforms");
    }
}
