//! Reads: lookups, exports, stats, runs and checkpoints, and the mappers
//! from rows to the logical (MongoDB) model.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use super::{err, SqliteStore};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::model::{
    CheckpointState, DocumentRef, EpssRecord, EpssStats, LedgerEntry, Record, Signals, Statement,
    Stats,
};
use crate::store::{Checkpoint, ContentIdentity, Export, RunRecord, RunStatus};
use crate::time::format_timestamp;

impl SqliteStore {
    /// The checkpoint of (`data_type`, `source`), if any.
    pub(super) fn load_checkpoint(
        &mut self,
        data_type: &str,
        source: &str,
    ) -> Result<Option<Checkpoint>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE data_type = ?1 AND source = ?2"
            ))
            .and_then(|mut q| {
                q.query_row(params![data_type, source], |r| {
                    checkpoint_row(r, 0, data_type.to_owned(), source.to_owned())
                })
                .optional()
            })
            .map_err(|e| err(&self.path, "read checkpoint", e))
    }

    /// Every checkpoint with when it was saved, by (data type, source).
    pub(super) fn list_checkpoints(&self) -> Result<Vec<CheckpointState>> {
        let e = |e| err(&self.path, "read checkpoints", e);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT data_type, source, updated_at, {CHECKPOINT_COLUMNS}
                 FROM checkpoints ORDER BY data_type, source"
            ))
            .map_err(e)?;
        let rows = q
            .query_map([], |r| {
                Ok(CheckpointState {
                    checkpoint: checkpoint_row(r, 3, r.get(0)?, r.get(1)?)?,
                    updated_at: r.get(2)?,
                })
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Which of `digests` are in the ledger.
    pub(super) fn ledger_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
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

    /// All run records, oldest first.
    pub(super) fn list_runs(&mut self) -> Result<Vec<RunRecord>> {
        let mut q = self
            .conn
            .prepare(
                "SELECT run_id, command, arguments, started_at, ended_at, status, counters, error,
                    owner, heartbeat_at
                 FROM runs ORDER BY started_at, run_id",
            )
            .map_err(|e| err(&self.path, "list runs", e))?;
        let rows = q.query_map([], run_row).map_err(|e| err(&self.path, "list runs", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| err(&self.path, "list runs", e))
    }

    /// Statements about `vulnerability_id` whose product key or purl is
    /// `product`.
    pub(super) fn query_statements(
        &mut self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>> {
        let s = &self.statements;
        let sql = format!(
            "SELECT {} FROM {s} s JOIN documents d ON d.id = s.doc
             WHERE s.vulnerability_id = ?1 AND (?2 IS NULL OR s.product_key = ?2 OR s.purl = ?2)
             ORDER BY d.retrieved_at, d.digest, s.product_key",
            *STATEMENT_COLUMNS
        );
        let mut q = self.conn.prepare(&sql).map_err(|e| err(&self.path, "query statements", e))?;
        let rows = q
            .query_map(params![vulnerability_id, product], statement_row)
            .map_err(|e| err(&self.path, "query statements", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| err(&self.path, "query statements", e))
    }

    /// Streams table `what` in key order to `each`.
    pub(super) fn export_rows(
        &mut self,
        what: Export,
        each: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let s = &self.statements;
        let sql = match what {
            Export::Statements => format!(
                "SELECT {} FROM {s} s JOIN documents d ON d.id = s.doc
                 ORDER BY d.digest, s.vulnerability_id, s.product_key",
                *STATEMENT_COLUMNS
            ),
            Export::Documents => "SELECT digest, format, provider_id, source_uri, retrieved_at,
                    statements, metadata, run_id, processed_at, dropped
                 FROM documents ORDER BY digest"
                .to_owned(),
            Export::Epss => "SELECT cve, epss_score, percentile, is_known_exploit, model_version,
                    score_date, created_at, updated_at FROM epss ORDER BY cve"
                .to_owned(),
        };
        let mut q = self.conn.prepare(&sql).map_err(|e| err(&self.path, "export", e))?;
        let mut rows = q.query([]).map_err(|e| err(&self.path, "export", e))?;
        while let Some(r) = rows.next().map_err(|e| err(&self.path, "export", e))? {
            let v = match what {
                Export::Statements => statement_row(r).map(|s| Record::Statement(Box::new(s))),
                Export::Documents => document_row(r).map(Record::Ledger),
                Export::Epss => epss_row(r).map(Record::Epss),
            }
            .map_err(|e| err(&self.path, "export", e))?;
            each(v)?;
        }
        Ok(())
    }

    /// Post-run verification figures.
    pub(super) fn read_stats(&mut self) -> Result<Stats> {
        let s = self.statements.clone();
        let path = self.path.clone();
        let e = |e| err(&path, "stats", e);
        let group = |conn: &Connection, sql: &str| -> rusqlite::Result<BTreeMap<String, i64>> {
            let mut q = conn.prepare(sql)?;
            let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect()
        };
        let count = |conn: &Connection, sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let checkpoints = self.list_checkpoints()?;
        let c = &self.conn;
        let joined = |col: &str| {
            format!(
                "SELECT d.{col}, count(*) FROM {s} s JOIN documents d ON d.id = s.doc
                 GROUP BY 1 ORDER BY 1"
            )
        };
        Ok(Stats {
            statements: count(c, &format!("SELECT count(*) FROM {s}")).map_err(e)?,
            by_provider: group(c, &joined("provider_id")).map_err(e)?,
            by_status: group(c, &format!("SELECT status, count(*) FROM {s} GROUP BY 1 ORDER BY 1"))
                .map_err(e)?,
            by_format: group(c, &joined("format")).map_err(e)?,
            documents: count(c, "SELECT count(*) FROM documents").map_err(e)?,
            dropped: group(
                c,
                "SELECT j.key, sum(j.value) FROM documents, json_each(dropped) j
                 WHERE dropped IS NOT NULL GROUP BY 1 ORDER BY 1",
            )
            .map_err(e)?,
            epss: EpssStats {
                rows: count(c, "SELECT count(*) FROM epss").map_err(e)?,
                known_exploited: count(c, "SELECT count(*) FROM epss WHERE is_known_exploit")
                    .map_err(e)?,
            },
            checkpoints,
            runs: group(c, "SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 1").map_err(e)?,
        })
    }
}

/// Columns of a checkpoint row after (data_type, source), as read by
/// [`checkpoint_row`].
const CHECKPOINT_COLUMNS: &str =
    "sequence, chunk, offset, complete, file_size, file_mtime_ns, content_xxh3";

/// A checkpoint from [`CHECKPOINT_COLUMNS`] (from column `at` on).
fn checkpoint_row(
    r: &rusqlite::Row<'_>,
    at: usize,
    data_type: String,
    source: String,
) -> rusqlite::Result<Checkpoint> {
    let size: Option<i64> = r.get(at + 4)?;
    let mtime_ns: Option<i64> = r.get(at + 5)?;
    let xxh3: Option<String> = r.get(at + 6)?;
    let identity = match (size, mtime_ns, xxh3.as_deref().and_then(ContentIdentity::parse_xxh3)) {
        (Some(size), Some(mtime_ns), Some(xxh3)) => {
            Some(ContentIdentity { size: size.max(0) as u64, mtime_ns, xxh3 })
        }
        _ => None,
    };
    Ok(Checkpoint {
        data_type,
        source,
        sequence: r.get(at)?,
        chunk: r.get(at + 1)?,
        offset: r.get::<_, i64>(at + 2)?.max(0) as u64,
        complete: r.get(at + 3)?,
        identity,
    })
}

/// Columns read by [`statement_row`], in its order, from statements `s`
/// joined with their ledger entry `d`. `firstSeen` and `lastSeen` are the
/// document's `retrievedAt`; `insertedAt` and `runId` are the ledger's.
static STATEMENT_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use super::texts::{resolved, resolved_metadata};
    format!(
        "s.vulnerability_id, {}, s.product_key, s.purl,
        d.provider_id, s.status, s.justification, {}, {}, d.digest, d.format,
        d.source_uri, d.retrieved_at, d.document_id, d.revision, d.retrieved_at, d.retrieved_at,
        s.severity, s.kev, s.epss, {}, d.processed_at, d.run_id",
        resolved("s.aliases"),
        resolved("s.detail"),
        resolved("s.action"),
        resolved_metadata("s.metadata")
    )
});

/// One statement row, mapped to the logical model.
fn statement_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Statement> {
    let kev: Option<i64> = r.get(18)?;
    Ok(Statement {
        vulnerability_id: r.get(0)?,
        aliases: json_text(r.get(1)?).unwrap_or_default(),
        product_key: r.get(2)?,
        purl: r.get(3)?,
        provider_id: r.get(4)?,
        status: r.get(5)?,
        justification: r.get(6)?,
        detail: r.get(7)?,
        action: r.get(8)?,
        document: DocumentRef {
            digest: r.get(9)?,
            format: r.get(10)?,
            source_uri: r.get(11)?,
            retrieved_at: r.get(12)?,
            document_id: r.get(13)?,
            revision: r.get(14)?,
        },
        first_seen: r.get(15)?,
        last_seen: r.get(16)?,
        signals: Signals {
            severity: r.get(17)?,
            kev: kev.map(|k| k != 0),
            epss: json_text(r.get(19)?),
        },
        metadata: json_text(r.get(20)?).unwrap_or_default(),
        inserted_at: r.get(21)?,
        run_id: r.get(22)?,
    })
}

/// One ledger row, mapped to the logical model.
fn document_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        digest: r.get(0)?,
        format: r.get(1)?,
        provider_id: r.get(2)?,
        source_uri: r.get(3)?,
        retrieved_at: r.get(4)?,
        statements: r.get(5)?,
        dropped: json_text(r.get(9)?).unwrap_or_default(),
        metadata: json_text(r.get(6)?).unwrap_or(Json::Null),
        run_id: r.get(7)?,
        processed_at: r.get(8)?,
    })
}

/// One `epss` row, mapped to the logical model.
fn epss_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EpssRecord> {
    Ok(EpssRecord {
        cve: r.get(0)?,
        epss_score: r.get(1)?,
        percentile: r.get(2)?,
        is_known_exploit: r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0,
        model_version: r.get(4)?,
        score_date: r.get(5)?,
        created_at: format_timestamp(r.get(6)?),
        updated_at: format_timestamp(r.get(7)?),
    })
}

/// A JSON text column as `T` (`None` for NULL or text that does not fit).
fn json_text<T: serde::de::DeserializeOwned>(s: Option<String>) -> Option<T> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// One run record, mapped to the logical model.
fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        command: r.get(1)?,
        arguments: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
        started_at: r.get(3)?,
        ended_at: r.get(4)?,
        status: RunStatus::from_name(&r.get::<_, String>(5)?),
        counters: json_text(r.get(6)?).unwrap_or(Json::Null),
        error: r.get(7)?,
        owner: r.get::<_, Option<String>>(8)?.and_then(|o| serde_json::from_str(&o).ok()),
        heartbeat_at: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EpssSink, Queries, RunLog, StoreOptions};
    use serde_json::json;

    #[test]
    fn checkpoints_keep_their_content_identity_also_in_files_from_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut store = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
        let legacy = Checkpoint {
            data_type: "cve_enrichment".into(),
            source: "/b".into(),
            sequence: "1".into(),
            chunk: "000000001".into(),
            offset: 40,
            complete: false,
            identity: None,
        };
        let file = Checkpoint {
            source: "/b/v2/cve_enrichment/1/000000000.ndjson".into(),
            complete: true,
            identity: Some(ContentIdentity { size: 100, mtime_ns: -5, xxh3: u64::MAX }),
            ..legacy.clone()
        };
        store.write_epss(&[], Some(&legacy), 0).unwrap();
        store.write_epss(&[], Some(&file), 0).unwrap();
        let sources = [file.source.clone(), "/none".into(), "/b".into()];
        assert_eq!(
            store.load_checkpoints("cve_enrichment", &sources).unwrap(),
            [Some(file.clone()), None, Some(legacy.clone())]
        );
        let stats = serde_json::to_value(store.stats().unwrap()).unwrap();
        assert_eq!(stats["checkpoints"][0]["identity"], Json::Null);
        assert_eq!(
            stats["checkpoints"][1]["identity"],
            json!({"size": 100, "mtimeNs": -5, "xxh3": "ffffffffffffffff"})
        );
        drop(store);
        // A file written before identities gets the columns at open, and
        // its checkpoints have none.
        let conn = Connection::open(&path).unwrap();
        for column in ["file_size", "file_mtime_ns", "content_xxh3"] {
            conn.execute_batch(&format!("ALTER TABLE checkpoints DROP COLUMN {column}")).unwrap();
        }
        drop(conn);
        let mut store = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
        let old = store.load_checkpoint("cve_enrichment", &file.source).unwrap();
        assert_eq!(old, Some(Checkpoint { identity: None, ..file }));
    }
}
