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
