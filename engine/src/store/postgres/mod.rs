//! The PostgreSQL store, through the synchronous `postgres` crate.
//!
//! Selected by a `postgres://` or `postgresql://` URI (libpq's URI form:
//! `postgres://USER:PASSWORD@HOST:PORT/DATABASE?application_name=…`). The
//! connection is unencrypted (`NoTls`): TLS is not supported, so reach a
//! remote server through a trusted network or a tunnel. Everything lives
//! in schema `vex` of the URI's database: `statements` (renamed by
//! `--statements-collection`), `documents` (the ledger), `epss`,
//! `checkpoints`, `runs` and `schema_version`, with the unique keys of
//! the other stores and JSON fields as `jsonb`.
//!
//! Like SQLite, and unlike MongoDB, a statements batch (statements, ledger
//! entries, the checkpoint and the run record) is one transaction, so a
//! resumed run starts exactly after the last committed batch; shards of one
//! run write to one server concurrently, each in its own transactions.
//!
//! The parts, beside this file, which holds the struct, [`PostgresStore::open`]
//! and the role-trait impls that only delegate:
//!
//! * `client`: the connection, reconnects, and every operation's retry
//!   loop (the MongoDB store's budget and messages), with the error
//!   classification behind it and credentials scrubbed from messages.
//! * `schema`: the tables, their layout version, creating them at open.
//! * `write`: statement batches (binary `COPY` into a staging table, then
//!   one insert), EPSS upserts, runs, checkpoints, rollback, enrichment.
//! * `read`: lookups, exports, stats, runs and checkpoints, and the row
//!   mappers to the logical model.
//! * `text`: the escape for U+0000, which PostgreSQL text cannot hold and
//!   documents may.

mod client;
mod read;
mod schema;
mod text;
mod write;

use std::collections::HashSet;

use super::{
    Admin, BatchOutcome, Checkpoint, EpssRow, EpssSink, Export, Logged, Queries, RollbackReport,
    RollbackScope, RunLog, RunRecord, StatementSink, Store, StoreOptions, UpsertCounts,
    WriteContext,
};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::model::{CheckpointState, Record, Statement, Stats};
use crate::parse::DocumentWrite;
use client::Connection;

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    conn: Connection,
    /// The statements table, schema-qualified and quoted for SQL.
    statements: String,
    /// Read signals from `epss` when writing statements (false when a run
    /// starts with no EPSS rows at all, as SQLite decides it).
    enrich_on_write: bool,
    /// What this sync knows of the CVE keys in `vex.epss` (see
    /// `write::upsert_epss`).
    epss_keys: EpssKeys,
}

/// The CVE keys stored in `vex.epss`, as one sync knows them.
enum EpssKeys {
    /// Not read yet: read at the sync's first batch.
    Unread,
    /// Those read then, with the ones its own commits added.
    Known(roaring::RoaringTreemap),
    /// Another writer adds rows too: every row is merged.
    Shared,
}

impl PostgresStore {
    /// Connects to the server named by `uri` (`postgres://` or
    /// `postgresql://`) and creates the schema if missing (with
    /// `opts.create`; otherwise a database without it is
    /// [`crate::Error::NoStore`]).
    pub fn open(uri: &str, opts: &StoreOptions) -> Result<PostgresStore> {
        let mut conn = Connection::open(uri)?;
        let statements = schema::statements_table(&opts.statements_collection);
        schema::prepare(&mut conn, &statements, opts.create)?;
        Ok(PostgresStore { conn, statements, enrich_on_write: true, epss_keys: EpssKeys::Unread })
    }

    /// Creates database `name` on the server of `server_uri` (for tests
    /// and tooling).
    pub fn create_database(server_uri: &str, name: &str) -> Result<()> {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        Connection::open(server_uri)?.run("create database", |c| c.batch_execute(&sql))
    }

    /// Drops database `name` on the server of `server_uri`, closing its
    /// sessions (for tests and tooling).
    pub fn drop_database(server_uri: &str, name: &str) -> Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
        Connection::open(server_uri)?.run("drop database", |c| c.batch_execute(&sql))
    }
}

impl Logged for PostgresStore {
    fn run_log(&mut self) -> Option<&mut dyn RunLog> {
        Some(self)
    }
}

impl StatementSink for PostgresStore {
    fn write_documents(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome> {
        self.write_tx(docs, ctx)
    }

    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        self.ledger_digests(digests)
    }

    fn begin_load(&mut self) -> Result<()> {
        self.enrich_on_write = self.epss_present()?;
        Ok(())
    }
}

impl EpssSink for PostgresStore {
    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.epss_tx(rows, checkpoint, now)
    }
}

impl RunLog for PostgresStore {
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
        self.read_checkpoints(data_type, sources)
    }

    fn checkpoints(&mut self) -> Result<Vec<CheckpointState>> {
        self.list_checkpoints()
    }

    fn remove_checkpoints(&mut self, source: &str, data_type: Option<&str>) -> Result<u64> {
        self.delete_checkpoints(source, data_type)
    }
}

impl Queries for PostgresStore {
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

impl Admin for PostgresStore {
    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        self.delete_scope(scope, dry_run)
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        self.enrich_from_epss()
    }
}

impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.conn.described.clone()
    }
}
