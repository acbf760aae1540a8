//! Stores: where statements, the document ledger, EPSS rows, checkpoints
//! and run records live.
//!
//! A store is the stateful end of the pipeline: it is called in order, one
//! batch at a time, from one thread (the writer loop). Its roles are small
//! traits, each with one or a few required methods and no-op hooks, so a
//! sink implements only what it has and nothing fails at run time with
//! "not supported":
//!
//! * [`StatementSink`]: writes batches of normalized documents (statements,
//!   ledger entries, the run's checkpoint and record, atomically where the
//!   store allows). [`DryRun`] is a sink and nothing more.
//! * [`EpssSink`]: upserts EPSS rows by the one change rule
//!   ([`crate::model::epss_changed`]).
//! * [`RunLog`]: run records and checkpoints, reached from the sinks through
//!   [`Logged::run_log`].
//! * [`Queries`]: `get`, `export` and `stats`, returning the logical model.
//! * [`Admin`]: rollback and enrichment.
//! * [`Store`]: a backend with every role, which [`open`] picks from a URI.
//!
//! The embedded default is [`SqliteStore`] (a single file, no server). The
//! MongoDB store (`MongoStore`; and `RawSpool`, the `vex.raw` reader, among
//! the sources) is behind the cargo feature `mongodb`, on by default.
//! Without it the engine has neither rustls nor the MongoDB driver, and
//! [`open`] refuses a MongoDB URI with a usage error ([`without_mongodb`]).
//! The PostgreSQL store (`PostgresStore`, `postgres://` and
//! `postgresql://`) is behind the cargo feature `postgres`, also on by
//! default, and refused likewise without it ([`without_postgres`]).
//!
//! # Adding a backend
//!
//! The logical model is defined once, in [`crate::model`]: the shapes users
//! see ([`Statement`], [`crate::model::LedgerEntry`], [`EpssRow`] and
//! [`crate::model::EpssRecord`], [`RunRecord`], [`Checkpoint`], [`Stats`])
//! and the rules every backend shares (the EPSS change rule, enrichment
//! signals, sort orders in [`crate::model::order`], run status names). A
//! backend only maps them to and from its storage:
//!
//! 1. A folder `store/<name>/` with the struct and its role-trait impls in
//!    `mod.rs`, kept thin, and the parts beside it (as `sqlite/` and
//!    `mongo/`: schema, writes, reads, and the mapping between rows and
//!    the model). Write a batch, its checkpoint and its run record in one
//!    transaction where the database has them; otherwise write the
//!    checkpoint only after the batch is acknowledged (as MongoDB does), so
//!    a resumed run never skips unwritten documents.
//! 2. Implement [`Logged`], [`StatementSink`], [`EpssSink`], [`RunLog`],
//!    [`Queries`], [`Admin`] and [`Store`]; return the model types, sorted
//!    by [`crate::model::order`], and use the model's rules rather than
//!    restating them in the backend's query language where they decide a
//!    result.
//! 3. Add the URI scheme to [`open`], behind a default-on cargo feature if
//!    the driver is heavy, with a usage error when the feature is off.
//!    Credentials go through [`crate::redact`] wherever a URI is printed or
//!    recorded.
//! 4. Run the shared conformance tests against it: in `cli/tests/util.rs`,
//!    give `StoreKind` a variant (how a test gets a fresh store of that
//!    kind), and add one line to the `store_tests!` macro, a
//!    `#[test] fn <name>()` calling the test body with that kind. Every
//!    store test in `cli/tests` then runs against the new backend too.

#[cfg(feature = "mongodb")]
mod mongo;
mod null;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use std::collections::HashSet;

#[cfg(any(feature = "mongodb", feature = "postgres"))]
pub use crate::retry::{RETRY_BUDGET, RETRY_BUDGET_ENV};
#[cfg(feature = "mongodb")]
pub use mongo::{MongoStore, WRITE_PATH_ENV};
pub use null::DryRun;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::{MigrationReport, SqliteStore};

pub use crate::model::{
    BatchOutcome, Checkpoint, CheckpointState, ContentIdentity, EpssRow, Export, Record,
    RollbackReport, RollbackScope, RunRecord, RunStatus, Statement, Stats, UpsertCounts,
};

use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::parse::DocumentWrite;

/// How to open a store: the names of the collections (tables) whose
/// default names carry a dot, and SQLite's lock wait.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Statements collection, default `vex.statements`.
    pub statements_collection: String,
    /// Raw documents collection, default `vex.raw`.
    pub raw_collection: String,
    /// How long a SQLite write waits for another writer's lock before it
    /// fails (concurrent shards share one file).
    pub busy_timeout: std::time::Duration,
    /// Create the store when it does not exist (commands that load data);
    /// otherwise a missing SQLite file is [`Error::NoStore`], not a new
    /// empty store that reports zeros.
    pub create: bool,
    /// MongoDB: the WiredTiger block compressor (`zstd`) of a statements
    /// collection the store creates; `None` leaves the server's default.
    pub block_compressor: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            statements_collection: "vex.statements".into(),
            raw_collection: "vex.raw".into(),
            busy_timeout: std::time::Duration::from_secs(60),
            create: true,
            block_compressor: Some("zstd".into()),
        }
    }
}

/// Per-batch write context.
#[derive(Clone, Debug)]
pub struct WriteContext<'a> {
    /// Run writing the batch.
    pub run_id: &'a str,
    /// Insertion time stamped on statements, Unix microseconds.
    pub inserted_at: i64,
    /// Replace a digest's existing statements instead of keeping them.
    pub force: bool,
    /// The run's progress after this batch, saved with it (atomically where
    /// the store allows; otherwise only after the batch is acknowledged).
    pub checkpoint: Option<&'a Checkpoint>,
    /// The run's record with its counters after this batch, saved with it
    /// like the checkpoint, so a killed run's record says what it wrote.
    pub run: Option<&'a RunRecord>,
}

/// The run log a sink keeps, if any: every writing role reaches it through
/// this, so one store object is both what a run writes to and where the run
/// is recorded, while a dry run keeps no log at all.
pub trait Logged {
    /// The run log (runs and checkpoints); none by default.
    fn run_log(&mut self) -> Option<&mut dyn RunLog> {
        None
    }
}

/// Where a `statements` run writes: statements and the `documents` ledger.
/// In the spirit of ripgrep's `Sink`: one required method and hooks that do
/// nothing by default, so a dry run implements only
/// [`write_documents`](Self::write_documents). Calls come in order, from
/// one thread.
pub trait StatementSink: Logged + Send {
    /// Writes a batch of normalized documents (statements plus ledger
    /// entries, `ctx.checkpoint` and `ctx.run`; `docs` may be empty)
    /// atomically where the store allows it. Appends are idempotent on the
    /// unique key; with `force` a digest's earlier statements are replaced.
    /// Without `force`, a document whose ledger entry another run wrote
    /// meanwhile is left to it and reported in the outcome.
    fn write_documents(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome>;

    /// Which of `digests` are in the `documents` ledger (default: none).
    fn known_digests(&mut self, _digests: &[Digest]) -> Result<HashSet<Digest>> {
        Ok(HashSet::new())
    }

    /// A run is about to write (a hook): the store may prepare a bulk load.
    fn begin_load(&mut self) -> Result<()> {
        Ok(())
    }

    /// The run has written its last batch, or stopped (a hook): the store
    /// finishes what `begin_load` deferred.
    fn end_load(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Where an `epss` sync writes.
pub trait EpssSink: Logged + Send {
    /// Upserts EPSS rows keyed by `cve` and saves `checkpoint`, atomically
    /// where the store allows (SQLite: one transaction; MongoDB: the
    /// checkpoint is written only after the rows are acknowledged), by the
    /// rule of [`crate::model::epss_changed`]: `createdAt` is set once,
    /// `updatedAt` moves only on a change. `rows` has no repeated `cve`
    /// (the caller resolves duplicates, last wins).
    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts>;
}

/// Runs and checkpoints: what a command records of itself.
pub trait RunLog {
    /// Inserts or updates a run record. An `abandoned` record only
    /// replaces a `running` one.
    fn record_run(&mut self, run: &RunRecord) -> Result<()>;

    /// All run records, oldest first.
    fn runs(&mut self) -> Result<Vec<RunRecord>>;

    /// The checkpoints of (`data_type`, each of `sources`), in the order of
    /// `sources` (one per file of a bucket, answered together).
    fn load_checkpoints(
        &mut self,
        data_type: &str,
        sources: &[String],
    ) -> Result<Vec<Option<Checkpoint>>>;

    /// Every checkpoint with when it was last saved, ordered by (data
    /// type, source).
    fn checkpoints(&mut self) -> Result<Vec<CheckpointState>>;

    /// Removes the checkpoints whose source is exactly `source` (of
    /// `data_type` only, when given), so the next run over that input
    /// starts over. Returns how many were removed.
    fn remove_checkpoints(&mut self, source: &str, data_type: Option<&str>) -> Result<u64>;
}

/// Reads of the logical model ([`crate::model`]): what `get`, `export` and
/// `stats` print.
pub trait Queries {
    /// Statements about `vulnerability_id` (whose `productKey` or `purl` is
    /// `product`, when given), in [`crate::model::order::lookup`] order.
    fn find_statements(
        &mut self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>>;

    /// Streams a whole collection in key order (statements by
    /// [`crate::model::order::export`], the ledger by digest, `epss` by
    /// CVE).
    fn export(&mut self, what: Export, each: &mut dyn FnMut(Record) -> Result<()>) -> Result<()>;

    /// Post-run verification figures.
    fn stats(&mut self) -> Result<Stats>;
}

/// Changes to what is stored, other than loading it.
pub trait Admin {
    /// Deletes the statements and ledger entries of the documents in
    /// `scope` (all of them or none), so that replaying those documents
    /// restores them. With `dry_run`, only reports.
    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport>;

    /// Sets `signals.kev` and `signals.epss` of every statement by
    /// [`crate::model::signals_of`]. Returns how many statements changed.
    fn enrich_statements(&mut self) -> Result<u64>;
}

/// A store: a backend with every role. See the module doc for how to add
/// one.
pub trait Store: StatementSink + EpssSink + RunLog + Queries + Admin {
    /// A description for logs and errors, credentials redacted.
    fn describe(&self) -> String;
}

/// Opens the store named by `uri`: `mongodb://` / `mongodb+srv://` select
/// MongoDB; `postgres://` / `postgresql://` PostgreSQL; `sqlite:PATH`, `sqlite://PATH` or a plain path select the
/// embedded SQLite file.
///
/// An empty path and SQLite's in-memory databases (`:memory:`,
/// `file:…?mode=memory`) are refused ([`Error::Usage`]): whatever a command
/// wrote there would be gone when it exits. So is a MongoDB URI in a build
/// without the `mongodb` feature ([`without_mongodb`]), and a PostgreSQL
/// URI in a build without the `postgres` feature ([`without_postgres`]).
pub fn open(uri: &str, opts: &StoreOptions) -> Result<Box<dyn Store>> {
    if is_postgres_uri(uri) {
        #[cfg(feature = "postgres")]
        return Ok(Box::new(PostgresStore::open(uri, opts)?));
        #[cfg(not(feature = "postgres"))]
        return Err(without_postgres("--store", uri));
    }
    if is_mongodb_uri(uri) {
        #[cfg(feature = "mongodb")]
        return Ok(Box::new(MongoStore::open(uri, opts)?));
        #[cfg(not(feature = "mongodb"))]
        return Err(without_mongodb("--store", uri));
    }
    let path = uri.strip_prefix("sqlite://").or_else(|| uri.strip_prefix("sqlite:")).unwrap_or(uri);
    check_sqlite_path(path)?;
    Ok(Box::new(SqliteStore::open(path, opts)?))
}

/// Whether this build has the MongoDB store (the cargo feature `mongodb`).
pub const MONGODB: bool = cfg!(feature = "mongodb");

/// Whether `uri` names a MongoDB deployment (`mongodb://`,
/// `mongodb+srv://`).
pub fn is_mongodb_uri(uri: &str) -> bool {
    uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")
}

/// The usage error for MongoDB URI `uri`, given as `option`, in a build
/// without the `mongodb` feature (see [`MONGODB`]); the URI is redacted.
pub fn without_mongodb(option: &str, uri: &str) -> Error {
    Error::Usage(format!(
        "{option} {}: this backfill was built without MongoDB support (cargo feature \
         `mongodb`); rebuild with default features",
        redact_uri(uri)
    ))
}

/// Whether this build has the PostgreSQL store (the cargo feature
/// `postgres`).
pub const POSTGRES: bool = cfg!(feature = "postgres");

/// Whether `uri` names a PostgreSQL database (`postgres://`,
/// `postgresql://`).
pub fn is_postgres_uri(uri: &str) -> bool {
    uri.starts_with("postgres://") || uri.starts_with("postgresql://")
}

/// The usage error for PostgreSQL URI `uri`, given as `option`, in a build
/// without the `postgres` feature (see [`POSTGRES`]); the URI is redacted.
pub fn without_postgres(option: &str, uri: &str) -> Error {
    Error::Usage(format!(
        "{option} {}: this backfill was built without PostgreSQL support (cargo feature \
         `postgres`); rebuild with default features",
        redact_uri(uri)
    ))
}

/// Refuses store paths whose data would be thrown away.
fn check_sqlite_path(path: &str) -> Result<()> {
    if path.trim().is_empty() {
        return Err(Error::Usage(
            "the store path is empty (--store or BACKFILL_STORE); name a SQLite file or a \
             mongodb:// URI"
                .into(),
        ));
    }
    let lower = path.to_ascii_lowercase();
    let memory = lower == ":memory:"
        || (lower.starts_with("file:")
            && (lower.contains(":memory:") || lower.contains("mode=memory")));
    if memory {
        return Err(Error::Usage(format!(
            "--store {path}: an in-memory database is thrown away when backfill exits; name a \
             SQLite file"
        )));
    }
    Ok(())
}

/// Redaction of store URIs (see [`crate::redact`]), where callers of the
/// store layer look for it.
pub use crate::redact::redact_uri;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_secret_parameters() {
        assert_eq!(
            redact_uri("mongodb://admin:hunter2@db:27017/vex?authSource=admin&password=x"),
            "mongodb://admin:***@db:27017/vex?authSource=admin&password=***"
        );
        assert_eq!(redact_uri("mongodb://db:27017"), "mongodb://db:27017");
        assert_eq!(redact_uri("./backfill.db"), "./backfill.db");
        assert!(!redact_uri("mongodb+srv://u:p%40ss@c.example.net/").contains("p%40ss"));
    }
}
