//! MongoDB-only behaviour: a server killed mid-run, an outage ridden out by
//! the retries, credentials never printed, the pre-8.0 write path, and EPSS
//! sync / enrich giving the same results as SQLite.
//!
//! The kill tests start an nx-27017 server of their own in file mode
//! (`BACKFILL_TEST_NX_27017`, set by scripts/test), on a free loopback port.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use backfill_engine::store::{RETRY_BUDGET_ENV, WRITE_PATH_ENV};
use serde_json::Value as Json;

use crate::util::{
    in_ci, json_lines, mongo_available, mongo_uri, testdata, with_database, StoreKind, Summary,
    Workdir,
};

/// The nx-27017 executable, or `None` (with `SKIPPED`) outside CI.
fn nx_binary() -> Option<PathBuf> {
    match std::env::var_os("BACKFILL_TEST_NX_27017").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            assert!(
                !in_ci(),
                "BACKFILL_TEST_NX_27017 is {other:?}: run the tests with scripts/test, which \
                 installs nx-27017 (CI never skips the MongoDB tests)"
            );
            eprintln!("SKIPPED: BACKFILL_TEST_NX_27017 is not set (scripts/test sets it)");
            None
        }
    }
}

/// An nx-27017 server of the test's own, in file mode on a data directory,
/// killed when dropped.
struct Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(bin: &Path, dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut s = Server { bin: bin.to_owned(), dir: dir.to_owned(), port, child: None };
        s.restart();
        s
    }

    /// Starts (again) on the same port and data directory.
    fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--host", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("--log-file")
            .arg(self.dir.join("nx.log"))
            .arg("--pid-file")
            .arg(self.dir.join("nx.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nx-27017 did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no shutdown, no flush beyond what SQLite already committed.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn uri(&self, db: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A workdir whose store is `uri` (a database on a test's own server,
/// which goes away with the server: nothing to drop).
fn workdir_at(uri: String) -> Workdir {
    let mut wd = Workdir::new();
    wd.store = uri;
    wd.statements_collection = Some("vex_statements".into());
    wd
}

/// Size of the SQLite file behind database `db` of a file-mode server.
/// Its write-ahead log is folded in every 1000 pages, so the file grows in
/// steps as the run progresses.
fn stored_bytes(data: &Path, db: &str) -> u64 {
    std::fs::metadata(data.join(format!("{db}.db"))).map_or(0, |m| m.len())
}

/// A generated archive of `count` documents (no malformed lines), and its
/// SQLite backfill as the reference: summary, statements, ledger.
fn reference_run(wd: &Workdir, count: &str) -> (String, Summary, Vec<Json>, Vec<Json>) {
    let archive = wd.path("raw.ndjson").display().to_string();
    wd.run(&["gen", "raw", "--count", count, "--out", &archive, "--bad-ratio", "0", "--seed", "7"]);
    let summary = wd.statements(&["--archive", &archive]);
    (archive, summary, wd.export(), wd.ledger())
}

/// Spawns `backfill statements` into database `db` of `server`, waits
/// until `min_bytes` are stored, and returns the running child.
///
/// Progress is read from the server's files, not asked of the server:
/// nx-27017 runs a client-level bulkWrite under the `admin` database's lock,
/// so a concurrent command on the target database would race with it there.
fn spawn_until(
    wd: &Workdir,
    server: &Server,
    db: &str,
    archive: &str,
    retry: &str,
    write_path: &str,
) -> Child {
    let mut child = wd
        .command(&["statements", "--archive", archive, "--batch-size", "20"])
        .env(RETRY_BUDGET_ENV, retry)
        .env(WRITE_PATH_ENV, write_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be interrupted: archive too small");
        }
        if stored_bytes(&server.dir.join("data"), db) >= 4 << 20 {
            return child;
        }
        assert!(Instant::now() < deadline, "no progress in 120s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn server_killed_mid_run_fails_with_one_line_and_a_rerun_completes_exactly() {
    let Some(bin) = nx_binary() else { return };
    let reference = Workdir::new();
    let (archive, expected, statements, ledger) = reference_run(&reference, "400");
    let mut server = Server::start(&bin, &reference.path("nx"));
    let wd = workdir_at(server.uri("killed"));

    let child = spawn_until(&wd, &server, "killed", &archive, "2", "");
    server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One clear error line, the last one; no summary on stdout.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("backfill: error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(stderr.trim_end().lines().last(), Some(errors[0]), "{stderr}");
    assert!(errors[0].contains("gave up after"), "{stderr}");
    assert!(errors[0].contains(&server.uri("killed")), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Backfill completed"));

    // Restarted on the same data: the rerun resumes after the last batch
    // the first run saw acknowledged and finishes the job. Together the two
    // runs backfilled exactly what one uninterrupted run does, with no
    // duplicate.
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
    // The killed run could not record its end on a dead server.
    assert_ne!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "completed");
}

/// Kills the server mid-run and restarts it 2 s later, within the retry
/// budget: the run completes as if nothing happened.
fn outage_is_ridden_out(write_path: &str) {
    let Some(bin) = nx_binary() else { return };
    let reference = Workdir::new();
    let (archive, expected, statements, ledger) = reference_run(&reference, "400");
    let mut server = Server::start(&bin, &reference.path("nx"));
    let wd = workdir_at(server.uri("outage"));

    let child = spawn_until(&wd, &server, "outage", &archive, "60", write_path);
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The batch in flight was retried: written parts count as present.
    assert_eq!(Summary::parse(&out), expected);
    assert_eq!(wd.ledger(), ledger);
    assert_eq!(wd.export(), statements);
}

#[test]
fn an_outage_shorter_than_the_retry_budget_is_ridden_out() {
    outage_is_ridden_out("");
}

#[test]
fn an_outage_is_ridden_out_on_the_bulk_write_path_too() {
    outage_is_ridden_out("bulk");
}

/// `base` with `user:password@` as its userinfo.
fn with_credentials(base: &str, userinfo: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{userinfo}@{rest}")
}

#[test]
fn credentials_never_appear_in_output_errors_or_runs() {
    if !mongo_available() {
        return;
    }
    let base = mongo_uri().unwrap();
    let wd = Workdir::with(StoreKind::Mongo);
    let sample = testdata("raw/sample.ndjson").display().to_string();
    let secret = "Hunter2-s3cret";
    // Percent-encoded in the URI ("@" and ":" must be): "p@ss:w0rd!".
    let encoded = "p%40ss%3Aw0rd%21";
    let decoded = "p@ss:w0rd!";
    let leaks = |text: &str| {
        [secret, encoded, decoded].iter().any(|s| text.contains(s)).then(|| text.to_owned())
    };

    // Bad credentials (nx-27017 has no users at all): the handshake fails
    // with one line naming the store, password redacted, even at -vvv.
    for userinfo in [format!("backfill:{secret}"), format!("backfill:{encoded}")] {
        let uri = with_database(&with_credentials(&base, &userinfo), "bf_credentials");
        for args in [vec!["statements", "--archive", &sample, "-vvv"], vec!["runs", "--json"]] {
            let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
                .args(&args)
                .arg("--store")
                .arg(&uri)
                .env(RETRY_BUDGET_ENV, "1")
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert_eq!(leaks(&stderr), None);
            assert_eq!(leaks(&String::from_utf8_lossy(&out.stdout)), None);
            assert!(stderr.contains("backfill:***@"), "{stderr}");
        }
    }

    // An unreachable server: the give-up message is redacted too.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri = format!("mongodb://backfill:{encoded}@127.0.0.1:{closed}/x?authSource=admin");
    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(["statements", "--archive", &sample, "--store", &uri])
        .env(RETRY_BUDGET_ENV, "1")
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(leaks(&stderr), None);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // The runs record keeps the arguments with credentials redacted.
    let argument = format!("mongodb://backfill:{secret}@example.invalid/db");
    wd.run(&["statements", "--archive", &sample, "--provider", &argument]);
    let runs = wd.run(&["runs", "--json"]);
    let text = String::from_utf8_lossy(&runs.stdout);
    assert_eq!(leaks(&text), None);
    assert!(text.contains("mongodb://backfill:***@example.invalid/db"), "{text}");
    assert_eq!(leaks(&String::from_utf8_lossy(&wd.run(&["runs"]).stdout)), None);
}

/// One store's answers to an EPSS scenario, to compare across stores.
#[derive(Debug, PartialEq)]
struct EpssScenario {
    outputs: Vec<String>,
    statements: Vec<Json>,
    epss: BTreeMap<String, Json>,
    /// CVEs whose `updatedAt` moved on the re-sync.
    moved: Vec<String>,
    later: Vec<Json>,
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned()
}

fn epss_rows(wd: &Workdir) -> BTreeMap<String, Json> {
    wd.export_raw("epss").into_iter().map(|v| (v["cve"].as_str().unwrap().to_owned(), v)).collect()
}

fn write_chunk(wd: &Workdir, sequence: &str, lines: &[&str]) {
    wd.write(&format!("bucket/v2/cve_enrichment/{sequence}/000000000.ndjson"), lines.join("\n"));
}

/// Statements, then EPSS from a bucket, enrich twice, a FIRST CSV with
/// percentiles (no KEV flag), a re-sync with one value changed, enrich;
/// then a second store synced before its statements are written.
fn epss_scenario(make: &dyn Fn() -> Workdir, write_path: &str) -> EpssScenario {
    let wd = make();
    let sample = testdata("raw/sample.ndjson").display().to_string();
    let run = |wd: &Workdir, args: &[&str]| {
        let out = wd.command(args).env(WRITE_PATH_ENV, write_path).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        last_line(&out)
    };
    let bucket = wd.path("bucket").display().to_string();
    let mut outputs = vec![run(&wd, &["statements", "--archive", &sample])];
    outputs.push(run(&wd, &["enrich"]));
    write_chunk(
        &wd,
        "1",
        &[
            r#"{"cve_id":"CVE-2025-1001","epss_score":0.5,"is_known_exploit":true}"#,
            r#"{"cve_id":"CVE-2025-3003","epss_score":0.25}"#,
            r#"{"cve_id":"CVE-2099-0001","epss_score":0.125,"is_known_exploit":false}"#,
        ],
    );
    outputs.push(run(&wd, &["epss", "--bucket", &bucket]));
    outputs.push(run(&wd, &["enrich"]));
    outputs.push(run(&wd, &["enrich"]));
    let csv = wd.write(
        "epss_scores-2025-06-01.csv",
        "#model_version:v2025.03.14,score_date:2025-06-01T00:00:00Z\ncve,epss,percentile\n\
         CVE-2025-1001,0.5,0.75\nCVE-2099-0001,0.125,0.5\n",
    );
    outputs.push(run(&wd, &["epss", "--csv", csv.to_str().unwrap()]));
    let before = epss_rows(&wd);
    write_chunk(
        &wd,
        "2",
        &[
            r#"{"cve_id":"CVE-2025-1001","epss_score":0.5,"is_known_exploit":true}"#,
            r#"{"cve_id":"CVE-2025-3003","epss_score":0.375}"#,
        ],
    );
    std::thread::sleep(Duration::from_millis(5));
    outputs.push(run(&wd, &["epss", "--bucket", &bucket]));
    let after = epss_rows(&wd);
    let moved = after
        .iter()
        .filter(|(cve, v)| before.get(*cve).map(|b| &b["updatedAt"]) != Some(&v["updatedAt"]))
        .map(|(cve, _)| cve.clone())
        .collect();
    for (cve, v) in &after {
        assert_eq!(before[cve]["createdAt"], v["createdAt"], "{cve}: createdAt moved");
    }
    outputs.push(run(&wd, &["enrich"]));
    outputs.push(run(&wd, &["enrich"]));
    let epss = after
        .into_iter()
        .map(|(cve, mut v)| {
            let o = v.as_object_mut().unwrap();
            o.remove("createdAt");
            o.remove("updatedAt");
            (cve, v)
        })
        .collect();

    // Synced first, statements second: enriched at write time.
    let wd2 = make();
    let bucket2 = wd2.path("bucket").display().to_string();
    write_chunk(
        &wd2,
        "1",
        &[r#"{"cve_id":"CVE-2025-1001","epss_score":0.5,"is_known_exploit":true}"#],
    );
    run(&wd2, &["epss", "--bucket", &bucket2]);
    run(&wd2, &["statements", "--archive", &sample]);
    outputs.push(run(&wd2, &["enrich"]));
    EpssScenario { outputs, statements: wd.export(), epss, moved, later: wd2.export() }
}

#[test]
fn epss_sync_and_enrich_match_sqlite_on_both_write_paths() {
    if !mongo_available() {
        return;
    }
    let sqlite = epss_scenario(&|| Workdir::with(StoreKind::Sqlite), "");
    assert_eq!(sqlite.moved, ["CVE-2025-3003"]);
    assert!(sqlite.outputs.contains(&"Enrich completed: statements changed 0.".to_owned()));
    for path in ["bulk", "legacy"] {
        let mongo = epss_scenario(&|| Workdir::with(StoreKind::Mongo), path);
        assert_eq!(mongo, sqlite, "write path {path}");
    }
}

#[test]
fn legacy_write_path_reruns_and_forces_like_the_bulk_path() {
    if !mongo_available() {
        return;
    }
    let sample = testdata("raw/sample.ndjson").display().to_string();
    let mut exports = Vec::new();
    for path in ["bulk", "legacy"] {
        let wd = Workdir::with(StoreKind::Mongo);
        let run = |args: &[&str]| {
            let out = wd.command(args).env(WRITE_PATH_ENV, path).output().unwrap();
            assert!(out.status.success(), "{}", stderr_of(&out));
            Summary::parse(&out)
        };
        assert_eq!(run(&["statements", "--archive", &sample]), Summary::new(8, 4, 8, 1, 3));
        assert_eq!(run(&["statements", "--archive", &sample]), Summary::new(8, 0, 0, 5, 3));
        assert_eq!(
            run(&["statements", "--archive", &sample, "--force"]),
            Summary::new(8, 4, 8, 1, 3)
        );
        exports.push((wd.export(), wd.ledger()));
    }
    assert_eq!(exports[0].0.len(), 8);
    assert_eq!(exports[0], exports[1]);
}

#[test]
fn raw_documents_are_read_from_a_mongodb_raw_collection() {
    if !mongo_available() {
        return;
    }
    // The bundled archive's parsable lines, loaded into a raw collection as
    // Excititor keeps them (binData content, BSON dates).
    let text = std::fs::read_to_string(testdata("raw/sample.ndjson")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Map<String, Json>>(l).is_ok())
        .collect();
    let source = with_database(&mongo_uri().unwrap(), &crate::util::unique_db_name());
    let opts = backfill_engine::StoreOptions {
        statements_collection: "vex_statements".into(),
        raw_collection: "vex_raw".into(),
        ..Default::default()
    };
    let mut raw = backfill_engine::store::MongoStore::open(&source, &opts).unwrap();
    assert_eq!(raw.import_raw("vex_raw", &lines).unwrap(), lines.len() as u64);

    // The same lines as an archive, into SQLite: the reference.
    let reference = Workdir::new();
    let archive = reference.write("raw.ndjson", lines.join("\n") + "\n");
    let expected = reference.statements(&["--archive", archive.to_str().unwrap()]);
    assert!(expected.backfilled > 0 && expected.failures > 0, "{expected:?}");

    let wd = Workdir::with(StoreKind::Mongo);
    let from_mongo = wd.statements(&["--source", &source, "--raw-collection", "vex_raw"]);
    assert_eq!(from_mongo, expected);
    assert_eq!(wd.export(), reference.export());
    assert_eq!(wd.ledger(), reference.ledger());
    // Rerun: everything already in the ledger.
    let again = wd.statements(&["--source", &source, "--raw-collection", "vex_raw"]);
    assert_eq!(again.backfilled, 0);
    raw.drop_database().unwrap();
}

#[test]
fn the_statements_collection_is_created_with_zstd_unless_turned_off() {
    if !mongo_available() {
        return;
    }
    let archive = testdata("raw/sample.ndjson");
    let engine_of = |wd: &Workdir| {
        let opts = backfill_engine::StoreOptions {
            statements_collection: wd
                .statements_collection
                .clone()
                .unwrap_or_else(|| "vex.statements".into()),
            ..Default::default()
        };
        let store = backfill_engine::store::MongoStore::open(&wd.store, &opts).unwrap();
        store.statements_storage_engine().unwrap()
    };
    let zstd = Workdir::with(StoreKind::Mongo);
    let first = zstd.statements(&["--archive", archive.to_str().unwrap()]);
    assert!(first.backfilled > 0);
    let none = Workdir::with(StoreKind::Mongo);
    let out = none
        .command(&[
            "statements",
            "--archive",
            archive.to_str().unwrap(),
            "--mongodb-compressor",
            "none",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(Summary::parse(&out), first);
    assert_eq!(none.export(), zstd.export(), "compression changes no document");
    // A server that keeps creation options (MongoDB) lists the compressor;
    // nx-27017 takes the option and lists none.
    if let Some(engine) = engine_of(&zstd) {
        assert_eq!(engine["wiredTiger"]["configString"], "block_compressor=zstd", "{engine}");
    }
    assert_eq!(engine_of(&none), None);
    // An unknown name is a usage error.
    let out = none.command(&["stats", "--mongodb-compressor", "lz4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
