//! Interrupting `backfill statements`: SIGTERM stops cleanly, kill -9
//! loses nothing, and a rerun resumes exactly where the last durable batch
//! ended.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{json_lines, StoreKind, Summary, Workdir};

/// A generated mixed archive big enough to take a while in a debug build.
fn archive(wd: &Workdir, count: &str) -> String {
    let p = wd.path("raw.ndjson");
    wd.run(&["gen", "raw", "--count", count, "--out", p.to_str().unwrap(), "--seed", "11"]);
    p.display().to_string()
}

/// Sends `sig`, unless the process has already exited.
fn signal(child: &mut std::process::Child, sig: &str) {
    if child.try_wait().unwrap().is_none() {
        // It may still exit between the check and the signal; that is fine.
        let _ = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status();
    }
}

fn counters(run: &serde_json::Value) -> Summary {
    let c = &run["counters"];
    let n = |k: &str| c[k].as_u64().unwrap();
    Summary::new(n("evaluated"), n("backfilled"), n("claimsWritten"), n("skipped"), n("failures"))
}

crate::store_tests! {
    fn sigterm_stops_cleanly_and_resumed_counters_add_up(kind) {
        let reference = Workdir::with(kind);
        let a = archive(&reference, "1500");
        let expected = reference.statements(&["--archive", &a, "--batch-size", "10"]);
        let expected_store = reference.export();

        let wd = Workdir::with(kind);
        let a = archive(&wd, "1500");
        let mut stopped = 0;
        let mut finished = false;
        for delay in [0u64, 100, 250, 400, 600] {
            let before = wd.runs().len();
            let mut child = wd
                .command(&["statements", "--archive", &a, "--batch-size", "10"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            crate::util::wait_until_running(&wd, before, &mut child);
            std::thread::sleep(Duration::from_millis(delay));
            signal(&mut child, "-TERM");
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            // The summary line is still printed, with this run's counters.
            Summary::parse(&out);
            let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
            match runs.last().unwrap()["status"].as_str() {
                Some("stopped") => stopped += 1,
                Some("completed") => {
                    finished = true;
                    break;
                }
                other => panic!("unexpected run status {other:?}"),
            }
        }
        assert!(stopped >= 2, "the signal must land mid-run at least twice ({stopped})");
        if !finished {
            wd.statements(&["--archive", &a, "--batch-size", "10"]);
        }

        // The runs of this one job together did exactly what one
        // uninterrupted run does.
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let mut total = Summary::ZERO;
        for r in &runs {
            total += counters(r);
        }
        assert_eq!(total, expected, "counters of the resumed runs add up");
        assert_eq!(wd.export(), expected_store);
        // Finished: the next run starts over and skips everything.
        let again = wd.statements(&["--archive", &a]);
        assert_eq!((again.evaluated, again.backfilled), (expected.evaluated, 0));
    }

    fn kill_9_at_ten_moments_loses_and_duplicates_nothing(kind) {
        let reference = Workdir::with(kind);
        let a = archive(&reference, "1200");
        reference.statements(&["--archive", &a, "--batch-size", "7"]);
        let expected_store = reference.export();
        let expected_ledger = reference.ledger();

        let wd = Workdir::with(kind);
        let a = archive(&wd, "1200");
        // Ten kills at spread-out, fixed pseudo-random moments.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = 50 + seed % 900;
            let mut child = wd
                .command(&["statements", "--archive", &a, "--batch-size", "7"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill(); // SIGKILL; it may already have finished
            let _ = child.wait();
        }
        wd.statements(&["--archive", &a, "--batch-size", "7"]);
        assert_eq!(wd.export(), expected_store, "same statements, no duplicates");
        assert_eq!(wd.ledger(), expected_ledger);
    }
}

#[test]
fn resume_only_applies_to_the_same_inputs() {
    let wd = Workdir::with(StoreKind::Sqlite);
    let a = archive(&wd, "60");
    let b = wd.write(
        "other.ndjson",
        crate::util::envelope(&crate::util::openvex_doc(1, 2), "2024-01-01", "p", "u"),
    );
    let first = wd.statements(&["--archive", &a]);
    // Make the run over `a` look unfinished (as if killed after its last
    // batch was written).
    let db = rusqlite::Connection::open(&wd.store).unwrap();
    let n = db
        .execute("UPDATE checkpoints SET complete = 0 WHERE data_type = 'statements'", [])
        .unwrap();
    assert_eq!(n, 1);
    // A run over other inputs is not affected...
    assert_eq!(wd.statements(&["--archive", b.to_str().unwrap()]).evaluated, 1);
    // ...while a run over `a` resumes after the last position: nothing left.
    assert_eq!(wd.statements(&["--archive", &a]), Summary::ZERO);
    // Now finished, the next one starts over.
    assert_eq!(wd.statements(&["--archive", &a]).evaluated, first.evaluated);
}
