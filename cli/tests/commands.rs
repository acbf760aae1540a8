//! `get`, `runs`, `export`, and exit codes.

use crate::util::{testdata, Workdir};

fn backfill_sample(wd: &Workdir) {
    let a = testdata("raw/sample.ndjson");
    wd.run(&["statements", "--archive", a.to_str().unwrap()]);
}

crate::store_tests! {
    fn get_matches_product_key_or_purl(kind) {
        let wd = Workdir::with(kind);
        backfill_sample(&wd);
        let by_purl = crate::util::json_lines(
            &wd.run(&["get", "CVE-2025-1001", "pkg:npm/left-pad@1.3.0"]).stdout,
        );
        assert_eq!(by_purl.len(), 1);
        let s = &by_purl[0];
        assert_eq!(s["status"], "not_affected");
        assert_eq!(s["justification"], "vulnerable_code_not_in_execute_path");
        assert_eq!(s["metadata"]["parentProduct"], "pkg:oci/acme-api@sha256%3Aabc123");
        assert_eq!(s["document"]["format"], "openvex");
        assert_eq!(s["document"]["documentId"], "https://example.com/vex/acme-2025-001");
        assert_eq!(s["document"]["revision"], "2");
        assert_eq!(s["firstSeen"], "2025-03-01T12:00:00Z");
        assert_eq!(s["lastSeen"], "2025-03-01T12:00:00Z");
        assert_eq!(s["aliases"], serde_json::json!(["GHSA-aaaa-bbbb-cccc"]));
        // Nothing matches: empty output, still success.
        let none = wd.run(&["get", "CVE-0000-0000", "nothing"]);
        assert!(none.stdout.is_empty());
    }
}

crate::store_tests! {
    fn runs_lists_every_run_with_status_and_counters(kind) {
        let wd = Workdir::with(kind);
        backfill_sample(&wd);
        backfill_sample(&wd);
        let runs = crate::util::json_lines(&wd.run(&["runs", "--json"]).stdout);
        assert_eq!(runs.len(), 2);
        for r in &runs {
            assert_eq!(r["status"], "completed");
            assert_eq!(r["command"], "statements");
            assert!(r["endedAt"].is_string());
        }
        assert_eq!(runs[0]["counters"]["backfilled"], 4);
        assert_eq!(runs[1]["counters"]["skipped"], 5);
        let table = String::from_utf8(wd.run(&["runs"]).stdout).unwrap();
        assert_eq!(table.lines().count(), 3, "{table}");
    }
}

crate::store_tests! {
    fn usage_errors_exit_2_and_fatal_errors_exit_1(kind) {
        let wd = Workdir::with(kind);
        let code = |args: &[&str]| wd.command(args).output().unwrap().status.code();
        assert_eq!(code(&["statements"]), Some(2));
        assert_eq!(code(&["statements", "--archive", "x", "--batch-size", "0"]), Some(2));
        assert_eq!(code(&["statements", "--archive", "x", "--retrieved-since", "soon"]), Some(2));
        assert_eq!(code(&["nonsense"]), Some(2));

        let missing = wd.path("does-not-exist.ndjson");
        let out = wd.command(&["statements", "--archive", missing.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("does-not-exist.ndjson"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
        // The failed run is recorded as such.
        let runs = crate::util::json_lines(&wd.run(&["runs", "--json"]).stdout);
        assert_eq!(runs.last().unwrap()["status"], "failed");
    }
}

#[test]
fn store_in_a_missing_directory_is_a_clear_fatal_error() {
    let wd = Workdir::new();
    let a = testdata("raw/sample.ndjson");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(["statements", "--archive", a.to_str().unwrap(), "--store"])
        .arg(wd.path("no/such/dir/x.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the store: store "));
}
