//! The public sample documents in `../shared/samples`, read in place (never
//! copied into the repository).

use std::path::Path;

use crate::util::{samples, sha256, Summary, Workdir};

/// Claims expected from each OpenVEX sample, read off the documents:
const OPENVEX_CLAIMS: &[(&str, u64)] = &[
    // one statement, two products (armv7, x86_64)
    ("go-vex__pkg_csaf_testdata_openvex.json", 2),
    ("go-vex__pkg_vex_testdata_v0.0.1-noversion.json", 2),
    ("go-vex__pkg_vex_testdata_v0.0.1.json", 2),
    // 5 vulnerabilities x (alpine image + libssl3 + libcrypto3 subcomponents)
    ("go-vex__pkg_vex_testdata_v0.2.0.json", 15),
    ("go-vex__pkg_vex_testdata_v020-2.vex.json", 1),
    // accepted despite the byte-order mark; one statement, one product
    ("synthetic__utf8_bom_prefixed.json", 1),
    // two statements on the same vulnerability and product: the later wins
    ("trivy__pkg_vex_testdata_openvex-multiple.json", 1),
    // product + its subcomponent
    ("trivy__pkg_vex_testdata_openvex-nested.json", 2),
    ("trivy__pkg_vex_testdata_openvex-oci.json", 2),
    // one statement, two products (?arch qualifiers)
    ("vexctl__examples_openvex_demo.vex.json", 2),
    ("vexctl__examples_openvex_document1.vex.json", 1),
    ("vexctl__examples_openvex_document2.vex.json", 1),
    // two vulnerabilities on one image
    ("vexctl__examples_sarif_sample-2vulns.openvex.json", 2),
    // the same vulnerability and product twice over time: one claim
    ("vexctl__examples_sarif_sample-history.openvex.json", 1),
    // four statements, four distinct products
    ("vexctl__pkg_ctl_testdata_images.vex.json", 4),
    ("vexctl__pkg_ctl_testdata_templates_oci-vexctl.openvex.json", 1),
    ("vexctl__pkg_ctl_testdata_v001-1.vex.json", 1),
];

/// The two OpenVEX samples that must fail, and the reason given.
const OPENVEX_FAILURES: &[(&str, &str)] = &[
    ("synthetic__malformed_truncated.json", "not valid JSON"),
    ("trivy__edge_unknown_format_empty_object.json", "unknown format"),
];

fn expected_openvex() -> Summary {
    let claims = OPENVEX_CLAIMS.iter().map(|(_, n)| n).sum();
    let ok = OPENVEX_CLAIMS.len() as u64;
    let failed = OPENVEX_FAILURES.len() as u64;
    Summary::new(ok + failed, ok, claims, 0, failed)
}

fn check_openvex_ledger(wd: &Workdir, dir: &Path) {
    let ledger = wd.ledger();
    assert_eq!(ledger.len(), OPENVEX_CLAIMS.len());
    for (name, claims) in OPENVEX_CLAIMS {
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

/// Claims expected from each CSAF sample, read off the documents.
const CSAF_CLAIMS: &[(&str, u64)] = &[
    // 2 CVEs x (CSAFPID-0001 not affected + ABC:CSAFPID-0002 affected, keyed
    // on its id as it is missing from the tree)
    ("go-vex__pkg_csaf_testdata_csaf.json", 4),
    // 2 CVEs x 737 fixed relationship products on two platforms
    // (AppStream 623, CRB 114): a package on both platforms stays two claims
    ("go-vex__redhat_rhsa-2020_1358.json", 1474),
    ("oasis__2022-evd-uc-01-a-001.json", 1),
    ("oasis__2022-evd-uc-01-f-001.json", 1),
    ("oasis__2022-evd-uc-01-na-001.json", 1),
    ("oasis__2022-evd-uc-01-ui-001.json", 1),
    // 19 CVEs x 1 product
    ("oasis__2022-evd-uc-02-na-001.json", 19),
    ("oasis__2022-evd-uc-03-ms-001.json", 19),
    // 3 known_affected
    ("oasis__2022-evd-uc-04-001.json", 3),
    ("oasis__2022-evd-uc-05-001.json", 1),
    // 3 affected + 4 not affected
    ("oasis__2022-evd-uc-06-001.json", 7),
    // 1 fixed + 4 affected + 5 not affected
    ("oasis__2022-evd-uc-07-001.json", 10),
    // (2 fixed + 4 + 5; `recommended` is no status) + (1 + 4 + 5)
    ("oasis__2022-evd-uc-08-001.json", 21),
    // 2 CVEs x 2
    ("oasis__2022-evd-uc-09-001.json", 4),
    // validator test cases breaking CSAF 6.1.27.x: normalized, 3 products each
    ("oasis__oasis_csaf_tc-csaf_2_0-2021-6-1-27-09-01.json", 3),
    ("oasis__oasis_csaf_tc-csaf_2_0-2021-6-1-27-09-11.json", 3),
    ("oasis__oasis_csaf_tc-csaf_2_0-2021-6-1-27-10-01.json", 3),
    // no vulnerabilities at all: backfilled with 0 claims
    ("oasis__oasis_csaf_tc-csaf_2_0-2021-6-1-27-11-01.json", 0),
    // a security advisory with product_status: 2 CVEs x 3 relationship products
    ("oasis__rhsa-2021_5186.json", 6),
    // 3 CVEs x 1
    ("oasis__sec-vex-2022-0001.json", 3),
    ("trivy__pkg_vex_testdata_csaf-relationships.json", 1),
    ("trivy__pkg_vex_testdata_csaf.json", 1),
];

/// Claims expected from each CycloneDX sample, read off the documents.
const CYCLONEDX_CLAIMS: &[(&str, u64)] = &[
    // one vulnerability, one ref each
    ("bom-examples__VEX_CISA-Use-Cases_Case-1_vex-affected.json", 1),
    ("bom-examples__VEX_CISA-Use-Cases_Case-1_vex-fixed.json", 1),
    ("bom-examples__VEX_CISA-Use-Cases_Case-1_vex-not_affected.json", 1),
    ("bom-examples__VEX_CISA-Use-Cases_Case-1_vex-under_investigation.json", 1),
    // 19 vulnerabilities x product-ABC
    ("bom-examples__VEX_CISA-Use-Cases_Case-2_vex.json", 19),
    // 24 version entries over 8 vulnerabilities; two repeat a key (a later
    // statement wins): 22, affected and not affected versions side by side
    ("bom-examples__VEX_CISA-Use-Cases_Case-8_vex.json", 22),
    // 19 vulnerabilities x acme-product
    ("bom-examples__VEX_Use-Cases_Case-11_vex.json", 19),
    // one CVE not affected for two BOM-Links, and affected for a third
    ("bom-examples__VEX_Use-Cases_Case-13_vex.json", 3),
    ("bom-examples__VEX_Use-Cases_Case-1_vex.json", 1),
    // 19 vulnerabilities x 3 BOM-Links
    ("bom-examples__VEX_Use-Cases_Case-9_vex.json", 57),
    ("bom-examples__VEX_vex.json", 1),
    // a plain SBOM: backfilled with 0 claims
    ("synthetic__sbom_without_vulnerabilities.json", 0),
    // spring-boot not affected; libstdc++ version 12.3.0 affected
    ("trivy__pkg_vex_testdata_cyclonedx.json", 2),
];

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
        let claims = |t: &[(&str, u64)]| t.iter().map(|(_, n)| n).sum::<u64>();
        let docs = (CSAF_CLAIMS.len() + CYCLONEDX_CLAIMS.len() + OPENVEX_CLAIMS.len()) as u64;
        let total = claims(CSAF_CLAIMS) + claims(CYCLONEDX_CLAIMS) + claims(OPENVEX_CLAIMS);
        let failed = OPENVEX_FAILURES.len() as u64;
        assert_eq!(docs + failed, 54);
        assert_eq!(Summary::parse(&out), Summary::new(54, docs, total, 0, failed));
        let v: serde_json::Value = serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        assert_eq!(v["byFormat"]["csaf"], claims(CSAF_CLAIMS));
        assert_eq!(v["byFormat"]["cyclonedx"], claims(CYCLONEDX_CLAIMS));
        assert_eq!(v["byFormat"]["openvex"], claims(OPENVEX_CLAIMS));

        // Per document: the ledger's count is what the document states, and
        // the store holds exactly that many statements for its digest.
        let ledger = wd.ledger();
        let statements = wd.export();
        for (dir, table) in [("csaf", CSAF_CLAIMS), ("cyclonedx", CYCLONEDX_CLAIMS), ("openvex", OPENVEX_CLAIMS)] {
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
