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
        // The vulnerability alone: every statement about it (issue 18), in
        // lookup order.
        let all = crate::util::json_lines(&wd.run(&["get", "CVE-2023-2001"]).stdout);
        let keys: Vec<&str> = all.iter().map(|s| s["productKey"].as_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "pkg:apk/wolfi/curl@8.0.1-r0?arch=aarch64",
                "pkg:apk/wolfi/curl@8.0.1-r0?arch=x86_64"
            ]
        );
        assert!(all.iter().all(|s| s["vulnerabilityId"] == "CVE-2023-2001"));
        let none = wd.command(&["get", "CVE-0000-0000"]).output().unwrap();
        assert_eq!(none.status.code(), Some(1));
        // --purl: OpenVEX matching (no version: every version; the
        // qualifiers given must match).
        let get = |purl: &str| {
            let out = wd.command(&["get", "CVE-2023-2001", "--purl", purl]).output().unwrap();
            (out.status.code(), crate::util::json_lines(&out.stdout).len())
        };
        assert_eq!(get("pkg:apk/wolfi/curl"), (Some(0), 2));
        assert_eq!(get("pkg:apk/wolfi/curl@8.0.1-r0?arch=x86_64"), (Some(0), 1));
        assert_eq!(get("pkg:apk/wolfi/curl@9.9.9"), (Some(1), 0));
        assert_eq!(get("pkg:apk/wolfi/wget"), (Some(1), 0));
        assert_eq!(get("not a purl").0, Some(2));
        // Nothing matches: empty output and status 1, like grep (issue 13,
        // item 8: it was 0, which a script could not tell from a match).
        let none = wd.command(&["get", "CVE-0000-0000", "nothing"]).output().unwrap();
        assert_eq!(none.status.code(), Some(1));
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

/// In the `sqlite3` shell, `vex.statements` reads as table `statements` of
/// a database `vex`: the file has a view `statements` with the logical
/// columns (JSON fields as JSON text), which agrees with `export`.
#[test]
fn sqlite_file_has_a_statements_view_for_the_sqlite3_shell() {
    let wd = Workdir::new();
    backfill_sample(&wd);
    let exported = crate::util::json_lines(&wd.run(&["export"]).stdout);
    assert!(!exported.is_empty());
    let conn = rusqlite::Connection::open(&wd.store).unwrap();
    let mut q = conn
        .prepare(
            "SELECT vulnerability_id, product_key, status, document_digest, document_format,
                    aliases, metadata, retrieved_at
             FROM statements ORDER BY document_digest, vulnerability_id, product_key",
        )
        .unwrap();
    type Row = (String, String, String, String, String, Option<String>, Option<String>, String);
    let rows: Vec<Row> = q
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), exported.len());
    let json = |text: &Option<String>, empty: serde_json::Value| {
        text.as_deref().map_or(empty, |t| serde_json::from_str(t).unwrap())
    };
    for (r, e) in rows.iter().zip(&exported) {
        assert_eq!(e["vulnerabilityId"], r.0.as_str());
        assert_eq!(e["productKey"], r.1.as_str());
        assert_eq!(e["status"], r.2.as_str());
        assert_eq!(e["document"]["digest"], r.3.as_str());
        assert_eq!(e["document"]["format"], r.4.as_str());
        assert_eq!(e["aliases"], json(&r.5, serde_json::json!([])));
        assert_eq!(e["metadata"], json(&r.6, serde_json::json!({})));
        assert_eq!(e["document"]["retrievedAt"], r.7.as_str());
    }
    // The shell itself, where it is installed.
    match std::process::Command::new("sqlite3")
        .arg(&wd.store)
        .arg("select count(*) from statements")
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), exported.len().to_string());
        }
        Err(_) => eprintln!("SKIPPED: the sqlite3 shell is not installed"),
    }
}

crate::store_tests! {
    fn runs_filter_by_status_command_and_start(kind) {
        let wd = Workdir::with(kind);
        backfill_sample(&wd);
        backfill_sample(&wd);
        let missing = wd.path("does-not-exist.ndjson");
        let failed = wd.command(&["statements", "--archive", missing.to_str().unwrap()]).output();
        assert_eq!(failed.unwrap().status.code(), Some(1));
        let runs = |args: &[&str]| {
            let mut all = vec!["runs", "--json"];
            all.extend_from_slice(args);
            crate::util::json_lines(&wd.run(&all).stdout)
        };
        assert_eq!(runs(&[]).len(), 3);
        let failed = runs(&["--status", "failed"]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["status"], "failed");
        assert_eq!(runs(&["--status", "completed", "--command", "statements"]).len(), 2);
        assert_eq!(runs(&["--status", "completed", "--status", "FAILED"]).len(), 3);
        assert!(runs(&["--command", "epss"]).is_empty());
        assert!(runs(&["--since", "2999-01-01"]).is_empty());
        assert_eq!(runs(&["--since", "2000-01-01T00:00:00Z"]).len(), 3);
        let bad = wd.command(&["runs", "--status", "done"]).output().unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("abandoned"));
    }
}
