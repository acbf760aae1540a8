//! `backfill epss` checkpoints per file: a file replaced at the same path,
//! a chunk rewritten in place, the same bytes downloaded again, --force,
//! empty and damaged files, and stores written before content identities.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value as Json;

use crate::epss::{kill_term, sync, Sync};
use crate::util::{json_lines, StoreKind, Workdir};

/// The epss collection as cve → row, with `createdAt` and `updatedAt`.
fn rows(wd: &Workdir) -> BTreeMap<String, Json> {
    wd.export_raw("epss").into_iter().map(|v| (v["cve"].as_str().unwrap().to_owned(), v)).collect()
}

/// `backfill epss ARGS`, whatever its exit code.
fn epss(wd: &Workdir, args: &[&str]) -> Output {
    let mut all = vec!["epss"];
    all.extend_from_slice(args);
    wd.command(&all).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `backfill stats --json`: the checkpoints, by source.
fn checkpoints(wd: &Workdir) -> BTreeMap<String, Json> {
    let v: Json = serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
    v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["source"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

/// A FIRST CSV of `day` with `scores` (cve → thousandths).
fn first_csv(day: u32, scores: &BTreeMap<String, u32>) -> Vec<u8> {
    let mut s = format!(
        "#model_version:v2026.06.15,score_date:2026-10-{day:02}T00:00:00Z\ncve,epss,percentile\n"
    );
    for (cve, score) in scores {
        s.push_str(&format!("{cve},{},0.5\n", f64::from(*score) / 1000.0));
    }
    s.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = backfill_engine::gen::gzip(Vec::new());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Replaces `path` as a download does (a new file renamed over the old
/// one), with a modification time of its own: `stamp` seconds into 2027.
fn replace(path: &Path, bytes: &[u8], stamp: u64) {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600 + stamp);
    std::fs::File::options().write(true).open(&tmp).unwrap().set_modified(t).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn mtime_ns(stamp: u64) -> i64 {
    (1_798_761_600 + stamp as i64) * 1_000_000_000
}

/// A GitLab export line.
fn line(cve: &str, score: f64) -> String {
    format!("{{\"cve_id\":\"{cve}\",\"epss_score\":{score}}}\n")
}

fn chunk_path(wd: &Workdir, sequence: &str, chunk: u32) -> std::path::PathBuf {
    wd.path(&format!("bucket/v2/cve_enrichment/{sequence}/{chunk:09}.ndjson"))
}

fn write_chunk(wd: &Workdir, sequence: &str, chunk: u32, lines: &[String], stamp: u64) {
    let p = chunk_path(wd, sequence, chunk);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    replace(&p, lines.concat().as_bytes(), stamp);
}

/// Scores of 300 CVEs, and on each later day a fifth of them changed and
/// ten new ones; returns the CVEs that changed or are new.
fn next_day(day: u32, scores: &mut BTreeMap<String, u32>) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    if scores.is_empty() {
        for i in 0..300u32 {
            scores.insert(format!("CVE-2024-{i:05}"), (i * 37) % 1000);
        }
        return scores.keys().cloned().collect();
    }
    for (i, (cve, s)) in scores.iter_mut().enumerate() {
        if (i + day as usize).is_multiple_of(5) {
            *s = (*s + day) % 1000;
            changed.insert(cve.clone());
        }
    }
    for i in 0..10 {
        let cve = format!("CVE-2025-{:05}", day * 100 + i);
        scores.insert(cve.clone(), 250);
        changed.insert(cve);
    }
    changed
}

crate::store_tests! {
    /// FIRST's file at one stable path, replaced by the next day's three
    /// times: every day's scores land, and only changed rows move.
    fn csv_replaced_at_one_path_is_read_again_each_day(kind) {
        for name in ["epss_scores-current.csv", "epss_scores-current.csv.gz"] {
            let wd = Workdir::with(kind);
            let path = wd.path(name);
            let mut scores = BTreeMap::new();
            let mut before: BTreeMap<String, Json> = BTreeMap::new();
            for day in 1..=4u32 {
                let changed = next_day(day, &mut scores);
                let csv = first_csv(day, &scores);
                let bytes = if name.ends_with(".gz") { gzip(&csv) } else { csv };
                replace(&path, &bytes, u64::from(day) * 86_400);
                let s = sync(&wd, &["--csv", path.to_str().unwrap(), "--batch-size", "64"]);
                let (n, c) = (scores.len() as u64, changed.len() as u64);
                assert_eq!(
                    s,
                    Sync { files: 1, rows: n, upserted: c, unchanged: n - c, superseded: 0, rejected: 0 },
                    "{name}, day {day}"
                );
                let after = rows(&wd);
                assert_eq!(after.len(), scores.len());
                for (cve, score) in &scores {
                    let r = &after[cve];
                    assert_eq!(r["epssScore"].as_f64(), Some(f64::from(*score) / 1000.0), "{cve}");
                    if let Some(b) = before.get(cve) {
                        let moved = r["updatedAt"] != b["updatedAt"];
                        assert_eq!(moved, changed.contains(cve), "{name}, day {day}, {cve}: updatedAt");
                        assert_eq!(r["createdAt"], b["createdAt"], "{cve}: createdAt");
                    }
                }
                before = after;
            }
        }
    }

    /// A mirror that downloads the same file again (same bytes, new mtime)
    /// does not re-apply it, and the checkpoint takes the new mtime.
    fn same_bytes_downloaded_again_are_not_applied_again(kind) {
        for name in ["epss_scores-current.csv", "epss_scores-current.csv.gz"] {
            let wd = Workdir::with(kind);
            let path = wd.path(name);
            let p = path.to_str().unwrap();
            let mut scores = BTreeMap::new();
            let pack = |csv: Vec<u8>| if name.ends_with(".gz") { gzip(&csv) } else { csv };
            next_day(1, &mut scores);
            replace(&path, &pack(first_csv(1, &scores)), 1);
            sync(&wd, &["--csv", p]);
            next_day(2, &mut scores);
            let day2 = pack(first_csv(2, &scores));
            replace(&path, &day2, 2);
            assert_eq!(sync(&wd, &["--csv", p]).files, 1, "{name}: the next day is read");
            let stored = rows(&wd);

            replace(&path, &day2, 3);
            let zero = Sync { files: 0, rows: 0, upserted: 0, unchanged: 0, superseded: 0, rejected: 0 };
            assert_eq!(sync(&wd, &["--csv", p]), zero, "{name}: same bytes, new mtime");
            assert_eq!(rows(&wd), stored, "{name}: nothing re-applied, updatedAt kept");
            let cp = &checkpoints(&wd)[&canonical(&path)];
            assert_eq!(cp["complete"], true);
            assert_eq!(cp["identity"]["mtimeNs"], mtime_ns(3), "{name}: identity refreshed");
            assert_eq!(cp["identity"]["size"], day2.len() as u64);
            assert_eq!(cp["identity"]["xxh3"].as_str().map(str::len), Some(16));
            assert_eq!(sync(&wd, &["--csv", p]), zero, "{name}");
        }
    }

    /// A chunk rewritten in place, before the last file read, is read
    /// again; one downloaded again with the same bytes and one untouched
    /// are not (re-applying an old chunk would regress newer scores).
    fn bucket_chunk_rewritten_in_place_is_read_again(kind) {
        let wd = Workdir::with(kind);
        let b = wd.path("bucket");
        let seq1_0 = [line("CVE-2020-0001", 0.1), line("CVE-2020-0002", 0.1), line("CVE-2020-0003", 0.1)];
        write_chunk(&wd, "1", 0, &seq1_0, 1);
        write_chunk(&wd, "1", 1, &[line("CVE-2020-0004", 0.2), line("CVE-2020-0005", 0.2), line("CVE-2020-0006", 0.2)], 1);
        // A newer score for a CVE of 1/000000000.
        write_chunk(&wd, "2", 0, &[line("CVE-2020-0001", 0.9)], 2);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!((s.files, s.rows), (3, 7));
        let before = rows(&wd);

        write_chunk(&wd, "1", 1, &[line("CVE-2020-0004", 0.4), line("CVE-2020-0005", 0.5), line("CVE-2020-0006", 0.2)], 3);
        write_chunk(&wd, "1", 0, &seq1_0, 3);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!(s, Sync { files: 1, rows: 3, upserted: 2, unchanged: 1, superseded: 0, rejected: 0 });
        let after = rows(&wd);
        assert_eq!(after["CVE-2020-0001"]["epssScore"], 0.9, "not regressed");
        assert_eq!(after["CVE-2020-0004"]["epssScore"], 0.4);
        assert_eq!(after["CVE-2020-0005"]["epssScore"], 0.5);
        for cve in ["CVE-2020-0001", "CVE-2020-0002", "CVE-2020-0006"] {
            assert_eq!(after[cve]["updatedAt"], before[cve]["updatedAt"], "{cve}");
        }
        assert_eq!(sync(&wd, &["--bucket", b.to_str().unwrap()]).files, 0);
    }

    /// --force reads every file from the start; rows still change only
    /// where a value changed.
    fn force_reads_everything_again(kind) {
        let wd = Workdir::with(kind);
        let b = wd.path("bucket");
        write_chunk(&wd, "1", 0, &[line("CVE-2020-0001", 0.1), line("CVE-2020-0002", 0.2)], 1);
        write_chunk(&wd, "2", 0, &[line("CVE-2020-0001", 0.3), line("CVE-2020-0003", 0.3)], 1);
        let csv = wd.write("epss_scores-2026-10-01.csv", "cve,epss,percentile\nCVE-2020-0009,0.5,0.5\n");
        sync(&wd, &["--bucket", b.to_str().unwrap()]);
        sync(&wd, &["--csv", csv.to_str().unwrap()]);
        let before = rows(&wd);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap(), "--force"]);
        // CVE-2020-0001 goes back to 0.1, then forward to 0.3.
        assert_eq!(s, Sync { files: 2, rows: 4, upserted: 2, unchanged: 2, superseded: 0, rejected: 0 });
        let s = sync(&wd, &["--csv", csv.to_str().unwrap(), "--force"]);
        assert_eq!(s, Sync { files: 1, rows: 1, upserted: 0, unchanged: 1, superseded: 0, rejected: 0 });
        let after = rows(&wd);
        assert_eq!(after["CVE-2020-0001"]["epssScore"], 0.3);
        assert_eq!(after["CVE-2020-0009"]["updatedAt"], before["CVE-2020-0009"]["updatedAt"]);
        assert_eq!(sync(&wd, &["--bucket", b.to_str().unwrap()]).files, 0);
    }

    /// An empty CSV is like a header-only one: no rows, a warning, exit 0;
    /// filled in later, it is read.
    fn empty_csv_has_no_rows_and_a_warning(kind) {
        let wd = Workdir::with(kind);
        for (name, bytes) in [
            ("epss_scores-2026-10-01.csv", &b""[..]),
            ("epss_scores-2026-10-02.csv.gz", b""),
            ("epss_scores-2026-10-03.csv", b"cve,epss,percentile\n"),
        ] {
            let path = wd.write(name, bytes);
            let out = wd.run(&["epss", "--csv", path.to_str().unwrap()]);
            let s = Sync::parse(&out.stdout);
            assert_eq!(s, Sync { files: 1, rows: 0, upserted: 0, unchanged: 0, superseded: 0, rejected: 0 }, "{name}");
            let err = stderr(&out);
            assert!(err.contains("WARN") && err.contains(name), "{name}: {err}");
            assert_eq!(sync(&wd, &["--csv", path.to_str().unwrap()]).files, 0, "{name}: done");
        }
        let path = wd.path("epss_scores-2026-10-01.csv");
        replace(&path, b"cve,epss,percentile\nCVE-2020-0001,0.5,0.5\n", 9);
        assert_eq!(sync(&wd, &["--csv", path.to_str().unwrap()]).rows, 1);
    }

    /// A truncated .csv.gz: the rows before the damage are written, the
    /// run fails naming the file and is recorded with it; once the whole
    /// file is there, the rerun reads the rest.
    fn truncated_gzip_keeps_the_rows_before_the_damage(kind) {
        let wd = Workdir::with(kind);
        let mut scores = BTreeMap::new();
        next_day(1, &mut scores);
        for i in 0..3000u32 {
            scores.insert(format!("CVE-2023-{i:05}"), i % 1000);
        }
        let whole = gzip(&first_csv(1, &scores));
        let path = wd.path("epss_scores-current.csv.gz");
        let p = path.to_str().unwrap();
        replace(&path, &whole[..whole.len() / 2], 1);
        let out = epss(&wd, &["--csv", p, "--batch-size", "100"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let read = rows(&wd).len() as u64;
        assert!(read > 0 && read < scores.len() as u64, "{read}");
        assert_eq!(
            stdout.trim_end(),
            format!("Sync completed: files 1, rows {read}, upserted {read}, unchanged 0, superseded 0, rejected 0, failed files 1.")
        );
        let err = stderr(&out);
        let last = err.lines().last().unwrap();
        assert!(last.starts_with("backfill: error: epss run "), "{err}");
        assert!(last.contains("epss_scores-current.csv.gz: gzip data damaged at byte "), "{last}");
        assert!(last.contains("of the decompressed stream"), "{last}");
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let run = runs.last().unwrap();
        assert_eq!(run["status"], "failed");
        assert_eq!(run["counters"]["failedFiles"], 1);
        assert_eq!(run["counters"]["rows"], read);
        assert_eq!(run["counters"]["failures"][0]["file"], p);
        assert!(run["counters"]["failures"][0]["offset"].as_u64().unwrap() > 0);
        assert!(run["error"].as_str().unwrap().contains("gzip data damaged"), "{run}");
        assert_eq!(checkpoints(&wd)[&canonical(&path)]["complete"], false);

        // Still damaged: it fails again, with nothing new.
        let out = epss(&wd, &["--csv", p]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stdout).contains("rows 0,"));
        // The whole file (it grew): the rest is read.
        replace(&path, &whole, 2);
        let out = wd.run(&["epss", "--csv", p, "--batch-size", "100"]);
        let s = Sync::parse(&out.stdout);
        assert_eq!((s.files, s.rows), (1, scores.len() as u64 - read), "resumed");
        assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
        assert_eq!(rows(&wd).len(), scores.len());
    }

    /// A part-read file whose bytes before the checkpoint changed is read
    /// again from the start, with a warning.
    fn file_changed_before_its_checkpoint_offset_is_read_from_the_start(kind) {
        let wd = Workdir::with(kind);
        let mut scores = BTreeMap::new();
        next_day(1, &mut scores);
        for i in 0..3000u32 {
            scores.insert(format!("CVE-2023-{i:05}"), i % 1000);
        }
        let path = wd.path("epss_scores-current.csv.gz");
        let p = path.to_str().unwrap();
        let day1 = gzip(&first_csv(1, &scores));
        replace(&path, &day1[..day1.len() / 2], 1);
        assert_eq!(epss(&wd, &["--csv", p, "--batch-size", "100"]).status.code(), Some(1));
        // The next day: other header, other scores.
        next_day(2, &mut scores);
        replace(&path, &gzip(&first_csv(2, &scores)), 2);
        let out = wd.run(&["epss", "--csv", p, "--batch-size", "100"]);
        let s = Sync::parse(&out.stdout);
        assert_eq!((s.files, s.rows), (1, scores.len() as u64), "read from the start");
        let err = stderr(&out);
        assert!(err.contains("changed before its checkpoint offset") && err.contains("epss_scores-current.csv.gz"), "{err}");
        let stored = rows(&wd);
        for (cve, score) in &scores {
            assert_eq!(stored[cve]["epssScore"].as_f64(), Some(f64::from(*score) / 1000.0), "{cve}");
        }
    }

    /// A file of a bucket that cannot be read fails alone: the others are
    /// read, and the run fails naming it.
    fn unreadable_bucket_file_fails_alone(kind) {
        let wd = Workdir::with(kind);
        let b = wd.path("bucket");
        write_chunk(&wd, "1", 0, &[line("CVE-2020-0001", 0.1)], 1);
        // A directory where a chunk should be: listed, but not readable.
        std::fs::create_dir_all(chunk_path(&wd, "1", 1)).unwrap();
        write_chunk(&wd, "2", 0, &[line("CVE-2020-0002", 0.2)], 1);
        let out = epss(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            "Sync completed: files 3, rows 2, upserted 2, unchanged 0, superseded 0, rejected 0, failed files 1."
        );
        let err = stderr(&out);
        assert!(err.lines().last().unwrap().contains("000000001.ndjson: cannot open"), "{err}");
        assert_eq!(rows(&wd).len(), 2);
        std::fs::remove_dir(chunk_path(&wd, "1", 1)).unwrap();
        write_chunk(&wd, "1", 1, &[line("CVE-2020-0003", 0.3)], 2);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!((s.files, s.rows), (1, 1));
    }

    /// A store written before per-file checkpoints: its bucket checkpoint
    /// is honoured (nothing replayed, the file it stopped in resumed),
    /// files it covers get their own checkpoint, and it is then retired.
    fn legacy_bucket_checkpoint_resumes_without_replaying(kind) {
        let wd = Workdir::with(kind);
        let b = wd.path("bucket");
        write_chunk(&wd, "1", 0, &[line("CVE-2020-0001", 0.1), line("CVE-2020-0002", 0.1)], 1);
        let seq1_1 = [line("CVE-2020-0003", 0.2), line("CVE-2020-0004", 0.2), line("CVE-2020-0005", 0.2)];
        write_chunk(&wd, "1", 1, &seq1_1, 1);
        write_chunk(&wd, "2", 0, &[line("CVE-2020-0006", 0.3)], 1);
        // What the previous version left: 1/000000001 read up to its
        // second line, in one checkpoint for the whole bucket.
        let legacy = backfill_engine::Checkpoint {
            data_type: "cve_enrichment".into(),
            source: canonical(&b),
            sequence: "1".into(),
            chunk: "000000001".into(),
            offset: (seq1_1[0].len() + seq1_1[1].len()) as u64,
            complete: false,
            identity: None,
        };
        {
            let opts = backfill_engine::StoreOptions {
                statements_collection: wd.statements_collection.clone().unwrap_or_else(|| "vex.statements".into()),
                ..Default::default()
            };
            let mut store = backfill_engine::store::open(&wd.store, &opts).unwrap();
            store.write_epss(&[], Some(&legacy), 0).unwrap();
        }
        if kind == StoreKind::Sqlite {
            // And the file layout it wrote: no identity columns.
            let conn = rusqlite::Connection::open(&wd.store).unwrap();
            for column in ["file_size", "file_mtime_ns", "content_xxh3"] {
                conn.execute_batch(&format!("ALTER TABLE checkpoints DROP COLUMN {column}")).unwrap();
            }
        }
        let out = wd.run(&["epss", "--bucket", b.to_str().unwrap()]);
        let s = Sync::parse(&out.stdout);
        assert_eq!(s, Sync { files: 2, rows: 2, upserted: 2, unchanged: 0, superseded: 0, rejected: 0 });
        assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
        let stored = rows(&wd);
        let cves: Vec<&str> = stored.keys().map(String::as_str).collect();
        assert_eq!(cves, ["CVE-2020-0005", "CVE-2020-0006"], "nothing before the checkpoint replayed");

        let cps = checkpoints(&wd);
        let retired = &cps[&canonical(&b)];
        assert_eq!((retired["sequence"].as_str(), retired["complete"].as_bool()), (Some(""), Some(true)));
        assert_eq!(retired["identity"], Json::Null);
        for (seq, chunk) in [("1", 0), ("1", 1), ("2", 0)] {
            let cp = &cps[&canonical(&chunk_path(&wd, seq, chunk))];
            assert_eq!(cp["complete"], true, "{seq}/{chunk}");
            assert_eq!(cp["identity"]["mtimeNs"], mtime_ns(1), "{seq}/{chunk}");
        }
        // The adopted file is now watched like any other.
        write_chunk(&wd, "1", 0, &[line("CVE-2020-0001", 0.7)], 2);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!((s.files, s.rows), (1, 1));
        // And a late file before the old position is read.
        write_chunk(&wd, "0", 0, &[line("CVE-2020-0008", 0.8)], 2);
        let s = sync(&wd, &["--bucket", b.to_str().unwrap()]);
        assert_eq!((s.files, s.rows), (1, 1));
    }
}

/// Stops `epss ARGS --force` with SIGTERM until a run stops part-way
/// through its one file; returns the checkpoint offset it left.
fn interrupt_mid_file(wd: &Workdir, args: &[&str], source: &str) -> u64 {
    let mut delay = 30u64;
    for _ in 0..40 {
        let before = wd.runs().len();
        let mut all = vec!["epss", "--force"];
        all.extend_from_slice(args);
        let mut child = wd
            .command(&all)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::util::wait_until_running(wd, before, &mut child);
        std::thread::sleep(Duration::from_millis(delay));
        kill_term(&mut child);
        assert!(child.wait().unwrap().success());
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let run = runs.last().unwrap();
        if run["status"] == "completed" {
            delay = delay * 2 / 3;
        } else if run["counters"]["rows"] == 0 {
            delay += 30;
        } else {
            let cp = &checkpoints(wd)[source];
            if cp["complete"] == false && cp["offset"].as_u64() > Some(0) {
                return cp["offset"].as_u64().unwrap();
            }
        }
    }
    panic!("no run stopped part-way through the file");
}

crate::store_tests! {
    /// Interrupted part-way, then replaced by a shorter file: read again
    /// from the start, with a warning.
    fn file_shrunk_below_its_checkpoint_offset_is_read_from_the_start(kind) {
        let wd = Workdir::with(kind);
        let mut scores = BTreeMap::new();
        for i in 0..40_000u32 {
            scores.insert(format!("CVE-2022-{i:05}"), i % 1000);
        }
        let path = wd.path("epss_scores-current.csv");
        let p = path.to_str().unwrap();
        replace(&path, &first_csv(1, &scores), 1);
        let offset = interrupt_mid_file(&wd, &["--csv", p, "--batch-size", "100"], &canonical(&path));
        // The first rows, other scores: shorter than the offset.
        let short: BTreeMap<String, u32> = scores.keys().take(10).map(|c| (c.clone(), 999)).collect();
        let bytes = first_csv(2, &short);
        assert!((bytes.len() as u64) < offset);
        replace(&path, &bytes, 2);
        let out = wd.run(&["epss", "--csv", p]);
        let s = Sync::parse(&out.stdout);
        assert_eq!((s.files, s.rows, s.upserted), (1, 10, 10));
        let err = stderr(&out);
        assert!(err.contains("shrank or changed before its checkpoint offset"), "{err}");
        let stored = rows(&wd);
        assert!(short.keys().all(|c| stored[c]["epssScore"] == 0.999));
    }

    /// Two syncs of the same rows (two copies of one file) into one store
    /// at once: the store holds each row once, with its value, and every
    /// row is counted as upserted by exactly one of them (the other finds
    /// it unchanged), whichever commits first. On PostgreSQL, where a sync
    /// copies rows it believes new straight into the table, this is the
    /// case where the other sync added them meanwhile.
    fn concurrent_syncs_of_one_file_store_each_row_once(kind) {
        let wd = Workdir::with(kind);
        let mut scores = BTreeMap::new();
        // Ids of 4 and 5 digits, so that CVE order and key order differ.
        for i in 0..30_000u32 {
            scores.insert(format!("CVE-2023-{:04}", i * 3), (i * 7) % 1000);
        }
        let (a, b) = (wd.path("a/epss_scores-2026-10-01.csv"), wd.path("b/epss_scores-2026-10-01.csv"));
        for p in [&a, &b] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            replace(p, &first_csv(1, &scores), 1);
        }
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|p| {
                wd.command(&["epss", "--csv", p.to_str().unwrap(), "--batch-size", "300"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut upserted = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let s = Sync::parse(&out.stdout);
            assert_eq!((s.rows, s.rejected), (30_000, 0));
            upserted += s.upserted;
        }
        assert_eq!(upserted, 30_000, "each row upserted by one sync");
        let stored = rows(&wd);
        assert_eq!(stored.len(), scores.len());
        for (cve, score) in &scores {
            assert_eq!(stored[cve]["epssScore"].as_f64(), Some(f64::from(*score) / 1000.0), "{cve}");
        }
    }
}
