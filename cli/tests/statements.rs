//! `backfill statements` end to end on the embedded store.

use crate::util::{envelope, openvex_doc, testdata, Summary, Workdir};

/// The bundled archive: 8 lines. CSAF (2 claims: widget 1.0 affected, 1.1
/// fixed), OpenVEX (3 claims: acme-api for two CVEs plus the left-pad
/// subcomponent), legacy OpenVEX inline without digest or format (2 claims:
/// two arches), CycloneDX (1 claim), a re-fetch of the OpenVEX document
/// (skipped), a digest mismatch, `{}` (unknown format) and a truncated line
/// (3 failures).
const FIRST_RUN: Summary = Summary::new(8, 4, 8, 1, 3);

crate::store_tests! {
    fn rerun_skips_everything_and_force_rewrites_without_duplicates(kind) {
        let wd = Workdir::with(kind);
        let archive = testdata("raw/sample.ndjson");
        let archive = archive.to_str().unwrap();

        assert_eq!(wd.statements(&["--archive", archive]), FIRST_RUN);
        let after_first = wd.export_raw("statements");
        assert_eq!(after_first.len(), 8);

        // Every backfilled document is now skipped; failed ones fail again;
        // nothing is written (the store is byte-for-byte the same, run ids too).
        assert_eq!(wd.statements(&["--archive", archive]), Summary::new(8, 0, 0, 5, 3));
        assert_eq!(wd.export_raw("statements"), after_first);

        // --force re-processes earlier runs' documents: same statements count
        // written, same content, no duplicates. The in-run duplicate is still
        // skipped.
        assert_eq!(wd.statements(&["--archive", archive, "--force"]), FIRST_RUN);
        let after_force = wd.export_raw("statements");
        assert_eq!(after_force.len(), 8);
        let strip = |v: &[serde_json::Value]| -> Vec<serde_json::Value> {
            v.iter()
                .cloned()
                .map(|mut s| {
                    s.as_object_mut().unwrap().remove("insertedAt");
                    s.as_object_mut().unwrap().remove("runId");
                    s
                })
                .collect()
        };
        assert_eq!(strip(&after_force), strip(&after_first));
        // And they are the forced run's statements now.
        assert_ne!(after_force[0]["runId"], after_first[0]["runId"]);
    }
}

crate::store_tests! {
    fn documents_are_evaluated_in_retrieved_at_order_whatever_the_file_order(kind) {
        let wd = Workdir::with(kind);
        let doc = openvex_doc(1, 1);
        // The same bytes fetched twice: the earlier fetch is the one kept, even
        // though it is the later line.
        let lines = [
            envelope(&doc, "2025-02-01T00:00:00Z", "late", "https://x/late"),
            envelope(&doc, "2025-01-01T00:00:00Z", "early", "https://x/early"),
        ];
        let a = wd.write("a.ndjson", lines.join("\n"));
        assert_eq!(wd.statements(&["--archive", a.to_str().unwrap()]), Summary::new(2, 1, 1, 1, 0));
        let ledger = wd.ledger();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0]["providerId"], "early");
        assert_eq!(ledger[0]["statements"], 1);
    }
}

/// Four documents on four days, 2 statements each.
fn dated_archive(wd: &Workdir) -> String {
    let days = ["2025-01-04", "2025-01-01", "2025-01-03", "2025-01-02"];
    let lines: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            envelope(&openvex_doc(i, 2), &format!("{d}T12:00:00Z"), "p", &format!("u{i}"))
        })
        .collect();
    wd.write("dated.ndjson", lines.join("\n") + "\n").display().to_string()
}

crate::store_tests! {
    fn retrieved_since_keeps_documents_on_or_after_the_instant(kind) {
        let wd = Workdir::with(kind);
        let a = dated_archive(&wd);
        // Inclusive bound, given with an offset: 13:00+01:00 is 12:00Z.
        let s = wd.statements(&["--archive", &a, "--retrieved-since", "2025-01-03T13:00:00+01:00"]);
        assert_eq!(s, Summary::new(2, 2, 4, 0, 0));
        let mut days: Vec<String> =
            wd.ledger().iter().map(|d| d["retrievedAt"].as_str().unwrap()[..10].to_owned()).collect();
        days.sort();
        assert_eq!(days, ["2025-01-03", "2025-01-04"]);
        // No offset means UTC; a bare date is midnight UTC.
        let wd = Workdir::with(kind);
        let a = dated_archive(&wd);
        assert_eq!(wd.statements(&["--archive", &a, "--retrieved-since", "2025-01-02"]).evaluated, 3);
    }
}

crate::store_tests! {
    fn max_documents_caps_the_earliest_documents(kind) {
        let wd = Workdir::with(kind);
        let a = dated_archive(&wd);
        assert_eq!(
            wd.statements(&["--archive", &a, "--max-documents", "2"]),
            Summary::new(2, 2, 4, 0, 0)
        );
        let mut days: Vec<String> =
            wd.ledger().iter().map(|d| d["retrievedAt"].as_str().unwrap()[..10].to_owned()).collect();
        days.sort();
        assert_eq!(days, ["2025-01-01", "2025-01-02"]);
        // The next capped run takes the next two: the first two are skipped
        // but still count as evaluated.
        assert_eq!(
            wd.statements(&["--archive", &a, "--max-documents", "3"]),
            Summary::new(3, 1, 2, 2, 0)
        );
    }
}

/// An archive with everything that makes ordering and dedupe interesting:
/// out-of-order times, equal times (ties broken by digest), duplicates in
/// and across batches, failures, and documents with 0–9 statements.
fn mixed_archive(wd: &Workdir) -> String {
    let mut lines = Vec::new();
    for i in 0..60usize {
        // i and i + 45 are the same document fetched twice.
        let doc = openvex_doc(i % 45, (i % 45) % 10);
        let day = (i * 7) % 28 + 1;
        let hour = if i % 5 == 0 { 0 } else { i % 24 };
        lines.push(envelope(
            &doc,
            &format!("2025-03-{day:02}T{hour:02}:00:00Z"),
            "p",
            &format!("u{i}"),
        ));
        if i % 13 == 0 {
            lines.push(format!("{{\"broken\": {i}"));
        }
        if i % 17 == 0 {
            lines.push(envelope(b"{}", "2025-03-05T00:00:00Z", "p", "empty"));
        }
    }
    wd.write("mixed.ndjson", lines.join("\n") + "\n").display().to_string()
}

crate::store_tests! {
    fn results_do_not_depend_on_threads_or_batch_size(kind) {
        let reference = Workdir::with(kind);
        let a = mixed_archive(&reference);
        let expected = reference.statements(&["--archive", &a, "--threads", "1", "--batch-size", "1"]);
        assert!(expected.failures > 0 && expected.skipped > 0 && expected.claims > 0, "{expected:?}");
        let expected_store = reference.export();
        let expected_ledger = reference.ledger();
        for threads in ["1", "2"] {
            for batch in ["1", "7", "100"] {
                let wd = Workdir::with(kind);
                let a = mixed_archive(&wd);
                let s = wd.statements(&["--archive", &a, "--threads", threads, "--batch-size", batch]);
                assert_eq!(s, expected, "threads {threads}, batch size {batch}");
                assert_eq!(wd.export(), expected_store, "threads {threads}, batch size {batch}");
                assert_eq!(wd.ledger(), expected_ledger, "threads {threads}, batch size {batch}");
            }
        }
    }
}

crate::store_tests! {
    fn counters_add_up_and_json_output_matches_summary(kind) {
        let wd = Workdir::with(kind);
        let a = mixed_archive(&wd);
        let out = wd.run(&["statements", "--archive", &a, "--json"]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap();
        assert_eq!(n("evaluated"), n("backfilled") + n("skipped") + n("failures"));
        assert_eq!(n("claimsWritten") as usize, wd.export().len());
        assert_eq!(n("backfilled") as usize, wd.ledger().len());
        assert_eq!(v["stopped"], false);
    }
}

crate::store_tests! {
    fn failures_are_logged_with_digest_and_reason_and_not_recorded(kind) {
        let wd = Workdir::with(kind);
        let doc = openvex_doc(1, 1);
        let mut bad =
            serde_json::from_str::<serde_json::Value>(&envelope(&doc, "2025-01-01", "p", "u")).unwrap();
        bad["digest"] = format!("sha256:{}", "ab".repeat(32)).into();
        let a = wd.write("a.ndjson", bad.to_string());
        let out = wd.run(&["statements", "--archive", a.to_str().unwrap()]);
        assert_eq!(Summary::parse(&out), Summary::new(1, 0, 0, 0, 1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("sha256:{}", "ab".repeat(32))), "{stderr}");
        assert!(stderr.contains("digest mismatch"), "{stderr}");
        assert!(stderr.contains("a.ndjson:1"), "{stderr}");
        assert!(wd.ledger().is_empty());
    }
}

crate::store_tests! {
    fn loose_json_files_use_mtime_or_retrieved_at(kind) {
        let wd = Workdir::with(kind);
        let doc = openvex_doc(3, 2);
        wd.write("dir/one.json", &doc);
        wd.write("dir/notes.txt", "ignored");
        let dir = wd.path("dir");
        let s = wd.statements(&[
            "--archive",
            dir.to_str().unwrap(),
            "--retrieved-at",
            "2024-06-01T00:00:00Z",
            "--provider",
            "vendor-x",
        ]);
        assert_eq!(s, Summary::new(1, 1, 2, 0, 0));
        let ledger = wd.ledger();
        assert_eq!(ledger[0]["retrievedAt"], "2024-06-01T00:00:00Z");
        assert_eq!(ledger[0]["providerId"], "vendor-x");
        assert_eq!(ledger[0]["digest"], crate::util::sha256(&doc));
        assert!(ledger[0]["sourceUri"].as_str().unwrap().ends_with("one.json"));
    }
}

#[test]
fn dry_run_counts_like_a_first_run_and_writes_nothing() {
    let wd = Workdir::new();
    let a = testdata("raw/sample.ndjson");
    let a = a.to_str().unwrap();
    let dry = wd.statements(&["--archive", a, "--dry-run"]);
    assert_eq!(dry, FIRST_RUN);
    assert!(!std::path::Path::new(&wd.store).exists(), "no store is opened");
    // Still counts as a first run after a real one: it never reads the ledger.
    wd.statements(&["--archive", a]);
    assert_eq!(wd.statements(&["--archive", a, "--dry-run"]), FIRST_RUN);
}

// Text is stored as given, U+0000 too (PostgreSQL's text cannot hold it
// as it is: that store escapes it).
crate::store_tests! {
    fn text_with_nul_characters_round_trips(kind) {
        let wd = Workdir::with(kind);
        let doc = serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/nul\u{0}\u{e000}",
            "author": "t",
            "timestamp": "2024-01-01T00:00:00Z",
            "version": 1,
            "statements": [{
                "vulnerability": {"name": "CVE-2024-1111"},
                "products": [{"@id": "pkg:npm/a\u{0}b@1"}],
                "status": "not_affected",
                "justification": "component_not_present",
                "impact_statement": "bad\u{0}byte \u{e000}\u{e002}",
            }],
        })
        .to_string();
        let line = crate::util::envelope(doc.as_bytes(), "2024-01-02T00:00:00Z", "p\u{0}", "u\u{0}");
        let archive = wd.write("nul.ndjson", format!("{line}\n"));
        let s = wd.statements(&["--archive", archive.to_str().unwrap()]);
        assert_eq!((s.backfilled, s.claims, s.failures), (1, 1, 0));
        let got = wd.export();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["detail"], "bad\u{0}byte \u{e000}\u{e002}");
        assert_eq!(got[0]["productKey"], "pkg:npm/a\u{0}b@1");
        assert_eq!(got[0]["providerId"], "p\u{0}");
        assert_eq!(got[0]["document"]["documentId"], "https://example.com/vex/nul\u{0}\u{e000}");
        assert_eq!(got[0]["document"]["sourceUri"], "u\u{0}");
    }
}
