//! `backfill migrate`: upgrades a file of layout 2 or 3 to the current
//! layout in place.
//!
//! Layouts 2 and 3 differ from 4 only in the statements table (2: a rowid
//! table with a unique index; 3: clustered, texts inline). The upgrade
//! copies it, document by document in ledger order, into a new table of
//! the current layout (interning long texts on the way), one transaction
//! per chunk of whole documents; then, in one last transaction, drops the
//! old table, renames the new one and sets the layout version. A kill at
//! any moment leaves either the old layout with a partial copy beside it,
//! which the next `migrate` continues from its last document, or the new
//! layout: rerunning gives the same file either way. `VACUUM` then gives
//! the old table's pages back to the file system.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::schema::{
    another_layout, statements_table_sql, LAYOUT_VERSION, MIGRATES_FROM, TEXTS_TABLE_SQL,
};
use super::texts::{Stored, Texts};
use super::{err, ident};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Statements copied per transaction (whole documents, so a chunk may be
/// larger); [`CHUNK_ROWS_ENV`] overrides it.
const CHUNK_ROWS: i64 = 20_000;

/// Environment variable setting the statements per transaction (tests use
/// small chunks to be killed between many of them).
const CHUNK_ROWS_ENV: &str = "BACKFILL_MIGRATE_CHUNK_ROWS";

/// What a migration did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    /// The layout found.
    pub from: i64,
    /// The layout now.
    pub to: i64,
    /// Statements copied by this run (0 when the file was current).
    pub statements: u64,
    /// Rows of `texts` after the copy.
    pub texts: u64,
    /// File size before, in bytes (WAL included).
    pub bytes_before: u64,
    /// File size after, in bytes (WAL included).
    pub bytes_after: u64,
}

/// Upgrades the SQLite file at `path` (whose statements table is
/// `statements_name`) to the current layout, reporting statements copied
/// to `progress`.
pub fn migrate(
    path: &Path,
    statements_name: &str,
    busy_timeout: std::time::Duration,
    progress: &dyn Progress,
) -> Result<MigrationReport> {
    if !path.exists() {
        return Err(Error::NoStore(path.display().to_string()));
    }
    let e = |context: &'static str| move |e| err(path, context, e);
    let mut conn = Connection::open(path).map_err(e("open"))?;
    conn.busy_timeout(busy_timeout).map_err(e("open"))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(e("open"))?;
    let version: i64 =
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(e("read the layout"))?;
    let mut report = MigrationReport {
        from: version,
        to: version,
        bytes_before: file_bytes(path),
        ..MigrationReport::default()
    };
    if version == LAYOUT_VERSION {
        report.bytes_after = report.bytes_before;
        return Ok(report);
    }
    if !MIGRATES_FROM.contains(&version) {
        return Err(another_layout(path, version));
    }
    let old = ident(statements_name);
    let new = ident(&format!("{statements_name}__layout{LAYOUT_VERSION}"));
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {}
         {TEXTS_TABLE_SQL}
         COMMIT;",
        statements_table_sql(&new)
    ))
    .map_err(e("create the new table"))?;
    report.statements = copy(&mut conn, &old, &new, progress).map_err(e("copy statements"))?;
    // The view names the old table; it is created again at the next open.
    let view = statements_name.rsplit_once('.').map(|(_, v)| ident(v));
    let drop_view = view.map(|v| format!("DROP VIEW IF EXISTS {v};")).unwrap_or_default();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {drop_view}
         DROP TABLE {old};
         ALTER TABLE {new} RENAME TO {old};
         PRAGMA user_version = {LAYOUT_VERSION};
         COMMIT;"
    ))
    .map_err(e("replace the statements table"))?;
    tracing::info!(path = %path.display(), "Statements copied; giving the old table's space back (VACUUM).");
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").map_err(e("vacuum"))?;
    report.to = LAYOUT_VERSION;
    report.texts = conn
        .query_row("SELECT count(*) FROM texts", [], |r| r.get::<_, i64>(0))
        .map_err(e("count texts"))? as u64;
    drop(conn);
    report.bytes_after = file_bytes(path);
    Ok(report)
}

/// Copies the statements of `old` that `new` lacks, whole documents per
/// transaction, from the document after the last one `new` holds.
fn copy(
    conn: &mut Connection,
    old: &str,
    new: &str,
    progress: &dyn Progress,
) -> rusqlite::Result<u64> {
    let total: i64 = conn.query_row(&format!("SELECT count(*) FROM {old}"), [], |r| r.get(0))?;
    let mut done: i64 = conn.query_row(&format!("SELECT count(*) FROM {new}"), [], |r| r.get(0))?;
    let resumed = done;
    let chunk =
        std::env::var(CHUNK_ROWS_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(CHUNK_ROWS);
    progress.begin(total as u64);
    progress.advance(done as u64);
    let mut texts = Texts::default();
    loop {
        let last: i64 =
            conn.query_row(&format!("SELECT coalesce(max(doc), 0) FROM {new}"), [], |r| r.get(0))?;
        // The chunk ends with the document at CHUNK_ROWS rows on, or the last.
        let end: Option<i64> = conn
            .query_row(
                &format!("SELECT doc FROM {old} WHERE doc > ?1 ORDER BY doc LIMIT 1 OFFSET ?2"),
                params![last, chunk.max(1)],
                |r| r.get(0),
            )
            .optional()?;
        let tx = conn.transaction()?;
        let copied = copy_chunk(&tx, old, new, last, end.unwrap_or(i64::MAX), &mut texts);
        match copied.and_then(|n| tx.commit().map(|()| n)) {
            Ok(0) => return Ok((done - resumed) as u64),
            Ok(n) => {
                texts.committed();
                done += n as i64;
                progress.advance(n);
            }
            Err(e) => {
                texts.rolled_back();
                return Err(e);
            }
        }
    }
}

/// Copies the statements of documents `(after, upto]`; returns how many.
fn copy_chunk(
    tx: &Connection,
    old: &str,
    new: &str,
    after: i64,
    upto: i64,
    texts: &mut Texts,
) -> rusqlite::Result<u64> {
    let mut read = tx.prepare(&format!(
        "SELECT doc, vulnerability_id, product_key, purl, aliases, status, justification,
            detail, action, severity, kev, epss, metadata
         FROM {old} WHERE doc > ?1 AND doc <= ?2 ORDER BY doc, vulnerability_id, product_key"
    ))?;
    let mut write = tx.prepare(&format!(
        "INSERT OR IGNORE INTO {new} (doc, vulnerability_id, product_key, purl, aliases, status,
            justification, detail, action, severity, kev, epss, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    let mut rows = read.query(params![after, upto])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let mut text = |i: usize| -> rusqlite::Result<rusqlite::types::Value> {
            use rusqlite::types::Value;
            let v: Option<String> = r.get(i)?;
            Ok(match texts.store(tx, v.as_deref())? {
                None => Value::Null,
                Some(Stored::Inline(s)) => Value::Text(s.to_owned()),
                Some(Stored::Id(id)) => Value::Integer(id),
            })
        };
        let (aliases, detail, action) = (text(4)?, text(7)?, text(8)?);
        let metadata = match r.get::<_, Option<String>>(12)? {
            None => None,
            // As the writer stores it; a value that is not string pairs
            // stays as it was (and reads as itself).
            Some(json) => match serde_json::from_str::<BTreeMap<String, String>>(&json) {
                Ok(map) => {
                    let entries: Vec<(&str, &str)> =
                        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    texts.metadata(tx, &entries)?
                }
                Err(_) => Some(json),
            },
        };
        let metadata = match texts.store(tx, metadata.as_deref())? {
            None => rusqlite::types::Value::Null,
            Some(Stored::Inline(s)) => rusqlite::types::Value::Text(s.to_owned()),
            Some(Stored::Id(id)) => rusqlite::types::Value::Integer(id),
        };
        write.execute(params![
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            aliases,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            detail,
            action,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<i64>>(10)?,
            r.get::<_, Option<String>>(11)?,
            metadata,
        ])?;
        n += 1;
    }
    Ok(n)
}

/// The file's size with its WAL.
fn file_bytes(path: &Path) -> u64 {
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    [path, wal.as_path()].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}
