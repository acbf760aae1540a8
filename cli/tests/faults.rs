//! Store faults: a SQLite file locked by another process, and a full disk.
//! Each ends in one clear error line with the store consistent, and a rerun
//! finishes the job.

use std::path::{Path, PathBuf};

use crate::util::{testdata, Summary, Workdir};

fn gen(wd: &Workdir, count: &str) -> String {
    let p = wd.path("raw.ndjson");
    wd.run(&["gen", "raw", "--count", count, "--out", p.to_str().unwrap(), "--seed", "5"]);
    p.display().to_string()
}

/// Every ledger entry has exactly its statements, and SQLite finds the
/// file sound.
fn assert_consistent(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let mismatched: i64 = c
        .query_row(
            "SELECT count(*) FROM documents d WHERE d.statements !=
                (SELECT count(*) FROM \"vex.statements\" s WHERE s.doc = d.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatched, 0, "a document with missing or extra statements");
    let orphans: i64 = c
        .query_row(
            "SELECT count(*) FROM \"vex.statements\" WHERE doc NOT IN (SELECT id FROM documents)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "statements without a ledger entry");
}

#[test]
fn locked_sqlite_file_is_a_clear_error_then_a_rerun_completes() {
    let reference = Workdir::new();
    let a = gen(&reference, "150");
    let expected = reference.statements(&["--archive", &a]);

    let wd = Workdir::new();
    let a = gen(&wd, "150");
    wd.statements(&["--archive", testdata("raw/sample.ndjson").to_str().unwrap()]);
    let holder = rusqlite::Connection::open(&wd.store).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out =
        wd.command(&["statements", "--archive", &a, "--busy-timeout", "300"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("database is locked"), "{stderr}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    let s = wd.statements(&["--archive", &a]);
    assert_eq!((s.backfilled, s.claims), (expected.backfilled, expected.claims));
    assert_consistent(Path::new(&wd.store));
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_with_the_store_consistent_then_a_rerun_completes() {
    let reference = Workdir::new();
    let a = gen(&reference, "300");
    let expected = reference.statements(&["--archive", &a, "--batch-size", "10"]);
    let expected_store = reference.export();

    let wd = Workdir::new();
    let a = gen(&wd, "300");
    let Some(small) = Tmpfs::mount(wd.path("small"), "1m") else {
        // Mounting needs root (CI has it); say so rather than pass quietly.
        assert!(!crate::util::in_ci(), "cannot mount a tmpfs for the disk-full test in CI");
        eprintln!("SKIPPED: cannot mount a tmpfs (not root?); disk-full test not run");
        return;
    };
    let db = small.0.join("backfill.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(["statements", "--archive", &a, "--batch-size", "10", "--store"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("full"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert_consistent(&db);

    // Move the store somewhere with room (as an operator would) and rerun.
    for ext in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{ext}", db.display()));
        if from.exists() {
            std::fs::copy(&from, format!("{}{ext}", wd.store)).unwrap();
        }
    }
    drop(small);
    let s: Summary = wd.statements(&["--archive", &a, "--batch-size", "10"]);
    assert!(s.evaluated <= expected.evaluated);
    assert_eq!(wd.export(), expected_store);
    assert_consistent(Path::new(&wd.store));
}
