//! The production store: MongoDB, through the official driver.
//!
//! Documents have the logical statement shape (README, "Stores"), the one
//! SQLite's rows are read back into (instants as RFC 3339 strings, so a
//! replay is byte-for-byte the same in both stores). Writes are unordered
//! bulk writes with majority write concern (the URI's `w` wins when given):
//! `Client::bulk_write` on servers that speak it (maxWireVersion >= 25,
//! MongoDB 8.0+, cross-checked with `buildInfo`), the collection-level
//! `insert` / `update` / `delete` commands otherwise. Appends are
//! idempotent: a duplicate-key error (11000) on a unique index means "already present".
//!
//! There are no multi-document transactions (they need a replica set and
//! would serialize the writes): within a batch, statements are written
//! before their ledger entries, so an interrupted batch is redone by the next
//! run and its statements already written count as present.
//!
//! The engine is synchronous, and so is this store: it uses the driver's
//! `sync` API (which runs the driver on the driver's own tokio runtime). Every operation is retried with exponential backoff on
//! transient errors (network, not-primary, retryable-write labels) for up to
//! [`RETRY_BUDGET`]; after that it fails with one line. Credentials in the
//! URI never appear in a message: errors are rebuilt from the driver's and
//! scrubbed of the password.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{
    Acknowledgment, ClientOptions, DeleteManyModel, IndexOptions, InsertOneModel, ReplaceOneModel,
    UpdateOneModel, WriteConcern, WriteModel,
};
use mongodb::sync::{Client, Collection, Database};
use mongodb::IndexModel;
use serde_json::{Map, Value as Json};

use super::{
    redact_uri, Checkpoint, EpssRow, Export, RollbackReport, RollbackScope, RunRecord, RunStatus,
    Store, StoreOptions, UpsertCounts, WriteContext,
};
use crate::dedupe::Digest;
use crate::error::{Error, Result};
use crate::normalize::Claim;
use crate::parse::{format_instant, format_timestamp, DocumentWrite};

/// How long one operation is retried on transient errors before the run
/// fails.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Environment variable that overrides [`RETRY_BUDGET`], in seconds
/// (fractions allowed). Meant for tests and impatient operators.
pub const RETRY_BUDGET_ENV: &str = "BACKFILL_MONGODB_RETRY_SECONDS";

/// Environment variable that forces the write path: `legacy` uses the
/// collection-level commands even on 8.0+ servers, `bulk` uses
/// `Client::bulk_write` whatever the server says. Unset: decided from the
/// server's `hello` (maxWireVersion >= 25 means bulk).
pub const WRITE_PATH_ENV: &str = "BACKFILL_MONGODB_WRITE_PATH";

/// Retry budget when recording a failed run: the store is probably what
/// failed, so do not wait long for it.
const FAILED_RUN_BUDGET: Duration = Duration::from_secs(5);

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Per-attempt server selection and connect timeouts, unless the URI sets
/// them: short, so that the retry loop (not the driver) does the waiting.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Most write operations in one command (the server's own limit).
const MAX_OPS_PER_COMMAND: usize = 100_000;

/// Most bytes of documents in one command: the 16 MiB BSON limit, less
/// room for the command envelope.
const MAX_BYTES_PER_COMMAND: usize = 16 * 1024 * 1024 - 64 * 1024;

/// Most values in one `$in` list, so that a lookup stays a short command.
const MAX_IN_VALUES: usize = 10_000;

/// Updates buffered by `enrich_statements` before they are written.
const ENRICH_FLUSH: usize = 10_000;

/// First wire version with the `bulkWrite` command (MongoDB 8.0).
const BULK_WRITE_WIRE_VERSION: i32 = 25;

/// Duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes worth a retry (the retryable-writes specification's
/// list, plus write concern timeouts).
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    64,    // WriteConcernFailed (wtimeout)
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Error labels worth a retry.
const TRANSIENT_LABELS: &[&str] = &[
    "RetryableWriteError",
    "RetryableError",
    "TransientTransactionError",
    "SystemOverloadedError",
];

/// MongoDB-backed [`Store`].
pub struct MongoStore {
    client: Client,
    db: Database,
    statements: Collection<Document>,
    documents: Collection<Document>,
    epss: Collection<Document>,
    checkpoints: Collection<Document>,
    runs: Collection<Document>,
    /// The URI with credentials redacted.
    described: String,
    scrub: Scrubber,
    /// Use `Client::bulk_write`.
    bulk_api: bool,
    write_concern: WriteConcern,
    retry_budget: Duration,
    indexes_ready: bool,
    /// Look up `signals` in `epss` when writing statements (false when a
    /// run starts with no EPSS rows at all, as SQLite decides it).
    enrich_on_write: bool,
}

/// A driver failure, already turned into one scrubbed line.
#[derive(Debug)]
struct MongoError(String);

impl fmt::Display for MongoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MongoError {}

/// Removes secrets (the URI's password, secret query values, the URI
/// itself) from messages.
#[derive(Clone, Debug)]
struct Scrubber {
    uri: String,
    redacted: String,
    secrets: Vec<String>,
}

impl Scrubber {
    fn new(uri: &str) -> Scrubber {
        let mut secrets = Vec::new();
        if let Some(scheme_end) = uri.find("://") {
            let rest = &uri[scheme_end + 3..];
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            if let Some(at) = authority.rfind('@') {
                if let Some((_, password)) = authority[..at].split_once(':') {
                    secrets.push(password.to_owned());
                }
            }
            if let Some((_, query)) = rest.split_once('?') {
                for part in query.split('&') {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    let key = key.to_ascii_lowercase();
                    if key.contains("password") || key.contains("secret") || key.contains("token") {
                        secrets.push(value.to_owned());
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is removed
        // whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Scrubber { uri: uri.to_owned(), redacted: redact_uri(uri), secrets }
    }

    /// `msg` without secrets, on one line.
    fn scrub(&self, msg: &str) -> String {
        let mut out = msg.replace(&self.uri, &self.redacted);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        let one_line: Vec<&str> = out.split_whitespace().collect();
        one_line.join(" ")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One write of a bulk.
#[derive(Clone, Debug)]
enum Op {
    Insert(Document),
    Update { filter: Document, update: Document },
    Replace { filter: Document, replacement: Document },
    DeleteMany(Document),
}

impl Op {
    /// Approximate encoded size, for splitting commands.
    fn size(&self) -> usize {
        match self {
            Op::Insert(d) | Op::DeleteMany(d) => doc_size(d),
            Op::Update { filter, update: d } | Op::Replace { filter, replacement: d } => {
                doc_size(filter) + doc_size(d) + 32
            }
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Op::Insert(_) => 0,
            Op::Update { .. } | Op::Replace { .. } => 1,
            Op::DeleteMany(_) => 2,
        }
    }

    fn model(&self, coll: &Collection<Document>) -> WriteModel {
        let ns = coll.namespace();
        match self.clone() {
            Op::Insert(document) => {
                InsertOneModel::builder().namespace(ns).document(document).build().into()
            }
            Op::Update { filter, update } => UpdateOneModel::builder()
                .namespace(ns)
                .filter(filter)
                .update(update)
                .upsert(true)
                .build()
                .into(),
            Op::Replace { filter, replacement } => ReplaceOneModel::builder()
                .namespace(ns)
                .filter(filter)
                .replacement(replacement)
                .upsert(true)
                .build()
                .into(),
            Op::DeleteMany(filter) => {
                DeleteManyModel::builder().namespace(ns).filter(filter).build().into()
            }
        }
    }
}

/// Exact BSON size of a document.
fn doc_size(d: &Document) -> usize {
    5 + d.iter().map(|(k, v)| 2 + k.len() + bson_size(v)).sum::<usize>()
}

fn bson_size(v: &Bson) -> usize {
    match v {
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
        Bson::Int32(_) => 4,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 5 + s.len(),
        Bson::Document(d) => doc_size(d),
        Bson::Array(a) => {
            5 + a.iter().enumerate().map(|(i, v)| 2 + decimal_len(i) + bson_size(v)).sum::<usize>()
        }
        Bson::ObjectId(_) => 12,
        Bson::Binary(b) => 5 + b.bytes.len(),
        Bson::Decimal128(_) => 16,
        // Rare kinds: an overestimate is harmless.
        _ => 64,
    }
}

fn decimal_len(mut i: usize) -> usize {
    let mut n = 1;
    while i >= 10 {
        i /= 10;
        n += 1;
    }
    n
}

/// Outcome of one bulk command: the indexes that hit a duplicate key, or a
/// write error that is not a duplicate (fatal).
type WriteOutcome = std::result::Result<Vec<usize>, String>;

impl MongoStore {
    /// Connects to the server named by `uri` (`mongodb://` or
    /// `mongodb+srv://`), database from the URI path (default `backfill`).
    /// Indexes are created on the first write.
    pub fn open(uri: &str, opts: &StoreOptions) -> Result<MongoStore> {
        let scrub = Scrubber::new(uri);
        let described = redact_uri(uri);
        let fail = |context: &str, msg: String| Error::Store {
            store: described.clone(),
            context: context.to_owned(),
            cause: Box::new(MongoError(scrub.scrub(&msg))),
        };
        let mut copts = ClientOptions::parse(uri)
            .run()
            .map_err(|e| fail("parse the URI", error_message(&e)))?;
        copts.app_name.get_or_insert_with(|| "backfill".to_owned());
        let budget = std::env::var(RETRY_BUDGET_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(RETRY_BUDGET, Duration::from_secs_f64);
        let per_attempt = SELECTION_TIMEOUT.min(budget.max(Duration::from_secs(1)));
        copts.server_selection_timeout.get_or_insert(per_attempt);
        copts.connect_timeout.get_or_insert(per_attempt);
        let mut write_concern = copts.write_concern.clone().unwrap_or_default();
        if write_concern.w.is_none() {
            write_concern.w = Some(Acknowledgment::Majority);
        }
        copts.write_concern = Some(write_concern.clone());
        let db_name = copts
            .default_database
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "backfill".to_owned());
        let client = Client::with_options(copts).map_err(|e| fail("connect", error_message(&e)))?;
        let db = client.database(&db_name);
        let mut store = MongoStore {
            statements: db.collection(&opts.statements_collection),
            documents: db.collection("documents"),
            epss: db.collection("epss"),
            checkpoints: db.collection("checkpoints"),
            runs: db.collection("runs"),
            client,
            db,
            described,
            scrub,
            bulk_api: false,
            write_concern,
            retry_budget: budget,
            indexes_ready: false,
            enrich_on_write: true,
        };
        let hello = store.hello()?;
        let wire = hello
            .get("maxWireVersion")
            .and_then(bson_i64)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        store.bulk_api = match std::env::var(WRITE_PATH_ENV).as_deref() {
            Ok("legacy") => false,
            Ok("bulk") => true,
            _ => wire >= BULK_WRITE_WIRE_VERSION && store.version_agrees(),
        };
        tracing::info!(
            store = %store.described,
            database = %db_name,
            max_wire_version = wire,
            write_path = if store.bulk_api { "Client::bulk_write" } else { "collection commands" },
            "Connected to MongoDB."
        );
        Ok(store)
    }

    /// True when writes go through `Client::bulk_write` (8.0+ servers).
    pub fn uses_bulk_write(&self) -> bool {
        self.bulk_api
    }

    /// Drops the whole database (for tests and tooling).
    pub fn drop_database(&mut self) -> Result<()> {
        let db = &self.db;
        self.retry("drop database", self.retry_budget, || db.drop().run())
    }

    fn hello(&self) -> Result<Document> {
        let db = &self.db;
        let mut legacy = false;
        let hello = self.retry("connect", self.retry_budget, || {
            let reply = db.run_command(doc! { "hello": 1 }).run();
            match reply {
                // Servers before 4.4.2 know only the legacy name.
                Err(e) if matches!(&*e.kind, ErrorKind::Command(c) if c.code == 59) => {
                    legacy = true;
                    Ok(Document::new())
                }
                other => other,
            }
        })?;
        if !legacy {
            return Ok(hello);
        }
        self.retry("connect", self.retry_budget, || db.run_command(doc! { "isMaster": 1 }).run())
    }

    /// Whether `buildInfo` agrees that the server is 8.0 or later (true
    /// when it does not answer). nx-27017 0.8 reports wire version 25 but
    /// version 7.0.0, and its `bulkWrite` is not serialized with the other
    /// commands on the target database: the collection commands are the
    /// safe path there.
    fn version_agrees(&self) -> bool {
        let db = &self.db;
        let Ok(info) = db.run_command(doc! { "buildInfo": 1 }).run() else { return true };
        let major = match info.get("versionArray") {
            Some(Bson::Array(a)) => a.first().and_then(bson_i64),
            _ => info
                .get_str("version")
                .ok()
                .and_then(|v| v.split('.').next())
                .and_then(|m| m.parse::<i64>().ok()),
        };
        major.is_none_or(|m| m >= 8)
    }

    fn error(&self, context: &str, msg: &str) -> Error {
        Error::Store {
            store: self.described.clone(),
            context: context.to_owned(),
            cause: Box::new(MongoError(self.scrub.scrub(msg))),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or `budget` is
    /// spent on transient errors.
    fn retry<T, F>(&self, context: &str, budget: Duration, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> mongodb::error::Result<T>,
    {
        let start = Instant::now();
        let mut delay = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut last_network: Option<String> = None;
        loop {
            attempts += 1;
            let e = match attempt() {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let msg = error_message(&e);
            if !is_transient(&e) {
                return Err(self.error(context, &msg));
            }
            if matches!(*e.kind, ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }) {
                last_network = Some(msg.clone());
            }
            if start.elapsed() + delay > budget {
                let last = match last_network {
                    Some(n) if n != msg => format!(" (last network error: {n})"),
                    _ => String::new(),
                };
                return Err(self.error(
                    context,
                    &format!(
                        "gave up after {attempts} attempt{} in {:.1}s: {msg}{last}",
                        if attempts == 1 { "" } else { "s" },
                        start.elapsed().as_secs_f64()
                    ),
                ));
            }
            tracing::info!(
                context,
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %self.scrub.scrub(&msg),
                "Transient MongoDB error; retrying."
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Creates the collections' indexes (idempotent), once per store.
    fn ensure_indexes(&mut self) -> Result<()> {
        if self.indexes_ready {
            return Ok(());
        }
        let unique = |keys: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build()
        };
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        let plan: [(&Collection<Document>, Vec<IndexModel>); 5] = [
            (
                &self.statements,
                vec![
                    unique(doc! { "document.digest": 1, "vulnerabilityId": 1, "productKey": 1 }),
                    plain(doc! { "vulnerabilityId": 1, "productKey": 1 }),
                    plain(doc! { "purl": 1 }),
                ],
            ),
            (&self.documents, vec![unique(doc! { "digest": 1 })]),
            (&self.epss, vec![unique(doc! { "cve": 1 })]),
            (&self.checkpoints, vec![unique(doc! { "dataType": 1, "source": 1 })]),
            (&self.runs, vec![unique(doc! { "runId": 1 })]),
        ];
        for (coll, models) in plan {
            let models = &models;
            self.retry(&format!("create indexes on {}", coll.name()), self.retry_budget, || {
                coll.create_indexes(models.iter().cloned()).run()
            })?;
        }
        self.indexes_ready = true;
        Ok(())
    }

    /// Writes `ops` (unordered) in commands within the size limits.
    /// Returns the indexes of `ops` that hit a duplicate key.
    fn write(&self, coll: &Collection<Document>, context: &str, ops: &[Op]) -> Result<Vec<usize>> {
        let mut dups = Vec::new();
        let mut start = 0;
        while start < ops.len() {
            // One command: same kind of op (for the collection commands),
            // at most MAX_OPS_PER_COMMAND ops and MAX_BYTES_PER_COMMAND
            // bytes (at least one op).
            let kind = ops[start].kind();
            let mut end = start;
            let mut bytes = 0;
            while end < ops.len()
                && end - start < MAX_OPS_PER_COMMAND
                && (self.bulk_api || ops[end].kind() == kind)
            {
                let size = ops[end].size();
                if end > start && bytes + size > MAX_BYTES_PER_COMMAND {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let chunk = &ops[start..end];
            let outcome = if self.bulk_api {
                self.write_bulk(coll, context, chunk)?
            } else {
                self.write_commands(coll, context, chunk)?
            };
            match outcome {
                Ok(d) => dups.extend(d.into_iter().map(|i| i + start)),
                Err(msg) => return Err(self.error(context, &msg)),
            }
            start = end;
        }
        Ok(dups)
    }

    /// One `Client::bulk_write` command.
    fn write_bulk(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        let client = &self.client;
        let wc = &self.write_concern;
        self.retry(context, self.retry_budget, || {
            let models: Vec<WriteModel> = chunk.iter().map(|op| op.model(coll)).collect();
            match client.bulk_write(models).ordered(false).write_concern(wc.clone()).run() {
                Ok(_) => Ok(Ok(Vec::new())),
                Err(e) => match &*e.kind {
                    // Only write errors: the rest of the bulk was applied.
                    // A top-level error (the source: network, shutdown...)
                    // means an unknown part was, so the whole is retried.
                    ErrorKind::BulkWrite(bw)
                        if bw.write_concern_errors.is_empty() && top_level(&e).is_none() =>
                    {
                        let mut idx: Vec<usize> = bw.write_errors.keys().copied().collect();
                        idx.sort_unstable();
                        Ok(split_duplicates(idx.into_iter().map(|i| {
                            let w = &bw.write_errors[&i];
                            (i, w.code, w.message.as_str())
                        })))
                    }
                    _ => Err(e),
                },
            }
        })
    }

    /// The pre-8.0 path: `insert` (insert_many), `update` (one command
    /// with many statements) or `delete` (delete_many).
    fn write_commands(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        let db = &self.db;
        let wc = &self.write_concern;
        match chunk.first() {
            None => Ok(Ok(Vec::new())),
            Some(Op::Insert(_)) => {
                let docs: Vec<&Document> = chunk
                    .iter()
                    .filter_map(|op| if let Op::Insert(d) = op { Some(d) } else { None })
                    .collect();
                let docs = &docs;
                self.retry(context, self.retry_budget, || {
                    match coll.insert_many(docs.iter().copied()).ordered(false).run() {
                        Ok(_) => Ok(Ok(Vec::new())),
                        Err(e) => match &*e.kind {
                            ErrorKind::InsertMany(im) if im.write_concern_error.is_none() => {
                                let errors = im.write_errors.as_deref().unwrap_or_default();
                                Ok(split_duplicates(
                                    errors.iter().map(|w| (w.index, w.code, w.message.as_str())),
                                ))
                            }
                            _ => Err(e),
                        },
                    }
                })
            }
            Some(Op::DeleteMany(_)) => {
                for op in chunk {
                    if let Op::DeleteMany(filter) = op {
                        self.retry(context, self.retry_budget, || {
                            coll.delete_many(filter.clone()).run()
                        })?;
                    }
                }
                Ok(Ok(Vec::new()))
            }
            Some(Op::Update { .. } | Op::Replace { .. }) => {
                let updates: Vec<Bson> = chunk
                    .iter()
                    .filter_map(|op| match op {
                        Op::Update { filter, update } => Some(doc! {
                            "q": filter.clone(), "u": update.clone(), "upsert": true, "multi": false,
                        }),
                        Op::Replace { filter, replacement } => Some(doc! {
                            "q": filter.clone(), "u": replacement.clone(), "upsert": true,
                            "multi": false,
                        }),
                        _ => None,
                    })
                    .map(Bson::Document)
                    .collect();
                let wc_doc = mongodb::bson::to_document(wc).unwrap_or_default();
                let command = doc! {
                    "update": coll.name(),
                    "updates": updates,
                    "ordered": false,
                    "writeConcern": wc_doc,
                };
                let command = &command;
                let reply = self.retry(context, self.retry_budget, || {
                    let reply = db.run_command(command.clone()).run()?;
                    // A write concern error in an ok:1 reply.
                    if let Ok(wce) = reply.get_document("writeConcernError") {
                        let code = wce.get("code").and_then(bson_i64).unwrap_or(0);
                        if TRANSIENT_CODES.contains(&(code as i32)) {
                            return Err(mongodb::error::Error::custom(format!(
                                "write concern error {code}"
                            )));
                        }
                    }
                    Ok(reply)
                })?;
                if let Ok(wce) = reply.get_document("writeConcernError") {
                    return Ok(Err(format!(
                        "write concern error: {}",
                        wce.get_str("errmsg").unwrap_or("unknown")
                    )));
                }
                let errors = reply.get_array("writeErrors").map(|a| a.as_slice()).unwrap_or(&[]);
                Ok(split_duplicates(errors.iter().filter_map(|w| {
                    let w = w.as_document()?;
                    let index = w.get("index").and_then(bson_i64)?;
                    let code = w.get("code").and_then(bson_i64).unwrap_or(0);
                    Some((index as usize, code as i32, w.get_str("errmsg").unwrap_or("")))
                })))
            }
        }
    }

    /// Every document matching `filter`, retried as a whole on transient
    /// errors.
    fn find_all(
        &self,
        coll: &Collection<Document>,
        context: &str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<Document>> {
        let (filter, projection) = (&filter, &projection);
        self.retry(context, self.retry_budget, || {
            let mut find = coll.find(filter.clone());
            if let Some(p) = projection {
                find = find.projection(p.clone());
            }
            let mut cursor = find.run()?;
            let mut out = Vec::new();
            while cursor.advance()? {
                out.push(cursor.deserialize_current()?);
            }
            Ok(out)
        })
    }

    /// `{kev, epss}` signals for the given vulnerability ids, from the
    /// `epss` collection (one `$in` query per chunk of ids).
    fn epss_signals(&self, ids: &[&str]) -> Result<HashMap<String, (Bson, Bson)>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|s| Bson::String((*s).to_owned())).collect();
            let rows =
                self.find_all(&self.epss, "read epss", doc! { "cve": { "$in": list } }, None)?;
            for r in rows {
                if let Ok(cve) = r.get_str("cve") {
                    out.insert(cve.to_owned(), signals_of(&r));
                }
            }
        }
        Ok(out)
    }

    fn find_sorted(
        &self,
        coll: &Collection<Document>,
        sort: Document,
        each: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        let sort = &sort;
        let mut cursor = self
            .retry("export", self.retry_budget, || coll.find(doc! {}).sort(sort.clone()).run())?;
        loop {
            let more = cursor.advance().map_err(|e| self.error("export", &error_message(&e)))?;
            if !more {
                return Ok(());
            }
            let d =
                cursor.deserialize_current().map_err(|e| self.error("export", &e.to_string()))?;
            each(d)?;
        }
    }

    /// Statements, then ledger entries, of one batch.
    fn write_batch(
        &self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
        inserted: &str,
    ) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        // Signals from the epss collection, as SQLite's sub-selects give
        // them: one $in query for the batch.
        let mut ids: Vec<&str> = docs
            .iter()
            .flat_map(|d| d.claims.iter().map(|c| c.vulnerability_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let signals = if self.enrich_on_write { self.epss_signals(&ids)? } else { HashMap::new() };
        let digests: Vec<String> = docs.iter().map(|d| d.digest.to_string()).collect();
        if ctx.force {
            let deletes: Vec<Op> = digests
                .chunks(MAX_IN_VALUES)
                .map(|chunk| {
                    let list: Vec<Bson> = chunk.iter().map(|s| Bson::String(s.clone())).collect();
                    Op::DeleteMany(doc! { "document.digest": { "$in": list } })
                })
                .collect();
            self.write(&self.statements, "replace statements", &deletes)?;
        }
        let none = (Bson::Null, Bson::Null);
        let mut statements = Vec::new();
        let mut ledger = Vec::with_capacity(docs.len());
        for (doc, digest) in docs.iter().zip(&digests) {
            let retrieved = format_instant(doc.retrieved_at);
            for c in &doc.claims {
                let sig = signals.get(&c.vulnerability_id).cloned().unwrap_or_else(|| none.clone());
                statements.push(Op::Insert(statement_doc(
                    doc, c, digest, &retrieved, inserted, ctx.run_id, sig,
                )));
            }
            ledger.push(Op::Insert(ledger_doc(doc, digest, &retrieved, ctx)));
        }
        // Statements first: a ledger entry means its statements are stored.
        // Duplicates are statements already present (an interrupted batch).
        self.write(&self.statements, "write statements", &statements)?;
        drop(statements);
        let dups = self.write(&self.documents, "write ledger", &ledger)?;
        if !dups.is_empty() {
            // Digests already in the ledger (--force, or a retried write):
            // the entry is replaced, as SQLite's upsert does.
            let replaces: Vec<Op> = dups
                .into_iter()
                .filter_map(|i| match &ledger[i] {
                    Op::Insert(d) => Some(Op::Replace {
                        filter: doc! { "digest": d.get_str("digest").unwrap_or_default() },
                        replacement: d.clone(),
                    }),
                    _ => None,
                })
                .collect();
            self.write(&self.documents, "update ledger", &replaces)?;
        }
        Ok(())
    }

    fn write_checkpoint(&self, cp: &Checkpoint, now: &str) -> Result<()> {
        let filter = doc! { "dataType": &cp.data_type, "source": &cp.source };
        let replacement = doc! {
            "dataType": &cp.data_type,
            "source": &cp.source,
            "sequence": &cp.sequence,
            "chunk": &cp.chunk,
            "offset": i64::try_from(cp.offset).unwrap_or(i64::MAX),
            "complete": cp.complete,
            "updatedAt": now,
        };
        let dups = self.write(
            &self.checkpoints,
            "write checkpoint",
            &[Op::Replace { filter, replacement }],
        )?;
        if dups.is_empty() {
            Ok(())
        } else {
            Err(self.error("write checkpoint", "duplicate key on upsert"))
        }
    }
}

/// Raw documents of a MongoDB raw collection (Excititor's `vex.raw`),
/// spooled to a temporary NDJSON archive of envelopes that the ordinary
/// pipeline reads (memory-mapped). The file is deleted when this is
/// dropped.
#[derive(Debug)]
pub struct RawSpool {
    path: std::path::PathBuf,
    /// Documents spooled.
    pub documents: u64,
}

impl RawSpool {
    /// Streams collection `opts.raw_collection` of the database named by
    /// `uri` (default `backfill`) into a new file in the temporary
    /// directory, in ascending (`retrievedAt`, `digest`). `content` may be
    /// binData, a base64 string, JSON text or an embedded document; a
    /// `retrievedAt` may be a BSON date or a string; a missing `digest`
    /// is taken from a `sha256:` `_id`, else computed later from the bytes.
    pub fn create(uri: &str, opts: &StoreOptions) -> Result<RawSpool> {
        let store = MongoStore::open(uri, opts)?;
        let name = format!(
            "backfill-raw-{}-{}.ndjson",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let path = std::env::temp_dir().join(name);
        let io = |e: std::io::Error| Error::io(&path, e);
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut spool = RawSpool { path: path.clone(), documents: 0 };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        spool.documents = store.spool_raw(&opts.raw_collection, &mut out, &path)?;
        std::io::Write::flush(&mut out).map_err(io)?;
        Ok(spool)
    }

    /// The spooled archive.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for RawSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl MongoStore {
    fn spool_raw(
        &self,
        collection: &str,
        out: &mut dyn std::io::Write,
        path: &std::path::Path,
    ) -> Result<u64> {
        let coll: Collection<Document> = self.db.collection(collection);
        let context = format!("read {collection}");
        let sort = doc! { "retrievedAt": 1, "digest": 1 };
        let sort = &sort;
        let mut cursor = self.retry(&context, self.retry_budget, || {
            coll.find(doc! {}).sort(sort.clone()).allow_disk_use(true).run()
        })?;
        let mut n = 0;
        while cursor.advance().map_err(|e| self.error(&context, &error_message(&e)))? {
            let d: Document =
                cursor.deserialize_current().map_err(|e| self.error(&context, &e.to_string()))?;
            let line = serde_json::to_string(&raw_envelope(d)).unwrap_or_default();
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| Error::io(path, e))?;
            n += 1;
        }
        tracing::info!(collection, documents = n, "Raw collection spooled.");
        Ok(n)
    }
}

impl MongoStore {
    /// Loads archive envelope lines into raw collection `collection` in
    /// Excititor's `vex.raw` shape: `content` as binData (the document's
    /// exact bytes), `retrievedAt` as a BSON date. Lines that are not JSON
    /// objects are skipped. For tests, demos and seeding benchmarks.
    pub fn import_raw(&mut self, collection: &str, lines: &[&str]) -> Result<u64> {
        use base64::Engine as _;
        use serde_json::value::RawValue;
        let mut ops = Vec::new();
        for line in lines {
            let Ok(fields) = serde_json::from_str::<Map<String, Json>>(line) else { continue };
            let Ok(raw) = serde_json::from_str::<HashMap<String, Box<RawValue>>>(line) else {
                continue;
            };
            let mut d = Document::new();
            for (k, v) in &fields {
                let value = match (k.as_str(), v) {
                    ("retrievedAt", Json::String(t)) => crate::parse::parse_instant(t)
                        .map(|us| Bson::DateTime(mongodb::bson::DateTime::from_millis(us / 1000)))
                        .unwrap_or_else(|| Bson::String(t.clone())),
                    ("content", Json::String(b64)) => {
                        match base64::engine::general_purpose::STANDARD.decode(b64) {
                            Ok(bytes) => Bson::Binary(mongodb::bson::Binary {
                                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                                bytes,
                            }),
                            Err(_) => Bson::String(b64.clone()),
                        }
                    }
                    ("content", _) => Bson::Binary(mongodb::bson::Binary {
                        subtype: mongodb::bson::spec::BinarySubtype::Generic,
                        bytes: raw
                            .get("content")
                            .map_or(b"null".to_vec(), |r| r.get().as_bytes().to_vec()),
                    }),
                    _ => json_to_bson(v),
                };
                d.insert(k.clone(), value);
            }
            ops.push(Op::Insert(d));
        }
        let coll: Collection<Document> = self.db.collection(collection);
        self.write(&coll, "import raw documents", &ops)?;
        Ok(ops.len() as u64)
    }
}

/// One `vex.raw` document as an archive envelope.
fn raw_envelope(mut d: Document) -> Json {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut m = Map::new();
    for key in ["digest", "providerId", "format", "sourceUri"] {
        if let Some(Bson::String(v)) = d.remove(key) {
            m.insert(key.to_owned(), Json::String(v));
        }
    }
    if !m.contains_key("digest") {
        if let Some(Bson::String(id)) =
            d.get("_id").filter(|id| matches!(id, Bson::String(s) if s.starts_with("sha256:")))
        {
            m.insert("digest".to_owned(), Json::String(id.clone()));
        }
    }
    match d.remove("retrievedAt") {
        Some(Bson::DateTime(t)) => {
            m.insert(
                "retrievedAt".into(),
                format_instant(t.timestamp_millis().saturating_mul(1000)).into(),
            );
        }
        Some(Bson::String(t)) => {
            m.insert("retrievedAt".into(), t.into());
        }
        _ => {}
    }
    if let Some(Bson::Document(meta)) = d.remove("metadata") {
        m.insert("metadata".into(), doc_to_json(meta));
    }
    let content = match d.remove("content") {
        Some(Bson::Binary(b)) => Some(Json::String(b64(&b.bytes))),
        Some(Bson::String(s)) => {
            // The document text itself, or (as in vex.raw) its base64.
            let text = s.trim_start_matches('\u{feff}').trim_start();
            if text.starts_with('{') || text.starts_with('[') {
                Some(Json::String(b64(s.as_bytes())))
            } else {
                Some(Json::String(s))
            }
        }
        Some(Bson::Document(inline)) => Some(doc_to_json(inline)),
        _ => None,
    };
    if let Some(c) = content {
        m.insert("content".into(), c);
    }
    Json::Object(m)
}

/// Splits write errors into duplicate keys (returned) and the first other
/// error (fatal).
fn split_duplicates<'a>(errors: impl Iterator<Item = (usize, i32, &'a str)>) -> WriteOutcome {
    let mut dups = Vec::new();
    for (index, code, message) in errors {
        if code == DUPLICATE_KEY {
            dups.push(index);
        } else {
            return Err(format!("write error {code}: {message}"));
        }
    }
    Ok(dups)
}

/// The top-level error a `Client::bulk_write` error wraps, if any.
fn top_level(e: &mongodb::error::Error) -> Option<&mongodb::error::Error> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<mongodb::error::Error>())
}

/// Whether an error is worth a retry.
fn is_transient(e: &mongodb::error::Error) -> bool {
    if TRANSIENT_LABELS.iter().any(|l| e.contains_label(l)) {
        return true;
    }
    if top_level(e).is_some_and(is_transient) {
        return true;
    }
    match &*e.kind {
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => true,
        ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => TRANSIENT_CODES.contains(&w.code),
        ErrorKind::InsertMany(im) => {
            im.write_concern_error.as_ref().is_some_and(|w| TRANSIENT_CODES.contains(&w.code))
        }
        ErrorKind::BulkWrite(bw) => {
            bw.write_concern_errors.iter().any(|w| TRANSIENT_CODES.contains(&w.code))
        }
        ErrorKind::Custom(_) => true,
        _ => false,
    }
}

/// A readable one-line message for a driver error (not yet scrubbed).
fn error_message(e: &mongodb::error::Error) -> String {
    match &*e.kind {
        ErrorKind::ServerSelection { message, .. } => {
            // "Server selection timeout: No available servers. Topology: {…}"
            // — keep the sentence and the servers' own errors, not the dump.
            let head = message.split(". Topology").next().unwrap_or(message);
            let cause = message
                .split("Error: Kind: ")
                .nth(1)
                .and_then(|c| c.split(", labels").next())
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!("{head}{cause}")
        }
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            format!("write error {}: {}", w.code, w.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern error {}: {}", w.code, w.message)
        }
        ErrorKind::InsertMany(im) => match (&im.write_concern_error, &im.write_errors) {
            (Some(w), _) => format!("write concern error {}: {}", w.code, w.message),
            (None, Some(errs)) => errs
                .first()
                .map(|w| format!("write error {}: {}", w.code, w.message))
                .unwrap_or_else(|| "insert failed".to_owned()),
            (None, None) => "insert failed".to_owned(),
        },
        ErrorKind::BulkWrite(_) if top_level(e).is_some() => {
            top_level(e).map(error_message).unwrap_or_default()
        }
        ErrorKind::BulkWrite(bw) => match bw.write_concern_errors.first() {
            Some(w) => format!("write concern error {}: {}", w.code, w.message),
            None => bw
                .write_errors
                .values()
                .next()
                .map(|w| format!("write error {}: {}", w.code, w.message))
                .unwrap_or_else(|| "bulk write failed".to_owned()),
        },
        ErrorKind::Authentication { message, .. } => format!("authentication failed: {message}"),
        ErrorKind::Custom(_) => "transient server error".to_owned(),
        other => other.to_string(),
    }
}

fn bson_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

fn bson_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Double(f) => Some(*f),
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

fn opt_str(v: Option<&str>) -> Bson {
    v.map_or(Bson::Null, |s| Bson::String(s.to_owned()))
}

/// `signals.kev` and `signals.epss` from one `epss` document, as SQLite
/// computes them.
fn signals_of(row: &Document) -> (Bson, Bson) {
    let kev = row.get("isKnownExploit").and_then(kev_of).map_or(Bson::Null, Bson::Boolean);
    let epss = doc! {
        "score": row.get("epssScore").cloned().unwrap_or(Bson::Null),
        "percentile": row.get("percentile").cloned().unwrap_or(Bson::Null),
        "date": row.get("scoreDate").cloned().unwrap_or(Bson::Null),
    };
    (kev, Bson::Document(epss))
}

/// A KEV flag stored as a boolean or as 0/1.
fn kev_of(v: &Bson) -> Option<bool> {
    match v {
        Bson::Boolean(b) => Some(*b),
        other => bson_i64(other).map(|i| i != 0),
    }
}

fn same_kev(a: &Bson, b: &Bson) -> bool {
    kev_of(a) == kev_of(b)
}

/// JSON to BSON: integers as Int64, other numbers as Double.
fn json_to_bson(v: &Json) -> Bson {
    match v {
        Json::Null => Bson::Null,
        Json::Bool(b) => Bson::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Bson::String(s.clone()),
        Json::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Json::Object(o) => {
            Bson::Document(o.iter().map(|(k, v)| (k.clone(), json_to_bson(v))).collect())
        }
    }
}

/// BSON to JSON, the logical shape (`_id` dropped at the top level by the
/// callers).
fn bson_to_json(v: Bson) -> Json {
    match v {
        Bson::Null | Bson::Undefined => Json::Null,
        Bson::Boolean(b) => Json::Bool(b),
        Bson::Int32(i) => Json::from(i),
        Bson::Int64(i) => Json::from(i),
        Bson::Double(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Bson::String(s) => Json::String(s),
        Bson::Array(a) => Json::Array(a.into_iter().map(bson_to_json).collect()),
        Bson::Document(d) => doc_to_json(d),
        other => other.into_relaxed_extjson(),
    }
}

fn doc_to_json(d: Document) -> Json {
    let mut m = Map::new();
    for (k, v) in d {
        if k != "_id" {
            m.insert(k, bson_to_json(v));
        }
    }
    Json::Object(m)
}

/// One statement in the logical shape, with its signals.
fn statement_doc(
    doc: &DocumentWrite,
    c: &Claim,
    digest: &str,
    retrieved: &str,
    inserted: &str,
    run_id: &str,
    (kev, epss): (Bson, Bson),
) -> Document {
    let metadata: Document =
        c.metadata.iter().map(|(k, v)| (k.to_owned(), Bson::String(v.to_owned()))).collect();
    doc! {
        "vulnerabilityId": &c.vulnerability_id,
        "aliases": c.aliases.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
        "productKey": &c.product_key,
        "purl": opt_str(c.purl.as_deref()),
        "providerId": &doc.provider_id,
        "status": c.status.as_str(),
        "justification": opt_str(c.justification.map(|j| j.as_str())),
        "detail": opt_str(c.detail.as_deref()),
        "action": opt_str(c.action.as_deref()),
        "document": {
            "digest": digest,
            "format": doc.format.as_str(),
            "sourceUri": &doc.source_uri,
            "retrievedAt": retrieved,
            "documentId": opt_str(doc.document_id.as_deref()),
            "revision": opt_str(doc.revision.as_deref()),
        },
        "firstSeen": retrieved,
        "lastSeen": retrieved,
        "signals": { "severity": opt_str(c.severity.as_deref()), "kev": kev, "epss": epss },
        "metadata": metadata,
        "insertedAt": inserted,
        "runId": run_id,
    }
}

fn ledger_doc(
    doc: &DocumentWrite,
    digest: &str,
    retrieved: &str,
    ctx: &WriteContext<'_>,
) -> Document {
    let metadata = doc
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Json>(m).ok())
        .map_or(Bson::Null, |m| json_to_bson(&m));
    doc! {
        "digest": digest,
        "format": doc.format.as_str(),
        "providerId": &doc.provider_id,
        "sourceUri": &doc.source_uri,
        "retrievedAt": retrieved,
        "statements": doc.claims.len() as i64,
        "metadata": metadata,
        "runId": ctx.run_id,
        "processedAt": format_timestamp(ctx.inserted_at),
    }
}

/// A statement document in the logical JSON shape, keys in the same order
/// as SQLite's `statement_row`.
fn statement_to_json(mut d: Document) -> Json {
    let mut m = Map::new();
    for key in [
        "vulnerabilityId",
        "aliases",
        "productKey",
        "purl",
        "providerId",
        "status",
        "justification",
        "detail",
        "action",
        "document",
        "firstSeen",
        "lastSeen",
        "signals",
        "metadata",
        "insertedAt",
        "runId",
    ] {
        m.insert(key.to_owned(), d.remove(key).map_or(Json::Null, bson_to_json));
    }
    // `kev` is a boolean, whatever a wire-compatible server made of it.
    if let Some(kev) = m.get_mut("signals").and_then(|s| s.get_mut("kev")) {
        if let Some(i) = kev.as_f64() {
            *kev = Json::Bool(i != 0.0);
        }
    }
    Json::Object(m)
}

fn epss_to_json(d: &Document) -> Json {
    let get = |k: &str| d.get(k).cloned().map_or(Json::Null, bson_to_json);
    serde_json::json!({
        "cve": get("cve"),
        "epssScore": get("epssScore"),
        "percentile": get("percentile"),
        "isKnownExploit": d.get("isKnownExploit").and_then(kev_of).unwrap_or(false),
        "modelVersion": get("modelVersion"),
        "scoreDate": get("scoreDate"),
        "createdAt": get("createdAt"),
        "updatedAt": get("updatedAt"),
    })
}

fn document_to_json(d: &Document) -> Json {
    let get = |k: &str| d.get(k).cloned().map_or(Json::Null, bson_to_json);
    serde_json::json!({
        "digest": get("digest"),
        "format": get("format"),
        "providerId": get("providerId"),
        "sourceUri": get("sourceUri"),
        "retrievedAt": get("retrievedAt"),
        "statements": get("statements"),
        "metadata": get("metadata"),
        "runId": get("runId"),
        "processedAt": get("processedAt"),
    })
}

fn run_to_record(d: &Document) -> RunRecord {
    let s = |k: &str| d.get_str(k).unwrap_or_default().to_owned();
    let opt = |k: &str| d.get_str(k).ok().map(str::to_owned);
    RunRecord {
        run_id: s("runId"),
        command: s("command"),
        arguments: d
            .get_array("arguments")
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        started_at: s("startedAt"),
        ended_at: opt("endedAt"),
        status: match d.get_str("status").unwrap_or_default() {
            "completed" => RunStatus::Completed,
            "stopped" => RunStatus::Stopped,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Running,
        },
        counters: d.get("counters").cloned().map_or(Json::Null, bson_to_json),
        error: opt("error"),
    }
}

/// What an EPSS upsert does to one row, computed from the stored row
/// exactly as the SQLite upsert decides it.
fn epss_change(row: &EpssRow, stored: Option<&Document>, now: &str) -> Option<Op> {
    let filter = doc! { "cve": row.cve.as_str() };
    let Some(old) = stored else {
        return Some(Op::Insert(doc! {
            "cve": row.cve.as_str(),
            "epssScore": row.epss_score,
            "percentile": row.percentile.map_or(Bson::Null, Bson::Double),
            "isKnownExploit": row.is_known_exploit.unwrap_or(false),
            "modelVersion": opt_str(row.model_version.as_deref()),
            "scoreDate": opt_str(row.score_date.as_deref()),
            "createdAt": now,
            "updatedAt": now,
        }));
    };
    let old_f = |k: &str| old.get(k).and_then(bson_f64);
    let old_kev = old.get("isKnownExploit").and_then(kev_of);
    let changed = old_f("epssScore") != Some(row.epss_score)
        || row.percentile.is_some_and(|p| old_f("percentile") != Some(p))
        || row.is_known_exploit.is_some_and(|k| old_kev != Some(k))
        || row
            .model_version
            .as_deref()
            .is_some_and(|m| old.get_str("modelVersion").ok() != Some(m));
    if !changed {
        return None;
    }
    Some(Op::Update { filter, update: doc! { "$set": epss_set(row, now) } })
}

/// The `$set` of a changed EPSS row: `None` fields keep the stored value.
fn epss_set(row: &EpssRow, now: &str) -> Document {
    let mut set = doc! { "epssScore": row.epss_score, "updatedAt": now };
    if let Some(p) = row.percentile {
        set.insert("percentile", p);
    }
    if let Some(k) = row.is_known_exploit {
        set.insert("isKnownExploit", k);
    }
    if let Some(m) = &row.model_version {
        set.insert("modelVersion", &**m);
    }
    if let Some(d) = &row.score_date {
        set.insert("scoreDate", &**d);
    }
    set
}

impl Store for MongoStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn begin_load(&mut self) -> Result<()> {
        let epss = &self.epss;
        let rows = self.retry("inspect epss", self.retry_budget, || {
            epss.find_one(doc! {}).projection(doc! { "_id": 1 }).run()
        })?;
        self.enrich_on_write = rows.is_some();
        Ok(())
    }

    fn record_run(&mut self, run: &RunRecord) -> Result<()> {
        let budget =
            if run.status == RunStatus::Failed { FAILED_RUN_BUDGET } else { self.retry_budget };
        let saved = std::mem::replace(&mut self.retry_budget, budget);
        let result = (|| {
            self.ensure_indexes()?;
            let counters = json_to_bson(&run.counters);
            let replacement = doc! {
                "runId": &run.run_id,
                "command": &run.command,
                "arguments": run.arguments.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
                "startedAt": &run.started_at,
                "endedAt": opt_str(run.ended_at.as_deref()),
                "status": run.status.as_str(),
                "counters": counters,
                "error": opt_str(run.error.as_deref()),
            };
            let op = Op::Replace { filter: doc! { "runId": &run.run_id }, replacement };
            self.write(&self.runs, "record run", &[op]).map(drop)
        })();
        self.retry_budget = saved;
        result
    }

    fn known_digests(&mut self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let mut by_text: HashMap<String, Digest> =
            digests.iter().map(|d| (d.to_string(), *d)).collect();
        let mut out = HashSet::new();
        let texts: Vec<String> = by_text.keys().cloned().collect();
        for chunk in texts.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|s| Bson::String(s.clone())).collect();
            let found = self.find_all(
                &self.documents,
                "read ledger",
                doc! { "digest": { "$in": list } },
                Some(doc! { "digest": 1, "_id": 0 }),
            )?;
            for d in found {
                if let Some(digest) = d.get_str("digest").ok().and_then(|s| by_text.remove(s)) {
                    out.insert(digest);
                }
            }
        }
        Ok(out)
    }

    fn write_documents(&mut self, docs: &[DocumentWrite], ctx: &WriteContext<'_>) -> Result<()> {
        self.ensure_indexes()?;
        let inserted = format_timestamp(ctx.inserted_at);
        self.write_batch(docs, ctx, &inserted)?;
        // The run's progress moves only once the batch is acknowledged.
        if let Some(cp) = ctx.checkpoint {
            self.write_checkpoint(cp, &inserted)?;
        }
        Ok(())
    }

    fn find_statements(&mut self, vulnerability_id: &str, product: &str) -> Result<Vec<Json>> {
        let mut found = self.find_all(
            &self.statements,
            "query statements",
            doc! {
                "vulnerabilityId": vulnerability_id,
                "$or": [ { "productKey": product }, { "purl": product } ],
            },
            None,
        )?;
        // SQLite's order: retrievedAt, digest, productKey (byte order).
        let key = |d: &Document| {
            let inner = d.get_document("document").ok();
            let s = |k: &str| inner.and_then(|i| i.get_str(k).ok()).unwrap_or_default().to_owned();
            (s("retrievedAt"), s("digest"), d.get_str("productKey").unwrap_or_default().to_owned())
        };
        found.sort_by_cached_key(key);
        Ok(found.into_iter().map(statement_to_json).collect())
    }

    fn export(&mut self, what: Export, each: &mut dyn FnMut(Json) -> Result<()>) -> Result<()> {
        match what {
            Export::Statements => self.find_sorted(
                &self.statements,
                doc! { "document.digest": 1, "vulnerabilityId": 1, "productKey": 1 },
                &mut |d| each(statement_to_json(d)),
            ),
            Export::Documents => {
                self.find_sorted(&self.documents, doc! { "digest": 1 }, &mut |d| {
                    each(document_to_json(&d))
                })
            }
            Export::Epss => {
                self.find_sorted(&self.epss, doc! { "cve": 1 }, &mut |d| each(epss_to_json(&d)))
            }
        }
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        let mut runs: Vec<RunRecord> = self
            .find_all(&self.runs, "list runs", doc! {}, None)?
            .iter()
            .map(run_to_record)
            .collect();
        runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        Ok(runs)
    }

    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.ensure_indexes()?;
        let now = format_timestamp(now);
        let mut counts = UpsertCounts::default();
        let mut stored: HashMap<String, Document> = HashMap::new();
        for chunk in rows.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|r| Bson::String(r.cve.to_string())).collect();
            for d in
                self.find_all(&self.epss, "read epss", doc! { "cve": { "$in": list } }, None)?
            {
                if let Ok(cve) = d.get_str("cve") {
                    stored.insert(cve.to_owned(), d);
                }
            }
        }
        let mut inserts = Vec::new();
        let mut inserted_rows = Vec::new();
        let mut updates = Vec::new();
        for r in rows {
            match epss_change(r, stored.get(r.cve.as_str()), &now) {
                None => counts.unchanged += 1,
                Some(op) => {
                    counts.upserted += 1;
                    if matches!(op, Op::Insert(_)) {
                        inserts.push(op);
                        inserted_rows.push(r);
                    } else {
                        updates.push(op);
                    }
                }
            }
        }
        for i in self.write(&self.epss, "write epss", &inserts)? {
            // Inserted meanwhile (a retried write, another writer): set the
            // values instead.
            let r = inserted_rows[i];
            updates.push(Op::Update {
                filter: doc! { "cve": r.cve.as_str() },
                update: doc! { "$set": epss_set(r, &now) },
            });
        }
        self.write(&self.epss, "write epss", &updates)?;
        // Only now, with the rows acknowledged, does the checkpoint move.
        if let Some(cp) = checkpoint {
            self.write_checkpoint(cp, &now)?;
        }
        Ok(counts)
    }

    fn load_checkpoint(&mut self, data_type: &str, source: &str) -> Result<Option<Checkpoint>> {
        let found = self.find_all(
            &self.checkpoints,
            "read checkpoint",
            doc! { "dataType": data_type, "source": source },
            None,
        )?;
        Ok(found.first().map(|d| Checkpoint {
            data_type: data_type.to_owned(),
            source: source.to_owned(),
            sequence: d.get_str("sequence").unwrap_or_default().to_owned(),
            chunk: d.get_str("chunk").unwrap_or_default().to_owned(),
            offset: d.get("offset").and_then(bson_i64).map_or(0, |o| o.max(0) as u64),
            complete: d.get_bool("complete").unwrap_or(false),
        }))
    }

    fn rollback(&mut self, scope: &RollbackScope, dry_run: bool) -> Result<RollbackReport> {
        // The scope is read off the ledger, as in SQLite: a run's documents
        // are the ledger entries it wrote last.
        let filter = match scope {
            RollbackScope::Run(id) => doc! { "runId": id },
            RollbackScope::Inserted { since, until } => doc! {
                "processedAt": { "$gte": format_timestamp(*since), "$lt": format_timestamp(*until) },
            },
        };
        let mut digests: Vec<String> = self
            .find_all(&self.documents, "rollback", filter, Some(doc! { "digest": 1, "_id": 0 }))?
            .iter()
            .filter_map(|d| d.get_str("digest").ok().map(str::to_owned))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        let lists: Vec<Bson> = digests
            .chunks(MAX_IN_VALUES)
            .map(|c| Bson::Array(c.iter().map(|d| Bson::String(d.clone())).collect()))
            .collect();
        let mut statements = 0;
        for list in &lists {
            let coll = &self.statements;
            let filter = doc! { "document.digest": { "$in": list.clone() } };
            let filter = &filter;
            statements += self.retry("rollback", self.retry_budget, || {
                coll.count_documents(filter.clone()).run()
            })?;
        }
        if !dry_run && !lists.is_empty() {
            self.ensure_indexes()?;
            // Statements first, ledger entries second: if this is cut
            // short, the ledger still names the documents and running the
            // same rollback again finishes it.
            let by_digest = |field: &str| -> Vec<Op> {
                lists.iter().map(|l| Op::DeleteMany(doc! { field: { "$in": l.clone() } })).collect()
            };
            self.write(&self.statements, "rollback statements", &by_digest("document.digest"))?;
            self.write(&self.documents, "rollback ledger", &by_digest("digest"))?;
        }
        Ok(RollbackReport { statements, digests })
    }

    fn stats(&mut self) -> Result<Json> {
        let count = |coll: &Collection<Document>, filter: Document| {
            let filter = &filter;
            self.retry("stats", self.retry_budget, || coll.count_documents(filter.clone()).run())
        };
        let group = |coll: &Collection<Document>, key: &str| -> Result<Json> {
            let pipeline = [
                doc! { "$group": { "_id": format!("${key}"), "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ];
            let pipeline = &pipeline;
            let rows = self.retry("stats", self.retry_budget, || {
                let mut cursor = coll.aggregate(pipeline.iter().cloned()).run()?;
                let mut out = Vec::new();
                while cursor.advance()? {
                    out.push(cursor.deserialize_current()?);
                }
                Ok(out)
            })?;
            let mut m = Map::new();
            for r in rows {
                let key = match r.get("_id") {
                    Some(Bson::String(k)) => k.clone(),
                    Some(Bson::Null) | None => "null".to_owned(),
                    Some(other) => other.to_string(),
                };
                m.insert(key, Json::from(r.get("n").and_then(bson_i64).unwrap_or(0)));
            }
            Ok(Json::Object(m))
        };
        let mut checkpoints: Vec<Document> =
            self.find_all(&self.checkpoints, "stats", doc! {}, None)?;
        let text = |d: &Document, k: &str| d.get_str(k).unwrap_or_default().to_owned();
        checkpoints.sort_by_key(|d| (text(d, "dataType"), text(d, "source")));
        let checkpoints: Vec<Json> = checkpoints
            .iter()
            .map(|d| {
                serde_json::json!({
                    "dataType": text(d, "dataType"),
                    "source": text(d, "source"),
                    "sequence": text(d, "sequence"),
                    "chunk": text(d, "chunk"),
                    "offset": d.get("offset").and_then(bson_i64).unwrap_or(0),
                    "complete": d.get("complete").and_then(kev_of).unwrap_or(false),
                    "updatedAt": text(d, "updatedAt"),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "statements": count(&self.statements, doc! {})?,
            "byProvider": group(&self.statements, "providerId")?,
            "byStatus": group(&self.statements, "status")?,
            "byFormat": group(&self.statements, "document.format")?,
            "documents": count(&self.documents, doc! {})?,
            "epss": {
                "rows": count(&self.epss, doc! {})?,
                // A boolean, or 0/1 on servers that store it so.
                "knownExploited": count(&self.epss, doc! { "isKnownExploit": { "$in": [true, 1] } })?,
            },
            "checkpoints": checkpoints,
            "runs": group(&self.runs, "status")?,
        }))
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        self.ensure_indexes()?;
        // The epss collection in memory (a few hundred thousand rows at
        // most), then one pass over the statements: only those whose
        // signals differ are updated.
        let mut signals: HashMap<String, (Bson, Bson)> = HashMap::new();
        self.find_sorted(&self.epss, doc! { "cve": 1 }, &mut |d| {
            if let Ok(cve) = d.get_str("cve") {
                signals.insert(cve.to_owned(), signals_of(&d));
            }
            Ok(())
        })?;
        let none = (Bson::Null, Bson::Null);
        let mut pending = Vec::new();
        let mut changed = 0u64;
        let coll = &self.statements;
        let projection = doc! { "_id": 1, "vulnerabilityId": 1, "signals": 1 };
        let projection = &projection;
        let mut cursor = self.retry("enrich statements", self.retry_budget, || {
            coll.find(doc! {}).projection(projection.clone()).run()
        })?;
        loop {
            let more = cursor
                .advance()
                .map_err(|e| self.error("enrich statements", &error_message(&e)))?;
            if more {
                let d: Document = cursor
                    .deserialize_current()
                    .map_err(|e| self.error("enrich statements", &e.to_string()))?;
                let vid = d.get_str("vulnerabilityId").unwrap_or_default();
                let (kev, epss) = signals.get(vid).unwrap_or(&none);
                let current = d.get_document("signals").ok();
                let cur = |k: &str| current.and_then(|s| s.get(k)).unwrap_or(&Bson::Null);
                if !same_kev(cur("kev"), kev) || cur("epss") != epss {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    // The whole signals document: some wire-compatible
                    // servers store a scalar boolean $set as 0/1.
                    let signals = doc! {
                        "severity": cur("severity").clone(),
                        "kev": kev.clone(),
                        "epss": epss.clone(),
                    };
                    pending.push(Op::Update {
                        filter: doc! { "_id": id },
                        update: doc! { "$set": { "signals": signals } },
                    });
                }
            }
            if pending.len() >= ENRICH_FLUSH || (!more && !pending.is_empty()) {
                self.write(&self.statements, "enrich statements", &pending)?;
                changed += pending.len() as u64;
                pending.clear();
            }
            if !more {
                return Ok(changed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_removes_raw_and_decoded_passwords() {
        let s = Scrubber::new("mongodb://admin:p%40ss@db:27017/vex?authSource=admin&token=abc");
        let msg = "auth for admin:p%40ss failed; p@ss wrong; token abc; \
                   uri mongodb://admin:p%40ss@db:27017/vex?authSource=admin&token=abc";
        let out = s.scrub(msg);
        assert!(!out.contains("p%40ss") && !out.contains("p@ss") && !out.contains("abc"), "{out}");
        assert!(out.contains("mongodb://admin:***@db:27017/vex"), "{out}");
    }

    #[test]
    fn scrubbed_messages_are_one_line() {
        let s = Scrubber::new("mongodb://db");
        assert_eq!(s.scrub("a\n  b\tc"), "a b c");
    }

    #[test]
    fn bson_sizes_are_exact() {
        let d = doc! {
            "a": 1i32, "b": "xyz", "c": [1i64, 2i64], "d": { "e": Bson::Null, "f": 1.5, "g": true },
        };
        let encoded = mongodb::bson::to_vec(&d).unwrap();
        assert_eq!(doc_size(&d), encoded.len());
    }

    #[test]
    fn json_round_trips_through_bson() {
        let v = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(bson_to_json(json_to_bson(&v)), v);
    }

    #[test]
    fn raw_documents_become_envelopes_whatever_the_content_type() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let text = "\u{feff}{\"a\": 1}";
        let binary = doc! {
            "_id": "sha256:abc",
            "providerId": "redhat",
            "retrievedAt": mongodb::bson::DateTime::from_millis(1_700_000_000_123),
            "metadata": { "etag": "x" },
            "content": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: text.as_bytes().to_vec(),
            },
        };
        let e = raw_envelope(binary);
        assert_eq!(e["digest"], "sha256:abc");
        assert_eq!(e["retrievedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(e["content"], b64(text.as_bytes()));
        assert_eq!(e["metadata"]["etag"], "x");
        // JSON text in a string: its bytes, base64-encoded.
        let e = raw_envelope(doc! { "retrievedAt": "2025-01-01T00:00:00Z", "content": text });
        assert_eq!(e["content"], b64(text.as_bytes()));
        assert_eq!(e["retrievedAt"], "2025-01-01T00:00:00Z");
        // A base64 string passes through; an embedded document is inline.
        let e = raw_envelope(doc! { "content": b64(b"{}") });
        assert_eq!(e["content"], b64(b"{}"));
        let e = raw_envelope(doc! { "content": { "statements": [] } });
        assert_eq!(e["content"], serde_json::json!({ "statements": [] }));
        assert!(e.get("digest").is_none());
    }

    fn row(score: f64) -> EpssRow {
        EpssRow {
            cve: crate::epss::CveId::parse("CVE-2024-0001").unwrap(),
            epss_score: score,
            percentile: None,
            is_known_exploit: None,
            model_version: None,
            score_date: None,
        }
    }

    #[test]
    fn epss_changes_follow_the_sqlite_rules() {
        let now = "2025-01-01T00:00:00Z";
        let Some(Op::Insert(new)) = epss_change(&row(0.5), None, now) else { panic!() };
        assert_eq!(new.get_bool("isKnownExploit"), Ok(false));
        assert_eq!(new.get("percentile"), Some(&Bson::Null));
        // Same score, no other values given: unchanged.
        assert!(epss_change(&row(0.5), Some(&new), now).is_none());
        // A new percentile is a change; a None percentile is not.
        let with_pct = EpssRow { percentile: Some(0.9), ..row(0.5) };
        assert!(epss_change(&with_pct, Some(&new), now).is_some());
        // KEV false given and stored false: unchanged; true: changed.
        let kev = EpssRow { is_known_exploit: Some(false), ..row(0.5) };
        assert!(epss_change(&kev, Some(&new), now).is_none());
        let kev = EpssRow { is_known_exploit: Some(true), ..row(0.5) };
        assert!(epss_change(&kev, Some(&new), now).is_some());
        // A score date alone is not a change.
        let dated = EpssRow { score_date: Some("2025-01-02".into()), ..row(0.5) };
        assert!(epss_change(&dated, Some(&new), now).is_none());
        assert!(epss_change(&row(0.6), Some(&new), now).is_some());
    }
}
