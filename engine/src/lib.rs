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
//! * [`source`](Archives) memory-maps NDJSON archives and loose documents
//!   (`.gz` decompressed within a cap) and scans envelopes in parallel into
//!   small [`Entry`] records.
//! * [`parse`](evaluate) decodes one document (base64 or inline JSON),
//!   verifies its digest, parses it with simd-json and calls the
//!   [`normalize`] function for its [`Format`]. Stateless: it runs on rayon.
//! * [`dedupe`](DigestSet) and the store's ledger decide, in order, what is
//!   new; a [`Store`] ([`SqliteStore`], MongoDB, or [`NullStore`] for dry
//!   runs) writes each batch atomically, with the run's checkpoint, so a
//!   stopped or killed run resumes exactly.
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
mod dedupe;
mod epss;
mod error;
pub mod gen;
pub mod normalize;
mod parse;
mod pipeline;
mod run;
mod source;
mod stats;
pub mod store;

pub use checkpoint::{list_bucket, resume_offset, ExportFile};
pub use dedupe::{Digest, DigestSet};
pub use epss::{
    cve_key, parse_gitlab_line, run_epss, valid_cve, CsvLayout, CveId, EpssConfig, EpssSource,
    SyncReport, SyncStats,
};
pub use error::{DocumentFailure, Error, FailureKind, Result};
pub use normalize::{Claim, Format, Justification, NormalizeError, NormalizedDocument, Status};
pub use parse::{
    content_bytes, evaluate, format_instant, format_timestamp, parse_document, parse_instant,
    read_envelope, DocumentWrite, Envelope, Outcome, Scratch, MAX_NESTING,
};
pub use pipeline::{
    order_entries, run_statements, NoProgress, Progress, Shard, StatementsConfig, StatementsReport,
    STATEMENTS_CHECKPOINT,
};
pub use run::{new_run_id, recorded, RunInfo};
pub use source::{Archives, Entry, InputFile, InputKind, Limits, LooseFileDefaults, Position};
pub use stats::StatementStats;
pub use store::{
    Checkpoint, EpssRow, Export, NullStore, RollbackReport, RollbackScope, RunRecord, RunStatus,
    SqliteStore, Store, StoreOptions, UpsertCounts, WriteContext,
};
