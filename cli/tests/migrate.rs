//! `backfill migrate` (issue 16): files of layouts 2 and 3, built here from
//! their schema, are upgraded in place to what a new file of the current
//! layout holds, also when the migration is killed at random moments and
//! rerun; other commands name `migrate` when they meet an old layout.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{json_lines, testdata, Workdir};

/// The statements table of layout 2 (rowid, unique index) or 3 (clustered
/// by the key), texts inline.
fn old_statements_sql(layout: i64) -> &'static str {
    match layout {
        2 => {
            "CREATE TABLE \"vex.statements\" (
                id INTEGER PRIMARY KEY,
                doc INTEGER NOT NULL REFERENCES documents (id),
                vulnerability_id TEXT NOT NULL, product_key TEXT NOT NULL, purl TEXT,
                aliases TEXT, status TEXT NOT NULL, justification TEXT, detail TEXT,
                action TEXT, severity TEXT, kev INTEGER, epss TEXT, metadata TEXT,
                UNIQUE (doc, vulnerability_id, product_key))"
        }
        _ => {
            "CREATE TABLE \"vex.statements\" (
                doc INTEGER NOT NULL REFERENCES documents (id),
                vulnerability_id TEXT NOT NULL, product_key TEXT NOT NULL, purl TEXT,
                aliases TEXT, status TEXT NOT NULL, justification TEXT, detail TEXT,
                action TEXT, severity TEXT, kev INTEGER, epss TEXT, metadata TEXT,
                PRIMARY KEY (doc, vulnerability_id, product_key)) WITHOUT ROWID"
        }
    }
}

/// A file of `layout` at `path` holding what the current-layout store
/// `from` holds, texts inline, as the backfill of that layout wrote it.
fn write_old_layout(from: &std::path::Path, path: &std::path::Path, layout: i64) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(&format!(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; ATTACH DATABASE '{}' AS cur;",
        from.display()
    ))
    .unwrap();
    // The other tables are the same in layouts 2, 3 and 4.
    let tables: Vec<String> = {
        let mut q = db
            .prepare(
                "SELECT sql FROM cur.sqlite_master WHERE type = 'table'
                 AND name IN ('documents', 'epss', 'checkpoints', 'runs')",
            )
            .unwrap();
        let rows = q.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(tables.len(), 4);
    for sql in tables {
        db.execute_batch(&sql).unwrap();
    }
    db.execute_batch(&format!(
        "{};
         INSERT INTO documents SELECT * FROM cur.documents;
         INSERT INTO epss SELECT * FROM cur.epss;
         INSERT INTO checkpoints SELECT * FROM cur.checkpoints;
         INSERT INTO runs SELECT * FROM cur.runs;
         -- Through the current file's view: every text resolved, as the
         -- old layouts kept them.
         INSERT INTO \"vex.statements\" (doc, vulnerability_id, product_key, purl, aliases,
             status, justification, detail, action, severity, kev, epss, metadata)
           SELECT d.id, v.vulnerability_id, v.product_key, v.purl, v.aliases, v.status,
             v.justification, v.detail, v.action, v.severity, v.kev, v.epss, v.metadata
           FROM cur.statements v JOIN cur.documents d ON d.digest = v.document_digest;
         PRAGMA user_version = {layout};",
        old_statements_sql(layout),
    ))
    .unwrap();
    let ids: i64 = db
        .query_row(
            "SELECT count(*) FROM \"vex.statements\"
             WHERE typeof(detail) = 'integer' OR metadata NOT LIKE '{%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ids, 0, "texts inline, metadata as JSON objects, as old layouts kept them");
}

/// A store of the current layout with vendor-shaped documents (long,
/// repeated texts) and the bundled sample.
fn reference(docs: &str) -> Workdir {
    let wd = Workdir::new();
    let archive = wd.path("vendor.ndjson");
    let a = archive.to_str().unwrap();
    wd.run(&["gen", "raw", "--shape", "vendor", "--count", docs, "--out", a, "--seed", "5"]);
    wd.statements(&["--archive", a, testdata("raw/sample.ndjson").to_str().unwrap()]);
    wd
}

fn export_all(wd: &Workdir) -> Vec<Vec<serde_json::Value>> {
    ["statements", "documents", "epss"]
        .iter()
        .map(|what| json_lines(&wd.run(&["export", what]).stdout))
        .collect()
}

#[test]
fn layouts_2_and_3_migrate_to_what_a_new_file_holds() {
    let current = reference("40");
    let expected = export_all(&current);
    assert!(expected[0].len() > 1000, "{} statements", expected[0].len());
    for layout in [2, 3] {
        let wd = Workdir::new();
        write_old_layout(
            std::path::Path::new(&current.store),
            std::path::Path::new(&wd.store),
            layout,
        );
        // Other commands refuse it, naming the command that upgrades it.
        let out = wd.command(&["export"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("layout {layout}")) && err.contains("backfill migrate"),
            "{err}"
        );
        let out = wd.run(&["migrate", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((report["from"].as_i64(), report["to"].as_i64()), (Some(layout), Some(4)));
        assert_eq!(report["statements"], expected[0].len());
        assert!(report["bytesAfter"].as_u64() < report["bytesBefore"].as_u64(), "{report}");
        assert_eq!(export_all(&wd), expected, "layout {layout}");
        // Again: nothing to do. And the store takes new runs.
        let out = wd.run(&["migrate"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("already has layout 4"));
        let again = wd.statements(&["--archive", testdata("raw/sample.ndjson").to_str().unwrap()]);
        assert_eq!(again.backfilled, 0);
    }
}

#[test]
fn a_migration_killed_at_random_moments_then_rerun_gives_the_same_file() {
    let current = reference("150");
    let expected = export_all(&current);
    let wd = Workdir::new();
    write_old_layout(std::path::Path::new(&current.store), std::path::Path::new(&wd.store), 3);
    let mut killed = 0;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = 20 + state % 300;
        let mut child =
            wd.command(&["migrate"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed >= 2, "killed mid-way at least twice ({killed})");
    wd.run(&["migrate"]);
    assert_eq!(export_all(&wd), expected);
}
