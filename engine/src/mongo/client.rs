//! The connection to a MongoDB server, shared by the store and the
//! `vex.raw` source: client options from the URI, the `hello` handshake
//! and the write path it decides, and every operation's retry loop with the
//! error classification behind it.
//!
//! Every operation is retried with exponential backoff on transient errors
//! (network, not-primary, retryable-write labels) for up to
//! [`RETRY_BUDGET`](crate::store::RETRY_BUDGET); after that it fails with one line. Credentials in the
//! URI never appear in a message: errors are rebuilt from the driver's and
//! scrubbed of the password.

use std::fmt;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::sync::{Client, Database};

use super::value::bson_i64;
use crate::error::{Error, Result};
use crate::redact::{redact_uri, Scrubber};

/// Environment variable that forces the write path: `legacy` uses the
/// collection-level commands even on 8.0+ servers, `bulk` uses
/// `Client::bulk_write` whatever the server says. Unset: decided from the
/// server's `hello` (maxWireVersion >= 25 means bulk).
pub const WRITE_PATH_ENV: &str = "BACKFILL_MONGODB_WRITE_PATH";

use crate::retry::{FIRST_BACKOFF, MAX_BACKOFF};

/// Per-attempt server selection and connect timeouts, unless the URI sets
/// them: short, so that the retry loop (not the driver) does the waiting.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// First wire version with the `bulkWrite` command (MongoDB 8.0).
const BULK_WRITE_WIRE_VERSION: i32 = 25;

/// Server error codes worth a retry (the retryable-writes specification's
/// list, plus write concern timeouts).
pub(crate) const TRANSIENT_CODES: &[i32] = &[
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

/// An open connection: the client, the database the URI names, and how
/// operations on it are written and retried.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) db: Database,
    /// The URI with credentials redacted.
    pub(crate) described: String,
    scrub: Scrubber,
    /// Use `Client::bulk_write`.
    pub(crate) bulk_api: bool,
    pub(crate) write_concern: WriteConcern,
    pub(crate) retry_budget: Duration,
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

impl Connection {
    /// Connects to the server named by `uri` (`mongodb://` or
    /// `mongodb+srv://`), database from the URI path (default `backfill`),
    /// and decides the write path from its `hello`.
    pub(crate) fn open(uri: &str) -> Result<Connection> {
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
        let budget = crate::retry::budget();
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
        let mut conn = Connection {
            client,
            db,
            described,
            scrub,
            bulk_api: false,
            write_concern,
            retry_budget: budget,
        };
        let hello = conn.hello()?;
        let wire = hello
            .get("maxWireVersion")
            .and_then(bson_i64)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        conn.bulk_api = match std::env::var(WRITE_PATH_ENV).as_deref() {
            Ok("legacy") => false,
            Ok("bulk") => true,
            _ => wire >= BULK_WRITE_WIRE_VERSION && conn.version_agrees(),
        };
        tracing::info!(
            store = %conn.described,
            database = %db_name,
            max_wire_version = wire,
            write_path = if conn.bulk_api { "Client::bulk_write" } else { "collection commands" },
            "Connected to MongoDB."
        );
        Ok(conn)
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

    pub(crate) fn error(&self, context: &str, msg: &str) -> Error {
        Error::Store {
            store: self.described.clone(),
            context: context.to_owned(),
            cause: Box::new(MongoError(self.scrub.scrub(msg))),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or `budget` is
    /// spent on transient errors.
    pub(crate) fn retry<T, F>(&self, context: &str, budget: Duration, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> mongodb::error::Result<T>,
    {
        let start = Instant::now();
        let mut delay = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut last_delay = Duration::ZERO;
        let mut last_network: Option<String> = None;
        loop {
            attempts += 1;
            let e = match attempt() {
                Ok(v) => {
                    if attempts > 1 {
                        tracing::warn!(
                            context,
                            attempts,
                            after_s = start.elapsed().as_secs_f64(),
                            "MongoDB is back; going on."
                        );
                    }
                    return Ok(v);
                }
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
            // An outage must be visible while it is ridden out: a warning
            // when retrying starts and each time the wait grows, then
            // quieter at the longest wait.
            let grown = attempts == 1 || delay > last_delay;
            let error = self.scrub.scrub(&msg);
            let (retry_in_ms, budget_s) = (delay.as_millis() as u64, budget.as_secs_f64());
            if grown {
                tracing::warn!(
                    context,
                    attempt = attempts,
                    retry_in_ms,
                    budget_s,
                    error = %error,
                    "MongoDB unavailable; retrying."
                );
            } else {
                tracing::info!(context, attempt = attempts, retry_in_ms, error = %error, "Retrying.");
            }
            std::thread::sleep(delay);
            last_delay = delay;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}

/// The top-level error a `Client::bulk_write` error wraps, if any.
pub(crate) fn top_level(e: &mongodb::error::Error) -> Option<&mongodb::error::Error> {
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
pub(crate) fn error_message(e: &mongodb::error::Error) -> String {
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
}
