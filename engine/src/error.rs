//! Engine errors.
//!
//! Two kinds of trouble are kept apart on purpose. A [`DocumentFailure`] is
//! one bad input document: it is counted, logged with its digest and the run
//! goes on. An [`Error`] is fatal to the run: an archive that cannot be
//! opened, a store that cannot be written.

use std::fmt;
use std::path::PathBuf;

/// A fatal error: the run cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input path could not be read.
    #[error("{path}: {cause}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained).
        cause: std::io::Error,
    },
    /// The store rejected an operation.
    #[error("store {store}: {context}: {cause}")]
    Store {
        /// The store, with credentials redacted.
        store: String,
        /// What was being done.
        context: String,
        /// The underlying error (shown in the message, so not chained).
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration is invalid (bad flag value, unknown store scheme).
    #[error("{0}")]
    Config(String),
    /// The caller asked for something that cannot be what they meant: a
    /// usage error (an empty or in-memory store, whose data would be
    /// thrown away).
    #[error("{0}")]
    Usage(String),
    /// A command that only reads found no store where it was pointed
    /// (and did not create one).
    #[error("no store at {0}")]
    NoStore(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), cause: source }
    }
}

/// Result alias for fatal engine errors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one document failed. The run counts it and goes on; a failed
/// document is not recorded in the ledger, so the next run tries it again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The envelope line is not valid JSON or lacks a required field.
    Envelope,
    /// The declared digest does not match the content bytes.
    DigestMismatch,
    /// The content is not valid base64 / JSON.
    Json,
    /// The format is absent and cannot be detected, or is not supported.
    UnknownFormat,
    /// The normalizer could not interpret the document.
    Normalize,
    /// A resource limit (document size, line length, nesting) was hit.
    Limit,
}

impl FailureKind {
    /// Short stable name, used in logs and JSON output.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Envelope => "envelope",
            FailureKind::DigestMismatch => "digest_mismatch",
            FailureKind::Json => "json",
            FailureKind::UnknownFormat => "unknown_format",
            FailureKind::Normalize => "normalize",
            FailureKind::Limit => "limit",
        }
    }
}

/// One failed document: what it was, where it came from and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentFailure {
    /// Category of the failure.
    pub kind: FailureKind,
    /// One-line reason, naming the cause.
    pub reason: String,
}

impl DocumentFailure {
    /// Builds a failure of `kind` with `reason`.
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> DocumentFailure {
        DocumentFailure { kind, reason: reason.into() }
    }
}

impl fmt::Display for DocumentFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.reason)
    }
}
