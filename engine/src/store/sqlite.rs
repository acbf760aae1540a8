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
//! Reads join the two back into the logical (MongoDB) shape.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value as Json};

use super::{
    Checkpoint, EpssRow, Export, RollbackReport, RollbackScope, RunRecord, RunStatus, Store,
    StoreOptions, UpsertCounts, WriteContext,
};
use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::normalize::Claim;
use crate::parse::{format_instant, format_timestamp, DocumentWrite};

/// The table layout this code reads and writes, kept in `PRAGMA
/// user_version`. 2: `epss` times as integer microseconds, KEV nullable.
/// 3: statements clustered by (doc, vulnerability, product key), with no
/// rowid, so the spec's unique key is the table itself, not a second copy
/// of every key in an index.
const LAYOUT_VERSION: i64 = 3;

/// Page cache, KiB. Bulk loads append, so what they revisit is the right
/// edge of each B-tree plus the digest index; 32 MiB ran every benchmark
/// (EPSS, raw archives 1-30x) 3-5% faster than 160 MiB, which only added
/// page faults.
const CACHE_KIB: i64 = 32 << 10;

/// Page cache while building an index, KiB: the size of each sorted run.
const SORT_CACHE_KIB: i64 = 16 << 10;

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
    /// [`Checkpointer`]); started at the first write.
    checkpointer: Option<Checkpointer>,
    /// For the checkpointer's own connection.
    busy_timeout: std::time::Duration,
    /// Look up `epss` for each statement written; off while the table is
    /// empty (decided at `begin_load`), which saves two probes per row.
    enrich_on_write: bool,
}

/// Quotes an identifier for SQL (table names may contain dots).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: &StoreOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_owned();
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
            checkpointer: None,
            busy_timeout: opts.busy_timeout,
            enrich_on_write: true,
        };
        store.configure(opts.busy_timeout).map_err(|e| err(&store.path, "configure", e))?;
        store.create_schema()?;
        Ok(store)
    }

    /// The underlying connection (for tests and tooling).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Creates what is missing, and refuses a file written with another
    /// table layout (which would otherwise fail later with a confusing SQL
    /// error). Creation runs in one write transaction that checks again
    /// inside, so shards opening one new file together all see either
    /// nothing or the whole schema with its version.
    fn create_schema(&mut self) -> Result<()> {
        let path = self.path.clone();
        let e = |context: &'static str| {
            let path = path.clone();
            move |e| err(&path, context, e)
        };
        let name = self.statements_name.clone();
        let (version, _, has_statements) =
            layout(&self.conn, &name).map_err(e("read the table layout"))?;
        if version != LAYOUT_VERSION || !has_statements {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(e("create schema"))?;
            let (version, has_tables, _) =
                layout(&tx, &name).map_err(e("read the table layout"))?;
            if has_tables && version != LAYOUT_VERSION {
                return Err(Error::Store {
                    store: self.path.display().to_string(),
                    context: "open".into(),
                    cause: format!(
                        "the file has table layout {version}, this backfill reads layout \
                         {LAYOUT_VERSION}; load into a new file (or export with the backfill \
                         that wrote it)"
                    )
                    .into(),
                });
            }
            tx.execute_batch(&schema_sql(&self.statements)).map_err(e("create schema"))?;
            tx.pragma_update(None, "user_version", LAYOUT_VERSION).map_err(e("create schema"))?;
            tx.commit().map_err(e("create schema"))?;
        }
        // Lookup indexes are (re)created here too: a bulk load that crashed
        // before rebuilding them gets them back at the next open.
        self.create_lookup_indexes().map_err(e("create indexes"))
    }

    /// Per-connection settings and SQL functions.
    fn configure(&mut self, busy_timeout: std::time::Duration) -> rusqlite::Result<()> {
        // `cve_key(text)` in SQL: how statements find their epss row.
        self.conn.create_scalar_function(
            "cve_key",
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| Ok(ctx.get_raw(0).as_str().ok().and_then(crate::epss::cve_key)),
        )?;
        // Takes effect only in a new file (before WAL is on). 16 KiB pages
        // make bulk loads cheaper: fewer B-tree levels and page splits.
        self.conn.pragma_update(None, "page_size", 16384)?;
        // Switching a new file to WAL needs an exclusive lock, and SQLite
        // does not wait for it (two connections doing the same would
        // deadlock), so connections opening one new file together retry.
        let started = std::time::Instant::now();
        loop {
            match self.conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < busy_timeout =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                done => break done?,
            }
        }
        // WAL + NORMAL: a commit survives a process crash; the final
        // checkpoint at the end of a run makes it durable on disk.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // The bundled SQLite enforces foreign keys by default. Statements
        // only ever get a ledger id from the same transaction, and checking
        // it costs a parent lookup plus a statement journal (a copy of every
        // page touched) per INSERT.
        self.conn.pragma_update(None, "foreign_keys", false)?;
        // Sorts (the lookup indexes built after a bulk load) on every core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        self.conn.pragma_update(None, "threads", cores as i64)?;
        self.conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_FRAMES)?;
        Ok(())
    }

    /// The index `get` uses. A lookup by purl scans the statements of one
    /// vulnerability through it; a second index on purl alone would double
    /// the sort after a bulk load for that rare case.
    fn lookup_indexes(&self) -> [(String, String); 1] {
        let s = &self.statements;
        let name = |suffix: &str| ident(&format!("{}_{suffix}", s.trim_matches('"')));
        [(name("vuln_product"), format!("{s} (vulnerability_id, product_key)"))]
    }

    fn create_lookup_indexes(&self) -> rusqlite::Result<()> {
        // The index sorter keeps up to `cache_size` of keys in memory and
        // sorts them as one linked list, whose merge misses the CPU caches
        // ever more as it grows: 2.3 s for 2.2M keys at 160 MiB, 1.2 s in
        // 16 MiB runs (sorted by helper threads while the scan goes on,
        // then merged).
        self.conn.pragma_update(None, "cache_size", -SORT_CACHE_KIB)?;
        let built = self.lookup_indexes().into_iter().try_for_each(|(name, on)| {
            self.conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))
        });
        self.conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        built
    }

    fn write_tx(&mut self, docs: &[DocumentWrite], ctx: &WriteContext<'_>) -> rusqlite::Result<()> {
        // kev/epss come from the epss table at write time, so statements
        // are enriched when EPSS was synced first.
        let enrich = self.enrich_on_write;
        if self.inserts.as_ref().is_none_or(|i| i.enrich != enrich) {
            self.inserts = None;
            let sql = |rows: usize| statement_insert_sql(&self.statements, rows, enrich);
            // SAFETY: `inserts` is declared before `conn`, so it is dropped
            // (and its statements finalized) before the connection closes.
            self.inserts = Some(unsafe {
                StatementInserts {
                    enrich,
                    many: StaticStatement::prepare(&self.conn, &sql(STATEMENT_ROWS_PER_INSERT))?,
                    one: StaticStatement::prepare(&self.conn, &sql(1))?,
                }
            });
        }
        let inserts = self.inserts.as_mut().expect("prepared above");
        let tx = self.conn.transaction()?;
        {
            let s = &self.statements;
            let mut delete = tx.prepare_cached(&format!("DELETE FROM {s} WHERE doc = ?1"))?;
            // A new document (the usual case) takes the plain insert, which
            // cannot abort and so needs no statement journal (a copy of the
            // ledger pages it touches); a known one (`--force`, or another
            // shard's) the upsert.
            let mut ledger_new = tx.prepare_cached(
                "INSERT OR IGNORE INTO documents (digest, format, provider_id, source_uri,
                    retrieved_at, document_id, revision, statements, metadata, run_id,
                    processed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 RETURNING id",
            )?;
            let mut ledger = tx.prepare_cached(
                "INSERT INTO documents (digest, format, provider_id, source_uri, retrieved_at,
                    document_id, revision, statements, metadata, run_id, processed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (digest) DO UPDATE SET format = excluded.format,
                    provider_id = excluded.provider_id, source_uri = excluded.source_uri,
                    retrieved_at = excluded.retrieved_at, document_id = excluded.document_id,
                    revision = excluded.revision, statements = excluded.statements,
                    metadata = excluded.metadata, run_id = excluded.run_id,
                    processed_at = excluded.processed_at
                 RETURNING id",
            )?;
            let inserted_at = format_timestamp(ctx.inserted_at);
            // Ledger rows first (their ids key the statements), then every
            // statement of the batch, many rows per INSERT.
            let mut rows: Vec<StatementRow<'_>> = Vec::new();
            for doc in docs {
                let values = params![
                    doc.digest.to_string(),
                    doc.format.as_str(),
                    doc.provider_id,
                    doc.source_uri,
                    format_instant(doc.retrieved_at),
                    doc.document_id,
                    doc.revision,
                    doc.claims.len() as i64,
                    doc.metadata,
                    ctx.run_id,
                    inserted_at,
                ];
                let id: i64 = match ledger_new.query_row(values, |r| r.get(0)).optional()? {
                    Some(id) => id,
                    None => ledger.query_row(values, |r| r.get(0))?,
                };
                if ctx.force {
                    delete.execute([id])?;
                }
                rows.extend(doc.claims.iter().map(|c| {
                    StatementRow {
                        doc: id,
                        claim: c,
                        // Empty lists and maps are stored as NULL (read back as
                        // [] and {}): most statements have none.
                        aliases: (!c.aliases.is_empty())
                            .then(|| serde_json::to_string(&c.aliases).unwrap_or_default()),
                        metadata: (!c.metadata.is_empty())
                            .then(|| serde_json::to_string(&c.metadata).unwrap_or_default()),
                    }
                }));
            }
            let mut binds: Vec<Bind<'_>> =
                Vec::with_capacity(STATEMENT_ROWS_PER_INSERT * STATEMENT_PARAMS);
            for part in statement_runs(&rows, STATEMENT_ROWS_PER_INSERT, |_| true) {
                binds.clear();
                for StatementRow { doc: id, claim: c, aliases, metadata } in part {
                    binds.extend([
                        Bind::Int(*id),
                        Bind::Text(&c.vulnerability_id),
                        Bind::Text(&c.product_key),
                        c.purl.as_deref().into(),
                        aliases.as_deref().into(),
                        Bind::Text(c.status.as_str()),
                        c.justification.map(|j| j.as_str()).into(),
                        c.detail.as_deref().into(),
                        c.action.as_deref().into(),
                        c.severity.as_deref().into(),
                        metadata.as_deref().into(),
                    ]);
                }
                let insert = if part.len() == 1 { &mut inserts.one } else { &mut inserts.many };
                insert.execute(&binds)?;
            }
            if let Some(cp) = ctx.checkpoint {
                save_checkpoint(&tx, cp, &inserted_at)?;
            }
        }
        tx.commit()
    }

    fn epss_tx(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> rusqlite::Result<UpsertCounts> {
        // In key order, the upserts walk the B-tree front to back.
        let mut keyed: Vec<(i64, &EpssRow)> = rows.iter().map(|r| (r.cve.key(), r)).collect();
        keyed.sort_unstable_by_key(|(k, _)| *k);
        let tx = self.conn.transaction()?;
        let mut counts = UpsertCounts::default();
        {
            let mut many = tx.prepare_cached(&epss_upsert_sql(EPSS_ROWS_PER_UPSERT))?;
            let mut one = tx.prepare_cached(&epss_upsert_sql(1))?;
            // Model version and score date are the same for a whole file,
            // so they are bound once per statement; rows that differ (rare)
            // go one by one.
            fn meta(r: &EpssRow) -> (Option<&str>, Option<&str>) {
                (r.model_version.as_deref(), r.score_date.as_deref())
            }
            let same_meta =
                |run: &[(i64, &EpssRow)]| run.iter().all(|(_, r)| meta(r) == meta(run[0].1));
            for part in statement_runs(&keyed, EPSS_ROWS_PER_UPSERT, same_meta) {
                let n = part.len();
                let upsert = if n == 1 { &mut one } else { &mut many };
                for (i, (key, r)) in part.iter().enumerate() {
                    let at = i * EPSS_PARAMS;
                    upsert.raw_bind_parameter(at + 1, key)?;
                    upsert.raw_bind_parameter(at + 2, r.cve.as_str())?;
                    upsert.raw_bind_parameter(at + 3, r.epss_score)?;
                    upsert.raw_bind_parameter(at + 4, r.percentile)?;
                    upsert.raw_bind_parameter(at + 5, r.is_known_exploit)?;
                }
                let (model, date) = meta(part[0].1);
                upsert.raw_bind_parameter(n * EPSS_PARAMS + 1, model)?;
                upsert.raw_bind_parameter(n * EPSS_PARAMS + 2, date)?;
                upsert.raw_bind_parameter(n * EPSS_PARAMS + 3, now)?;
                // An unchanged row is not touched (see `epss_upsert_sql`),
                // so the change count tells upserted from unchanged.
                let changed = upsert.raw_execute()? as u64;
                counts.upserted += changed;
                counts.unchanged += n as u64 - changed;
            }
            if let Some(cp) = checkpoint {
                save_checkpoint(&tx, cp, &format_timestamp(now))?;
            }
        }
        tx.commit()?;
        Ok(counts)
    }

    /// Runs a WAL checkpoint so everything written is in the main file.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.stop_checkpointer().map_err(|e| err(&self.path, "checkpoint", e))?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| err(&self.path, "checkpoint", e))
    }

    /// Starts the background checkpointer, unless it runs already. Without
    /// it (a thread that cannot start) SQLite's own checkpoints stay on.
    fn start_checkpointer(&mut self) -> rusqlite::Result<()> {
        if self.checkpointer.is_some() {
            return Ok(());
        }
        let Some(c) = Checkpointer::start(&self.path, self.busy_timeout) else {
            return Ok(());
        };
        let wake = c.wake.clone();
        // Replaces the automatic checkpoint, which runs in the writer.
        self.conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
            if frames >= WAL_LIMIT_FRAMES {
                // PASSIVE checkpoints cannot restart a WAL the writer keeps
                // appending to: copy the rest here and start it over, which
                // keeps the file (and what the kernel must write back) small.
                if let Err(e) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::RESTART) {
                    tracing::debug!(error = %e, "Restarting the WAL failed.");
                }
            } else if frames >= CHECKPOINT_FRAMES {
                let _ = wake.try_send(());
            }
            Ok(())
        }))?;
        self.checkpointer = Some(c);
        Ok(())
    }

    /// Stops the background checkpointer (after its current checkpoint) and
    /// puts SQLite's own back.
    fn stop_checkpointer(&mut self) -> rusqlite::Result<()> {
        if let Some(c) = self.checkpointer.take() {
            // The hook holds a sender: drop it first, or the thread waits on.
            self.conn
                .wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>)?;
            self.conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_FRAMES)?;
            c.stop();
        }
        Ok(())
    }
}

/// WAL frames (16 KiB pages) that wake the background checkpointer: 16
/// MiB. Early and often, so the copy (and the disk writes) run while the
/// writer works, on a core parsing leaves idle, and the final checkpoint,
/// which nothing overlaps, has little left: a 71k-statement run took 0.233 s
/// against 0.278 s at 64 MiB (EPSS day CSV 0.242 s against 0.280 s).
const CHECKPOINT_FRAMES: i32 = 1024;

/// WAL frames at which the writer itself checkpoints and restarts the WAL:
/// 256 MiB.
const WAL_LIMIT_FRAMES: i32 = 16384;

/// Copies the WAL into the main file on its own thread and connection while
/// a run writes, so the single writer never stops for it (a twentieth of its
/// time) and the copy runs on whatever core parsing leaves idle. Its
/// checkpoints are PASSIVE: they never wait for the writer, and what they
/// leave is copied by the next one or by the final TRUNCATE checkpoint.
struct Checkpointer {
    wake: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path, busy_timeout: std::time::Duration) -> Option<Checkpointer> {
        let conn = Connection::open(path).and_then(|c| c.busy_timeout(busy_timeout).map(|()| c));
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "No background checkpoints.");
                return None;
            }
        };
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let thread =
            std::thread::Builder::new().name("backfill-checkpoint".into()).spawn(move || {
                for () in woken {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "Background checkpoint failed.");
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Checkpointer { wake, thread }),
            Err(e) => {
                tracing::debug!(error = %e, "No background checkpoints.");
                None
            }
        }
    }

    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.stop_checkpointer() {
            tracing::debug!(error = %e, "Stopping background checkpoints failed.");
        }
    }
}

/// One row of [`statement_insert_sql`]: a claim, its ledger id, and its
/// aliases and metadata as JSON text (`None` when empty).
struct StatementRow<'a> {
    doc: i64,
    claim: &'a Claim,
    aliases: Option<String>,
    metadata: Option<String>,
}

/// The two statement inserts of [`statement_insert_sql`] (many rows, one
/// row), prepared once per connection and kind.
struct StatementInserts {
    enrich: bool,
    many: StaticStatement,
    one: StaticStatement,
}

/// A value for [`StaticStatement::execute`].
#[derive(Clone, Copy)]
enum Bind<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Bind<'a> {
    fn from(v: Option<&'a str>) -> Bind<'a> {
        v.map_or(Bind::Null, Bind::Text)
    }
}

/// A prepared statement that SQLite reads its text parameters from in place
/// (`SQLITE_STATIC`). rusqlite binds every string as `SQLITE_TRANSIENT`,
/// which makes SQLite allocate and copy each value: a sixth of the single
/// writer's time when replaying statements. Sound because
/// [`execute`](Self::execute) binds, steps, resets and clears the bindings
/// within one borrow of the values.
struct StaticStatement {
    stmt: std::ptr::NonNull<rusqlite::ffi::sqlite3_stmt>,
    db: *mut rusqlite::ffi::sqlite3,
}

// SAFETY: the statement belongs to one connection, which may move between
// threads (rusqlite's `Connection` is `Send`) but is never shared: both are
// used only through `&mut SqliteStore`.
unsafe impl Send for StaticStatement {}

impl StaticStatement {
    /// Prepares `sql` on `conn`.
    ///
    /// # Safety
    ///
    /// `conn` must stay open until the statement is dropped: the statement
    /// keeps its raw handle.
    unsafe fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<StaticStatement> {
        use rusqlite::ffi;
        let len = std::ffi::c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        // SAFETY: the handle is valid while `conn` lives; SQLite reads `len`
        // bytes of `sql` (no terminator needed) and writes the statement.
        unsafe {
            let db = conn.handle();
            let mut stmt = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as std::ffi::c_uint,
                &mut stmt,
                std::ptr::null_mut(),
            );
            match std::ptr::NonNull::new(stmt) {
                Some(stmt) if rc == ffi::SQLITE_OK => Ok(StaticStatement { stmt, db }),
                _ => {
                    ffi::sqlite3_finalize(stmt);
                    Err(sqlite_error(db, rc))
                }
            }
        }
    }

    /// Binds `values` to parameters 1.., runs the statement to completion
    /// and leaves it reset with no bindings.
    fn execute(&mut self, values: &[Bind<'_>]) -> rusqlite::Result<()> {
        let result = self.bind_and_step(values);
        // SAFETY: a valid statement; afterwards it refers to none of `values`.
        unsafe {
            rusqlite::ffi::sqlite3_reset(self.stmt.as_ptr());
            rusqlite::ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
        result
    }

    fn bind_and_step(&mut self, values: &[Bind<'_>]) -> rusqlite::Result<()> {
        use rusqlite::ffi;
        let stmt = self.stmt.as_ptr();
        for (i, v) in values.iter().enumerate() {
            let n = (i + 1) as std::ffi::c_int;
            // SAFETY: a valid statement; a text pointer stays valid until
            // `execute` clears the bindings (`values` is borrowed until then).
            let rc = unsafe {
                match *v {
                    Bind::Null => ffi::sqlite3_bind_null(stmt, n),
                    Bind::Int(x) => ffi::sqlite3_bind_int64(stmt, n, x),
                    Bind::Text(s) => {
                        // A static pointer for "" (a `String`'s may dangle).
                        let p = if s.is_empty() { "".as_ptr() } else { s.as_ptr() };
                        ffi::sqlite3_bind_text64(
                            stmt,
                            n,
                            p.cast(),
                            s.len() as ffi::sqlite3_uint64,
                            ffi::SQLITE_STATIC(),
                            ffi::SQLITE_UTF8 as std::ffi::c_uchar,
                        )
                    }
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(sqlite_error(self.db, rc));
            }
        }
        // SAFETY: a valid statement with its parameters bound.
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(sqlite_error(self.db, rc)),
        }
    }
}

impl Drop for StaticStatement {
    fn drop(&mut self) {
        // SAFETY: finalized once, while its connection is still open.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The error of a failed call on `db`, with SQLite's message.
fn sqlite_error(db: *mut rusqlite::ffi::sqlite3, rc: std::ffi::c_int) -> rusqlite::Error {
    use rusqlite::ffi;
    // SAFETY: a valid handle; the message is copied before the next call.
    let (code, message) = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        let m = (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned());
        (ffi::sqlite3_extended_errcode(db), m)
    };
    let code = if code == ffi::SQLITE_OK { rc } else { code };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

/// The tables, created if missing; `s` is the quoted statements table.
fn schema_sql(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS documents (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            format TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            source_uri TEXT NOT NULL,
            retrieved_at TEXT NOT NULL,
            document_id TEXT,
            revision TEXT,
            statements INTEGER NOT NULL,
            metadata TEXT,
            run_id TEXT NOT NULL,
            processed_at TEXT NOT NULL
        );
        -- Clustered by the spec's unique key, led by the ledger id, which
        -- grows: a bulk load appends, and a document's statements are one
        -- range (deleted in one step on --force and rollback).
        CREATE TABLE IF NOT EXISTS {s} (
            doc INTEGER NOT NULL REFERENCES documents (id),
            vulnerability_id TEXT NOT NULL,
            product_key TEXT NOT NULL,
            purl TEXT,
            aliases TEXT,
            status TEXT NOT NULL,
            justification TEXT,
            detail TEXT,
            action TEXT,
            severity TEXT,
            kev INTEGER,
            epss TEXT,
            metadata TEXT,
            PRIMARY KEY (doc, vulnerability_id, product_key)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS epss (
            id INTEGER PRIMARY KEY, -- cve_key(cve): a lossless integer key
            cve TEXT NOT NULL,
            epss_score REAL NOT NULL,
            percentile REAL,
            is_known_exploit INTEGER, -- NULL: no source said (reads as false)
            model_version TEXT,
            score_date TEXT,
            created_at INTEGER NOT NULL, -- µs since the epoch: 8 bytes, not 27
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS checkpoints (
            data_type TEXT NOT NULL,
            source TEXT NOT NULL,
            sequence TEXT NOT NULL,
            chunk TEXT NOT NULL,
            offset INTEGER NOT NULL DEFAULT 0,
            complete INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (data_type, source)
        );
        CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            arguments TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL,
            counters TEXT NOT NULL,
            error TEXT
        );"
    )
}

/// (layout version, has our tables, has statements table `name`), read in
/// one statement so that the answer is one consistent snapshot.
fn layout(conn: &Connection, name: &str) -> rusqlite::Result<(i64, bool, bool)> {
    conn.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version),
            EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'documents'),
            EXISTS (SELECT 1 FROM sqlite_schema WHERE name = ?1)",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Splits `rows` into runs for the many-row statement (`many` rows, where
/// `fits` accepts them) and single rows for the one-row statement.
fn statement_runs<T>(
    mut rows: &[T],
    many: usize,
    fits: impl Fn(&[T]) -> bool,
) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = if rows.len() >= many && fits(&rows[..many]) { many } else { 1 };
        let (run, rest) = rows.split_at(n);
        rows = rest;
        Some(run)
    })
}

/// Rows per statement `INSERT`, as for `epss` below.
const STATEMENT_ROWS_PER_INSERT: usize = 32;

/// Parameters per row in [`statement_insert_sql`].
const STATEMENT_PARAMS: usize = 11;

/// An insert of `rows` statement rows into table `s`. With `enrich`, `kev`
/// and `epss` come from the epss table (statements are enriched when EPSS
/// was synced first); otherwise they are left NULL, which saves two probes
/// per row while the epss table is empty.
fn statement_insert_sql(s: &str, rows: usize, enrich: bool) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p = |k: usize| format!("?{}", i * STATEMENT_PARAMS + k);
            let (kev, epss) = if enrich {
                (
                    KEV_OF_ROW.replace("vulnerability_id", &p(2)),
                    EPSS_OF_ROW.replace("vulnerability_id", &p(2)),
                )
            } else {
                ("NULL".to_owned(), "NULL".to_owned())
            };
            let params: Vec<String> = (1..=10).map(p).collect();
            format!("({}, {kev}, {epss}, {})", params.join(", "), p(11))
        })
        .collect();
    // `OR IGNORE` rather than `ON CONFLICT DO NOTHING`: a statement that
    // cannot abort needs no statement journal, which otherwise copies every
    // page a many-row INSERT touches. (No bound value is ever NULL for a
    // NOT NULL column, so only repeats of the unique key are ignored.)
    format!(
        "INSERT OR IGNORE INTO {s} (doc, vulnerability_id, product_key, purl, aliases, status,
            justification, detail, action, severity, kev, epss, metadata)
         VALUES {}",
        values.join(", ")
    )
}

/// Rows per `epss` upsert statement: one statement for many rows saves
/// most of the per-statement VDBE and binding overhead.
const EPSS_ROWS_PER_UPSERT: usize = 64;

/// Parameters per row in [`epss_upsert_sql`]; model version, score date
/// and `now` come after them all, once per statement.
const EPSS_PARAMS: usize = 5;

/// An upsert of `rows` epss rows. A `NULL` field keeps the stored value (a
/// FIRST CSV row carries no KEV flag, a GitLab row no percentile), and a
/// row whose values are all the same is left alone, so `updatedAt` only
/// moves on a real change.
fn epss_upsert_sql(rows: usize) -> String {
    let (model, date, now) =
        (rows * EPSS_PARAMS + 1, rows * EPSS_PARAMS + 2, rows * EPSS_PARAMS + 3);
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p = |k: usize| format!("?{}", i * EPSS_PARAMS + k);
            format!(
                "({}, {}, {}, {}, {}, ?{model}, ?{date}, ?{now}, ?{now})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            )
        })
        .collect();
    format!(
        // `OR IGNORE` for the other constraints, as for statements: no
        // statement journal. Key conflicts go to the `ON CONFLICT` clause.
        "INSERT OR IGNORE INTO epss (id, cve, epss_score, percentile, is_known_exploit,
            model_version, score_date, created_at, updated_at)
         VALUES {}
         ON CONFLICT (id) DO UPDATE SET
            epss_score = excluded.epss_score,
            percentile = coalesce(excluded.percentile, percentile),
            is_known_exploit = coalesce(excluded.is_known_exploit, is_known_exploit),
            model_version = coalesce(excluded.model_version, model_version),
            score_date = coalesce(excluded.score_date, score_date),
            updated_at = excluded.updated_at
         WHERE epss_score IS NOT excluded.epss_score
            OR (excluded.percentile IS NOT NULL AND percentile IS NOT excluded.percentile)
            OR (excluded.is_known_exploit IS NOT NULL
                AND coalesce(is_known_exploit, 0) IS NOT excluded.is_known_exploit)
            OR (excluded.model_version IS NOT NULL AND model_version IS NOT excluded.model_version)",
        values.join(", ")
    )
}

/// `signals.kev` of a statement row, from the epss table.
const KEV_OF_ROW: &str =
    "(SELECT coalesce(is_known_exploit, 0) FROM epss WHERE id = cve_key(vulnerability_id))";

/// `signals.epss` of a statement row, from the epss table.
const EPSS_OF_ROW: &str = "(SELECT json_object('score', epss_score, 'percentile', percentile,
    'date', score_date) FROM epss WHERE id = cve_key(vulnerability_id))";

/// Upserts a checkpoint (inside the caller's transaction).
fn save_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    cp: &Checkpoint,
    now: &str,
) -> rusqlite::Result<()> {
    let mut q = tx.prepare_cached(
        "INSERT INTO checkpoints (data_type, source, sequence, chunk, offset, complete, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (data_type, source) DO UPDATE SET sequence = excluded.sequence,
            chunk = excluded.chunk, offset = excluded.offset, complete = excluded.complete,
            updated_at = excluded.updated_at",
    )?;
    q.execute(params![
        cp.data_type,
        cp.source,
        cp.sequence,
        cp.chunk,
        cp.offset as i64,
        cp.complete,
        now
    ])?;
    Ok(())
}

fn err(path: &Path, context: &str, e: rusqlite::Error) -> Error {
    Error::Store {
        store: path.display().to_string(),
        context: context.to_owned(),
        cause: Box::new(e),
    }
}

/// Columns read by [`statement_row`], in its order, from statements `s`
/// joined with their ledger entry `d`. `firstSeen` and `lastSeen` are the
/// document's `retrievedAt`; `insertedAt` and `runId` are the ledger's.
const STATEMENT_COLUMNS: &str = "s.vulnerability_id, s.aliases, s.product_key, s.purl,
    d.provider_id, s.status, s.justification, s.detail, s.action, d.digest, d.format,
    d.source_uri, d.retrieved_at, d.document_id, d.revision, d.retrieved_at, d.retrieved_at,
    s.severity, s.kev, s.epss, s.metadata, d.processed_at, d.run_id";

/// One statement row in the logical (MongoDB) shape.
fn statement_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Json> {
    let kev: Option<i64> = r.get(18)?;
    Ok(json!({
        "vulnerabilityId": r.get::<_, String>(0)?,
        "aliases": json_text(r.get(1)?, json!([])),
        "productKey": r.get::<_, String>(2)?,
        "purl": r.get::<_, Option<String>>(3)?,
        "providerId": r.get::<_, String>(4)?,
        "status": r.get::<_, String>(5)?,
        "justification": r.get::<_, Option<String>>(6)?,
        "detail": r.get::<_, Option<String>>(7)?,
        "action": r.get::<_, Option<String>>(8)?,
        "document": {
            "digest": r.get::<_, String>(9)?,
            "format": r.get::<_, String>(10)?,
            "sourceUri": r.get::<_, String>(11)?,
            "retrievedAt": r.get::<_, String>(12)?,
            "documentId": r.get::<_, Option<String>>(13)?,
            "revision": r.get::<_, Option<String>>(14)?,
        },
        "firstSeen": r.get::<_, String>(15)?,
        "lastSeen": r.get::<_, String>(16)?,
        "signals": {
            "severity": r.get::<_, Option<String>>(17)?,
            "kev": kev.map(|k| k != 0),
            "epss": json_text(r.get(19)?, Json::Null),
        },
        "metadata": json_text(r.get(20)?, json!({})),
        "insertedAt": r.get::<_, String>(21)?,
        "runId": r.get::<_, String>(22)?,
    }))
}

/// One ledger row in the logical shape.
fn document_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Json> {
    Ok(json!({
        "digest": r.get::<_, String>(0)?,
        "format": r.get::<_, String>(1)?,
        "providerId": r.get::<_, String>(2)?,
        "sourceUri": r.get::<_, String>(3)?,
        "retrievedAt": r.get::<_, String>(4)?,
        "statements": r.get::<_, i64>(5)?,
        "metadata": json_text(r.get(6)?, Json::Null),
        "runId": r.get::<_, String>(7)?,
        "processedAt": r.get::<_, String>(8)?,
    }))
}

/// One `epss` row in the logical shape.
fn epss_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Json> {
    Ok(json!({
        "cve": r.get::<_, String>(0)?,
        "epssScore": r.get::<_, f64>(1)?,
        "percentile": r.get::<_, Option<f64>>(2)?,
        "isKnownExploit": r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0,
        "modelVersion": r.get::<_, Option<String>>(4)?,
        "scoreDate": r.get::<_, Option<String>>(5)?,
        "createdAt": format_timestamp(r.get(6)?),
        "updatedAt": format_timestamp(r.get(7)?),
    }))
}

fn json_text(s: Option<String>, empty: Json) -> Json {
    s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(empty)
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn record_run(&mut self, run: &RunRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (run_id, command, arguments, started_at, ended_at, status, counters, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,
                    status = excluded.status, counters = excluded.counters, error = excluded.error",
                params![
                    run.run_id,
                    run.command,
                    serde_json::to_string(&run.arguments).unwrap_or_default(),
                    run.started_at,
                    run.ended_at,
                    run.status.as_str(),
                    run.counters.to_string(),
                    run.error,
                ],
            )
            .map(drop)
            .map_err(|e| err(&self.path, "record run", e))?;
        if run.status != RunStatus::Running {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn begin_load(&mut self) -> Result<()> {
        // Into an empty store (a first full replay), building the lookup
        // indexes once at the end beats updating them at random per row.
        let s = &self.statements;
        let empty: bool = self
            .conn
            .query_row(&format!("SELECT NOT EXISTS (SELECT 1 FROM {s})"), [], |r| r.get(0))
            .map_err(|e| err(&self.path, "inspect statements", e))?;
        self.enrich_on_write = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM epss)", [], |r| r.get(0))
            .map_err(|e| err(&self.path, "inspect epss", e))?;
        if empty {
            for (name, _) in self.lookup_indexes() {
                self.conn
                    .execute_batch(&format!("DROP INDEX IF EXISTS {name}"))
                    .map_err(|e| err(&self.path, "defer indexes", e))?;
            }
        }
        Ok(())
    }

    fn end_load(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        self.create_lookup_indexes().map_err(|e| err(&self.path, "build indexes", e))?;
        let built = started.elapsed();
        self.checkpoint()?;
        tracing::debug!(?built, total = ?started.elapsed(), "Lookup indexes built, WAL checkpointed.");
        Ok(())
    }

    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let mut out = HashSet::new();
        let mut q = self
            .conn
            .prepare_cached("SELECT 1 FROM documents WHERE digest = ?1")
            .map_err(|e| err(&self.path, "read ledger", e))?;
        for d in digests {
            let hit = q
                .query_row([d.to_string()], |_| Ok(()))
                .optional()
                .map_err(|e| err(&self.path, "read ledger", e))?;
            if hit.is_some() {
                out.insert(*d);
            }
        }
        Ok(out)
    }

    fn write_documents(&mut self, docs: &[DocumentWrite], ctx: &WriteContext<'_>) -> Result<()> {
        self.start_checkpointer().map_err(|e| err(&self.path, "start checkpoints", e))?;
        self.write_tx(docs, ctx).map_err(|e| err(&self.path, "write batch", e))
    }

    fn find_statements(&mut self, vulnerability_id: &str, product: &str) -> Result<Vec<Json>> {
        let s = &self.statements;
        let sql = format!(
            "SELECT {STATEMENT_COLUMNS} FROM {s} s JOIN documents d ON d.id = s.doc
             WHERE s.vulnerability_id = ?1 AND (s.product_key = ?2 OR s.purl = ?2)
             ORDER BY d.retrieved_at, d.digest, s.product_key"
        );
        let mut q = self.conn.prepare(&sql).map_err(|e| err(&self.path, "query statements", e))?;
        let rows = q
            .query_map(params![vulnerability_id, product], statement_row)
            .map_err(|e| err(&self.path, "query statements", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| err(&self.path, "query statements", e))
    }

    fn export(&mut self, what: Export, each: &mut dyn FnMut(Json) -> Result<()>) -> Result<()> {
        let s = &self.statements;
        let sql = match what {
            Export::Statements => format!(
                "SELECT {STATEMENT_COLUMNS} FROM {s} s JOIN documents d ON d.id = s.doc
                 ORDER BY d.digest, s.vulnerability_id, s.product_key"
            ),
            Export::Documents => "SELECT digest, format, provider_id, source_uri, retrieved_at,
                    statements, metadata, run_id, processed_at FROM documents ORDER BY digest"
                .to_owned(),
            Export::Epss => "SELECT cve, epss_score, percentile, is_known_exploit, model_version,
                    score_date, created_at, updated_at FROM epss ORDER BY cve"
                .to_owned(),
        };
        let mut q = self.conn.prepare(&sql).map_err(|e| err(&self.path, "export", e))?;
        let mut rows = q.query([]).map_err(|e| err(&self.path, "export", e))?;
        while let Some(r) = rows.next().map_err(|e| err(&self.path, "export", e))? {
            let v = match what {
                Export::Statements => statement_row(r),
                Export::Documents => document_row(r),
                Export::Epss => epss_row(r),
            }
            .map_err(|e| err(&self.path, "export", e))?;
            each(v)?;
        }
        Ok(())
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        let mut q = self
            .conn
            .prepare(
                "SELECT run_id, command, arguments, started_at, ended_at, status, counters, error
                 FROM runs ORDER BY started_at, run_id",
            )
            .map_err(|e| err(&self.path, "list runs", e))?;
        let rows = q
            .query_map([], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    command: r.get(1)?,
                    arguments: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    started_at: r.get(3)?,
                    ended_at: r.get(4)?,
                    status: RunStatus::from_name(&r.get::<_, String>(5)?),
                    counters: json_text(r.get(6)?, Json::Null),
                    error: r.get(7)?,
                })
            })
            .map_err(|e| err(&self.path, "list runs", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| err(&self.path, "list runs", e))
    }

    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.start_checkpointer().map_err(|e| err(&self.path, "start checkpoints", e))?;
        self.epss_tx(rows, checkpoint, now).map_err(|e| err(&self.path, "write epss batch", e))
    }

    fn load_checkpoint(&mut self, data_type: &str, source: &str) -> Result<Option<Checkpoint>> {
        self.conn
            .query_row(
                "SELECT sequence, chunk, offset, complete FROM checkpoints
                 WHERE data_type = ?1 AND source = ?2",
                params![data_type, source],
                |r| {
                    Ok(Checkpoint {
                        data_type: data_type.to_owned(),
                        source: source.to_owned(),
                        sequence: r.get(0)?,
                        chunk: r.get(1)?,
                        offset: r.get::<_, i64>(2)? as u64,
                        complete: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| err(&self.path, "read checkpoint", e))
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        let s = &self.statements;
        // Same expressions as at write time, so a statement written after
        // the sync and one enriched later are identical.
        let (kev, epss) = (KEV_OF_ROW, EPSS_OF_ROW);
        self.conn
            .execute(
                &format!(
                    "UPDATE {s} SET kev = {kev}, epss = {epss}
                     WHERE kev IS NOT {kev} OR epss IS NOT {epss}"
                ),
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| err(&self.path, "enrich statements", e))
    }

    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        let (cond, a, b) = match scope {
            RollbackScope::Run(id) => ("run_id = ?1 AND ?2 IS NULL", id.clone(), None),
            RollbackScope::Inserted { since, until } => (
                "processed_at >= ?1 AND processed_at < ?2",
                format_timestamp(*since),
                Some(format_timestamp(*until)),
            ),
        };
        let s = self.statements.clone();
        let path = self.path.clone();
        let e = |e| err(&path, "rollback", e);
        let tx = self.conn.transaction().map_err(e)?;
        let digests: Vec<String> = {
            let mut q = tx
                .prepare(&format!("SELECT digest FROM documents WHERE {cond} ORDER BY digest"))
                .map_err(e)?;
            let rows = q.query_map(params![a, b], |r| r.get(0)).map_err(e)?;
            rows.collect::<rusqlite::Result<_>>().map_err(e)?
        };
        let in_scope = format!("doc IN (SELECT id FROM documents WHERE {cond})");
        let statements: i64 = tx
            .query_row(&format!("SELECT count(*) FROM {s} WHERE {in_scope}"), params![a, b], |r| {
                r.get(0)
            })
            .map_err(e)?;
        if !dry_run {
            tx.execute(&format!("DELETE FROM {s} WHERE {in_scope}"), params![a, b]).map_err(e)?;
            tx.execute(&format!("DELETE FROM documents WHERE {cond}"), params![a, b]).map_err(e)?;
            tx.commit().map_err(e)?;
        }
        Ok(RollbackReport { statements: statements as u64, digests })
    }

    fn stats(&mut self) -> Result<Json> {
        let s = self.statements.clone();
        let path = self.path.clone();
        let e = |e| err(&path, "stats", e);
        let group = |conn: &Connection, sql: &str| -> rusqlite::Result<Json> {
            let mut q = conn.prepare(sql)?;
            let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut m = serde_json::Map::new();
            for row in rows {
                let (k, n) = row?;
                m.insert(k, n.into());
            }
            Ok(Json::Object(m))
        };
        let count = |conn: &Connection, sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let c = &self.conn;
        let checkpoints = {
            let mut q = c
                .prepare(
                    "SELECT data_type, source, sequence, chunk, offset, complete, updated_at
                     FROM checkpoints ORDER BY data_type, source",
                )
                .map_err(e)?;
            let rows = q
                .query_map([], |r| {
                    Ok(json!({
                        "dataType": r.get::<_, String>(0)?,
                        "source": r.get::<_, String>(1)?,
                        "sequence": r.get::<_, String>(2)?,
                        "chunk": r.get::<_, String>(3)?,
                        "offset": r.get::<_, i64>(4)?,
                        "complete": r.get::<_, bool>(5)?,
                        "updatedAt": r.get::<_, String>(6)?,
                    }))
                })
                .map_err(e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)?
        };
        Ok(json!({
            "statements": count(c, &format!("SELECT count(*) FROM {s}")).map_err(e)?,
            "byProvider": group(c, &format!(
                "SELECT d.provider_id, count(*) FROM {s} s JOIN documents d ON d.id = s.doc
                 GROUP BY 1 ORDER BY 1")).map_err(e)?,
            "byStatus": group(c, &format!("SELECT status, count(*) FROM {s} GROUP BY 1 ORDER BY 1"))
                .map_err(e)?,
            "byFormat": group(c, &format!(
                "SELECT d.format, count(*) FROM {s} s JOIN documents d ON d.id = s.doc
                 GROUP BY 1 ORDER BY 1")).map_err(e)?,
            "documents": count(c, "SELECT count(*) FROM documents").map_err(e)?,
            "epss": {
                "rows": count(c, "SELECT count(*) FROM epss").map_err(e)?,
                "knownExploited": count(c, "SELECT count(*) FROM epss WHERE is_known_exploit")
                    .map_err(e)?,
            },
            "checkpoints": checkpoints,
            "runs": group(c, "SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 1").map_err(e)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_statements_store_what_was_bound_and_report_errors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c TEXT NOT NULL)")
            .unwrap();
        // SAFETY (here and below): `conn` outlives the statements.
        let mut insert = unsafe {
            StaticStatement::prepare(&conn, "INSERT INTO t VALUES (?1, ?2, ?3), (?4, ?5, ?6)")
        }
        .unwrap();
        for round in 0..3i64 {
            // Values that are freed right after `execute`: SQLite must have
            // copied what it stored.
            let texts: Vec<String> = (0..2).map(|i| format!("text {round} {i}")).collect();
            insert
                .execute(&[
                    Bind::Int(round * 2),
                    Bind::Text(&texts[0]),
                    Bind::Text(""),
                    Bind::Int(round * 2 + 1),
                    Bind::Null,
                    Bind::Text(&texts[1]),
                ])
                .unwrap();
        }
        let rows: Vec<(i64, Option<String>, String)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[4], (4, Some("text 2 0".into()), String::new()));
        assert_eq!(rows[5], (5, None, "text 2 1".into()));
        // A failed execute leaves the statement reusable.
        let e = insert
            .execute(&[
                Bind::Int(7),
                Bind::Null,
                Bind::Null,
                Bind::Int(8),
                Bind::Null,
                Bind::Text("x"),
            ])
            .unwrap_err();
        assert!(e.to_string().contains("NOT NULL constraint failed: t.c"), "{e}");
        insert
            .execute(&[
                Bind::Int(7),
                Bind::Null,
                Bind::Text("y"),
                Bind::Int(8),
                Bind::Null,
                Bind::Text("z"),
            ])
            .unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 8);
        let bad = unsafe { StaticStatement::prepare(&conn, "INSERT INTO nowhere VALUES (1)") }
            .err()
            .unwrap();
        assert!(bad.to_string().contains("no such table: nowhere"), "{bad}");
    }

    #[test]
    fn a_file_with_another_layout_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // What the first layout (no user_version) left behind.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE documents (id INTEGER PRIMARY KEY, digest TEXT)")
            .unwrap();
        let e = SqliteStore::open(&path, &StoreOptions::default()).err().unwrap().to_string();
        assert!(e.contains("old.db") && e.contains("table layout 0"), "{e}");
        // A new file gets the current layout, and opens again.
        let new = dir.path().join("new.db");
        drop(SqliteStore::open(&new, &StoreOptions::default()).unwrap());
        let store = SqliteStore::open(&new, &StoreOptions::default()).unwrap();
        let v: i64 = store.connection().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, LAYOUT_VERSION);
    }

    #[test]
    fn connections_creating_one_new_file_together_all_succeed() {
        // Shards of one run open a new file at the same moment; none may
        // see half a schema (tables without their layout version).
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("new{round}.db"));
            let barrier = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        barrier.wait();
                        SqliteStore::open(&path, &StoreOptions::default()).unwrap();
                    });
                }
            });
        }
    }

    #[test]
    fn epss_rows_in_multi_row_statements_count_and_keep_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(dir.path().join("e.db"), &StoreOptions::default()).unwrap();
        // More rows than one statement takes, and a remainder.
        let n = EPSS_ROWS_PER_UPSERT * 3 + 5;
        let rows: Vec<EpssRow> = (0..n)
            .map(|i| EpssRow {
                cve: crate::epss::CveId::parse(&format!("CVE-2024-{:05}", n - i)).unwrap(),
                epss_score: 0.5,
                percentile: None,
                is_known_exploit: Some(i % 2 == 0),
                model_version: None,
                score_date: None,
            })
            .collect();
        let c = store.write_epss(&rows, None, 1_000_000).unwrap();
        assert_eq!((c.upserted, c.unchanged), (n as u64, 0));
        // Same values: nothing changes. A CSV row (no KEV flag) with a new
        // score changes only the score and keeps the flag.
        let c = store.write_epss(&rows, None, 2_000_000).unwrap();
        assert_eq!((c.upserted, c.unchanged), (0, n as u64));
        let csv = EpssRow {
            epss_score: 0.25,
            is_known_exploit: None,
            percentile: Some(0.75),
            ..rows[0].clone()
        };
        let c = store.write_epss(&[csv], None, 3_000_000).unwrap();
        assert_eq!((c.upserted, c.unchanged), (1, 0));
        let mut got = Vec::new();
        store
            .export(Export::Epss, &mut |j| {
                got.push(j);
                Ok(())
            })
            .unwrap();
        assert_eq!(got.len(), n);
        let first = got.iter().find(|j| j["cve"] == rows[0].cve.as_str()).unwrap();
        assert_eq!(first["epssScore"], 0.25);
        assert_eq!(first["percentile"], 0.75);
        assert_eq!(first["isKnownExploit"], true);
        assert_eq!(first["createdAt"], "1970-01-01T00:00:01.000000Z");
        assert_eq!(first["updatedAt"], "1970-01-01T00:00:03.000000Z");
        let second = got.iter().find(|j| j["cve"] == rows[1].cve.as_str()).unwrap();
        assert_eq!(second["isKnownExploit"], false);
        assert_eq!(second["updatedAt"], "1970-01-01T00:00:01.000000Z");

        // A whole file shares model version and score date (bound once per
        // statement); a row in the middle with its own date keeps it.
        let dated: Vec<EpssRow> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| EpssRow {
                epss_score: 0.125,
                model_version: Some("v2026.06.15".into()),
                score_date: Some(if i == 70 { "2026-09-30" } else { "2026-09-29" }.into()),
                ..r.clone()
            })
            .collect();
        let c = store.write_epss(&dated, None, 4_000_000).unwrap();
        assert_eq!((c.upserted, c.unchanged), (n as u64, 0));
        let mut dates = std::collections::BTreeMap::new();
        store
            .export(Export::Epss, &mut |j| {
                assert_eq!(j["modelVersion"], "v2026.06.15");
                *dates.entry(j["scoreDate"].as_str().unwrap().to_owned()).or_insert(0) += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(dates.get("2026-09-30"), Some(&1));
        assert_eq!(dates.get("2026-09-29"), Some(&(n - 1)));
    }
}
