//! Test helpers: a temp dir per test, the binary, envelopes, summaries.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A database of its own on the server in `BACKFILL_TEST_MONGODB_URI`,
    /// dropped at the end.
    Mongo,
    /// A database of its own, created for the test on the server in
    /// `BACKFILL_TEST_POSTGRES_URI` and dropped at the end.
    Postgres,
}

/// Server for the PostgreSQL variants of the tests (scripts/test starts
/// one): a URI whose database the test user can connect to and create
/// databases from.
pub const POSTGRES_URI_ENV: &str = "BACKFILL_TEST_POSTGRES_URI";

/// The base URI of the PostgreSQL test server, if any.
pub fn postgres_uri() -> Option<String> {
    std::env::var(POSTGRES_URI_ENV).ok().filter(|u| !u.trim().is_empty())
}

/// Whether the PostgreSQL variant of a test can run: as
/// [`mongo_available`], for the cargo feature `postgres` and
/// `BACKFILL_TEST_POSTGRES_URI`. CI never skips it.
pub fn postgres_available() -> bool {
    if !cfg!(feature = "postgres") {
        eprintln!("{SKIPPED_WITHOUT_POSTGRES}");
        return false;
    }
    if postgres_uri().is_some() {
        return true;
    }
    assert!(
        !in_ci(),
        "{POSTGRES_URI_ENV} is not set: run the tests with scripts/test, which starts a \
         PostgreSQL server (CI never skips the PostgreSQL tests)"
    );
    eprintln!("SKIPPED: {POSTGRES_URI_ENV} is not set (scripts/test sets it)");
    false
}

/// Why the PostgreSQL variants do not run in a `--no-default-features`
/// build.
pub const SKIPPED_WITHOUT_POSTGRES: &str =
    "SKIPPED: built without the cargo feature `postgres` (--no-default-features); the \
     PostgreSQL variant cannot run";

/// `base` (a postgres:// URI) with `db` as its database; the query stays.
pub fn with_pg_database(base: &str, db: &str) -> String {
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URI");
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = before_query.split_once('/').map_or(before_query, |(a, _)| a);
    format!("{scheme}://{authority}/{db}{query}")
}

/// Server for the MongoDB variants of the tests (scripts/test starts one).
pub const MONGODB_URI_ENV: &str = "BACKFILL_TEST_MONGODB_URI";

/// The statements collection to use on that server (scripts/test sets
/// `vex_statements` for nx-27017, which rejects dots in names).
pub const STATEMENTS_COLLECTION_ENV: &str = "BACKFILL_TEST_STATEMENTS_COLLECTION";

/// The base URI of the test server, if any.
pub fn mongo_uri() -> Option<String> {
    std::env::var(MONGODB_URI_ENV).ok().filter(|u| !u.trim().is_empty())
}

/// True when CI=true (or any value but empty/0/false).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether the MongoDB variant of a test can run. In a build without the
/// cargo feature `mongodb` it cannot: it prints `SKIPPED` naming the
/// feature and returns false. Without a server it prints `SKIPPED` and
/// returns false, except in CI, where it fails: CI never skips the MongoDB
/// tests of the default build.
pub fn mongo_available() -> bool {
    if !cfg!(feature = "mongodb") {
        eprintln!("{SKIPPED_WITHOUT_MONGODB}");
        return false;
    }
    if mongo_uri().is_some() {
        return true;
    }
    assert!(
        !in_ci(),
        "{MONGODB_URI_ENV} is not set: run the tests with scripts/test, which starts a \
         MongoDB-compatible server (CI never skips the MongoDB tests)"
    );
    eprintln!("SKIPPED: {MONGODB_URI_ENV} is not set (scripts/test sets it)");
    false
}

/// Why the MongoDB variants do not run in a `--no-default-features` build.
pub const SKIPPED_WITHOUT_MONGODB: &str =
    "SKIPPED: built without the cargo feature `mongodb` (--no-default-features); the MongoDB \
     variant cannot run";

/// `base` (a mongodb:// URI) with `db` as its database. A database already
/// in the path stays the authentication database.
pub fn with_database(base: &str, db: &str) -> String {
    let (scheme, rest) = base.split_once("://").expect("a mongodb:// URI");
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let mut params: Vec<String> =
        query.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if !path.is_empty() && !params.iter().any(|p| p.to_ascii_lowercase().starts_with("authsource="))
    {
        params.push(format!("authSource={path}"));
    }
    let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
    format!("{scheme}://{authority}/{db}{query}")
}

/// A database name unique to this process and call, readable: `bf_<pid>_<n>_<test>`.
pub fn unique_db_name() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let thread = std::thread::current();
    // The test harness names the thread after the test.
    let test = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .find(|part| !matches!(*part, "mongo" | "sqlite" | "postgres"))
        .unwrap_or("test");
    let test: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(32)
        .collect();
    format!("bf_{}_{n}_{test}", std::process::id())
}

/// Defines a test body once and runs it against every store:
/// `NAME::sqlite`, `NAME::mongo` and `NAME::postgres`. The server variants
/// skip (print `SKIPPED`) without a server, except in CI, where they fail.
/// In a build without the cargo feature `mongodb` (`postgres`) the MongoDB
/// (PostgreSQL) variant is ignored, and cargo test lists it as `ignored,
/// SKIPPED: built without the cargo feature ...`.
#[macro_export]
macro_rules! store_tests {
    ($( $(#[$meta:meta])* fn $name:ident($kind:ident) $body:block )*) => {$(
        $(#[$meta])*
        fn $name($kind: $crate::util::StoreKind) $body

        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::util::StoreKind::Sqlite)
            }

            #[test]
            #[cfg_attr(
                not(feature = "mongodb"),
                ignore = "SKIPPED: built without the cargo feature `mongodb`"
            )]
            fn mongo() {
                if $crate::util::mongo_available() {
                    super::$name($crate::util::StoreKind::Mongo)
                }
            }

            #[test]
            #[cfg_attr(
                not(feature = "postgres"),
                ignore = "SKIPPED: built without the cargo feature `postgres`"
            )]
            fn postgres() {
                if $crate::util::postgres_available() {
                    super::$name($crate::util::StoreKind::Postgres)
                }
            }
        }
    )*};
}

/// A temporary directory with a store in it, deleted at the end (a MongoDB
/// database is dropped).
pub struct Workdir {
    dir: tempfile::TempDir,
    /// Store URI passed to every command.
    pub store: String,
    /// Which store that is.
    pub kind: StoreKind,
    /// `--statements-collection`, when not the default.
    pub statements_collection: Option<String>,
}

impl Workdir {
    /// A workdir with a SQLite store.
    pub fn new() -> Workdir {
        Workdir::with(StoreKind::Sqlite)
    }

    /// A workdir with a store of the given kind (for MongoDB, a database of
    /// its own; call [`mongo_available`] first).
    pub fn with(kind: StoreKind) -> Workdir {
        let dir = tempfile::Builder::new().prefix("backfill-test-").tempdir().unwrap();
        match kind {
            StoreKind::Sqlite => {
                let store = dir.path().join("backfill.db").display().to_string();
                Workdir { dir, store, kind, statements_collection: None }
            }
            StoreKind::Mongo => {
                let base = mongo_uri().unwrap_or_else(|| panic!("{MONGODB_URI_ENV} is not set"));
                let store = with_database(&base, &unique_db_name());
                let statements_collection =
                    std::env::var(STATEMENTS_COLLECTION_ENV).ok().filter(|c| !c.is_empty());
                Workdir { dir, store, kind, statements_collection }
            }
            StoreKind::Postgres => {
                let store = new_pg_database();
                Workdir { dir, store, kind, statements_collection: None }
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// `backfill ARGS --store STORE`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
        c.args(args).arg("--store").arg(&self.store).env_remove("RUST_LOG");
        if let Some(name) = &self.statements_collection {
            c.arg("--statements-collection").arg(name);
        }
        c
    }

    /// Runs and asserts exit 0.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "backfill {args:?} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `backfill statements ARGS` and parses the summary line.
    pub fn statements(&self, args: &[&str]) -> Summary {
        let mut all = vec!["statements"];
        all.extend_from_slice(args);
        Summary::parse(&self.run(&all))
    }

    /// `backfill export statements`, minus the fields that differ between
    /// runs by design (insertedAt, runId).
    pub fn export(&self) -> Vec<Json> {
        self.export_without("statements", &["insertedAt", "runId"])
    }

    /// `backfill export documents`, minus runId and processedAt.
    pub fn ledger(&self) -> Vec<Json> {
        self.export_without("documents", &["runId", "processedAt"])
    }

    /// `backfill export WHAT` with `fields` removed from every object.
    fn export_without(&self, what: &str, fields: &[&str]) -> Vec<Json> {
        let mut all = self.export_raw(what);
        for v in &mut all {
            let o = v.as_object_mut().unwrap();
            for f in fields {
                o.remove(*f);
            }
        }
        all
    }

    /// `backfill runs --json`; none before the first run has created the
    /// store (`runs` does not create one: it fails with "no store").
    pub fn runs(&self) -> Vec<Json> {
        if self.kind == StoreKind::Sqlite && !Path::new(&self.store).exists() {
            return Vec::new();
        }
        if self.kind == StoreKind::Postgres {
            let out = self.command(&["runs", "--json"]).output().unwrap();
            if String::from_utf8_lossy(&out.stderr).contains("no store at") {
                return Vec::new();
            }
        }
        json_lines(&self.run(&["runs", "--json"]).stdout)
    }

    pub fn export_raw(&self, what: &str) -> Vec<Json> {
        json_lines(&self.run(&["export", what]).stdout)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        #[cfg(feature = "mongodb")]
        if self.kind == StoreKind::Mongo {
            let opts = backfill_engine::StoreOptions {
                statements_collection: self
                    .statements_collection
                    .clone()
                    .unwrap_or_else(|| "vex.statements".into()),
                ..Default::default()
            };
            let dropped = backfill_engine::store::MongoStore::open(&self.store, &opts)
                .and_then(|mut s| s.drop_database());
            if let Err(e) = dropped {
                eprintln!("warning: could not drop the test database {}: {e}", self.store);
            }
        }
        if self.kind == StoreKind::Postgres {
            drop_pg_database(&self.store);
        }
    }
}

/// A new database on the PostgreSQL test server, named after the test;
/// returns its URI.
pub fn new_pg_database() -> String {
    let base = postgres_uri().unwrap_or_else(|| panic!("{POSTGRES_URI_ENV} is not set"));
    let name = unique_db_name();
    #[cfg(feature = "postgres")]
    backfill_engine::store::PostgresStore::create_database(&base, &name).unwrap();
    with_pg_database(&base, &name)
}

/// Drops the database of `uri` (made by [`new_pg_database`]).
pub fn drop_pg_database(uri: &str) {
    let base = postgres_uri().unwrap_or_default();
    let name = uri.split_once("://").and_then(|(_, r)| r.split('?').next()?.split_once('/'));
    let Some((_, name)) = name else { return };
    #[cfg(feature = "postgres")]
    if let Err(e) = backfill_engine::store::PostgresStore::drop_database(&base, name) {
        eprintln!("warning: could not drop the test database {uri}: {e}");
    }
    let _ = (base, name);
}

/// Empties the workdir's store (deletes the SQLite file, drops the
/// MongoDB database, drops and creates again the PostgreSQL database), so
/// a test can start over.
pub fn clear_store(wd: &Workdir) {
    match wd.kind {
        StoreKind::Sqlite => {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", wd.store));
            }
        }
        #[cfg(not(feature = "mongodb"))]
        StoreKind::Mongo => unreachable!("{SKIPPED_WITHOUT_MONGODB}"),
        #[cfg(feature = "mongodb")]
        StoreKind::Mongo => {
            let opts = backfill_engine::StoreOptions {
                statements_collection: wd
                    .statements_collection
                    .clone()
                    .unwrap_or_else(|| "vex.statements".into()),
                ..Default::default()
            };
            backfill_engine::store::MongoStore::open(&wd.store, &opts)
                .and_then(|mut s| s.drop_database())
                .unwrap();
        }
        #[cfg(not(feature = "postgres"))]
        StoreKind::Postgres => unreachable!("{SKIPPED_WITHOUT_POSTGRES}"),
        #[cfg(feature = "postgres")]
        StoreKind::Postgres => {
            let name = wd.store.rsplit('/').next().unwrap().split('?').next().unwrap();
            let base = postgres_uri().unwrap();
            backfill_engine::store::PostgresStore::drop_database(&base, name).unwrap();
            backfill_engine::store::PostgresStore::create_database(&base, name).unwrap();
        }
    }
}

pub fn json_lines(bytes: &[u8]) -> Vec<Json> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The counters of a `statements` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub evaluated: u64,
    pub backfilled: u64,
    pub claims: u64,
    pub skipped: u64,
    pub failures: u64,
}

impl Summary {
    pub const fn new(
        evaluated: u64,
        backfilled: u64,
        claims: u64,
        skipped: u64,
        failures: u64,
    ) -> Summary {
        Summary { evaluated, backfilled, claims, skipped, failures }
    }

    /// Parses the last stdout line, which must be exactly the runbook's.
    pub fn parse(out: &Output) -> Summary {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let nums: Vec<u64> = last
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let s = Summary::new(nums[0], nums[1], nums[2], nums[3], nums[4]);
        assert_eq!(last, s.line(), "summary line");
        s
    }

    /// No counters at all: the start of a sum.
    pub const ZERO: Summary = Summary::new(0, 0, 0, 0, 0);

    pub fn line(&self) -> String {
        format!(
            "Backfill completed: evaluated {}, backfilled {}, claims written {}, skipped {}, failures {}.",
            self.evaluated, self.backfilled, self.claims, self.skipped, self.failures
        )
    }
}

/// Counters of runs that split one job (resumed parts, shards) add up.
impl std::ops::AddAssign for Summary {
    fn add_assign(&mut self, o: Summary) {
        self.evaluated += o.evaluated;
        self.backfilled += o.backfilled;
        self.claims += o.claims;
        self.skipped += o.skipped;
        self.failures += o.failures;
    }
}

/// The bundled archive in testdata/.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(rel)
}

/// `../shared/samples` (or `$BACKFILL_SAMPLES`), read in place. `None`,
/// with a message saying so, when it is absent.
pub fn samples() -> Option<PathBuf> {
    let p = std::env::var_os("BACKFILL_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: sample folder {} is absent (set BACKFILL_SAMPLES or put shared/ beside the repository)",
            p.display()
        );
        None
    }
}

/// One envelope line with base64 content and its digest.
pub fn envelope(doc: &[u8], retrieved_at: &str, provider: &str, uri: &str) -> String {
    use base64::Engine as _;
    serde_json::json!({
        "digest": sha256(doc),
        "providerId": provider,
        "sourceUri": uri,
        "retrievedAt": retrieved_at,
        "content": base64::engine::general_purpose::STANDARD.encode(doc),
    })
    .to_string()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A small OpenVEX document with `n` statements about distinct
/// vulnerabilities; `salt` makes documents distinct.
pub fn openvex_doc(salt: usize, n: usize) -> Vec<u8> {
    let statements: Vec<Json> = (0..n)
        .map(|i| {
            let status = ["affected", "not_affected", "fixed", "under_investigation"][i % 4];
            serde_json::json!({
                "vulnerability": {"name": format!("CVE-2024-{:05}", 1000 + i)},
                "products": [{"@id": format!("pkg:npm/pkg-{salt}@1.{i}.0")}],
                "status": status,
                "justification": if i % 4 == 1 { Some("component_not_present") } else { None },
            })
        })
        .collect();
    serde_json::json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://example.com/vex/{salt}"),
        "author": "test",
        "timestamp": "2024-01-01T00:00:00Z",
        "version": 1,
        "statements": statements,
    })
    .to_string()
    .into_bytes()
}

/// Waits until the store holds more than `before` runs and the newest is
/// `running`: the process is past start-up, with its stop handler in
/// place, so a signal now tests a mid-run stop and not process start-up.
pub fn wait_until_running(wd: &Workdir, before: usize, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return; // already finished
        }
        if let Ok(out) = wd.command(&["runs", "--json"]).output() {
            let runs = json_lines(&out.stdout);
            if runs.len() > before && runs.last().is_some_and(|r| r["status"] == "running") {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the run never started");
}
