//! `backfill-engine`: a data-parallel batch engine for vulnerability
//! intelligence.
//!
//! It replays raw VEX documents (CSAF, CycloneDX, OpenVEX) into normalized
//! statements, and syncs EPSS / CVE-enrichment exports, into a [`Store`]:
//! an embedded SQLite file by default.
//!
//! # Stages and data flow
//!
//! ```text
//!  source ──scan (parallel)──▶ entries ──sort (retrievedAt, digest)──▶ batches
//!                                  │ skip what a checkpoint says is done
//!  per batch, in order:            ▼
//!    ledger lookup ─────────────▶ parse + normalize (rayon, order kept)
//!    (writer thread, one ahead)    │
//!                                  ▼
//!                     dedupe by digest (in order, DigestSet)
//!                                  │
//!                                  ▼
//!    store.write_documents: statements + ledger + checkpoint, one transaction
//!    (writer thread, overlapping the next batch's parse)
//! ```
//!
//! * [`source`](Archives) lists NDJSON archives and loose documents (big
//!   archives memory-mapped, small files read when needed, `.gz`
//!   decompressed within a cap) and scans envelopes in parallel into small
//!   [`Entry`] records.
//! * [`parse`](evaluate) decodes one document (base64 or inline JSON),
//!   verifies its digest, parses it with simd-json and calls the
//!   [`normalize`] function for its [`Format`]. Stateless: it runs on rayon.
//! * [`dedupe`](DigestSet) and the store's ledger decide, in order, what is
//!   new; a [`StatementSink`] (a [`Store`]: [`SqliteStore`] or MongoDB; or
//!   [`DryRun`]) writes each batch atomically, with the run's checkpoint,
//!   so a stopped or killed run resumes exactly. One writer loop, shared
//!   by the statements and EPSS runners, owns the store on its own thread
//!   while the next batch is parsed.
//! * [`run_statements`] drives it all, reports through a [`Progress`]
//!   callback, and stops cleanly between batches when asked; [`Shard`]
//!   splits the documents between workers by digest.
//! * [`run_epss`] is the same engine for EPSS exports: files after the
//!   checkpoint, batches of lines parsed on rayon, last row per CVE wins,
//!   upserts and checkpoint together.
//! * Every command that writes is a run in `runs` ([`recorded`]), with its
//!   counters ([`StatementStats`], [`SyncStats`]), which add up with `+=`.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use backfill_engine::{run_statements, NoProgress, RunInfo, SqliteStore, StatementsConfig, StoreOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let archive = dir.path().join("raw.ndjson");
//! let doc = r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
//!     {"vulnerability":{"name":"CVE-2023-1"},"products":[{"@id":"pkg:npm/a@1"}],"status":"fixed"}]}"#
//!     .replace('\n', "");
//! std::fs::write(&archive, format!(
//!     r#"{{"providerId":"demo","retrievedAt":"2025-01-01T00:00:00Z","content":{doc}}}"#))?;
//!
//! let mut store = SqliteStore::open(dir.path().join("backfill.db"), &StoreOptions::default())?;
//! let cfg = StatementsConfig { archives: vec![archive], ..Default::default() };
//! let run = RunInfo { run_id: "example".into(), command: "statements".into(), arguments: vec![] };
//! let report = run_statements(&cfg, &mut store, &run, &NoProgress, &AtomicBool::new(false))?;
//! assert_eq!(report.stats.to_string(),
//!     "Backfill completed: evaluated 1, backfilled 1, claims written 1, skipped 0, failures 0.");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod checkpoint;
mod cve;
mod dedupe;
mod envelope;
mod epss;
mod error;
pub mod gen;
mod limits;
pub mod model;
#[cfg(feature = "mongodb")]
mod mongo;
pub mod normalize;
mod parse;
mod pipeline;
mod progress;
pub mod redact;
#[cfg(any(feature = "mongodb", feature = "postgres"))]
mod retry;
mod run;
mod source;
mod stats;
pub mod store;
mod time;
mod writer;

pub use checkpoint::{list_bucket, resume_offset, ExportFile};
pub use cve::{cve_key, valid_cve, CveId};
pub use dedupe::{Digest, DigestSet};
pub use envelope::{content_bytes, read_envelope, Envelope};
pub use epss::{
    parse_gitlab_line, run_epss, CsvLayout, EpssConfig, EpssSource, FailedFile, SyncReport,
    SyncStats,
};
pub use error::{DocumentFailure, Error, FailureKind, Result};
pub use limits::Limits;
pub use model::RunOwner;
pub use normalize::{
    Claim, DropNote, DropReason, Dropped, Format, Justification, NormalizeError,
    NormalizedDocument, Status,
};
pub use parse::{evaluate, parse_document, DocumentWrite, Outcome, Scratch, MAX_NESTING};
pub use pipeline::{
    order_entries, run_statements, Shard, StatementsConfig, StatementsReport, LOGGED_PER_INPUT,
    STATEMENTS_CHECKPOINT,
};
pub use progress::{DroppedEntries, NoProgress, Problem, Progress};
pub use run::{new_run_id, reap_abandoned, recorded, Recorder, RunInfo, RUN_STALE_AFTER};
#[cfg(feature = "mongodb")]
pub use source::RawSpool;
pub use source::{
    Archives, Entry, InputFile, InputKind, LooseFileDefaults, Position, Select, StdinSpool,
};
pub use stats::{StatementStats, Written};
pub use store::{
    Admin, BatchOutcome, Checkpoint, DryRun, EpssRow, EpssSink, Export, Logged, Queries,
    RollbackReport, RollbackScope, RunLog, RunRecord, RunStatus, SqliteStore, StatementSink, Store,
    StoreOptions, UpsertCounts, WriteContext,
};
pub use time::{format_instant, format_timestamp, parse_instant};
