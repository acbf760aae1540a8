//! Field correctness (issue 13): no silent loss, no silent staleness, no
//! false "completed". Each test failed before the fix it names.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::{json_lines, testdata, StoreKind, Summary, Workdir};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sample() -> String {
    testdata("raw/sample.ndjson").display().to_string()
}

fn backfill() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
    c.env_remove("RUST_LOG").env_remove("BACKFILL_STORE");
    c
}

/// A generated mixed archive.
fn archive(wd: &Workdir, count: &str, seed: &str) -> String {
    let p = wd.path(&format!("raw-{count}-{seed}.ndjson"));
    wd.run(&["gen", "raw", "--count", count, "--out", p.to_str().unwrap(), "--seed", seed]);
    p.display().to_string()
}

// Item 1: an empty or in-memory store is a usage error, not a throwaway
// database that reports success.
#[test]
fn empty_and_in_memory_stores_are_usage_errors() {
    let wd = Workdir::new();
    for store in ["", "  ", ":memory:", "sqlite::memory:", "file::memory:?cache=shared"] {
        let out = backfill()
            .current_dir(wd.path(""))
            .args(["statements", "--archive", &sample(), "--store", store])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "--store {store:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("empty") || err.contains("in-memory"), "{err}");
        assert!(out.stdout.is_empty(), "no summary: {}", String::from_utf8_lossy(&out.stdout));
    }
    // The same from the environment.
    let out = backfill()
        .current_dir(wd.path(""))
        .env("BACKFILL_STORE", "")
        .args(["statements", "--archive", &sample()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    // Nothing was created where a default would have gone.
    assert!(!wd.path("backfill.db").exists());
}

// Item 1: commands that only read never create a store.
crate::store_tests! {
    fn read_only_commands_on_a_missing_store_say_no_store(kind) {
        if kind == StoreKind::Mongo {
            // A MongoDB database exists as soon as anything is written to
            // it; there is no file to find missing.
            return;
        }
        let wd = Workdir::with(kind);
        for args in [
            vec!["stats"],
            vec!["stats", "--json"],
            vec!["export"],
            vec!["export", "documents"],
            vec!["runs"],
            vec!["get", "CVE-2024-0001", "pkg:npm/a"],
            vec!["rollback", "--run", "x", "--dry-run"],
            vec!["enrich"],
            vec!["checkpoints"],
            vec!["checkpoints", "reset", "x"],
        ] {
            let out = wd.command(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            // The store as every message names it: credentials redacted.
            let store = backfill_engine::store::redact_uri(&wd.store);
            assert_eq!(err.trim(), format!("backfill: error: no store at {store}"), "{args:?}");
            assert!(!std::path::Path::new(&wd.store).exists(), "{args:?} created the store");
        }
    }
}

// Item 1: a store that cannot be created says why.
#[test]
fn a_missing_or_read_only_directory_is_named_as_the_cause() {
    let wd = Workdir::new();
    let missing = wd.path("no/such/dir/backfill.db");
    let out = backfill()
        .args(["statements", "--archive", &sample(), "--store", missing.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no/such/dir") && err.contains("does not exist"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A read-only directory (a read-only mount: root ignores permissions).
    let dir = wd.path("ro");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(!crate::util::in_ci(), "cannot mount a read-only tmpfs in CI");
        eprintln!("SKIPPED: cannot mount a tmpfs (not root?); read-only directory not tested");
        return;
    }
    let db = dir.join("backfill.db");
    let out = backfill()
        .args(["statements", "--archive", &sample(), "--store", db.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&dir).status();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot create the file in directory"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
}

/// Sends SIGTERM to runs of `args` until one ends `stopped` mid-run.
fn stop_mid_run(wd: &Workdir, args: &[&str]) {
    for delay in [0u64, 50, 100, 200, 300, 500, 800] {
        let before = wd.runs().len();
        let mut child =
            wd.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        crate::util::wait_until_running(wd, before, &mut child);
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        child.wait().unwrap();
        let runs = wd.runs();
        if runs.last().unwrap()["status"] == "stopped" {
            return;
        }
        // It finished before the signal: start over from an empty store.
        crate::util::clear_store(wd);
    }
    panic!("no run of {args:?} could be stopped mid-way");
}

// Item 3: a checkpoint belongs to the options that chose the documents.
crate::store_tests! {
    fn a_stopped_filtered_run_is_not_resumed_by_an_unfiltered_one(kind) {
        // Large enough that a filtered run outlasts the polling of
        // `runs` on a loaded machine, so the signal lands mid-run.
        let reference = Workdir::with(kind);
        let a = archive(&reference, "2000", "3");
        let expected = reference.statements(&["--archive", &a, "--batch-size", "5"]);
        let expected_store = reference.export();

        for filter in [
            vec!["--retrieved-since", "2024-06-01"],
            vec!["--max-documents", "1300"],
            vec!["--shard", "0/2"],
        ] {
            let wd = Workdir::with(kind);
            let a = archive(&wd, "2000", "3");
            let mut args = vec!["statements", "--archive", &a, "--batch-size", "5"];
            args.extend_from_slice(&filter);
            stop_mid_run(&wd, &args);
            // Unfiltered: every document in scope is evaluated.
            let s = wd.statements(&["--archive", &a, "--batch-size", "5"]);
            assert_eq!(s.evaluated, expected.evaluated, "{filter:?}: whole archive evaluated");
            assert_eq!(wd.export(), expected_store, "{filter:?}");
            let runs = wd.runs();
            assert_eq!(runs.last().unwrap()["status"], "completed");
        }
    }
}

// Item 7: a killed run is found abandoned, with the counters of what it
// durably wrote.
crate::store_tests! {
    fn a_killed_run_is_marked_abandoned_by_the_next_command(kind) {
        let wd = Workdir::with(kind);
        let a = archive(&wd, "1500", "7");
        let mut abandoned = None;
        for delay in [300u64, 600, 1000, 1500] {
            let before = wd.runs().len();
            let mut child = wd
                .command(&["statements", "--archive", &a, "--batch-size", "5"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            crate::util::wait_until_running(&wd, before, &mut child);
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill();
            child.wait().unwrap();
            let runs = wd.runs();
            let last = runs.last().unwrap().clone();
            if last["status"] == "abandoned" {
                abandoned = Some(last);
                break;
            }
            assert_eq!(last["status"], "completed", "{last}");
            crate::util::clear_store(&wd);
        }
        let run = abandoned.expect("a run killed mid-way");
        let why = run["error"].as_str().unwrap();
        assert!(why.contains("abandoned") && why.contains("is gone"), "{why}");
        assert!(run["owner"]["pid"].as_u64().is_some(), "{run}");
        assert!(run["heartbeatAt"].is_string(), "{run}");
        // Its counters say what it wrote. SQLite saves them in each batch's
        // transaction: exactly what the store holds. MongoDB saves them
        // after each batch: the store may hold one batch more.
        let written = run["counters"]["claimsWritten"].as_u64().unwrap();
        let backfilled = run["counters"]["backfilled"].as_u64().unwrap();
        let stats: serde_json::Value =
            serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        let (statements, documents) =
            (stats["statements"].as_u64().unwrap(), stats["documents"].as_u64().unwrap());
        if kind == StoreKind::Sqlite {
            assert_eq!((statements, documents), (written, backfilled), "{run}");
        } else {
            assert!(statements >= written && documents >= backfilled, "{run} {stats}");
        }
        assert_eq!(stats["runs"]["abandoned"], 1, "{stats}");
        // The rerun finishes the job; the abandoned record stays as it is.
        wd.statements(&["--archive", &a, "--batch-size", "5"]);
        let runs = wd.runs();
        assert_eq!(runs[runs.len() - 2]["status"], "abandoned");
        assert_eq!(runs.last().unwrap()["status"], "completed");
    }
}

// Item 7: concurrent runs over one archive count each document once.
crate::store_tests! {
    fn concurrent_runs_over_one_archive_add_up_to_one_run(kind) {
        let reference = Workdir::with(kind);
        let a = archive(&reference, "800", "9");
        let expected = reference.statements(&["--archive", &a, "--batch-size", "20"]);

        let wd = Workdir::with(kind);
        let a = archive(&wd, "800", "9");
        // Create the store first, so both start on an existing one.
        wd.statements(&["--archive", &sample()]);
        let spawn = || {
            wd.command(&["statements", "--archive", &a, "--batch-size", "20"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (one, two) = (spawn(), spawn());
        let (one, two) = (one.wait_with_output().unwrap(), two.wait_with_output().unwrap());
        assert!(one.status.success() && two.status.success(), "{}{}", stderr(&one), stderr(&two));
        let (one, two) = (Summary::parse(&one), Summary::parse(&two));
        assert_eq!(one.evaluated, expected.evaluated);
        assert_eq!(two.evaluated, expected.evaluated);
        assert_eq!(one.backfilled + two.backfilled, expected.backfilled, "{one:?} {two:?}");
        assert_eq!(one.claims + two.claims, expected.claims, "{one:?} {two:?}");
        assert_eq!(one.failures, expected.failures);
        assert_eq!(two.failures, expected.failures);
        assert_eq!(
            one.skipped + two.skipped,
            expected.skipped + expected.evaluated - expected.failures,
            "each document is skipped by the run that did not write it"
        );
    }
}

// Item 6: no secret of a connection string is ever printed (by the MongoDB
// store, which only a build with the `mongodb` feature has).
#[cfg(feature = "mongodb")]
#[test]
fn secrets_in_connection_string_options_are_redacted_everywhere() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "hunter2xyz";
    for option in [
        format!("tls=true&tlsCertificateKeyFilePassword={secret}"),
        format!("ssl=true&sslPEMKeyPassword={secret}"),
        format!("authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:{secret}"),
        format!("password={secret}"),
        format!("clientSecret={secret}"),
        format!("accessToken={secret}"),
        format!("apiKey={secret}"),
    ] {
        // Short timeouts: each attempt gives up fast on the closed port.
        let fast = "serverSelectionTimeoutMS=200&connectTimeoutMS=200";
        for uri in [
            format!("mongodb://127.0.0.1:{closed}/db?{fast}&{option}"),
            format!("mongodb://user:{secret}@127.0.0.1:{closed}/db?{fast}&{option}"),
        ] {
            for args in [vec!["stats"], vec!["statements", "--archive", &sample(), "-vvv"]] {
                let out = backfill()
                    .args(&args)
                    .arg("--store")
                    .arg(&uri)
                    .env(backfill_engine::store::RETRY_BUDGET_ENV, "0.2")
                    .output()
                    .unwrap();
                let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
                assert_eq!(out.status.code(), Some(1), "{uri}: {text}");
                assert!(!text.contains(secret), "{args:?} {uri} leaked: {text}");
            }
        }
    }
}

// Item 6, in run records: arguments that carry a URI are stored redacted.
#[test]
fn secrets_in_recorded_arguments_are_redacted() {
    let secret = "hunter2xyz";
    let wd = Workdir::new();
    let argument = format!("mongodb://u:{secret}@h/db?authMechanismProperties=AWS_SESSION_TOKEN:{secret}&tlsCertificateKeyFilePassword={secret}");
    wd.run(&["statements", "--archive", &sample(), "--provider", &argument]);
    let runs = String::from_utf8_lossy(&wd.run(&["runs", "--json"]).stdout).into_owned();
    assert!(!runs.contains(secret), "{runs}");
    assert!(runs.contains("tlsCertificateKeyFilePassword=***"), "{runs}");
}

// A SQLite-only build (--no-default-features) refuses a MongoDB URI, as
// --store or --source, with a usage error that names the missing feature
// (and no secret), before it creates or reads anything.
#[cfg(not(feature = "mongodb"))]
#[test]
fn mongodb_uris_are_usage_errors_without_the_mongodb_feature() {
    let secret = "hunter2xyz";
    let wd = Workdir::new();
    for uri in [
        format!("mongodb://user:{secret}@127.0.0.1:1/db"),
        format!("mongodb+srv://u:{secret}@c.example.net/"),
    ] {
        for args in [
            vec!["statements", "--archive", &sample(), "--store", &uri],
            vec!["epss", "--csv", &sample(), "--store", &uri],
            vec!["stats", "--store", &uri],
            vec!["runs", "--store", &uri],
            vec!["statements", "--source", &uri],
        ] {
            let out = backfill().current_dir(wd.path("")).args(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(
                err.contains("built without MongoDB support (cargo feature `mongodb`)"),
                "{args:?}: {err}"
            );
            assert!(err.contains(if args.contains(&"--source") { "--source" } else { "--store" }));
            assert!(!err.contains(secret), "{args:?} leaked: {err}");
            assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    assert!(!wd.path("backfill.db").exists(), "nothing was created");
}

// Likewise a build without the cargo feature `postgres` refuses a
// PostgreSQL URI with a usage error naming the feature, and no secret.
#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_uris_are_usage_errors_without_the_postgres_feature() {
    let secret = "hunter2xyz";
    let wd = Workdir::new();
    for uri in [
        format!("postgres://user:{secret}@127.0.0.1:1/db"),
        format!("postgresql://u:{secret}@db.example.net/vex?sslmode=disable"),
    ] {
        for args in [
            vec!["statements", "--archive", &sample(), "--store", &uri],
            vec!["epss", "--csv", &sample(), "--store", &uri],
            vec!["stats", "--store", &uri],
            vec!["runs", "--store", &uri],
        ] {
            let out = backfill().current_dir(wd.path("")).args(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(
                err.contains("built without PostgreSQL support (cargo feature `postgres`)"),
                "{args:?}: {err}"
            );
            assert!(!err.contains(secret), "{args:?} leaked: {err}");
            assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    assert!(!wd.path("backfill.db").exists(), "nothing was created");
}

// No secret of a PostgreSQL URI is printed either: not when the server
// cannot be reached (errors and -vvv logs), nor in run records.
#[cfg(feature = "postgres")]
#[test]
fn secrets_in_postgres_uris_are_redacted_everywhere() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "hunter2xyz";
    for uri in [
        format!("postgres://user:{secret}@127.0.0.1:{closed}/db?connect_timeout=1"),
        format!("postgresql://user@127.0.0.1:{closed}/db?password={secret}"),
    ] {
        for args in [vec!["stats"], vec!["statements", "--archive", &sample(), "-vvv"]] {
            let out = backfill()
                .args(&args)
                .arg("--store")
                .arg(&uri)
                .env(backfill_engine::store::RETRY_BUDGET_ENV, "0.3")
                .output()
                .unwrap();
            let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
            assert_eq!(out.status.code(), Some(1), "{uri}: {text}");
            assert!(text.contains("gave up after"), "{uri}: {text}");
            assert!(!text.contains(secret), "{args:?} {uri} leaked: {text}");
        }
    }
}

// Item 8: an unknown run id is an error, not "deleted 0".
crate::store_tests! {
    fn rolling_back_an_unknown_run_is_an_error(kind) {
        let wd = Workdir::with(kind);
        wd.statements(&["--archive", &sample()]);
        for dry in [false, true] {
            let mut args = vec!["rollback", "--run", "20990101T000000Z-nothere"];
            if dry {
                args.push("--dry-run");
            }
            let out = wd.command(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("no run 20990101T000000Z-nothere"), "{err}");
            assert!(out.stdout.is_empty());
        }
        // Nothing was deleted.
        let stats: serde_json::Value =
            serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        assert_eq!(stats["statements"], 8);
    }
}

// Item 9: a thread count that cannot help is capped, not OOM-killed.
#[test]
fn absurd_thread_counts_are_capped_with_a_warning() {
    let wd = Workdir::new();
    let out = wd
        .command(&["statements", "--archive", &sample(), "--threads", "100000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--threads 100000 is more than 4 per core"), "{}", stderr(&out));
    assert_eq!(Summary::parse(&out).evaluated, 8);
}

// Item 10: failures are logged a few per input, every one goes to
// --failures, and --max-failures gates the exit status.
crate::store_tests! {
    fn failures_are_capped_in_the_log_listed_in_a_file_and_gated(kind) {
        let wd = Workdir::with(kind);
        let mut lines = String::new();
        for i in 0..45 {
            lines.push_str(&format!("{{\"retrievedAt\":\"2024-01-01\",\"content\":\"bad {i}\"}}\n"));
        }
        lines.push_str(&crate::util::envelope(&crate::util::openvex_doc(1, 2), "2024-01-02", "p", "u"));
        lines.push('\n');
        let bad = wd.write("bad.ndjson", lines);
        let failures = wd.path("failures.jsonl");
        let out = wd
            .command(&[
                "statements",
                "--archive",
                bad.to_str().unwrap(),
                &sample(),
                "--failures",
                failures.to_str().unwrap(),
                "--max-failures",
                "40",
            ])
            .output()
            .unwrap();
        let err = stderr(&out);
        // 45 + the sample's 3 failures: more than 40.
        assert_eq!(out.status.code(), Some(1), "{err}");
        let s = Summary::parse(&out);
        assert_eq!((s.failures, s.backfilled), (48, 5), "written anyway");
        assert!(err.trim_end().ends_with("48 documents failed, more than --max-failures 40"), "{err}");
        let logged = err.lines().filter(|l| l.contains("Document failed.")).count();
        assert_eq!(logged, 20 + 3, "20 of bad.ndjson, all 3 of the sample: {err}");
        assert!(
            err.lines().any(|l| l.contains("bad.ndjson") && l.contains("25 more")),
            "one line for the rest: {err}"
        );
        let listed = json_lines(&std::fs::read(&failures).unwrap());
        assert_eq!(listed.len(), 48);
        // Failed entries sort by input path, so which input comes first
        // depends on where the checkout and the temp dir are.
        let first = listed
            .iter()
            .find(|f| f["input"].as_str().is_some_and(|i| i.ends_with("bad.ndjson")))
            .expect("bad.ndjson's failures are listed");
        assert_eq!(first["line"], 1);
        assert_eq!(first["offset"], 0);
        assert_eq!(first["kind"], "json");
        assert!(first["reason"].as_str().unwrap().contains("base64"), "{first}");
        assert!(listed.iter().any(|f| f["digest"].as_str().is_some_and(|d| d.starts_with("sha256:"))));
        // At the gate: exit 0.
        let out = wd
            .command(&["statements", "--archive", bad.to_str().unwrap(), "--max-failures", "45"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

// Issue 14's drop report, end to end: --json, the run record, the ledger,
// stats and --failures all say the same.
crate::store_tests! {
    fn the_drop_report_accounts_for_every_entry_everywhere(kind) {
        let wd = Workdir::with(kind);
        let golden = |name: &str| testdata(&format!("golden/{name}.json")).display().to_string();
        let (a, b, c) = (
            golden("csaf/redhat_contradiction"),
            golden("openvex/canonical_metadata_wrapper"),
            golden("cyclonedx/dependency_track_defects"),
        );
        let failures = wd.path("failures.jsonl");
        let out = wd.run(&[
            "statements",
            "--archive",
            &a,
            &b,
            &c,
            "--retrieved-at",
            "2025-01-01",
            "--json",
            "--failures",
            failures.to_str().unwrap(),
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let written = serde_json::json!({
            "csaf": {"affected": 1, "not_affected": 1, "fixed": 1},
            "cyclonedx": {"affected": 1, "not_affected": 1},
            "openvex": {"fixed": 3, "under_investigation": 2},
        });
        let dropped = serde_json::json!({
            "contradiction": 2, "noProductId": 3, "noVulnerabilityId": 2, "unknownStatus": 4,
            "unresolvedReference": 1,
        });
        assert_eq!(report["written"], written, "{report}");
        assert_eq!(report["dropped"], dropped, "{report}");
        assert_eq!(report["claimsWritten"], 10);
        // The run's record keeps the same report.
        let run = wd.runs().pop().unwrap();
        assert_eq!(run["counters"]["written"], written);
        assert_eq!(run["counters"]["dropped"], dropped);
        // Per document in the ledger, summed in stats.
        let ledger = wd.ledger();
        let contradiction = ledger.iter().find(|d| d["format"] == "csaf").unwrap();
        assert_eq!(contradiction["dropped"], serde_json::json!({"contradiction": 2}));
        assert_eq!(contradiction["statements"], 3);
        let stats: serde_json::Value =
            serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        assert_eq!(stats["dropped"], dropped, "{stats}");
        // Every defect is listed for triage (contradictions are not defects).
        let listed = json_lines(&std::fs::read(&failures).unwrap());
        let entries: u64 = listed.iter().map(|p| p["dropped"]["entries"].as_u64().unwrap()).sum();
        assert_eq!(entries, 10, "defects only: {listed:?}");
        assert!(listed.iter().all(|p| p["kind"] == "dropped" && p["digest"].is_string()));
        let err = stderr(&out);
        assert!(err.contains("Entries dropped:") && err.contains("statements["), "{err}");
        // A second run skips them all and drops nothing.
        let again: serde_json::Value = serde_json::from_slice(
            &wd.run(&["statements", "--archive", &a, &b, &c, "--retrieved-at", "2025-01-01", "--json"])
                .stdout,
        )
        .unwrap();
        assert_eq!(again["skipped"], 3);
        assert_eq!(again["dropped"], serde_json::json!({}));
    }
}
