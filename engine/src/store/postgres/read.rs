//! Reads: lookups, exports, stats, runs and checkpoints, and the mappers
//! from rows to the logical model.

use std::collections::{BTreeMap, HashSet};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Row;
use serde_json::Value as Json;

use super::text::{load, load_json, load_opt, store, store_opt};
use super::PostgresStore;
use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::model::{
    CheckpointState, DocumentRef, EpssRecord, EpssStats, LedgerEntry, Record, Signals, Statement,
    Stats,
};
use crate::store::{Checkpoint, ContentIdentity, Export, RunRecord, RunStatus};
use crate::time::format_timestamp;

/// Columns of a checkpoint row after (data_type, source), as read by
/// [`checkpoint_row`].
const CHECKPOINT_COLUMNS: &str =
    "sequence, chunk, \"offset\", complete, file_size, file_mtime_ns, content_xxh3";

/// Columns read by [`statement_row`], from statements `s` joined with
/// their ledger entry `d`. `firstSeen` and `lastSeen` are the document's
/// `retrievedAt`; `insertedAt` and `runId` are the ledger's.
const STATEMENT_COLUMNS: &str = "s.vulnerability_id, s.aliases, s.product_key, s.purl,
    d.provider_id, s.status, s.justification, s.detail, s.action, d.digest, d.format,
    d.source_uri, d.retrieved_at, d.document_id, d.revision, s.severity, s.kev, s.epss,
    s.metadata, d.processed_at, d.run_id";

impl PostgresStore {
    /// The checkpoints of (`data_type`, each of `sources`), in that order.
    pub(super) fn read_checkpoints(
        &mut self,
        data_type: &str,
        sources: &[String],
    ) -> Result<Vec<Option<Checkpoint>>> {
        let rows = self.conn.run("read checkpoints", |c| {
            c.query(
                &format!(
                    "SELECT source, {CHECKPOINT_COLUMNS} FROM vex.checkpoints
                     WHERE data_type = $1 AND source = ANY($2)"
                ),
                &[&data_type, &sources],
            )
        })?;
        let mut found: BTreeMap<String, Checkpoint> = BTreeMap::new();
        for r in &rows {
            let source: String = r.get(0);
            found.insert(source.clone(), checkpoint_row(r, 1, data_type.to_owned(), source));
        }
        Ok(sources.iter().map(|s| found.get(s).cloned()).collect())
    }

    /// Every checkpoint with when it was saved, by (data type, source).
    pub(super) fn list_checkpoints(&mut self) -> Result<Vec<CheckpointState>> {
        let rows = self.conn.run("read checkpoints", |c| {
            c.query(
                &format!(
                    "SELECT data_type, source, updated_at, {CHECKPOINT_COLUMNS}
                     FROM vex.checkpoints ORDER BY data_type, source"
                ),
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| CheckpointState {
                checkpoint: checkpoint_row(r, 3, r.get(0), r.get(1)),
                updated_at: r.get(2),
            })
            .collect())
    }

    /// Which of `digests` are in the ledger.
    pub(super) fn ledger_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let text: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let rows = self.conn.run("read ledger", |c| {
            c.query("SELECT digest FROM vex.documents WHERE digest = ANY($1)", &[&text])
        })?;
        let found: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(digests.iter().filter(|d| found.contains(&d.to_string())).copied().collect())
    }

    /// All run records, oldest first.
    pub(super) fn list_runs(&mut self) -> Result<Vec<RunRecord>> {
        let rows = self.conn.run("list runs", |c| {
            c.query(
                "SELECT run_id, command, arguments, started_at, ended_at, status, counters,
                    error, owner, heartbeat_at
                 FROM vex.runs ORDER BY started_at, run_id",
                &[],
            )
        })?;
        Ok(rows.iter().map(run_row).collect())
    }

    /// Statements about `vulnerability_id` whose product key or purl is
    /// `product`.
    pub(super) fn query_statements(
        &mut self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>> {
        let sql = format!(
            "SELECT {STATEMENT_COLUMNS} FROM {} s JOIN vex.documents d ON d.digest = s.digest
             WHERE s.vulnerability_id = $1
                AND ($2::text IS NULL OR s.product_key = $2 OR s.purl = $2)
             ORDER BY d.retrieved_at, d.digest, s.product_key",
            self.statements
        );
        let (vulnerability_id, product) = (store(vulnerability_id), store_opt(product));
        let (v, p) = (&*vulnerability_id, product.as_deref());
        let rows = self.conn.run("query statements", |c| c.query(&sql, &[&v, &p]))?;
        Ok(rows.iter().map(statement_row).collect())
    }

    /// Streams table `what` in key order to `each`. A retry after a lost
    /// connection skips the records already passed on.
    pub(super) fn export_rows(
        &mut self,
        what: Export,
        each: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let sql = match what {
            Export::Statements => format!(
                "SELECT {STATEMENT_COLUMNS} FROM {} s JOIN vex.documents d ON d.digest = s.digest
                 ORDER BY s.digest, s.vulnerability_id, s.product_key",
                self.statements
            ),
            Export::Documents => "SELECT digest, format, provider_id, source_uri, retrieved_at,
                    statements, metadata, run_id, processed_at, dropped
                 FROM vex.documents ORDER BY digest"
                .to_owned(),
            Export::Epss => "SELECT cve, epss_score, percentile, is_known_exploit, model_version,
                    score_date, created_at, updated_at FROM vex.epss ORDER BY cve"
                .to_owned(),
        };
        let mut passed = 0usize;
        let mut failed: Option<Error> = None;
        self.conn.run("export", |c| {
            let none: [&(dyn ToSql + Sync); 0] = [];
            let mut rows = c.query_raw(&sql, none)?;
            let mut i = 0usize;
            while let Some(r) = rows.next()? {
                i += 1;
                if i <= passed {
                    continue;
                }
                let record = match what {
                    Export::Statements => Record::Statement(Box::new(statement_row(&r))),
                    Export::Documents => Record::Ledger(document_row(&r)),
                    Export::Epss => Record::Epss(epss_row(&r)),
                };
                if let Err(e) = each(record) {
                    failed = Some(e);
                    return Ok(());
                }
                passed = i;
            }
            Ok(())
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Post-run verification figures.
    pub(super) fn read_stats(&mut self) -> Result<Stats> {
        let s = self.statements.clone();
        let checkpoints = self.list_checkpoints()?;
        let joined = |col: &str| {
            format!(
                "SELECT d.{col}, count(*) FROM {s} s JOIN vex.documents d ON d.digest = s.digest
                 GROUP BY 1 ORDER BY 1"
            )
        };
        let group_sql = [
            joined("provider_id"),
            format!("SELECT status, count(*) FROM {s} GROUP BY 1 ORDER BY 1"),
            joined("format"),
            "SELECT j.key, sum(j.value::bigint)::bigint FROM vex.documents,
                jsonb_each_text(dropped) j WHERE dropped IS NOT NULL GROUP BY 1 ORDER BY 1"
                .to_owned(),
            "SELECT status, count(*) FROM vex.runs GROUP BY 1 ORDER BY 1".to_owned(),
        ];
        let count_sql = [
            format!("SELECT count(*) FROM {s}"),
            "SELECT count(*) FROM vex.documents".to_owned(),
            "SELECT count(*) FROM vex.epss".to_owned(),
            "SELECT count(*) FROM vex.epss WHERE is_known_exploit".to_owned(),
        ];
        let (mut groups, counts) = self.conn.run("stats", |c| {
            let mut groups = Vec::new();
            for sql in &group_sql {
                let rows = c.query(sql.as_str(), &[])?;
                let map: BTreeMap<String, i64> =
                    rows.iter().map(|r| (load(r.get(0)), r.get(1))).collect();
                groups.push(map);
            }
            let mut counts = Vec::new();
            for sql in &count_sql {
                counts.push(c.query_one(sql.as_str(), &[])?.get::<_, i64>(0));
            }
            Ok((groups, counts))
        })?;
        let mut next = || groups.remove(0);
        Ok(Stats {
            statements: counts[0],
            by_provider: next(),
            by_status: next(),
            by_format: next(),
            documents: counts[1],
            dropped: next(),
            epss: EpssStats { rows: counts[2], known_exploited: counts[3] },
            checkpoints,
            runs: next(),
        })
    }

    /// Whether the `epss` table has any row.
    pub(super) fn epss_present(&mut self) -> Result<bool> {
        self.conn.run("inspect epss", |c| {
            Ok(c.query_one("SELECT EXISTS (SELECT 1 FROM vex.epss)", &[])?.get(0))
        })
    }
}

/// A checkpoint from [`CHECKPOINT_COLUMNS`] (from column `at` on).
fn checkpoint_row(r: &Row, at: usize, data_type: String, source: String) -> Checkpoint {
    let size: Option<i64> = r.get(at + 4);
    let mtime_ns: Option<i64> = r.get(at + 5);
    let xxh3: Option<String> = r.get(at + 6);
    let identity = match (size, mtime_ns, xxh3.as_deref().and_then(ContentIdentity::parse_xxh3)) {
        (Some(size), Some(mtime_ns), Some(xxh3)) => {
            Some(ContentIdentity { size: size.max(0) as u64, mtime_ns, xxh3 })
        }
        _ => None,
    };
    Checkpoint {
        data_type,
        source,
        sequence: r.get(at),
        chunk: r.get(at + 1),
        offset: r.get::<_, i64>(at + 2).max(0) as u64,
        complete: r.get(at + 3),
        identity,
    }
}

/// A JSON column as `T` (`None` for NULL or a value that does not fit),
/// its strings unescaped (see [`super::text`]).
fn json<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Option<T> {
    r.get::<_, Option<Json>>(i).and_then(|j| serde_json::from_value(load_json(j)).ok())
}

/// A text column, unescaped.
fn text(r: &Row, i: usize) -> String {
    load(r.get(i))
}

/// A nullable text column, unescaped.
fn text_opt(r: &Row, i: usize) -> Option<String> {
    load_opt(r.get(i))
}

/// One statement row, mapped to the logical model.
fn statement_row(r: &Row) -> Statement {
    let retrieved_at: String = r.get(12);
    Statement {
        vulnerability_id: text(r, 0),
        aliases: json(r, 1).unwrap_or_default(),
        product_key: text(r, 2),
        purl: text_opt(r, 3),
        provider_id: text(r, 4),
        status: r.get(5),
        justification: r.get(6),
        detail: text_opt(r, 7),
        action: text_opt(r, 8),
        document: DocumentRef {
            digest: r.get(9),
            format: r.get(10),
            source_uri: text(r, 11),
            retrieved_at: retrieved_at.clone(),
            document_id: text_opt(r, 13),
            revision: text_opt(r, 14),
        },
        first_seen: retrieved_at.clone(),
        last_seen: retrieved_at,
        signals: Signals { severity: text_opt(r, 15), kev: r.get(16), epss: json(r, 17) },
        metadata: json(r, 18).unwrap_or_default(),
        inserted_at: r.get(19),
        run_id: r.get(20),
    }
}

/// One ledger row, mapped to the logical model.
fn document_row(r: &Row) -> LedgerEntry {
    LedgerEntry {
        digest: r.get(0),
        format: r.get(1),
        provider_id: text(r, 2),
        source_uri: text(r, 3),
        retrieved_at: r.get(4),
        statements: r.get(5),
        dropped: json(r, 9).unwrap_or_default(),
        metadata: r.get::<_, Option<Json>>(6).map_or(Json::Null, load_json),
        run_id: r.get(7),
        processed_at: r.get(8),
    }
}

/// One `epss` row, mapped to the logical model.
fn epss_row(r: &Row) -> EpssRecord {
    EpssRecord {
        cve: r.get(0),
        epss_score: r.get(1),
        percentile: r.get(2),
        is_known_exploit: r.get::<_, Option<bool>>(3).unwrap_or(false),
        model_version: r.get(4),
        score_date: r.get(5),
        created_at: format_timestamp(r.get(6)),
        updated_at: format_timestamp(r.get(7)),
    }
}

/// One run record, mapped to the logical model.
fn run_row(r: &Row) -> RunRecord {
    RunRecord {
        run_id: r.get(0),
        command: r.get(1),
        arguments: json(r, 2).unwrap_or_default(),
        started_at: r.get(3),
        ended_at: r.get(4),
        status: RunStatus::from_name(&r.get::<_, String>(5)),
        counters: r.get::<_, Option<Json>>(6).unwrap_or(Json::Null),
        error: r.get(7),
        owner: json(r, 8),
        heartbeat_at: r.get(9),
    }
}
