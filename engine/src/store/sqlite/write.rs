//! Writes: statements with their ledger entries, EPSS rows, runs and
//! checkpoints, the SQL they run, and the deletes and updates of `Admin`.

use rusqlite::{params, Connection, OptionalExtension};

use super::bind::{Bind, StaticStatement};
use super::texts::{Stored, Texts};
use super::{err, SqliteStore};
use crate::error::Result;
use crate::normalize::Claim;
use crate::parse::DocumentWrite;
use crate::store::{
    BatchOutcome, Checkpoint, ContentIdentity, EpssRow, RollbackReport, RollbackScope, RunRecord,
    RunStatus, UpsertCounts, WriteContext,
};
use crate::time::{format_instant, format_timestamp};

impl SqliteStore {
    /// Writes one batch in one transaction: ledger entries first (their
    /// ids key the statements), then every statement of the batch, many
    /// rows per INSERT, then the run's checkpoint and record.
    pub(super) fn write_tx(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> rusqlite::Result<BatchOutcome> {
        self.prepare_inserts()?;
        let inserts = self.inserts.as_mut().expect("prepared above");
        let texts = &mut self.texts;
        let tx = self.conn.transaction()?;
        let mut outcome = BatchOutcome::default();
        let written = (|| {
            let inserted_at = format_timestamp(ctx.inserted_at);
            let (rows, elsewhere) =
                write_ledger_entries(&tx, &self.statements, docs, ctx, &inserted_at, texts)?;
            outcome.recorded_elsewhere = elsewhere;
            inserts.insert(&rows)?;
            if let Some(cp) = ctx.checkpoint {
                save_checkpoint(&tx, cp, &inserted_at)?;
            }
            if let Some(run) = ctx.run {
                save_run(&tx, run)?;
            }
            Ok(())
        })()
        .and_then(|()| tx.commit());
        // Texts added by a transaction that did not commit are not there.
        match written {
            Ok(()) => texts.committed(),
            Err(_) => texts.rolled_back(),
        }
        written.map(|()| outcome)
    }

    /// Prepares the statement inserts, unless they are prepared already
    /// for the current `enrich_on_write`.
    fn prepare_inserts(&mut self) -> rusqlite::Result<()> {
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
        Ok(())
    }

    /// Upserts `rows` and saves `checkpoint` in one transaction.
    pub(super) fn epss_tx(
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

    /// Deletes the checkpoints of `source` (of `data_type` only, if
    /// given); returns how many.
    pub(super) fn delete_checkpoints(
        &mut self,
        source: &str,
        data_type: Option<&str>,
    ) -> Result<u64> {
        // `?2 IS NULL` matches every data type: one statement either way.
        self.conn
            .execute(
                "DELETE FROM checkpoints WHERE source = ?1 AND (?2 IS NULL OR data_type = ?2)",
                params![source, data_type],
            )
            .map(|n| n as u64)
            .map_err(|e| err(&self.path, "remove checkpoints", e))
    }

    /// Saves `run`; when it has ended, also moves the WAL into the main
    /// file.
    pub(super) fn save_run_record(&mut self, run: &RunRecord) -> Result<()> {
        save_run(&self.conn, run).map_err(|e| err(&self.path, "record run", e))?;
        if run.status != RunStatus::Running {
            // The record is committed; the flush only moves the WAL into
            // the main file, and the next open finishes it if this fails (a
            // full disk, say).
            if let Err(e) = self.flush_wal() {
                tracing::warn!(error = %e, "Could not flush the WAL after the run.");
            }
        }
        Ok(())
    }

    /// Before a run writes: decides whether statements are enriched on
    /// write, and defers the lookup indexes when the store is empty.
    pub(super) fn prepare_load(&mut self) -> Result<()> {
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
            self.defer_lookup_indexes().map_err(|e| err(&self.path, "defer indexes", e))?;
        }
        Ok(())
    }

    /// After a run's last batch: builds the lookup indexes and moves the
    /// WAL into the main file.
    pub(super) fn finish_load(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        self.create_lookup_indexes().map_err(|e| err(&self.path, "build indexes", e))?;
        let built = started.elapsed();
        self.flush_wal()?;
        tracing::debug!(?built, total = ?started.elapsed(), "Lookup indexes built, WAL flushed.");
        Ok(())
    }

    /// Deletes (or with `dry_run` only counts) the statements and ledger
    /// entries in `scope`, in one transaction.
    pub(super) fn delete_scope(
        &mut self,
        scope: &RollbackScope,
        dry_run: bool,
    ) -> Result<RollbackReport> {
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

    /// Sets every statement's `kev` and `epss` from the epss table.
    pub(super) fn enrich_from_epss(&mut self) -> Result<u64> {
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
}

/// One row of [`statement_insert_sql`]: a claim, its ledger id, and its
/// text columns as stored (`None` when empty; aliases and metadata as JSON
/// text).
struct StatementRow<'a> {
    doc: i64,
    claim: &'a Claim,
    aliases: Option<Text<'a>>,
    detail: Option<Text<'a>>,
    action: Option<Text<'a>>,
    metadata: Option<Text<'a>>,
}

/// A text column's value: the text, or the id of its row in `texts`.
enum Text<'a> {
    Borrowed(&'a str),
    Owned(String),
    Id(i64),
}

impl Text<'_> {
    fn bind(&self) -> Bind<'_> {
        match self {
            Text::Borrowed(s) => Bind::Text(s),
            Text::Owned(s) => Bind::Text(s),
            Text::Id(id) => Bind::Int(*id),
        }
    }
}

/// `text` as stored: short ones in the row, long ones once in `texts`.
fn stored<'a>(
    conn: &Connection,
    texts: &mut Texts,
    text: Option<&'a str>,
) -> rusqlite::Result<Option<Text<'a>>> {
    Ok(match texts.store(conn, text)? {
        None => None,
        Some(Stored::Inline(s)) => Some(Text::Borrowed(s)),
        Some(Stored::Id(id)) => Some(Text::Id(id)),
    })
}

/// A JSON text built for one row, as stored.
fn stored_owned(
    conn: &Connection,
    texts: &mut Texts,
    text: Option<String>,
) -> rusqlite::Result<Option<Text<'static>>> {
    Ok(match text {
        None => None,
        Some(s) => match texts.store(conn, Some(&s))? {
            Some(Stored::Id(id)) => Some(Text::Id(id)),
            _ => Some(Text::Owned(s)),
        },
    })
}

/// The two statement inserts of [`statement_insert_sql`] (many rows, one
/// row), prepared once per connection and kind.
pub(super) struct StatementInserts {
    enrich: bool,
    many: StaticStatement,
    one: StaticStatement,
}

impl StatementInserts {
    /// Inserts `rows`, many per statement, the rest one by one.
    fn insert<'r>(&mut self, rows: &'r [StatementRow<'_>]) -> rusqlite::Result<()> {
        let mut binds: Vec<Bind<'_>> =
            Vec::with_capacity(STATEMENT_ROWS_PER_INSERT * STATEMENT_PARAMS);
        for part in statement_runs(rows, STATEMENT_ROWS_PER_INSERT, |_| true) {
            binds.clear();
            let text = |t: &'r Option<Text<'_>>| t.as_ref().map_or(Bind::Null, Text::bind);
            for StatementRow { doc: id, claim: c, aliases, detail, action, metadata } in part {
                binds.extend([
                    Bind::Int(*id),
                    Bind::Text(&c.vulnerability_id),
                    Bind::Text(&c.product_key),
                    c.purl.as_deref().into(),
                    text(aliases),
                    Bind::Text(c.status.as_str()),
                    c.justification.map(|j| j.as_str()).into(),
                    text(detail),
                    text(action),
                    c.severity.as_deref().into(),
                    text(metadata),
                ]);
            }
            let insert = if part.len() == 1 { &mut self.one } else { &mut self.many };
            insert.execute(&binds)?;
        }
        Ok(())
    }
}

/// Writes the ledger entries of `docs` and returns their statements as
/// rows, and the positions of the documents whose entry another run wrote
/// (see [`write_ledger`]).
fn write_ledger_entries<'d>(
    tx: &rusqlite::Transaction<'_>,
    statements: &str,
    docs: &'d [DocumentWrite],
    ctx: &WriteContext<'_>,
    inserted_at: &str,
    texts: &mut Texts,
) -> rusqlite::Result<(Vec<StatementRow<'d>>, Vec<usize>)> {
    let mut rows: Vec<StatementRow<'d>> = Vec::new();
    let mut elsewhere = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let Some(id) = write_ledger(tx, statements, doc, ctx, inserted_at)? else {
            elsewhere.push(i);
            continue;
        };
        rows.reserve(doc.claims.len());
        for c in &doc.claims {
            // Empty lists and maps are stored as NULL (read back as [] and
            // {}): most statements have none.
            let aliases = (!c.aliases.is_empty())
                .then(|| serde_json::to_string(&c.aliases).unwrap_or_default());
            rows.push(StatementRow {
                doc: id,
                claim: c,
                aliases: stored_owned(tx, texts, aliases)?,
                detail: stored(tx, texts, c.detail.as_deref())?,
                action: stored(tx, texts, c.action.as_deref())?,
                metadata: {
                    let encoded = texts.metadata(tx, &c.metadata.iter().collect::<Vec<_>>())?;
                    stored_owned(tx, texts, encoded)?
                },
            });
        }
    }
    Ok((rows, elsewhere))
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

/// Writes `doc`'s ledger entry and returns its id, or `None` when another
/// run wrote the entry first (without `force`; that run wrote its
/// statements too). With `force` the entry is replaced and its old
/// statements deleted.
fn write_ledger(
    tx: &rusqlite::Transaction<'_>,
    statements: &str,
    doc: &DocumentWrite,
    ctx: &WriteContext<'_>,
    inserted_at: &str,
) -> rusqlite::Result<Option<i64>> {
    // A new document (the usual case) takes the plain insert, which cannot
    // abort and so needs no statement journal (a copy of the ledger pages
    // it touches); a known one under `--force` the upsert.
    let mut ledger_new = tx.prepare_cached(
        "INSERT OR IGNORE INTO documents (digest, format, provider_id, source_uri,
            retrieved_at, document_id, revision, statements, metadata, run_id,
            processed_at, dropped)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         RETURNING id",
    )?;
    let dropped =
        (!doc.dropped.is_empty()).then(|| serde_json::to_string(&doc.dropped).unwrap_or_default());
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
        dropped,
    ];
    if let Some(id) = ledger_new.query_row(values, |r| r.get(0)).optional()? {
        return Ok(Some(id));
    }
    if !ctx.force {
        return Ok(None);
    }
    let mut ledger = tx.prepare_cached(
        "INSERT INTO documents (digest, format, provider_id, source_uri, retrieved_at,
            document_id, revision, statements, metadata, run_id, processed_at, dropped)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (digest) DO UPDATE SET format = excluded.format,
            provider_id = excluded.provider_id, source_uri = excluded.source_uri,
            retrieved_at = excluded.retrieved_at, document_id = excluded.document_id,
            revision = excluded.revision, statements = excluded.statements,
            metadata = excluded.metadata, run_id = excluded.run_id,
            processed_at = excluded.processed_at, dropped = excluded.dropped
         RETURNING id",
    )?;
    let id: i64 = ledger.query_row(values, |r| r.get(0))?;
    tx.prepare_cached(&format!("DELETE FROM {statements} WHERE doc = ?1"))?.execute([id])?;
    Ok(Some(id))
}

/// Upserts a run record. An `abandoned` record only replaces a `running`
/// one: a run that ended while another command found it silent keeps its
/// own end.
fn save_run(conn: &Connection, run: &RunRecord) -> rusqlite::Result<()> {
    let mut q = conn.prepare_cached(
        "INSERT INTO runs (run_id, command, arguments, started_at, ended_at, status, counters,
            error, owner, heartbeat_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,
            status = excluded.status, counters = excluded.counters, error = excluded.error,
            owner = excluded.owner, heartbeat_at = excluded.heartbeat_at
         WHERE excluded.status != 'abandoned' OR runs.status = 'running'",
    )?;
    q.execute(params![
        run.run_id,
        run.command,
        serde_json::to_string(&run.arguments).unwrap_or_default(),
        run.started_at,
        run.ended_at,
        run.status.as_str(),
        run.counters.to_string(),
        run.error,
        run.owner.as_ref().and_then(|o| serde_json::to_string(o).ok()),
        run.heartbeat_at,
    ])?;
    Ok(())
}

/// Upserts a checkpoint (inside the caller's transaction).
fn save_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    cp: &Checkpoint,
    now: &str,
) -> rusqlite::Result<()> {
    let mut q = tx.prepare_cached(
        "INSERT INTO checkpoints (data_type, source, sequence, chunk, offset, complete, updated_at,
            file_size, file_mtime_ns, content_xxh3)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (data_type, source) DO UPDATE SET sequence = excluded.sequence,
            chunk = excluded.chunk, offset = excluded.offset, complete = excluded.complete,
            updated_at = excluded.updated_at, file_size = excluded.file_size,
            file_mtime_ns = excluded.file_mtime_ns, content_xxh3 = excluded.content_xxh3",
    )?;
    let id = cp.identity.as_ref();
    q.execute(params![
        cp.data_type,
        cp.source,
        cp.sequence,
        cp.chunk,
        cp.offset as i64,
        cp.complete,
        now,
        id.map(|i| i64::try_from(i.size).unwrap_or(i64::MAX)),
        id.map(|i| i.mtime_ns),
        id.map(ContentIdentity::xxh3_hex),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EpssSink, Export, Queries, StoreOptions};

    #[test]
    fn epss_rows_in_multi_row_statements_count_and_keep_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(dir.path().join("e.db"), &StoreOptions::default()).unwrap();
        // More rows than one statement takes, and a remainder.
        let n = EPSS_ROWS_PER_UPSERT * 3 + 5;
        let rows: Vec<EpssRow> = (0..n)
            .map(|i| EpssRow {
                cve: crate::cve::CveId::parse(&format!("CVE-2024-{:05}", n - i)).unwrap(),
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
                got.push(serde_json::to_value(j).unwrap());
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
                let j = serde_json::to_value(j).unwrap();
                assert_eq!(j["modelVersion"], "v2026.06.15");
                *dates.entry(j["scoreDate"].as_str().unwrap().to_owned()).or_insert(0) += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(dates.get("2026-09-30"), Some(&1));
        assert_eq!(dates.get("2026-09-29"), Some(&(n - 1)));
    }
}
