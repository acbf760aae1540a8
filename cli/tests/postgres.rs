//! PostgreSQL only: a server stopped mid-run (`pg_ctl stop -m immediate`)
//! and restarted, outages ridden out, and exports identical to SQLite's.
//!
//! The server tests start a cluster of their own from the binaries in
//! `BACKFILL_TEST_PG_BIN` (scripts/test sets it), as the user
//! `BACKFILL_TEST_PG_USER` when set (postgres refuses to run as root).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use backfill_engine::store::{redact_uri, PostgresStore, RETRY_BUDGET_ENV};

use crate::util::{
    in_ci, json_lines, postgres_available, samples, testdata, with_pg_database, StoreKind, Summary,
    Workdir,
};

/// The server binaries, or `None` (with `SKIPPED`) outside scripts/test;
/// CI never skips.
fn pg_bin() -> Option<PathBuf> {
    if !postgres_available() {
        return None;
    }
    let bin = std::env::var_os("BACKFILL_TEST_PG_BIN").map(PathBuf::from);
    match bin {
        Some(b) if b.join("pg_ctl").exists() => Some(b),
        _ => {
            assert!(!in_ci(), "BACKFILL_TEST_PG_BIN is not set: run the tests with scripts/test");
            eprintln!("SKIPPED: BACKFILL_TEST_PG_BIN is not set (scripts/test sets it)");
            None
        }
    }
}

/// A throwaway cluster on a free loopback port, stopped at drop.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    user: Option<String>,
}

impl Server {
    fn start(bin: PathBuf) -> Server {
        let dir = tempfile::Builder::new().prefix("backfill-pg-kill-").tempdir().unwrap();
        let user = std::env::var("BACKFILL_TEST_PG_USER").ok().filter(|u| !u.is_empty());
        if let Some(user) = &user {
            let ok = Command::new("chown").arg(user).arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown {user}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Server { bin, dir, port, user };
        let data = server.data();
        let out = server.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        server.restart();
        PostgresStore::create_database(&server.uri("postgres"), "killed").unwrap();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a server binary, as the unprivileged user when there is one.
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let path = self.bin.join(tool);
        let mut c = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        c.args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn restart(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let out = self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-o", &opts, "start"]);
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server at once, as a crash would.
    fn kill(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    fn uri(&self, db: &str) -> String {
        with_pg_database(&format!("postgres://postgres@127.0.0.1:{}/postgres", self.port), db)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A workdir whose store is `uri` (on a server of the test's own).
fn workdir_at(uri: String) -> Workdir {
    let mut wd = Workdir::new();
    wd.store = uri;
    wd
}

/// SQLite backfill as the reference: archive, summary, statements, ledger.
fn reference_run(
    wd: &Workdir,
) -> (String, Summary, Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let archive = wd.path("raw.ndjson").display().to_string();
    wd.run(&[
        "gen",
        "raw",
        "--count",
        "3000",
        "--out",
        &archive,
        "--bad-ratio",
        "0",
        "--seed",
        "7",
    ]);
    let summary = wd.statements(&["--archive", &archive]);
    (archive, summary, wd.export(), wd.ledger())
}

/// Spawns `backfill statements` and waits until it has written some
/// batches (but not all).
fn spawn_mid_run(wd: &Workdir, archive: &str, retry: &str) -> Child {
    let mut child = wd
        .command(&["statements", "--archive", archive, "--batch-size", "5"])
        .env(RETRY_BUDGET_ENV, retry)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be interrupted: archive too small");
        }
        let out = wd.command(&["stats", "--json"]).output().unwrap();
        let documents = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map_or(0, |s| s["documents"].as_u64().unwrap_or(0));
        if documents >= 100 {
            return child;
        }
        assert!(Instant::now() < deadline, "no progress in 120s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn server_stopped_mid_run_fails_with_one_line_and_a_rerun_completes_exactly() {
    let Some(bin) = pg_bin() else { return };
    let reference = Workdir::new();
    let (archive, expected, statements, ledger) = reference_run(&reference);
    let server = Server::start(bin);
    let wd = workdir_at(server.uri("killed"));

    let child = spawn_mid_run(&wd, &archive, "2");
    server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One clear error line, the last one; no summary on stdout.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("backfill: error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(stderr.trim_end().lines().last(), Some(errors[0]), "{stderr}");
    assert!(errors[0].contains("gave up after"), "{stderr}");
    assert!(errors[0].contains(&redact_uri(&server.uri("killed"))), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Backfill completed"));

    // Restarted: the rerun resumes after the last committed batch, and the
    // two runs together backfilled exactly what one uninterrupted run does.
    server.restart();
    let done = wd.ledger().len() as u64;
    assert!(done > 0, "the first run wrote nothing");
    let rerun = wd.statements(&["--archive", &archive]);
    assert!(rerun.evaluated < expected.evaluated, "not resumed: {rerun:?}");
    assert_eq!(rerun.failures, 0);
    assert_eq!(done + rerun.backfilled, expected.backfilled);
    assert_eq!(wd.ledger(), ledger);
    assert_eq!(wd.export(), statements);
    let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_ne!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "completed");
}

#[test]
fn an_outage_shorter_than_the_retry_budget_is_ridden_out() {
    let Some(bin) = pg_bin() else { return };
    let reference = Workdir::new();
    let (archive, expected, statements, ledger) = reference_run(&reference);
    let server = Server::start(bin);
    let wd = workdir_at(server.uri("killed"));

    let child = spawn_mid_run(&wd, &archive, "60");
    server.kill();
    std::thread::sleep(Duration::from_secs(1));
    server.restart();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("PostgreSQL unavailable; retrying."), "{stderr}");
    // The batch in flight was redone whole: the counters and the store are
    // those of an uninterrupted run.
    assert_eq!(Summary::parse(&out), expected);
    assert_eq!(wd.ledger(), ledger);
    assert_eq!(wd.export(), statements);
}

/// `export WHAT` as printed, with the values that differ between runs by
/// design (run ids and write times) blanked, byte for byte otherwise.
fn export_bytes(wd: &Workdir, what: &str) -> String {
    let text = String::from_utf8(wd.run(&["export", what]).stdout).unwrap();
    let mut out = text;
    for key in ["\"runId\":\"", "\"insertedAt\":\"", "\"processedAt\":\""] {
        let mut blanked = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(key) {
            let start = at + key.len();
            blanked.push_str(&rest[..start]);
            let end = start + rest[start..].find('"').unwrap();
            blanked.push('-');
            rest = &rest[end..];
        }
        blanked.push_str(rest);
        out = blanked;
    }
    out
}

#[test]
fn exports_are_identical_to_sqlites_for_the_sample_corpus() {
    if !postgres_available() {
        return;
    }
    let Some(samples) = samples() else { return };
    let archives =
        [samples.display().to_string(), testdata("raw/sample.ndjson").display().to_string()];
    let sqlite = Workdir::with(StoreKind::Sqlite);
    let pg = Workdir::with(StoreKind::Postgres);
    for wd in [&sqlite, &pg] {
        let mut args = vec!["statements"];
        for a in &archives {
            args.extend(["--archive", a.as_str()]);
        }
        wd.run(&args);
    }
    for what in ["statements", "documents"] {
        let (a, b) = (export_bytes(&sqlite, what), export_bytes(&pg, what));
        assert!(a.lines().count() > 10, "{what}: {a}");
        assert!(a == b, "{what} differ:\n{a}\n---\n{b}");
    }
}
