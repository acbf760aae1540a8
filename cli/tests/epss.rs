//! `backfill epss` and `backfill enrich`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use crate::util::{json_lines, samples, Workdir};

/// Parsed `Sync completed: …` line (with no failed files).
#[derive(Debug, PartialEq, Eq)]
pub struct Sync {
    pub files: u64,
    pub rows: u64,
    pub upserted: u64,
    pub unchanged: u64,
    pub superseded: u64,
    pub rejected: u64,
}

impl Sync {
    /// Parses the last line of `stdout`, which must be exactly the summary
    /// and add up.
    pub fn parse(stdout: &[u8]) -> Sync {
        let stdout = String::from_utf8_lossy(stdout);
        let last = stdout.lines().last().unwrap_or_default().to_owned();
        let n: Vec<u64> = last
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(n.len() >= 6, "summary line: {last}");
        let s = Sync {
            files: n[0],
            rows: n[1],
            upserted: n[2],
            unchanged: n[3],
            superseded: n[4],
            rejected: n[5],
        };
        assert_eq!(last, s.line());
        assert_eq!(s.rows, s.upserted + s.unchanged + s.superseded + s.rejected, "{last}");
        s
    }

    pub fn line(&self) -> String {
        format!(
            "Sync completed: files {}, rows {}, upserted {}, unchanged {}, superseded {}, rejected {}.",
            self.files, self.rows, self.upserted, self.unchanged, self.superseded, self.rejected
        )
    }
}

/// `backfill epss ARGS`, which must exit 0, and its summary.
pub fn sync(wd: &Workdir, args: &[&str]) -> Sync {
    let mut all = vec!["epss"];
    all.extend_from_slice(args);
    Sync::parse(&wd.run(&all).stdout)
}

/// The epss collection as cve → (score, percentile, kev, model, date).
pub fn values(wd: &Workdir) -> BTreeMap<String, Json> {
    wd.export_raw("epss")
        .into_iter()
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            o.remove("createdAt");
            o.remove("updatedAt");
            (o.remove("cve").unwrap().as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn gen_bucket(wd: &Workdir, dir: &str, count: &str, sequences: &str, chunk_rows: &str, seed: &str) {
    let out = wd.path(dir);
    wd.run(&[
        "gen",
        "epss",
        "--count",
        count,
        "--out",
        out.to_str().unwrap(),
        "--sequences",
        sequences,
        "--chunk-rows",
        chunk_rows,
        "--seed",
        seed,
    ]);
}

/// What a plain reading of the bucket gives: every file in (sequence,
/// chunk) order, every line, last value per CVE wins.
fn recompute(bucket: &Path) -> BTreeMap<String, (f64, bool)> {
    let mut files = Vec::new();
    for seq in std::fs::read_dir(bucket.join("v2/cve_enrichment")).unwrap() {
        for chunk in std::fs::read_dir(seq.unwrap().path()).unwrap() {
            files.push(chunk.unwrap().path());
        }
    }
    files.sort();
    let mut m = BTreeMap::new();
    for f in files {
        for v in json_lines(&std::fs::read(f).unwrap()) {
            m.insert(
                v["cve_id"].as_str().unwrap().to_owned(),
                (
                    v["epss_score"].as_f64().unwrap(),
                    v["is_known_exploit"].as_bool().unwrap_or(false),
                ),
            );
        }
    }
    m
}

#[test]
fn gitlab_sample_with_bad_lines_counts_exactly() {
    let Some(samples) = samples() else { return };
    let wd = Workdir::new();
    let chunk = wd.path("bucket/v2/cve_enrichment/1700000000/000000000.ndjson");
    std::fs::create_dir_all(chunk.parent().unwrap()).unwrap();
    std::fs::copy(samples.join("epss/derived__gitlab_cve_enrichment_v2_format.ndjson"), &chunk)
        .unwrap();
    let out = wd.run(&["epss", "--bucket", wd.path("bucket").to_str().unwrap()]);
    // 9 lines: 5 valid (one without is_known_exploit, one spaced JSON);
    // rejected: no cve_id, cve_id "invalid", an unknown key, not JSON.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "Sync completed: files 1, rows 9, upserted 5, unchanged 0, superseded 0, rejected 4."
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, why) in [
        (6, "missing field `cve_id`"),
        (7, "not a CVE id"),
        (8, "unknown field"),
        (9, "not valid JSON"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(&format!("line={line}")) && l.contains(why)),
            "line {line} ({why}):\n{stderr}"
        );
    }
    let v = values(&wd);
    assert_eq!(v.len(), 5);
    assert_eq!(v["CVE-2021-44228"]["isKnownExploit"], true);
    assert_eq!(v["CVE-2021-44228"]["epssScore"], 0.9427);
    assert_eq!(v["CVE-1999-0016"]["isKnownExploit"], false);
}

#[test]
fn first_csv_head_keeps_percentile_model_and_date() {
    let Some(samples) = samples() else { return };
    let wd = Workdir::new();
    let csv = samples.join("epss/lodestone__epss_scores-current_2026-09-29_head100.csv");
    // 103 lines: the #model_version comment, the header, 101 rows.
    let s = sync(&wd, &["--csv", csv.to_str().unwrap()]);
    assert_eq!(
        s,
        Sync { files: 1, rows: 101, upserted: 101, unchanged: 0, superseded: 0, rejected: 0 }
    );
    let v = values(&wd);
    assert_eq!(v.len(), 101);
    let first = &v["CVE-1999-0001"];
    assert_eq!(first["epssScore"], 0.03351);
    assert_eq!(first["percentile"], 0.88255);
    assert_eq!(first["modelVersion"], "v2026.06.15");
    assert_eq!(first["scoreDate"], "2026-09-29T12:00:22Z");
    // The same file again: its checkpoint says it is done.
    assert_eq!(sync(&wd, &["--csv", csv.to_str().unwrap()]).files, 0);

    // A per-CVE time series: 24 daily rows of one CVE, the last one wins.
    let series = samples.join("epss/giterlizzi__CVE-2021-0001.epss_excerpt.csv");
    let s = sync(&wd, &["--csv", series.to_str().unwrap()]);
    assert_eq!(
        s,
        Sync { files: 1, rows: 24, upserted: 1, unchanged: 0, superseded: 23, rejected: 0 }
    );
    let v = values(&wd);
    assert_eq!(v["CVE-2021-0001"]["epssScore"], 0.00885);
    assert_eq!(v["CVE-2021-0001"]["percentile"], 0.25679);
    assert_eq!(v["CVE-2021-0001"]["modelVersion"], "v2");
    assert_eq!(v["CVE-2021-0001"]["scoreDate"], "2022-07-15T00:00:00Z");
}

#[test]
fn bucket_resumes_reads_nothing_twice_and_takes_new_sequences() {
    let wd = Workdir::new();
    gen_bucket(&wd, "bucket", "6000", "3", "700", "5");
    let bucket = wd.path("bucket");
    let b = bucket.to_str().unwrap();
    // 3 sequences of 2000 rows, chunks of 700: 3 files each.
    let first = sync(&wd, &["--bucket", b, "--batch-size", "256"]);
    assert_eq!((first.files, first.rows, first.rejected), (9, 6000, 0));
    let expected = recompute(&bucket);
    // A CVE repeated in a later batch is upserted again when its value
    // differs, so upserts are at least the distinct CVEs.
    assert!(first.upserted as usize >= expected.len(), "{first:?}");
    let got: BTreeMap<String, (f64, bool)> = values(&wd)
        .into_iter()
        .map(|(k, v)| {
            (k, (v["epssScore"].as_f64().unwrap(), v["isKnownExploit"].as_bool().unwrap()))
        })
        .collect();
    assert_eq!(got, expected, "store equals a plain recomputation from the files");

    assert_eq!(
        sync(&wd, &["--bucket", b]),
        Sync { files: 0, rows: 0, upserted: 0, unchanged: 0, superseded: 0, rejected: 0 }
    );

    // A new sequence arrives (later name): only it is read. Its rows are a
    // different seed, so some CVEs change and some are new.
    gen_bucket(&wd, "next", "1000", "1", "400", "6");
    let src = wd.path("next/v2/cve_enrichment/1700000000");
    let dst = bucket.join("v2/cve_enrichment/1800000000");
    std::fs::rename(&src, &dst).unwrap();
    let expected = recompute(&bucket);
    // An already-ingested chunk disappears from the mirror: no replay.
    std::fs::remove_file(bucket.join("v2/cve_enrichment/1700000000/000000000.ndjson")).unwrap();
    let s = sync(&wd, &["--bucket", b]);
    assert_eq!((s.files, s.rows, s.rejected), (3, 1000, 0));
    assert!(s.upserted > 0 && s.upserted < 1000, "{s:?}");
    let got: BTreeMap<String, (f64, bool)> = values(&wd)
        .into_iter()
        .map(|(k, v)| {
            (k, (v["epssScore"].as_f64().unwrap(), v["isKnownExploit"].as_bool().unwrap()))
        })
        .collect();
    assert_eq!(got, expected);
}

/// SIGTERM, unless the process has already exited.
pub fn kill_term(child: &mut std::process::Child) {
    if child.try_wait().unwrap().is_none() {
        // It may still exit between the check and the signal; that is fine.
        let _ =
            std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
}

#[test]
fn sigterm_mid_sync_then_rerun_equals_one_uninterrupted_run() {
    let reference = Workdir::new();
    gen_bucket(&reference, "bucket", "200000", "2", "20000", "9");
    let rb = reference.path("bucket");
    sync(&reference, &["--bucket", rb.to_str().unwrap(), "--batch-size", "500"]);
    let expected = values(&reference);

    let wd = Workdir::new();
    gen_bucket(&wd, "bucket", "200000", "2", "20000", "9");
    let b = wd.path("bucket");
    let mut stopped_runs = 0;
    for delay_ms in [0u64, 60, 150, 300, 500] {
        let before = wd.runs().len();
        let mut child = wd
            .command(&["epss", "--bucket", b.to_str().unwrap(), "--batch-size", "500"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        crate::util::wait_until_running(&wd, before, &mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill_term(&mut child);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.trim_end().ends_with('.'), "summary printed: {stdout}");
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let last = runs.last().unwrap();
        if last["status"] == "stopped" {
            stopped_runs += 1;
        } else {
            assert_eq!(last["status"], "completed");
        }
    }
    assert!(stopped_runs >= 2, "the signal must land mid-run at least twice ({stopped_runs})");
    // Finish the job.
    sync(&wd, &["--bucket", b.to_str().unwrap(), "--batch-size", "500"]);
    assert_eq!(values(&wd), expected);
    assert_eq!(sync(&wd, &["--bucket", b.to_str().unwrap()]).rows, 0);
}

#[test]
fn max_duration_stops_cleanly_and_rerun_finishes() {
    let wd = Workdir::new();
    gen_bucket(&wd, "bucket", "3000", "1", "1000", "3");
    let b = wd.path("bucket");
    let out = wd.run(&["epss", "--bucket", b.to_str().unwrap(), "--max-duration", "0s", "--json"]);
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stopped"], true);
    assert_eq!(v["rows"], 0);
    let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
    assert_eq!(runs.last().unwrap()["status"], "stopped");
    let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
    assert_eq!(s.rows, 3000);
}

#[test]
fn updated_at_moves_only_when_a_value_changes() {
    let wd = Workdir::new();
    let bucket = wd.path("bucket");
    let write = |seq: &str, lines: &str| {
        let p = bucket.join("v2/cve_enrichment").join(seq).join("000000000.ndjson");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, lines).unwrap();
    };
    write(
        "1",
        "{\"cve_id\":\"CVE-2020-0001\",\"epss_score\":0.1}\n{\"cve_id\":\"CVE-2020-0002\",\"epss_score\":0.2}\n",
    );
    let b = bucket.to_str().unwrap();
    sync(&wd, &["--bucket", b]);
    let before: BTreeMap<String, Json> = wd
        .export_raw("epss")
        .into_iter()
        .map(|v| (v["cve"].as_str().unwrap().to_owned(), v))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    // Same score for 0001; new score for 0002; a duplicate inside the
    // batch resolves to the last value instead of failing the batch.
    write(
        "2",
        "{\"cve_id\":\"CVE-2020-0001\",\"epss_score\":0.1}\n{\"cve_id\":\"CVE-2020-0002\",\"epss_score\":0.9}\n{\"cve_id\":\"CVE-2020-0002\",\"epss_score\":0.3,\"is_known_exploit\":true}\n",
    );
    let s = sync(&wd, &["--bucket", b]);
    assert_eq!(
        s,
        Sync { files: 1, rows: 3, upserted: 1, unchanged: 1, superseded: 1, rejected: 0 }
    );
    let after: BTreeMap<String, Json> = wd
        .export_raw("epss")
        .into_iter()
        .map(|v| (v["cve"].as_str().unwrap().to_owned(), v))
        .collect();
    let (b1, a1) = (&before["CVE-2020-0001"], &after["CVE-2020-0001"]);
    assert_eq!(a1["updatedAt"], b1["updatedAt"], "unchanged row keeps updatedAt");
    let (b2, a2) = (&before["CVE-2020-0002"], &after["CVE-2020-0002"]);
    assert_ne!(a2["updatedAt"], b2["updatedAt"], "changed row moves updatedAt");
    assert_eq!(a2["createdAt"], b2["createdAt"], "createdAt is kept");
    assert_eq!(a2["epssScore"], 0.3);
    assert_eq!(a2["isKnownExploit"], true);
}

#[test]
fn gzip_csv_and_decompression_limit() {
    let wd = Workdir::new();
    let csv = wd.path("epss_scores-2026-09-29.csv.gz");
    wd.run(&["gen", "epss", "--count", "5000", "--out", csv.to_str().unwrap(), "--dup-ratio", "0"]);
    let s = sync(&wd, &["--csv", csv.to_str().unwrap(), "--batch-size", "1000"]);
    assert_eq!(
        s,
        Sync { files: 1, rows: 5000, upserted: 5000, unchanged: 0, superseded: 0, rejected: 0 }
    );
    let v = values(&wd);
    assert!(v.values().all(|r| r["modelVersion"] == "v2026.06.15" && r["percentile"].is_number()));

    // A decompressed size over the limit is a clear fatal error.
    let wd = Workdir::new();
    let out = wd
        .command(&["epss", "--csv", csv.to_str().unwrap(), "--max-decompressed-size", "10KiB"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("decompresses to more than 10240 bytes"), "{stderr}");
}

#[test]
fn enrich_sets_signals_once_and_statements_written_later_carry_them() {
    let wd = Workdir::new();
    let doc = crate::util::openvex_doc(1, 3); // CVE-2024-01000..01002
    let a = wd.write("a.ndjson", crate::util::envelope(&doc, "2025-01-01T00:00:00Z", "p", "u"));
    wd.statements(&["--archive", a.to_str().unwrap()]);
    let chunk = wd.path("bucket/v2/cve_enrichment/1/000000000.ndjson");
    std::fs::create_dir_all(chunk.parent().unwrap()).unwrap();
    std::fs::write(
        &chunk,
        "{\"cve_id\":\"CVE-2024-01000\",\"epss_score\":0.5,\"is_known_exploit\":true}\n{\"cve_id\":\"CVE-2024-01001\",\"epss_score\":0.25}\n",
    )
    .unwrap();
    sync(&wd, &["--bucket", wd.path("bucket").to_str().unwrap()]);
    let enrich = |wd: &Workdir| String::from_utf8(wd.run(&["enrich"]).stdout).unwrap();
    assert_eq!(enrich(&wd).trim(), "Enrich completed: statements changed 2.");
    assert_eq!(enrich(&wd).trim(), "Enrich completed: statements changed 0.");
    let by_vuln: BTreeMap<String, Json> = wd
        .export()
        .into_iter()
        .map(|s| (s["vulnerabilityId"].as_str().unwrap().to_owned(), s))
        .collect();
    assert_eq!(by_vuln["CVE-2024-01000"]["signals"]["kev"], true);
    assert_eq!(by_vuln["CVE-2024-01000"]["signals"]["epss"]["score"], 0.5);
    assert_eq!(by_vuln["CVE-2024-01001"]["signals"]["kev"], false);
    assert_eq!(by_vuln["CVE-2024-01002"]["signals"]["epss"], Json::Null);

    // Written after the sync: enriched at write time, enrich has nothing to do.
    let wd2 = Workdir::new();
    let chunk2 = wd2.path("bucket/v2/cve_enrichment/1/000000000.ndjson");
    std::fs::create_dir_all(chunk2.parent().unwrap()).unwrap();
    std::fs::copy(&chunk, &chunk2).unwrap();
    sync(&wd2, &["--bucket", wd2.path("bucket").to_str().unwrap()]);
    let a2 = wd2.write("a.ndjson", crate::util::envelope(&doc, "2025-01-01T00:00:00Z", "p", "u"));
    wd2.statements(&["--archive", a2.to_str().unwrap()]);
    assert_eq!(enrich(&wd2).trim(), "Enrich completed: statements changed 0.");
    assert_eq!(wd2.export(), wd.export());
}
