//! Stores: where statements, the document ledger, EPSS rows, checkpoints
//! and run records live.
//!
//! The [`Store`] trait is the stateful end of the pipeline: it is called in
//! order, one batch at a time, from one thread. The embedded default is
//! [`SqliteStore`] (a single file, no server). [`open`] picks the store from
//! a URI.

mod mongo;
mod null;
mod sqlite;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use mongo::{MongoStore, RawSpool, RETRY_BUDGET, RETRY_BUDGET_ENV, WRITE_PATH_ENV};
pub use null::NullStore;
pub use sqlite::SqliteStore;

use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::parse::DocumentWrite;

/// How to open a store: the names of the collections (tables) whose
/// default names carry a dot, and SQLite's lock wait.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Statements collection, default `vex.statements`.
    pub statements_collection: String,
    /// Raw documents collection, default `vex.raw`.
    pub raw_collection: String,
    /// How long a SQLite write waits for another writer's lock before it
    /// fails (concurrent shards share one file).
    pub busy_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            statements_collection: "vex.statements".into(),
            raw_collection: "vex.raw".into(),
            busy_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Status of a run record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going (or crashed without recording an end).
    Running,
    /// Finished.
    Completed,
    /// Ended early by a stop signal or time limit; a rerun continues.
    Stopped,
    /// Ended by a fatal error.
    Failed,
}

impl RunStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
        }
    }

    fn from_name(s: &str) -> RunStatus {
        match s {
            "completed" => RunStatus::Completed,
            "stopped" => RunStatus::Stopped,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Running,
        }
    }
}

/// One entry of the `runs` collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Unique id, also stamped on every statement the run writes.
    pub run_id: String,
    /// Subcommand (`statements`, `epss`, ...).
    pub command: String,
    /// Command-line arguments, credentials redacted.
    pub arguments: Vec<String>,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339, once ended.
    pub ended_at: Option<String>,
    /// Current status.
    pub status: RunStatus,
    /// Counters (the command's stats as JSON).
    pub counters: Json,
    /// The fatal error, when it failed.
    pub error: Option<String>,
}

/// One row of the `epss` collection, as parsed from an export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpssRow {
    /// `CVE-YYYY-NNNN…`, the key.
    pub cve: crate::epss::CveId,
    /// Probability of exploitation in the next 30 days, in [0, 1].
    pub epss_score: f64,
    /// Percentile of the score among all CVEs (FIRST CSV only).
    pub percentile: Option<f64>,
    /// Listed in CISA KEV. `None` (FIRST CSV rows) keeps the stored value.
    pub is_known_exploit: Option<bool>,
    /// EPSS model version (`v2026.06.15`), when the export says. Shared:
    /// a file usually gives one for all its rows.
    pub model_version: Option<std::sync::Arc<str>>,
    /// Score date (RFC 3339), when the export says. Shared, like the model.
    pub score_date: Option<std::sync::Arc<str>>,
}

/// Where an EPSS source was last durably ingested up to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// `epss` or `cve_enrichment`.
    pub data_type: String,
    /// The bucket root or CSV path the checkpoint belongs to.
    pub source: String,
    /// Last sequence (directory) ingested, fully or up to `offset`.
    pub sequence: String,
    /// Last chunk (file) in that sequence.
    pub chunk: String,
    /// Byte offset in the chunk up to which rows are written; the file
    /// length when it is finished.
    pub offset: u64,
    /// True when `chunk` was read to its end.
    pub complete: bool,
}

/// What an EPSS upsert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertCounts {
    /// Rows inserted or whose values changed (`updatedAt` moved).
    pub upserted: u64,
    /// Rows already present with the same values (`updatedAt` kept).
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: UpsertCounts) {
        self.upserted += o.upserted;
        self.unchanged += o.unchanged;
    }
}

/// Which documents a rollback removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackScope {
    /// Everything one run wrote.
    Run(String),
    /// Everything written in `[since, until)` (Unix microseconds).
    Inserted {
        /// Inclusive start.
        since: i64,
        /// Exclusive end.
        until: i64,
    },
}

/// What a rollback removed (or, dry, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    /// Statements deleted.
    pub statements: u64,
    /// Digests of the documents whose statements and ledger entries were
    /// deleted: replay these to restore them.
    pub digests: Vec<String>,
}

/// A collection that [`Store::export`] can stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// The statements collection.
    Statements,
    /// The `documents` ledger.
    Documents,
    /// The `epss` collection, by `cve`.
    Epss,
}

/// Per-batch write context.
#[derive(Clone, Debug)]
pub struct WriteContext<'a> {
    /// Run writing the batch.
    pub run_id: &'a str,
    /// Insertion time stamped on statements, Unix microseconds.
    pub inserted_at: i64,
    /// Replace a digest's existing statements instead of keeping them.
    pub force: bool,
    /// The run's progress after this batch, saved with it (atomically where
    /// the store allows; otherwise only after the batch is acknowledged).
    pub checkpoint: Option<&'a Checkpoint>,
}

/// A statement store. Calls come in order from one thread.
pub trait Store: Send {
    /// A description for logs and errors, credentials redacted.
    fn describe(&self) -> String;

    /// Inserts or updates a run record.
    fn record_run(&mut self, run: &RunRecord) -> Result<()>;

    /// A `statements` run is about to write (a hook; default: nothing).
    /// The store may prepare for a bulk load.
    fn begin_load(&mut self) -> Result<()> {
        Ok(())
    }

    /// The run has written its last batch, or stopped (a hook; default:
    /// nothing). The store finishes what `begin_load` deferred.
    fn end_load(&mut self) -> Result<()> {
        Ok(())
    }

    /// Which of `digests` are in the `documents` ledger.
    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>>;

    /// Writes a batch of normalized documents (statements plus ledger
    /// entries, and `ctx.checkpoint`; `docs` may be empty) atomically where
    /// the store allows it. Appends are
    /// idempotent on the unique key; with `force` a digest's earlier
    /// statements are replaced.
    fn write_documents(&mut self, docs: &[DocumentWrite], ctx: &WriteContext<'_>) -> Result<()>;

    /// Statements about `vulnerability_id` whose `productKey` or `purl` is
    /// `product`, as JSON documents in the store's logical shape.
    fn find_statements(&mut self, vulnerability_id: &str, product: &str) -> Result<Vec<Json>>;

    /// Streams a whole collection in its logical shape, in key order
    /// (statements by digest, vulnerability, product key; the ledger by
    /// digest).
    fn export(&mut self, what: Export, each: &mut dyn FnMut(Json) -> Result<()>) -> Result<()>;

    /// All run records, oldest first.
    fn runs(&mut self) -> Result<Vec<RunRecord>>;

    /// Upserts EPSS rows keyed by `cve` and saves `checkpoint`, atomically
    /// where the store allows (SQLite: one transaction; MongoDB: the
    /// checkpoint is written only after the rows are acknowledged).
    /// `createdAt` is set once; `updatedAt` moves only when `epssScore`,
    /// `percentile`, `isKnownExploit` or `modelVersion` changed. `rows` has
    /// no repeated `cve` (the caller resolves duplicates, last wins).
    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts>;

    /// The checkpoint of (`data_type`, `source`), if any.
    fn load_checkpoint(&mut self, data_type: &str, source: &str) -> Result<Option<Checkpoint>>;

    /// Deletes the statements and ledger entries of the documents in
    /// `scope` (all of them or none), so that replaying those documents
    /// restores them. With `dry_run`, only reports.
    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        let _ = (scope, dry_run);
        Err(Error::Config(format!("store {}: rollback is not supported", self.describe())))
    }

    /// Post-run verification figures: statements by provider, status and
    /// format, ledger size, EPSS rows, checkpoints, runs by status.
    fn stats(&mut self) -> Result<Json> {
        Err(Error::Config(format!("store {}: stats is not supported", self.describe())))
    }

    /// Sets `signals.kev` and `signals.epss` ({score, percentile, date}) of
    /// every statement from the `epss` collection (null where there is no
    /// row). Returns how many statements changed.
    fn enrich_statements(&mut self) -> Result<u64>;
}

/// Opens the store named by `uri`: `mongodb://` / `mongodb+srv://` select
/// MongoDB; `sqlite:PATH`, `sqlite://PATH` or a plain path select the
/// embedded SQLite file.
pub fn open(uri: &str, opts: &StoreOptions) -> Result<Box<dyn Store>> {
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        return Ok(Box::new(MongoStore::open(uri, opts)?));
    }
    let path = uri.strip_prefix("sqlite://").or_else(|| uri.strip_prefix("sqlite:")).unwrap_or(uri);
    Ok(Box::new(SqliteStore::open(path, opts)?))
}

/// Replaces the password (and any `password=`-like query value) in a URI
/// with `***`, so a URI can be logged.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_owned();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(uri.len());
    out.push_str(&uri[..scheme_end + 3]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            out.push_str(user);
            out.push_str(":***");
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    // Query parameters that carry secrets.
    let mut first = true;
    for (i, part) in tail.split(['?', '&']).enumerate() {
        if i > 0 {
            out.push(if first { '?' } else { '&' });
            first = false;
        }
        let lower = part.to_ascii_lowercase();
        if i > 0
            && (lower.starts_with("password=")
                || lower.contains("secret")
                || lower.contains("token"))
        {
            let key = part.split('=').next().unwrap_or_default();
            out.push_str(key);
            out.push_str("=***");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_secret_parameters() {
        assert_eq!(
            redact_uri("mongodb://admin:hunter2@db:27017/vex?authSource=admin&password=x"),
            "mongodb://admin:***@db:27017/vex?authSource=admin&password=***"
        );
        assert_eq!(redact_uri("mongodb://db:27017"), "mongodb://db:27017");
        assert_eq!(redact_uri("./backfill.db"), "./backfill.db");
        assert!(!redact_uri("mongodb+srv://u:p%40ss@c.example.net/").contains("p%40ss"));
    }
}
