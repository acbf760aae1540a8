//! The table layout: its version, creating it and adding to it, and the
//! connection's settings.

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use super::wal::FLUSH_FRAMES;
use super::{err, ident, SqliteStore};
use crate::error::{Error, Result};

/// The table layout this code reads and writes, kept in `PRAGMA
/// user_version`. 2: `epss` times as integer microseconds, KEV nullable.
/// 3: statements clustered by (doc, vulnerability, product key), with no
/// rowid, so the spec's unique key is the table itself, not a second copy
/// of every key in an index. 4: repeated long texts (`detail`, `action`,
/// `aliases`, metadata values and key lists) stored once in `texts` and
/// referenced by id (see `texts`); 2 and 3 are upgraded by `backfill
/// migrate` (see `migrate`).
pub(super) const LAYOUT_VERSION: i64 = 4;

/// Page cache, KiB. Bulk loads append, so what they revisit is the right
/// edge of each B-tree plus the digest index; 32 MiB ran every benchmark
/// (EPSS, raw archives 1-30x) 3-5% faster than 160 MiB, which only added
/// page faults.
const CACHE_KIB: i64 = 32 << 10;

/// Page cache while building an index, KiB: the size of each sorted run.
const SORT_CACHE_KIB: i64 = 16 << 10;

/// Checks that `path` holds a store, or (with `create`) can: a missing
/// directory or one that cannot be written is named as the cause, where
/// SQLite would only say "unable to open database file".
pub(super) fn check_path(path: &Path, create: bool) -> Result<()> {
    let fail = |cause: String| Error::Store {
        store: path.display().to_string(),
        context: "open".into(),
        cause: cause.into(),
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(fail("it is a directory, not a SQLite file".into())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(Error::NoStore(path.display().to_string()));
            }
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(fail(format!("{} is not a directory", dir.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(fail(format!("directory {} does not exist", dir.display())))
                }
                Err(e) => return Err(fail(format!("directory {}: {e}", dir.display()))),
            }
            // An empty file is an empty database to SQLite; creating it here
            // tells a read-only directory from other failures.
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => Ok(()),
                // Another process (a shard) created it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => {
                    Err(fail(format!("cannot create the file in directory {}: {e}", dir.display())))
                }
            }
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

impl SqliteStore {
    /// Creates what is missing, and refuses a file written with another
    /// table layout (which would otherwise fail later with a confusing SQL
    /// error). Creation runs in one write transaction that checks again
    /// inside, so shards opening one new file together all see either
    /// nothing or the whole schema with its version.
    pub(super) fn create_schema(&mut self) -> Result<()> {
        let path = self.path.clone();
        let e = |context: &'static str| {
            let path = path.clone();
            move |e| err(&path, context, e)
        };
        let name = self.statements_name.clone();
        let (version, _, has_statements) =
            layout(&self.conn, &name).map_err(e("read the table layout"))?;
        let columns_missing =
            !missing_columns(&self.conn).map_err(e("read the table layout"))?.is_empty();
        if version != LAYOUT_VERSION || !has_statements || columns_missing {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(e("create schema"))?;
            let (version, has_tables, _) =
                layout(&tx, &name).map_err(e("read the table layout"))?;
            if has_tables && version != LAYOUT_VERSION {
                return Err(another_layout(&self.path, version));
            }
            tx.execute_batch(&schema_sql(&self.statements)).map_err(e("create schema"))?;
            for (table, column, decl) in missing_columns(&tx).map_err(e("create schema"))? {
                tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
                    .map_err(e("add columns"))?;
            }
            tx.pragma_update(None, "user_version", LAYOUT_VERSION).map_err(e("create schema"))?;
            tx.commit().map_err(e("create schema"))?;
        }
        self.create_view();
        // Lookup indexes are (re)created here too: a bulk load that crashed
        // before rebuilding them gets them back at the next open.
        self.create_lookup_indexes().map_err(e("create indexes"))
    }

    /// The statements in their logical columns under a name without a dot
    /// (the part after the last one: `statements` for `vex.statements`),
    /// since `select * from vex.statements` in the `sqlite3` shell reads
    /// table `statements` of a database `vex`. Only when the table's name
    /// has a dot and nothing else has that name. A convenience: a file
    /// that cannot take it (read-only) is still read.
    fn create_view(&self) {
        let Some((_, view)) = self.statements_name.rsplit_once('.') else { return };
        if view.is_empty() {
            return;
        }
        let exists = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE)",
            [view],
            |r| r.get::<_, bool>(0),
        );
        if !matches!(exists, Ok(false)) {
            return;
        }
        let sql = format!(
            "CREATE VIEW IF NOT EXISTS {} AS SELECT {}
             FROM {} s JOIN documents d ON d.id = s.doc",
            super::ident(view),
            view_columns(),
            self.statements
        );
        if let Err(e) = self.conn.execute_batch(&sql) {
            tracing::debug!(view, error = %e, "Could not create the statements view.");
        }
    }

    /// Per-connection settings and SQL functions.
    pub(super) fn configure(&mut self, busy_timeout: std::time::Duration) -> rusqlite::Result<()> {
        // `cve_key(text)` in SQL: how statements find their epss row.
        self.conn.create_scalar_function(
            "cve_key",
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| Ok(ctx.get_raw(0).as_str().ok().and_then(crate::cve::cve_key)),
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
        // WAL + NORMAL: a commit survives a process crash; the final WAL
        // flush at the end of a run makes it durable on disk.
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
        self.conn.pragma_update(None, "wal_autocheckpoint", FLUSH_FRAMES)?;
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

    pub(super) fn create_lookup_indexes(&self) -> rusqlite::Result<()> {
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

    /// Drops the lookup indexes, for a bulk load into an empty store:
    /// building them once at the end beats updating them at random per row.
    pub(super) fn defer_lookup_indexes(&self) -> rusqlite::Result<()> {
        for (name, _) in self.lookup_indexes() {
            self.conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
        }
        Ok(())
    }
}

/// Why a file with table layout `version` is not opened, and what to do.
pub(super) fn another_layout(path: &Path, version: i64) -> Error {
    let cause = if MIGRATES_FROM.contains(&version) {
        format!(
            "the file has table layout {version}, this backfill reads layout {LAYOUT_VERSION}; \
             upgrade it in place with `backfill migrate --store {}`",
            path.display()
        )
    } else {
        format!(
            "the file has table layout {version}, this backfill reads layout {LAYOUT_VERSION} \
             and migrates {MIGRATES_FROM:?}; load into a new file (or export with the backfill \
             that wrote it)"
        )
    };
    Error::Store { store: path.display().to_string(), context: "open".into(), cause: cause.into() }
}

/// Layouts `backfill migrate` upgrades.
pub(super) const MIGRATES_FROM: [i64; 2] = [2, 3];

/// The statements view's columns: the logical shape flattened, JSON
/// fields as JSON text, times as ISO 8601 text.
fn view_columns() -> String {
    use super::texts::{resolved, resolved_metadata};
    format!(
        "s.vulnerability_id, {} AS aliases, s.product_key, s.purl,
        d.provider_id, s.status, s.justification, {} AS detail, {} AS action,
        d.digest AS document_digest, d.format AS document_format, d.source_uri,
        d.retrieved_at, d.document_id, d.revision, s.severity, s.kev, s.epss, {} AS metadata,
        d.processed_at AS inserted_at, d.run_id",
        resolved("s.aliases"),
        resolved("s.detail"),
        resolved("s.action"),
        resolved_metadata("s.metadata")
    )
}

/// The tables, created if missing; `s` is the quoted statements table.
fn schema_sql(s: &str) -> String {
    let statements = statements_table_sql(s);
    let texts = TEXTS_TABLE_SQL;
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
        {statements}
        {texts}
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

/// The statements table `s` of the current layout.
pub(super) fn statements_table_sql(s: &str) -> String {
    format!(
        "-- Clustered by the spec's unique key, led by the ledger id, which
        -- grows: a bulk load appends, and a document's statements are one
        -- range (deleted in one step on --force and rollback). aliases,
        -- detail, action and metadata have no declared type: each holds
        -- the text, or the INTEGER id of its row in `texts`.
        CREATE TABLE IF NOT EXISTS {s} (
            doc INTEGER NOT NULL REFERENCES documents (id),
            vulnerability_id TEXT NOT NULL,
            product_key TEXT NOT NULL,
            purl TEXT,
            aliases,
            status TEXT NOT NULL,
            justification TEXT,
            detail,
            action,
            severity TEXT,
            kev INTEGER,
            epss TEXT,
            metadata,
            PRIMARY KEY (doc, vulnerability_id, product_key)
        ) WITHOUT ROWID;"
    )
}

/// The `texts` table (see `texts.rs`): ids in order, the xxh3 of each
/// body indexed to find a text again.
pub(super) const TEXTS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS texts (
            id INTEGER PRIMARY KEY,
            hash INTEGER NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS texts_hash ON texts (hash);";

/// Columns added to a layout after its first release, as (table, column,
/// declaration). Adding a column with no default is instant in SQLite and
/// older rows read it as NULL, so these need no new layout version: a file
/// gets them at its next open, and every file is created with them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Entries of the document not written, by reason (JSON; NULL: none).
    ("documents", "dropped", "TEXT"),
    // Who runs it: {"host", "pid", "bootId", "processStart"} (JSON), and when it last
    // said it is alive (a running run whose owner is gone is abandoned).
    ("runs", "owner", "TEXT"),
    ("runs", "heartbeat_at", "TEXT"),
    // An EPSS file's content identity (NULL: a statements checkpoint, or
    // one written before identities): size on disk, modification time
    // (ns since the epoch), xxh3 of the bytes read (16 hex digits).
    ("checkpoints", "file_size", "INTEGER"),
    ("checkpoints", "file_mtime_ns", "INTEGER"),
    ("checkpoints", "content_xxh3", "TEXT"),
];

/// The [`ADDED_COLUMNS`] a file lacks (all of them while it has no tables).
fn missing_columns(conn: &Connection) -> rusqlite::Result<Vec<(&str, &str, &str)>> {
    let mut q = conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
    )?;
    let mut out = Vec::new();
    for &(table, column, decl) in ADDED_COLUMNS {
        if q.query_row([table, column], |r| r.get::<_, bool>(0))? {
            out.push((table, column, decl));
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

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
}
