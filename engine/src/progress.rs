//! How the engine reports while it runs: a callback the CLI draws as a
//! progress bar, and every problem found, for the `--failures` file.

use serde::Serialize;

use crate::normalize::DropReason;

/// Progress callbacks. The engine never draws; the CLI turns these into a
/// progress bar. Called from the pipeline's threads, once per batch (and
/// once per problem found).
pub trait Progress: Sync {
    /// The number of documents (rows, bytes) to go through is known.
    fn begin(&self, _total: u64) {}
    /// `n` more were done.
    fn advance(&self, _n: u64) {}
    /// A document failed, or entries of a written document were dropped
    /// for a defect: every one, in evaluation order (the log shows only
    /// the first few of each input).
    fn problem(&self, _problem: &Problem<'_>) {}
}

/// A [`Progress`] that does nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// A failed document, or a defect that dropped entries of a written one:
/// one line of the `--failures` file.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem<'a> {
    /// The input file.
    pub input: &'a str,
    /// 1-based line in an archive (absent for a loose document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Byte offset of the document (its line) in the input.
    pub offset: u64,
    /// The document's digest, when known.
    pub digest: Option<String>,
    /// The failure kind (`json`, `digest_mismatch`, ...), or `dropped`.
    pub kind: &'a str,
    /// What is wrong.
    pub reason: &'a str,
    /// For `dropped`: why, where in the document, and how many entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<DroppedEntries<'a>>,
}

/// The drop part of a [`Problem`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedEntries<'a> {
    /// The reason (`unknownStatus`, ...).
    pub reason: DropReason,
    /// Where in the document.
    pub at: &'a str,
    /// Entries dropped.
    pub entries: u64,
}
