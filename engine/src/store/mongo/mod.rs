//! The production store: MongoDB, through the official driver.
//!
//! Documents have the logical statement shape (README, "Stores"), the one
//! SQLite's rows are read back into (instants as RFC 3339 strings, so a
//! replay is byte-for-byte the same in both stores). Writes are unordered
//! bulk writes with majority write concern (the URI's `w` wins when given):
//! `Client::bulk_write` on servers that speak it (maxWireVersion >= 25,
//! MongoDB 8.0+, cross-checked with `buildInfo`), the collection-level
//! `insert` / `update` / `delete` commands otherwise. Appends are
//! idempotent: a duplicate-key error (11000) on a unique index means "already present".
//!
//! There are no multi-document transactions (they need a replica set and
//! would serialize the writes): within a batch, statements are written
//! before their ledger entries, so an interrupted batch is redone by the next
//! run and its statements already written count as present.
//!
//! The engine is synchronous, and so is this store: it uses the driver's
//! `sync` API (which runs the driver on the driver's own tokio runtime). Every operation is retried with exponential backoff on
//! transient errors (network, not-primary, retryable-write labels) for up to
//! [`RETRY_BUDGET`](crate::store::RETRY_BUDGET); after that it fails with one line. Credentials in the
//! URI never appear in a message: errors are rebuilt from the driver's and
//! scrubbed of the password.
//!
//! The parts: the connection, its retries and error classification are in
//! [`crate::mongo::client`] (shared with the `vex.raw` source); [`bulk`]
//! groups operations into commands and writes them on either path;
//! [`codec`] maps the model to documents and back; [`read`] and [`write`]
//! are the store's queries and writes. The role traits below only
//! delegate to them.

mod bulk;
mod codec;
mod read;
mod write;

use std::collections::HashSet;

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::sync::Collection;
use mongodb::IndexModel;

use super::{
    Admin, BatchOutcome, Checkpoint, ContentIdentity, EpssRow, EpssSink, Export, Logged, Queries,
    RollbackReport, RollbackScope, RunLog, RunRecord, RunStatus, StatementSink, Store,
    StoreOptions, UpsertCounts, WriteContext,
};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::model::{CheckpointState, Record, Statement, Stats};
use crate::mongo::client::Connection;
pub use crate::mongo::client::WRITE_PATH_ENV;
use crate::parse::DocumentWrite;
use crate::time::format_timestamp;

/// Most values in one `$in` list, so that a lookup stays a short command.
const MAX_IN_VALUES: usize = 10_000;

/// MongoDB-backed [`Store`].
pub struct MongoStore {
    conn: Connection,
    statements: Collection<Document>,
    documents: Collection<Document>,
    epss: Collection<Document>,
    checkpoints: Collection<Document>,
    runs: Collection<Document>,
    indexes_ready: bool,
    /// Look up `signals` in `epss` when writing statements (false when a
    /// run starts with no EPSS rows at all, as SQLite decides it).
    enrich_on_write: bool,
    /// Block compressor of a statements collection created here.
    block_compressor: Option<String>,
}

impl MongoStore {
    /// Connects to the server named by `uri` (`mongodb://` or
    /// `mongodb+srv://`), database from the URI path (default `backfill`).
    /// Indexes are created on the first write.
    pub fn open(uri: &str, opts: &StoreOptions) -> Result<MongoStore> {
        let conn = Connection::open(uri)?;
        let db = &conn.db;
        Ok(MongoStore {
            statements: db.collection(&opts.statements_collection),
            documents: db.collection("documents"),
            epss: db.collection("epss"),
            checkpoints: db.collection("checkpoints"),
            runs: db.collection("runs"),
            conn,
            indexes_ready: false,
            enrich_on_write: true,
            block_compressor: opts.block_compressor.clone(),
        })
    }

    /// The statements collection's `storageEngine` creation option as the
    /// server lists it (`None` when it lists none, or the collection does
    /// not exist), for checking what a run created.
    pub fn statements_storage_engine(&self) -> Result<Option<serde_json::Value>> {
        let name = self.statements.name();
        let db = &self.conn.db;
        // The raw command: typed specifications reject servers that list a
        // collection's `info.uuid` as a string (nx-27017).
        let reply = self.conn.retry("list collections", self.conn.retry_budget, || {
            db.run_command(doc! { "listCollections": 1, "filter": { "name": name } }).run()
        })?;
        let engine =
            reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).ok().and_then(
                |batch| {
                    batch.iter().find_map(|spec| {
                        let options = spec.as_document()?.get_document("options").ok()?;
                        options.get_document("storageEngine").ok().cloned()
                    })
                },
            );
        Ok(engine.map(crate::mongo::value::doc_to_json))
    }

    /// Creates the statements collection with the block compressor asked
    /// for, when it does not exist yet. The document shape is the contract
    /// with consumers; compression changes only its size on disk (zstd
    /// makes repeated vendor texts cheap). A server that refuses the
    /// option (no WiredTiger) gets the collection created on first insert,
    /// with a warning; one that exists already is left as it is.
    fn create_statements_collection(&self) -> Result<()> {
        let Some(compressor) = &self.block_compressor else { return Ok(()) };
        let name = self.statements.name();
        let db = &self.conn.db;
        let exists = self.conn.retry("list collections", self.conn.retry_budget, || {
            db.list_collection_names().filter(doc! { "name": name }).run()
        })?;
        if !exists.is_empty() {
            return Ok(());
        }
        let engine =
            doc! { "wiredTiger": { "configString": format!("block_compressor={compressor}") } };
        let created = self.conn.retry("create collection", self.conn.retry_budget, || {
            db.create_collection(name).storage_engine(engine.clone()).run()
        });
        match created {
            Ok(()) => {
                tracing::debug!(collection = name, compressor, "Statements collection created.")
            }
            // Created meanwhile by another worker: fine.
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => tracing::warn!(
                collection = name,
                compressor,
                error = %e,
                "The server did not create the statements collection with this block \
                 compressor; it is created with the server's default."
            ),
        }
        Ok(())
    }

    /// True when writes go through `Client::bulk_write` (8.0+ servers).
    pub fn uses_bulk_write(&self) -> bool {
        self.conn.bulk_api
    }

    /// Drops the whole database (for tests and tooling).
    pub fn drop_database(&mut self) -> Result<()> {
        let db = &self.conn.db;
        self.conn.retry("drop database", self.conn.retry_budget, || db.drop().run())
    }

    /// Creates the collections' indexes (idempotent), once per store.
    fn ensure_indexes(&mut self) -> Result<()> {
        if self.indexes_ready {
            return Ok(());
        }
        self.create_statements_collection()?;
        let unique = |keys: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build()
        };
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        let plan: [(&Collection<Document>, Vec<IndexModel>); 5] = [
            (
                &self.statements,
                vec![
                    unique(doc! { "document.digest": 1, "vulnerabilityId": 1, "productKey": 1 }),
                    plain(doc! { "vulnerabilityId": 1, "productKey": 1 }),
                    plain(doc! { "purl": 1 }),
                ],
            ),
            (&self.documents, vec![unique(doc! { "digest": 1 })]),
            (&self.epss, vec![unique(doc! { "cve": 1 })]),
            (&self.checkpoints, vec![unique(doc! { "dataType": 1, "source": 1 })]),
            (&self.runs, vec![unique(doc! { "runId": 1 })]),
        ];
        for (coll, models) in plan {
            let models = &models;
            self.conn.retry(
                &format!("create indexes on {}", coll.name()),
                self.conn.retry_budget,
                || coll.create_indexes(models.iter().cloned()).run(),
            )?;
        }
        self.indexes_ready = true;
        Ok(())
    }
}

impl Logged for MongoStore {
    fn run_log(&mut self) -> Option<&mut dyn RunLog> {
        Some(self)
    }
}

impl StatementSink for MongoStore {
    fn write_documents(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome> {
        self.ensure_indexes()?;
        let inserted = format_timestamp(ctx.inserted_at);
        let outcome = self.write_batch(docs, ctx, &inserted)?;
        // The run's progress moves only once the batch is acknowledged.
        if let Some(cp) = ctx.checkpoint {
            self.write_checkpoint(cp, &inserted)?;
        }
        if let Some(run) = ctx.run {
            self.record_run(run)?;
        }
        Ok(outcome)
    }

    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        self.ledger_digests(digests)
    }

    fn begin_load(&mut self) -> Result<()> {
        self.enrich_on_write = self.epss_present()?;
        Ok(())
    }
}

impl EpssSink for MongoStore {
    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.upsert_epss(rows, checkpoint, now)
    }
}

impl RunLog for MongoStore {
    fn record_run(&mut self, run: &RunRecord) -> Result<()> {
        self.save_run(run)
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        self.read_runs()
    }

    fn load_checkpoints(
        &mut self,
        data_type: &str,
        sources: &[String],
    ) -> Result<Vec<Option<Checkpoint>>> {
        self.read_checkpoints(data_type, sources)
    }

    fn checkpoints(&mut self) -> Result<Vec<CheckpointState>> {
        self.list_checkpoints()
    }

    fn remove_checkpoints(&mut self, source: &str, data_type: Option<&str>) -> Result<u64> {
        self.delete_checkpoints(source, data_type)
    }
}

impl Queries for MongoStore {
    fn find_statements(
        &mut self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>> {
        self.query_statements(vulnerability_id, product)
    }

    fn export(&mut self, what: Export, each: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        self.export_sorted(what, each)
    }

    fn stats(&mut self) -> Result<Stats> {
        self.read_stats()
    }
}

impl Admin for MongoStore {
    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        self.roll_back(scope, dry_run)
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        self.enrich_all()
    }
}

impl Store for MongoStore {
    fn describe(&self) -> String {
        self.conn.described.clone()
    }
}
