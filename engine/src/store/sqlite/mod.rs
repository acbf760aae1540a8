//! The embedded store: one SQLite file in WAL mode.
//!
//! Each batch is one transaction, so a crash leaves every batch either fully
//! written (statements and ledger entries) or not at all.
//!
//! Layout, chosen for write speed: document-level fields live once in the
//! `documents` ledger, which gives each document a sequential id; a
//! statement row holds that id plus its own fields, nested parts
//! (`aliases`, `metadata`, `signals.epss`) as JSON text. The unique key
//! (document id, vulnerability, product key) therefore grows at its end
//! instead of at random digest positions, so a batch dirties few pages.
//! Long texts, which vendors repeat over every product, are stored once in
//! `texts` and referenced by id.
//! Reads join the two back into the logical (MongoDB) shape.
//!
//! The parts, each an `impl SqliteStore` block or free functions beside
//! it; this file holds the struct, [`SqliteStore::open`] and the role-trait
//! impls, which only delegate:
//!
//! * `schema`: the table layout and its version, creating and extending it
//!   at open, the connection's pragmas, the lookup indexes.
//! * `write`: batches of statements with their ledger entries, EPSS
//!   upserts, runs and checkpoints (resume points), rollback and enrichment,
//!   with the SQL they run.
//! * `read`: lookups, exports, stats, runs and checkpoints, and the row
//!   mappers to the logical model.
//! * `wal`: flushing the WAL into the main file, on a background thread
//!   while a run writes. ("Checkpoint" means only a run's resume point;
//!   SQLite's WAL checkpoint is a "flush" here.)
//! * `texts`: long texts stored once and referenced by id (layout 4).
//! * `migrate`: upgrading files of layouts 2 and 3 in place.
//! * `bind`: the statement insert that SQLite reads in place, the one
//!   `unsafe` part, alone with its safety contract.

mod bind;
mod migrate;
mod read;
mod schema;
mod texts;
mod wal;
mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{
    Admin, BatchOutcome, Checkpoint, EpssRow, EpssSink, Export, Logged, Queries, RollbackReport,
    RollbackScope, RunLog, RunRecord, StatementSink, Store, StoreOptions, UpsertCounts,
    WriteContext,
};
use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::model::{CheckpointState, Record, Statement, Stats};
use crate::parse::DocumentWrite;
pub use migrate::MigrationReport;
use wal::WalFlusher;
use write::StatementInserts;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    /// Prepared statement inserts, bound without copies; declared before
    /// `conn` so they are finalized before it closes.
    inserts: Option<StatementInserts>,
    conn: Connection,
    path: PathBuf,
    /// The statements table, quoted for SQL.
    statements: String,
    /// Its name as given.
    statements_name: String,
    /// Copies the WAL into the main file while a run writes (see
    /// [`WalFlusher`]); started at the first write.
    wal_flusher: Option<WalFlusher>,
    /// For the flusher's own connection.
    busy_timeout: std::time::Duration,
    /// Look up `epss` for each statement written; off while the table is
    /// empty (decided at `begin_load`), which saves two probes per row.
    enrich_on_write: bool,
    /// Ids of the long texts this connection knows are stored.
    texts: texts::Texts,
}

/// Quotes an identifier for SQL (table names may contain dots).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQLite error as the store's, with what was being done.
fn err(path: &Path, context: &str, e: rusqlite::Error) -> Error {
    Error::Store {
        store: path.display().to_string(),
        context: context.to_owned(),
        cause: Box::new(e),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: &StoreOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_owned();
        schema::check_path(&path, opts.create)?;
        let conn = Connection::open(&path).map_err(|e| err(&path, "open", e))?;
        // First, so that even reading the layout waits for a concurrent
        // writer (shards creating one new file together) instead of failing.
        conn.busy_timeout(opts.busy_timeout).map_err(|e| err(&path, "open", e))?;
        let mut store = SqliteStore {
            inserts: None,
            conn,
            path,
            statements: ident(&opts.statements_collection),
            statements_name: opts.statements_collection.clone(),
            wal_flusher: None,
            busy_timeout: opts.busy_timeout,
            enrich_on_write: true,
            texts: texts::Texts::default(),
        };
        store.configure(opts.busy_timeout).map_err(|e| err(&store.path, "configure", e))?;
        store.create_schema()?;
        Ok(store)
    }

    /// Upgrades the file at `path` (statements table `statements_name`)
    /// from layout 2 or 3 to the current one, in place and crash-safe (see
    /// `migrate`); does nothing to a current file.
    pub fn migrate(
        path: &Path,
        statements_name: &str,
        busy_timeout: std::time::Duration,
        progress: &dyn crate::progress::Progress,
    ) -> Result<MigrationReport> {
        migrate::migrate(path, statements_name, busy_timeout, progress)
    }

    /// The underlying connection (for tests and tooling).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.stop_wal_flusher() {
            tracing::debug!(error = %e, "Stopping background WAL flushes failed.");
        }
    }
}

impl Logged for SqliteStore {
    fn run_log(&mut self) -> Option<&mut dyn RunLog> {
        Some(self)
    }
}

impl StatementSink for SqliteStore {
    fn write_documents(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome> {
        self.start_wal_flusher().map_err(|e| err(&self.path, "start WAL flushes", e))?;
        self.write_tx(docs, ctx).map_err(|e| err(&self.path, "write batch", e))
    }

    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        self.ledger_digests(digests)
    }

    fn begin_load(&mut self) -> Result<()> {
        self.prepare_load()
    }

    fn end_load(&mut self) -> Result<()> {
        self.finish_load()
    }
}

impl EpssSink for SqliteStore {
    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.start_wal_flusher().map_err(|e| err(&self.path, "start WAL flushes", e))?;
        self.epss_tx(rows, checkpoint, now).map_err(|e| err(&self.path, "write epss batch", e))
    }
}

impl RunLog for SqliteStore {
    fn record_run(&mut self, run: &RunRecord) -> Result<()> {
        self.save_run_record(run)
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        self.list_runs()
    }

    fn load_checkpoints(
        &mut self,
        data_type: &str,
        sources: &[String],
    ) -> Result<Vec<Option<Checkpoint>>> {
        sources.iter().map(|s| self.load_checkpoint(data_type, s)).collect()
    }

    fn checkpoints(&mut self) -> Result<Vec<CheckpointState>> {
        self.list_checkpoints()
    }

    fn remove_checkpoints(&mut self, source: &str, data_type: Option<&str>) -> Result<u64> {
        self.delete_checkpoints(source, data_type)
    }
}

impl Queries for SqliteStore {
    fn find_statements(
        &mut self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>> {
        self.query_statements(vulnerability_id, product)
    }

    fn export(&mut self, what: Export, each: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        self.export_rows(what, each)
    }

    fn stats(&mut self) -> Result<Stats> {
        self.read_stats()
    }
}

impl Admin for SqliteStore {
    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        self.delete_scope(scope, dry_run)
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        self.enrich_from_epss()
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
