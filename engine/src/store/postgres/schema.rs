//! The table layout in schema `vex`: its version, and creating it at open.
//!
//! The layout version is the one row of `vex.schema_version`. Opening a
//! store creates what is missing (under an advisory lock, so that shards
//! opening one new database together do not race), and refuses a schema
//! written by a newer backfill with a clear error. A command that only
//! reads creates nothing: without the schema it fails with "no store at".

use super::client::Connection;
use crate::error::{Error, Result};

/// The table layout this code reads and writes.
pub(super) const LAYOUT_VERSION: i32 = 1;

/// Key of the advisory lock that serializes schema creation.
const SCHEMA_LOCK: i64 = 0x6261_636b_6669_6c6c; // "backfill"

/// The statements table in schema `vex`, quoted: a name that starts with
/// `vex.` (the default `vex.statements`) is that table of the schema;
/// any other name is taken whole (`vex_statements` is
/// `vex.vex_statements`).
pub(super) fn statements_table(name: &str) -> String {
    let table = name.strip_prefix("vex.").filter(|t| !t.is_empty()).unwrap_or(name);
    format!("vex.\"{}\"", table.replace('"', "\"\""))
}

/// Creates the schema and tables that are missing (with `create`), or
/// checks that they exist (without): [`Error::NoStore`] when the schema
/// is absent, an error naming both versions when it is newer.
pub(super) fn prepare(conn: &mut Connection, statements: &str, create: bool) -> Result<()> {
    if !create {
        let version = conn.run("read the schema version", |c| {
            let exists: bool =
                c.query_one("SELECT to_regclass('vex.schema_version') IS NOT NULL", &[])?.get(0);
            if !exists {
                return Ok(None);
            }
            let row = c.query_opt("SELECT version FROM vex.schema_version", &[])?;
            Ok(Some(row.map_or(0, |r| r.get::<_, i32>(0))))
        })?;
        return match version {
            None => Err(Error::NoStore(conn.described.clone())),
            Some(v) => check_version(conn, v),
        };
    }
    // Usually all there: then no DDL, whose locks would wait for the
    // batches other shards are writing.
    let ready = conn.run("read the schema version", |c| {
        let row = c.query_one(
            "SELECT to_regclass('vex.schema_version') IS NOT NULL
                AND to_regclass($1) IS NOT NULL",
            &[&statements],
        )?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        let version = c.query_opt("SELECT version FROM vex.schema_version", &[])?;
        Ok(version.map(|r| r.get::<_, i32>(0)))
    })?;
    if let Some(version) = ready {
        if version >= LAYOUT_VERSION {
            return check_version(conn, version);
        }
    }
    let sql = schema_sql(statements);
    let found = conn.run("create schema", |c| {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS vex;
             CREATE TABLE IF NOT EXISTS vex.schema_version (version integer NOT NULL)",
        )?;
        let found = tx.query_opt("SELECT version FROM vex.schema_version", &[])?;
        let found = found.map(|r| r.get::<_, i32>(0));
        if found.is_some_and(|v| v > LAYOUT_VERSION) {
            return Ok(found);
        }
        tx.batch_execute(&sql)?;
        if found.is_none() {
            tx.execute("INSERT INTO vex.schema_version (version) VALUES ($1)", &[&LAYOUT_VERSION])?;
        }
        tx.commit()?;
        Ok(found)
    })?;
    check_version(conn, found.unwrap_or(LAYOUT_VERSION))
}

/// Refuses a layout newer than this code's.
fn check_version(conn: &Connection, version: i32) -> Result<()> {
    if version > LAYOUT_VERSION {
        return Err(Error::Store {
            store: conn.described.clone(),
            context: "open".into(),
            cause: format!(
                "schema vex has table layout {version}, this backfill reads layout \
                 {LAYOUT_VERSION}; use the backfill that wrote it (or a newer one)"
            )
            .into(),
        });
    }
    Ok(())
}

/// The tables, created if missing; `s` is the quoted statements table.
/// Keys and sort columns are `COLLATE "C"`: byte order, as in every store.
/// JSON fields are `jsonb`, except the two that are kept verbatim with
/// their key order (a document's envelope metadata, a run's counters),
/// which are `json`.
fn schema_sql(s: &str) -> String {
    // `vex."name"` gives `"name_suffix"`, escapes kept.
    let quoted = s.strip_prefix("vex.").unwrap_or(s);
    let index = |suffix: &str| format!("{}_{suffix}\"", &quoted[..quoted.len() - 1]);
    let (vuln_product, purl) = (index("vuln_product"), index("purl"));
    format!(
        "CREATE TABLE IF NOT EXISTS vex.documents (
            digest text COLLATE \"C\" PRIMARY KEY,
            format text NOT NULL,
            provider_id text COLLATE \"C\" NOT NULL,
            source_uri text NOT NULL,
            retrieved_at text COLLATE \"C\" NOT NULL,
            document_id text,
            revision text,
            statements bigint NOT NULL,
            metadata json,
            dropped jsonb,
            run_id text NOT NULL,
            processed_at text COLLATE \"C\" NOT NULL
        );
        CREATE INDEX IF NOT EXISTS documents_run_id ON vex.documents (run_id);
        CREATE TABLE IF NOT EXISTS {s} (
            digest text COLLATE \"C\" NOT NULL,
            vulnerability_id text COLLATE \"C\" NOT NULL,
            product_key text COLLATE \"C\" NOT NULL,
            cve_key bigint,
            purl text,
            aliases jsonb,
            status text COLLATE \"C\" NOT NULL,
            justification text,
            detail text,
            action text,
            severity text,
            kev boolean,
            epss jsonb,
            metadata jsonb,
            PRIMARY KEY (digest, vulnerability_id, product_key)
        );
        CREATE INDEX IF NOT EXISTS {vuln_product} ON {s} (vulnerability_id, product_key);
        CREATE INDEX IF NOT EXISTS {purl} ON {s} (purl);
        CREATE TABLE IF NOT EXISTS vex.epss (
            cve text COLLATE \"C\" PRIMARY KEY,
            cve_key bigint NOT NULL UNIQUE,
            epss_score double precision NOT NULL,
            percentile double precision,
            is_known_exploit boolean,
            model_version text,
            score_date text,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS vex.checkpoints (
            data_type text COLLATE \"C\" NOT NULL,
            source text COLLATE \"C\" NOT NULL,
            sequence text NOT NULL,
            chunk text NOT NULL,
            \"offset\" bigint NOT NULL DEFAULT 0,
            complete boolean NOT NULL DEFAULT false,
            updated_at text NOT NULL,
            file_size bigint,
            file_mtime_ns bigint,
            content_xxh3 text,
            PRIMARY KEY (data_type, source)
        );
        CREATE TABLE IF NOT EXISTS vex.runs (
            run_id text COLLATE \"C\" PRIMARY KEY,
            command text NOT NULL,
            arguments jsonb NOT NULL,
            started_at text COLLATE \"C\" NOT NULL,
            ended_at text,
            status text COLLATE \"C\" NOT NULL,
            counters json NOT NULL,
            error text,
            owner jsonb,
            heartbeat_at text
        );"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_tables_live_in_schema_vex() {
        assert_eq!(statements_table("vex.statements"), "vex.\"statements\"");
        assert_eq!(statements_table("vex_statements"), "vex.\"vex_statements\"");
        assert_eq!(statements_table("a.b\"c"), "vex.\"a.b\"\"c\"");
    }
}
