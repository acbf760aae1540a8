//! Writes: statements with their ledger entries, EPSS rows, runs and
//! checkpoints, and the deletes and updates of `Admin`.
//!
//! A statements batch is one transaction: the ledger entries (one
//! `INSERT … SELECT FROM unnest(…)`), the statements (binary `COPY` into
//! a temporary staging table, then one `INSERT … SELECT` that also reads
//! their signals from `epss`), the run's checkpoint and its record. An
//! EPSS batch is one transaction too: the rows new to the table by binary
//! `COPY` straight into it, the others by `COPY` into a temporary staging
//! table and one `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE
//! <changed>`, and the checkpoint. A retry redoes the whole transaction.

use std::collections::HashSet;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Transaction};
use roaring::RoaringTreemap;
use serde_json::Value as Json;

use super::text::{store, store_json, store_opt};
use super::{EpssKeys, PostgresStore};
use crate::error::Result;
use crate::parse::DocumentWrite;
use crate::store::{
    BatchOutcome, Checkpoint, ContentIdentity, EpssRow, RollbackReport, RollbackScope, RunRecord,
    UpsertCounts, WriteContext,
};
use crate::time::{format_instant, format_timestamp};

/// The staging table's columns, in COPY order, with their types.
const STAGING: &[(&str, Type)] = &[
    ("digest", Type::TEXT),
    ("vulnerability_id", Type::TEXT),
    ("product_key", Type::TEXT),
    ("cve_key", Type::INT8),
    ("purl", Type::TEXT),
    ("aliases", Type::JSONB),
    ("status", Type::TEXT),
    ("justification", Type::TEXT),
    ("detail", Type::TEXT),
    ("action", Type::TEXT),
    ("severity", Type::TEXT),
    ("metadata", Type::JSONB),
];

/// `signals.kev` and `signals.epss` of statement row `t` from its `epss`
/// row `e` (joined on `cve_key`), by [`crate::model::signals_of`]: none
/// without a row, a row without a KEV flag reads as not listed.
const SIGNALS_OF_ROW: &str = "CASE WHEN e.cve IS NULL THEN NULL
        ELSE coalesce(e.is_known_exploit, false) END,
    CASE WHEN e.cve IS NULL THEN NULL
        ELSE jsonb_build_object('score', e.epss_score, 'percentile', e.percentile,
            'date', e.score_date) END";

/// The ledger columns of a batch, one vector per column (for `unnest`).
#[derive(Default)]
struct LedgerColumns<'a> {
    digest: Vec<String>,
    format: Vec<&'a str>,
    provider_id: Vec<std::borrow::Cow<'a, str>>,
    source_uri: Vec<std::borrow::Cow<'a, str>>,
    retrieved_at: Vec<String>,
    document_id: Vec<Option<std::borrow::Cow<'a, str>>>,
    revision: Vec<Option<std::borrow::Cow<'a, str>>>,
    statements: Vec<i64>,
    metadata: Vec<Option<Json>>,
    dropped: Vec<Option<Json>>,
}

impl<'a> LedgerColumns<'a> {
    fn of(docs: &'a [DocumentWrite]) -> LedgerColumns<'a> {
        let mut c = LedgerColumns::default();
        for d in docs {
            c.digest.push(d.digest.to_string());
            c.format.push(d.format.as_str());
            c.provider_id.push(store(&d.provider_id));
            c.source_uri.push(store(&d.source_uri));
            c.retrieved_at.push(format_instant(d.retrieved_at));
            c.document_id.push(store_opt(d.document_id.as_deref()));
            c.revision.push(store_opt(d.revision.as_deref()));
            c.statements.push(d.claims.len() as i64);
            c.metadata.push(
                d.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).map(store_json),
            );
            c.dropped.push(
                (!d.dropped.is_empty()).then(|| serde_json::to_value(d.dropped).ok()).flatten(),
            );
        }
        c
    }
}

impl PostgresStore {
    /// Writes one batch in one transaction (see the module doc).
    pub(super) fn write_tx(
        &mut self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome> {
        let inserted_at = format_timestamp(ctx.inserted_at);
        let ledger = LedgerColumns::of(docs);
        let insert = self.statement_insert_sql();
        let staging = staging_sql();
        let s = &self.statements;
        self.conn.run("write batch", |c| {
            let mut tx = c.transaction()?;
            let written = write_ledger(&mut tx, &ledger, ctx, &inserted_at, s)?;
            let outcome = BatchOutcome {
                recorded_elsewhere: (0..docs.len())
                    .filter(|&i| !written.contains(&ledger.digest[i]))
                    .collect(),
            };
            tx.batch_execute(&staging)?;
            copy_statements(&mut tx, docs, &ledger.digest, &written)?;
            insert_statements(&mut tx, &insert)?;
            if let Some(cp) = ctx.checkpoint {
                save_checkpoint(&mut tx, cp, &inserted_at)?;
            }
            if let Some(run) = ctx.run {
                save_run(&mut tx, run)?;
            }
            tx.commit()?;
            Ok(outcome)
        })
    }

    /// The insert from the staging table into the statements table, with
    /// signals from `epss` unless the run started with none; without its
    /// conflict clause (see [`insert_statements`]).
    fn statement_insert_sql(&self) -> String {
        let columns: Vec<&str> = STAGING.iter().map(|(c, _)| *c).collect();
        let (signals, join) = if self.enrich_on_write {
            (SIGNALS_OF_ROW, "LEFT JOIN vex.epss e ON e.cve_key = t.cve_key")
        } else {
            ("NULL, NULL", "")
        };
        format!(
            "INSERT INTO {s} ({cols}, kev, epss)
             SELECT {tcols}, {signals} FROM pg_temp.backfill_staging t {join}",
            s = self.statements,
            cols = columns.join(", "),
            tcols = columns.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", "),
        )
    }

    /// Upserts `rows` by the change rule and saves `checkpoint`, in one
    /// transaction.
    pub(super) fn epss_tx(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        if matches!(self.epss_keys, EpssKeys::Unread) && !rows.is_empty() {
            self.epss_keys = EpssKeys::Known(self.stored_epss_keys()?);
        }
        // In key order, so that concurrent syncs lock rows in one order.
        let mut sorted: Vec<&EpssRow> = rows.iter().collect();
        sorted.sort_unstable_by(|a, b| a.cve.as_str().cmp(b.cve.as_str()));
        let saved_at = format_timestamp(now);
        let keys = match &self.epss_keys {
            EpssKeys::Known(keys) => Some(keys),
            _ => None,
        };
        let (changed, shared) = self.conn.run("write epss batch", |c| {
            let mut tx = c.transaction()?;
            let changed = if rows.is_empty() {
                (0, false)
            } else {
                upsert_epss(&mut tx, &sorted, keys, now)?
            };
            if let Some(cp) = checkpoint {
                save_checkpoint(&mut tx, cp, &saved_at)?;
            }
            tx.commit()?;
            Ok(changed)
        })?;
        match &mut self.epss_keys {
            // Another writer is adding rows: merge from now on.
            _ if shared => self.epss_keys = EpssKeys::Shared,
            EpssKeys::Known(keys) => keys.extend(rows.iter().map(|r| r.cve.key() as u64)),
            _ => {}
        }
        Ok(UpsertCounts { upserted: changed, unchanged: rows.len() as u64 - changed })
    }

    /// The CVE keys of every row in `vex.epss`, streamed.
    fn stored_epss_keys(&mut self) -> Result<RoaringTreemap> {
        self.conn.run("read the stored CVE keys", |c| {
            let mut keys = RoaringTreemap::new();
            let mut rows =
                c.query_raw("SELECT cve_key FROM vex.epss", std::iter::empty::<i64>())?;
            while let Some(row) = rows.next()? {
                keys.insert(row.get::<_, i64>(0) as u64);
            }
            Ok(keys)
        })
    }

    /// Deletes the checkpoints of `source` (of `data_type` only, if
    /// given); returns how many.
    pub(super) fn delete_checkpoints(
        &mut self,
        source: &str,
        data_type: Option<&str>,
    ) -> Result<u64> {
        self.conn.run("remove checkpoints", |c| {
            c.execute(
                "DELETE FROM vex.checkpoints
                 WHERE source = $1 AND ($2::text IS NULL OR data_type = $2)",
                &[&source, &data_type],
            )
        })
    }

    /// Saves `run`.
    pub(super) fn save_run_record(&mut self, run: &RunRecord) -> Result<()> {
        self.conn.run("record run", |c| save_run(c, run))
    }

    /// Deletes (or with `dry_run` only counts) the statements and ledger
    /// entries in `scope`, in one transaction.
    pub(super) fn delete_scope(
        &mut self,
        scope: &RollbackScope,
        dry_run: bool,
    ) -> Result<RollbackReport> {
        let (cond, a, b) = match scope {
            RollbackScope::Run(id) => ("run_id = $1 AND $2::text IS NULL", id.clone(), None),
            RollbackScope::Inserted { since, until } => (
                "processed_at >= $1 AND processed_at < $2",
                format_timestamp(*since),
                Some(format_timestamp(*until)),
            ),
        };
        let s = self.statements.clone();
        self.conn.run("rollback", |c| {
            let mut tx = c.transaction()?;
            let digests: Vec<String> = tx
                .query(
                    &format!("SELECT digest FROM vex.documents WHERE {cond} ORDER BY digest"),
                    &[&a, &b],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let in_scope = format!("digest IN (SELECT digest FROM vex.documents WHERE {cond})");
            let statements: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {s} WHERE {in_scope}"), &[&a, &b])?
                .get(0);
            if !dry_run {
                tx.execute(&format!("DELETE FROM {s} WHERE {in_scope}"), &[&a, &b])?;
                tx.execute(&format!("DELETE FROM vex.documents WHERE {cond}"), &[&a, &b])?;
                tx.commit()?;
            }
            Ok(RollbackReport { statements: statements as u64, digests: digests.clone() })
        })
    }

    /// Sets every statement's `kev` and `epss` from the epss table, by the
    /// same expressions as at write time.
    pub(super) fn enrich_from_epss(&mut self) -> Result<u64> {
        let s = &self.statements;
        let sql = format!(
            "UPDATE {s} u SET kev = v.kev, epss = v.epss
             FROM (SELECT t.digest, t.vulnerability_id, t.product_key, {SIGNALS_OF_ROW}
                   FROM {s} t LEFT JOIN vex.epss e ON e.cve_key = t.cve_key)
                  AS v (digest, vulnerability_id, product_key, kev, epss)
             WHERE u.digest = v.digest AND u.vulnerability_id = v.vulnerability_id
                AND u.product_key = v.product_key
                AND (u.kev IS DISTINCT FROM v.kev OR u.epss IS DISTINCT FROM v.epss)"
        );
        self.conn.run("enrich statements", |c| c.execute(&sql, &[]))
    }
}

/// Runs the statements insert. Its rows belong to documents whose ledger
/// entries this transaction has just written, so none is stored yet: a
/// plain insert, without the arbiter check and speculative insertion of
/// `ON CONFLICT DO NOTHING`, which is kept for the case where a row is
/// there after all (then, back at the savepoint, it is run with it).
fn insert_statements(
    tx: &mut Transaction<'_>,
    insert: &str,
) -> std::result::Result<(), postgres::Error> {
    let mut sp = tx.transaction()?;
    match sp.execute(insert, &[]) {
        Ok(_) => sp.commit(),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            drop(sp);
            tx.execute(&format!("{insert} ON CONFLICT DO NOTHING"), &[]).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Creates the session's staging table for statements, if missing; its
/// rows go at commit.
fn staging_sql() -> String {
    let columns: Vec<String> = STAGING
        .iter()
        .map(|(name, ty)| {
            let ty = if *ty == Type::INT8 { "bigint" } else { ty.name() };
            format!("{name} {ty}")
        })
        .collect();
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS backfill_staging ({}) ON COMMIT DELETE ROWS",
        columns.join(", ")
    )
}

/// Copies the statements of the documents in `written` into the staging
/// table, in binary.
fn copy_statements(
    tx: &mut Transaction<'_>,
    docs: &[DocumentWrite],
    digests: &[String],
    written: &HashSet<String>,
) -> std::result::Result<(), postgres::Error> {
    let columns: Vec<&str> = STAGING.iter().map(|(c, _)| *c).collect();
    let types: Vec<Type> = STAGING.iter().map(|(_, t)| t.clone()).collect();
    let sink = tx.copy_in(&format!(
        "COPY pg_temp.backfill_staging ({}) FROM STDIN (FORMAT binary)",
        columns.join(", ")
    ))?;
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for (doc, digest) in docs.iter().zip(digests) {
        if !written.contains(digest) {
            continue;
        }
        for c in &doc.claims {
            // Empty lists and maps are stored as NULL (read back as [] and
            // {}), as in SQLite.
            let json = |v: serde_json::Result<Json>| v.ok().map(store_json);
            let aliases = (!c.aliases.is_empty()).then(|| json(serde_json::to_value(&c.aliases)));
            let metadata =
                (!c.metadata.is_empty()).then(|| json(serde_json::to_value(&c.metadata)));
            let (vulnerability_id, product_key) =
                (store(&c.vulnerability_id), store(&c.product_key));
            let purl = store_opt(c.purl.as_deref());
            let detail = store_opt(c.detail.as_deref());
            let action = store_opt(c.action.as_deref());
            let severity = store_opt(c.severity.as_deref());
            w.write(&[
                digest,
                &&*vulnerability_id,
                &&*product_key,
                &crate::cve::cve_key(&c.vulnerability_id),
                &purl.as_deref(),
                &aliases.flatten(),
                &c.status.as_str(),
                &c.justification.map(|j| j.as_str()),
                &detail.as_deref(),
                &action.as_deref(),
                &severity.as_deref(),
                &metadata.flatten(),
            ])?;
        }
    }
    w.finish()?;
    Ok(())
}

/// Writes the batch's ledger entries and returns the digests this run
/// wrote. Without `force`, an entry that another run wrote first is left
/// to it (that run wrote its statements too), while one that this run
/// wrote (a transaction whose commit was acknowledged too late, retried)
/// counts as written. With `force` every entry is replaced and its old
/// statements deleted.
fn write_ledger(
    tx: &mut Transaction<'_>,
    c: &LedgerColumns<'_>,
    ctx: &WriteContext<'_>,
    inserted_at: &str,
    statements: &str,
) -> std::result::Result<HashSet<String>, postgres::Error> {
    if c.digest.is_empty() {
        return Ok(HashSet::new());
    }
    let on_conflict = if ctx.force {
        "ON CONFLICT (digest) DO UPDATE SET format = excluded.format,
            provider_id = excluded.provider_id, source_uri = excluded.source_uri,
            retrieved_at = excluded.retrieved_at, document_id = excluded.document_id,
            revision = excluded.revision, statements = excluded.statements,
            metadata = excluded.metadata, dropped = excluded.dropped,
            run_id = excluded.run_id, processed_at = excluded.processed_at"
    } else {
        "ON CONFLICT (digest) DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO vex.documents (digest, format, provider_id, source_uri, retrieved_at,
            document_id, revision, statements, metadata, dropped, run_id, processed_at)
         SELECT d.*, $11, $12 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
            $5::text[], $6::text[], $7::text[], $8::int8[], $9::json[], $10::jsonb[]) AS d
         {on_conflict} RETURNING digest"
    );
    if ctx.force {
        tx.execute(&format!("DELETE FROM {statements} WHERE digest = ANY($1)"), &[&c.digest])?;
    }
    let params: [&(dyn ToSql + Sync); 12] = [
        &c.digest,
        &c.format,
        &c.provider_id,
        &c.source_uri,
        &c.retrieved_at,
        &c.document_id,
        &c.revision,
        &c.statements,
        &c.metadata,
        &c.dropped,
        &ctx.run_id,
        &inserted_at,
    ];
    let mut written: HashSet<String> =
        tx.query(&sql, &params)?.iter().map(|r| r.get::<_, String>(0)).collect();
    if written.len() < c.digest.len() {
        let missing: Vec<&String> = c.digest.iter().filter(|d| !written.contains(*d)).collect();
        let ours = tx.query(
            "SELECT digest FROM vex.documents WHERE digest = ANY($1) AND run_id = $2",
            &[&missing, &ctx.run_id],
        )?;
        written.extend(ours.iter().map(|r| r.get::<_, String>(0)));
    }
    Ok(written)
}

/// Upserts a batch (sorted by CVE) by the change rule; returns how many
/// rows changed, and whether another writer was found adding rows. The
/// merge insert (`ON CONFLICT … DO UPDATE`) costs about twice a plain
/// insert per row (the arbiter check and the speculative insertion), yet on
/// a first load nearly every row is new. So the rows whose keys are not in
/// `stored` (the keys in `vex.epss` as this sync knows them; `None`: merge
/// every row) are copied straight into the table and only the others
/// merged. A row another writer added meanwhile makes the copy fail on the
/// unique key: then, back at the savepoint, the whole batch is merged,
/// which is always right.
fn upsert_epss(
    tx: &mut Transaction<'_>,
    rows: &[&EpssRow],
    stored: Option<&RoaringTreemap>,
    now: i64,
) -> std::result::Result<(u64, bool), postgres::Error> {
    let Some(stored) = stored else {
        return Ok((merge_epss(tx, rows, now)?, false));
    };
    let (fresh, known): (Vec<&EpssRow>, Vec<&EpssRow>) =
        rows.iter().partition(|r| !stored.contains(r.cve.key() as u64));
    if !fresh.is_empty() {
        let mut sp = tx.transaction()?;
        match copy_epss_into_table(&mut sp, &fresh, now) {
            Ok(()) => sp.commit()?,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(sp);
                tracing::debug!("EPSS rows were added by another writer meanwhile; merging");
                return Ok((merge_epss(tx, rows, now)?, true));
            }
            Err(e) => return Err(e),
        }
    }
    let merged = if known.is_empty() { 0 } else { merge_epss(tx, &known, now)? };
    Ok((fresh.len() as u64 + merged, false))
}

/// The merge insert of `rows` through the staging table.
fn merge_epss(
    tx: &mut Transaction<'_>,
    rows: &[&EpssRow],
    now: i64,
) -> std::result::Result<u64, postgres::Error> {
    tx.batch_execute(EPSS_STAGING)?;
    copy_epss(tx, rows)?;
    tx.execute(EPSS_UPSERT, &[&now])
}

/// Copies new rows straight into `vex.epss`, as the merge insert would
/// insert them.
fn copy_epss_into_table(
    tx: &mut Transaction<'_>,
    rows: &[&EpssRow],
    now: i64,
) -> std::result::Result<(), postgres::Error> {
    let sink = tx.copy_in(
        "COPY vex.epss (cve, cve_key, epss_score, percentile, is_known_exploit, model_version,
            score_date, created_at, updated_at) FROM STDIN (FORMAT binary)",
    )?;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for r in rows {
        w.write(&[
            &r.cve.as_str(),
            &r.cve.key(),
            &r.epss_score,
            &r.percentile,
            &r.is_known_exploit,
            &r.model_version.as_deref(),
            &r.score_date.as_deref(),
            &now,
            &now,
        ])?;
    }
    w.finish()?;
    Ok(())
}

/// The session's staging table for EPSS rows (binary `COPY` target of a
/// batch); its rows go at commit.
const EPSS_STAGING: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS backfill_epss_staging (
        cve text COLLATE \"C\", cve_key bigint, epss_score double precision,
        percentile double precision, is_known_exploit boolean, model_version text,
        score_date text) ON COMMIT DELETE ROWS";

/// Copies `rows` into the EPSS staging table, in binary.
fn copy_epss(
    tx: &mut Transaction<'_>,
    rows: &[&EpssRow],
) -> std::result::Result<(), postgres::Error> {
    let sink = tx.copy_in(
        "COPY pg_temp.backfill_epss_staging (cve, cve_key, epss_score, percentile,
            is_known_exploit, model_version, score_date) FROM STDIN (FORMAT binary)",
    )?;
    let types =
        [Type::TEXT, Type::INT8, Type::FLOAT8, Type::FLOAT8, Type::BOOL, Type::TEXT, Type::TEXT];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for r in rows {
        w.write(&[
            &r.cve.as_str(),
            &r.cve.key(),
            &r.epss_score,
            &r.percentile,
            &r.is_known_exploit,
            &r.model_version.as_deref(),
            &r.score_date.as_deref(),
        ])?;
    }
    w.finish()?;
    Ok(())
}

/// The EPSS upsert, GitLab's rule made per field as in every store (see
/// [`crate::model::epss_changed`]): a value the row does not carry (NULL)
/// keeps the stored one and is no change, and a row whose values are all
/// the same is not touched, so `updatedAt` moves only on a change and the
/// count of affected rows is the count of upserted ones.
const EPSS_UPSERT: &str = "INSERT INTO vex.epss AS o (cve, cve_key, epss_score, percentile,
        is_known_exploit, model_version, score_date, created_at, updated_at)
    SELECT r.*, $1, $1 FROM pg_temp.backfill_epss_staging r ORDER BY r.cve
    ON CONFLICT (cve) DO UPDATE SET
        epss_score = excluded.epss_score,
        percentile = coalesce(excluded.percentile, o.percentile),
        is_known_exploit = coalesce(excluded.is_known_exploit, o.is_known_exploit),
        model_version = coalesce(excluded.model_version, o.model_version),
        score_date = coalesce(excluded.score_date, o.score_date),
        updated_at = excluded.updated_at
    WHERE o.epss_score IS DISTINCT FROM excluded.epss_score
        OR (excluded.percentile IS NOT NULL AND o.percentile IS DISTINCT FROM excluded.percentile)
        OR (excluded.is_known_exploit IS NOT NULL
            AND coalesce(o.is_known_exploit, false) IS DISTINCT FROM excluded.is_known_exploit)
        OR (excluded.model_version IS NOT NULL
            AND o.model_version IS DISTINCT FROM excluded.model_version)";

/// Upserts a run record. An `abandoned` record only replaces a `running`
/// one: a run that ended while another command found it silent keeps its
/// own end.
fn save_run(
    c: &mut impl GenericClient,
    run: &RunRecord,
) -> std::result::Result<(), postgres::Error> {
    let arguments = serde_json::to_value(&run.arguments).unwrap_or(Json::Null);
    let owner = run.owner.as_ref().and_then(|o| serde_json::to_value(o).ok());
    c.execute(
        "INSERT INTO vex.runs (run_id, command, arguments, started_at, ended_at, status,
            counters, error, owner, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,
            status = excluded.status, counters = excluded.counters, error = excluded.error,
            owner = excluded.owner, heartbeat_at = excluded.heartbeat_at
         WHERE excluded.status <> 'abandoned' OR runs.status = 'running'",
        &[
            &run.run_id,
            &run.command,
            &arguments,
            &run.started_at,
            &run.ended_at,
            &run.status.as_str(),
            &run.counters,
            &run.error,
            &owner,
            &run.heartbeat_at,
        ],
    )?;
    Ok(())
}

/// Upserts a checkpoint.
fn save_checkpoint(
    c: &mut impl GenericClient,
    cp: &Checkpoint,
    now: &str,
) -> std::result::Result<(), postgres::Error> {
    let id = cp.identity.as_ref();
    c.execute(
        "INSERT INTO vex.checkpoints (data_type, source, sequence, chunk, \"offset\", complete,
            updated_at, file_size, file_mtime_ns, content_xxh3)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (data_type, source) DO UPDATE SET sequence = excluded.sequence,
            chunk = excluded.chunk, \"offset\" = excluded.\"offset\",
            complete = excluded.complete, updated_at = excluded.updated_at,
            file_size = excluded.file_size, file_mtime_ns = excluded.file_mtime_ns,
            content_xxh3 = excluded.content_xxh3",
        &[
            &cp.data_type,
            &cp.source,
            &cp.sequence,
            &cp.chunk,
            &(i64::try_from(cp.offset).unwrap_or(i64::MAX)),
            &cp.complete,
            &now,
            &id.map(|i| i64::try_from(i.size).unwrap_or(i64::MAX)),
            &id.map(|i| i.mtime_ns),
            &id.map(ContentIdentity::xxh3_hex),
        ],
    )?;
    Ok(())
}
