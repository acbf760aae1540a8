//! The connection to a PostgreSQL server: settings from the URI, the
//! retry loop every operation runs in, and the error classification and
//! one-line messages behind it.
//!
//! An operation is a closure over the client; on a transient error
//! (connection lost or refused, serialization failure, deadlock, server
//! shutting down or starting) it is run again, on a new connection when the
//! old one is closed, with exponential backoff for up to the retry budget
//! ([`crate::retry`], the MongoDB store's). A transaction is one operation,
//! so a retry redoes it whole. Credentials in the URI never appear in a
//! message.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use crate::error::{Error, Result};
use crate::redact::{redact_uri, Scrubber};
use crate::retry::{FIRST_BACKOFF, MAX_BACKOFF};

/// Per-attempt connect timeout unless the URI sets one: short, so that
/// the retry loop (not the driver) does the waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLSTATEs worth a retry.
const TRANSIENT_STATES: &[SqlState] = &[
    SqlState::T_R_SERIALIZATION_FAILURE,
    SqlState::T_R_DEADLOCK_DETECTED,
    SqlState::ADMIN_SHUTDOWN,
    SqlState::CRASH_SHUTDOWN,
    SqlState::CANNOT_CONNECT_NOW,
    SqlState::CONNECTION_EXCEPTION,
    SqlState::CONNECTION_DOES_NOT_EXIST,
    SqlState::CONNECTION_FAILURE,
    SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
    SqlState::TOO_MANY_CONNECTIONS,
];

/// A driver failure, already turned into one scrubbed line.
#[derive(Debug)]
struct PgError(String);

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

/// A connection that reconnects: the settings, the client while it is
/// open, and how operations on it are retried.
pub(super) struct Connection {
    config: Config,
    client: Option<Client>,
    /// The URI with credentials redacted.
    pub(super) described: String,
    scrub: Scrubber,
    budget: Duration,
    /// Bumped at every new client, so that per-session state (the
    /// temporary staging table) is made again after a reconnect.
    pub(super) session: u64,
}

impl Connection {
    /// Connects to the server named by `uri` (`postgres://` or
    /// `postgresql://`), retrying while it is unreachable.
    pub(super) fn open(uri: &str) -> Result<Connection> {
        let scrub = Scrubber::new(uri);
        let described = redact_uri(uri);
        let budget = crate::retry::budget();
        let mut config = Config::from_str(uri).map_err(|e| Error::Store {
            store: described.clone(),
            context: "parse the URI".into(),
            cause: Box::new(PgError(scrub.scrub(&error_message(&e)))),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT.min(budget.max(Duration::from_secs(1))));
        }
        if config.get_application_name().is_none() {
            config.application_name("backfill");
        }
        let mut conn = Connection { config, client: None, described, scrub, budget, session: 0 };
        conn.run("connect", |_| Ok(()))?;
        tracing::info!(store = %conn.described, "Connected to PostgreSQL.");
        Ok(conn)
    }

    /// The store error for `msg` (scrubbed), while doing `context`.
    pub(super) fn error(&self, context: &str, msg: &str) -> Error {
        Error::Store {
            store: self.described.clone(),
            context: context.to_owned(),
            cause: Box::new(PgError(self.scrub.scrub(msg))),
        }
    }

    /// Runs `attempt` on an open client until it succeeds, fails for good,
    /// or the retry budget is spent on transient errors.
    pub(super) fn run<T, F>(&mut self, context: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(&mut Client) -> std::result::Result<T, postgres::Error>,
    {
        let start = Instant::now();
        let mut delay = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut last_delay = Duration::ZERO;
        loop {
            attempts += 1;
            let e = match self.attempt(&mut attempt) {
                Ok(v) => {
                    if attempts > 1 {
                        tracing::warn!(
                            context,
                            attempts,
                            after_s = start.elapsed().as_secs_f64(),
                            "PostgreSQL is back; going on."
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
            if self.client.as_ref().is_some_and(|c| c.is_closed()) {
                self.client = None;
            }
            if start.elapsed() + delay > self.budget {
                return Err(self.error(
                    context,
                    &format!(
                        "gave up after {attempts} attempt{} in {:.1}s: {msg}",
                        if attempts == 1 { "" } else { "s" },
                        start.elapsed().as_secs_f64()
                    ),
                ));
            }
            let error = self.scrub.scrub(&msg);
            let (retry_in_ms, budget_s) = (delay.as_millis() as u64, self.budget.as_secs_f64());
            if attempts == 1 || delay > last_delay {
                tracing::warn!(
                    context,
                    attempt = attempts,
                    retry_in_ms,
                    budget_s,
                    error = %error,
                    "PostgreSQL unavailable; retrying."
                );
            } else {
                tracing::info!(context, attempt = attempts, retry_in_ms, error = %error, "Retrying.");
            }
            std::thread::sleep(delay);
            last_delay = delay;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt: connects first when there is no open client.
    fn attempt<T, F>(&mut self, attempt: &mut F) -> std::result::Result<T, postgres::Error>
    where
        F: FnMut(&mut Client) -> std::result::Result<T, postgres::Error>,
    {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            let client = self.config.connect(NoTls)?;
            self.session += 1;
            self.client = Some(client);
        }
        attempt(self.client.as_mut().expect("connected above"))
    }
}

/// Whether an error is worth a retry: a lost or refused connection, or a
/// SQLSTATE of [`TRANSIENT_STATES`].
fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return TRANSIENT_STATES.contains(code) || code.code().starts_with("08");
    }
    // No SQLSTATE: an I/O error (connection refused, reset, timed out) or
    // the server hanging up mid-message.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    text.contains("connection closed") || text.contains("error connecting")
}

/// A readable one-line message for a driver error (not yet scrubbed).
fn error_message(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            m.push_str(&format!("; {detail}"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !m.contains(&s_text) {
            m.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    m
}
