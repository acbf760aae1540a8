//! `backfill checkpoints`: the listing, and `reset` making the next run
//! over a source start over.

use std::path::Path;

use serde_json::Value as Json;

use crate::epss::sync;
use crate::util::{json_lines, testdata, StoreKind, Workdir};

/// A FIRST CSV of three scores.
const CSV: &str = "#model_version:v2026.06.15,score_date:2026-10-01T00:00:00Z
cve,epss,percentile
CVE-2024-0001,0.1,0.5
CVE-2024-0002,0.2,0.6
CVE-2024-0003,0.3,0.7
";

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

/// `backfill checkpoints --json`.
fn listed(wd: &Workdir) -> Vec<Json> {
    json_lines(&wd.run(&["checkpoints", "--json"]).stdout)
}

/// A store with a `statements` run over a copy of the sample archive and
/// an `epss --csv` run; their paths.
fn loaded(wd: &Workdir) -> (String, String) {
    let archive = wd.write("raw.ndjson", std::fs::read(testdata("raw/sample.ndjson")).unwrap());
    let archive = archive.to_str().unwrap().to_owned();
    let csv = wd.write("scores.csv", CSV);
    let csv = csv.to_str().unwrap().to_owned();
    wd.statements(&["--archive", &archive]);
    assert_eq!(sync(wd, &["--csv", &csv]).files, 1);
    (archive, csv)
}

crate::store_tests! {
    fn checkpoints_lists_statements_and_epss_ones(kind) {
        let wd = Workdir::with(kind);
        let (archive, csv) = loaded(&wd);
        let all = listed(&wd);
        assert_eq!(all.len(), 2, "{all:?}");
        let of = |t: &str| all.iter().find(|c| c["dataType"] == t).unwrap_or_else(|| panic!("{all:?}"));
        let st = of("statements");
        assert_eq!(st["source"], canonical(Path::new(&archive)));
        assert_eq!(st["complete"], true);
        assert!(st["updatedAt"].as_str().is_some_and(|t| !t.is_empty()), "{st}");
        let e = of("epss_csv");
        assert_eq!(e["source"], canonical(Path::new(&csv)));
        assert_eq!(e["complete"], true);
        assert_eq!(e["offset"], CSV.len());
        assert_eq!(e["identity"]["size"], CSV.len());
        assert_eq!(e["identity"]["xxh3"].as_str().map(str::len), Some(16), "{e}");

        // Text: one line each, as `stats` prints them, with when saved.
        let text = String::from_utf8(wd.run(&["checkpoints"]).stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let csv_line = lines.iter().find(|l| l.starts_with("epss_csv ")).unwrap();
        assert!(csv_line.contains(&canonical(Path::new(&csv))), "{text}");
        assert!(csv_line.contains("(complete)"), "{text}");
        assert!(csv_line.contains(&format!("saved {}", e["updatedAt"].as_str().unwrap())), "{text}");
    }

    fn reset_makes_the_next_epss_run_read_the_file_again(kind) {
        let wd = Workdir::with(kind);
        let (_, csv) = loaded(&wd);
        // Unchanged: skipped without being opened.
        assert_eq!(sync(&wd, &["--csv", &csv]).files, 0);

        let out = wd.run(&["checkpoints", "reset", &csv]);
        let out = String::from_utf8(out.stdout).unwrap();
        assert!(out.trim_end().ends_with("Checkpoints reset: removed 1."), "{out}");
        let left = listed(&wd);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["dataType"], "statements");

        let again = sync(&wd, &["--csv", &csv]);
        assert_eq!((again.files, again.rows, again.unchanged), (1, 3, 3));
        assert_eq!(listed(&wd).len(), 2);

        // Recorded as a run, with what it removed.
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let reset: Vec<&Json> = runs.iter().filter(|r| r["command"] == "checkpoints reset").collect();
        assert_eq!(reset.len(), 1, "{runs:?}");
        assert_eq!(reset[0]["status"], "completed");
        assert_eq!(reset[0]["counters"]["checkpointsRemoved"], 1);
    }

    fn reset_takes_the_source_as_printed_and_a_data_type(kind) {
        let wd = Workdir::with(kind);
        let (archive, _) = loaded(&wd);
        let source = canonical(Path::new(&archive));
        // Another data type of that source: nothing to remove.
        let out = wd
            .command(&["checkpoints", "reset", &source, "--data-type", "epss_csv"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(listed(&wd).len(), 2);
        wd.run(&["checkpoints", "reset", &source, "--data-type", "statements"]);
        let left = listed(&wd);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["dataType"], "epss_csv");
        // The next run reads the archive again; the ledger still skips
        // what it wrote.
        let s = wd.statements(&["--archive", &archive]);
        assert_eq!(s.backfilled, 0, "{}", s.line());
        assert!(s.skipped > 0, "{}", s.line());
    }

    fn reset_of_an_unknown_source_fails_and_removes_nothing(kind) {
        let wd = Workdir::with(kind);
        loaded(&wd);
        let before = wd.runs().len();
        let out = wd.command(&["checkpoints", "reset", "/no/such/input.csv"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("no checkpoint of /no/such/input.csv"), "{err}");
        assert!(err.contains("nothing removed"), "{err}");
        assert!(out.stdout.is_empty());
        assert_eq!(listed(&wd).len(), 2);
        assert_eq!(wd.runs().len(), before, "a failed reset is not a run");
    }

    fn checkpoints_on_a_missing_store_says_no_store(kind) {
        if kind == StoreKind::Mongo {
            // A MongoDB database has no file to find missing.
            return;
        }
        let wd = Workdir::with(kind);
        for args in [vec!["checkpoints"], vec!["checkpoints", "reset", "x"]] {
            let out = wd.command(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            let store = backfill_engine::store::redact_uri(&wd.store);
            assert!(err.contains(&format!("no store at {store}")), "{args:?}: {err}");
        }
    }
}
