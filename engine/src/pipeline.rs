//! The `statements` pipeline: scan, order, then batch by batch: ledger
//! lookup, parallel parse + normalize, in-order dedupe, one bulk write.
//!
//! Results do not depend on thread count or batch size: documents are put
//! in (`retrievedAt`, `digest`) order before any decision is made, the
//! parallel stage is a pure function of each document, and every decision
//! with state (skip, write) is taken in that order on one thread.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::dedupe::{Digest, DigestSet};
use crate::error::{Error, Result};
use crate::parse::{self, evaluate, DocumentWrite, Outcome, Scratch};
use crate::run::{recorded, RunInfo};
use crate::source::{Archives, Entry, Limits, LooseFileDefaults, Position};
use crate::stats::StatementStats;
use crate::store::{Checkpoint, Store, WriteContext};

/// Everything `backfill statements` needs to know, built once from the
/// command line.
#[derive(Clone, Debug)]
pub struct StatementsConfig {
    /// Archives, loose documents and directories to read.
    pub archives: Vec<PathBuf>,
    /// Documents per batch (one store transaction each).
    pub batch_size: usize,
    /// Worker threads for scan, parse and normalize; 0 means one per core.
    pub threads: usize,
    /// Re-process digests already in the ledger, replacing their
    /// statements.
    pub force: bool,
    /// Keep only documents retrieved at or after this instant (Unix µs).
    pub retrieved_since: Option<i64>,
    /// Evaluate at most this many documents.
    pub max_documents: Option<u64>,
    /// Size limits.
    pub limits: Limits,
    /// How loose `*.json` files are described.
    pub loose: LooseFileDefaults,
    /// Take only this worker's share of the documents: `(index, count)`.
    pub shard: Option<Shard>,
    /// What the inputs are called in `checkpoints` (so a rerun over the
    /// same inputs resumes); `None` means their canonical paths. Set when
    /// the archive is a temporary spool of another source.
    pub identity: Option<String>,
}

/// One worker's share of a sharded run: the documents whose digest hashes
/// (xxh3) to `index` modulo `count`. Copies of a document share a digest,
/// so they meet in one worker, and N workers together evaluate each
/// document exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This worker, `0..count`.
    pub index: u32,
    /// Number of workers.
    pub count: u32,
}

impl Shard {
    /// Whether `e` belongs to this shard. Entries that failed before their
    /// digest was known are assigned by their position instead, so each
    /// failure is reported by exactly one worker.
    pub fn owns(&self, archives: &Archives, e: &Entry) -> bool {
        let h = if e.failure.is_some() {
            let p = archives.position(e);
            xxhash_rust::xxh3::xxh3_64_with_seed(p.path.as_bytes(), p.offset)
        } else {
            xxhash_rust::xxh3::xxh3_64(&e.digest.0)
        };
        h % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not a shard (I/N with 0 <= I < N, e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Default for StatementsConfig {
    fn default() -> StatementsConfig {
        StatementsConfig {
            archives: Vec::new(),
            batch_size: 100,
            threads: 0,
            force: false,
            retrieved_since: None,
            max_documents: None,
            limits: Limits::default(),
            loose: LooseFileDefaults::default(),
            shard: None,
            identity: None,
        }
    }
}

/// Progress callbacks. The engine never draws; the CLI turns these into a
/// progress bar. Called from the pipeline's thread, once per batch.
pub trait Progress: Sync {
    /// The number of documents to evaluate is known.
    fn begin(&self, _total: u64) {}
    /// `n` more documents were evaluated.
    fn advance(&self, _n: u64) {}
}

/// A [`Progress`] that does nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// How a `statements` run ended.
#[derive(Clone, Debug)]
pub struct StatementsReport {
    /// The counters.
    pub stats: StatementStats,
    /// True when a stop signal ended the run early.
    pub stopped: bool,
    /// The run id.
    pub run_id: String,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs `backfill statements` into `store`. Checks `stop` between batches:
/// when set, the current batch is flushed and the run is recorded as
/// stopped.
pub fn run_statements(
    cfg: &StatementsConfig,
    store: &mut dyn Store,
    run: &RunInfo,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<StatementsReport> {
    if cfg.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let (stats, stopped) = recorded(store, run, |store, stats| {
        store.begin_load()?;
        let result = execute(cfg, store, run, progress, stop, stats);
        // Indexes are rebuilt whatever happened (and at the next open if
        // even this fails).
        let end = store.end_load();
        let stopped = result?;
        end?;
        Ok(stopped)
    })?;
    Ok(StatementsReport { stats, stopped, run_id: run.run_id.clone() })
}

fn build_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("backfill-worker-{i}"))
        .build()
        .map_err(|e| Error::Config(format!("cannot start {threads} worker threads: {e}")))
}

/// A request to the writer thread, which owns the store. Requests are
/// served in order.
enum Request {
    /// Which of these digests are in the ledger (answered on the reply
    /// channel).
    Known(Vec<Digest>),
    /// Write these documents, then count the batch.
    Write {
        docs: Vec<DocumentWrite>,
        stats: StatementStats,
        evaluated: u64,
        checkpoint: Checkpoint,
    },
}

/// The batch loop; returns whether it was stopped.
///
/// Two threads share the work so that parsing never waits for the store:
/// this one scans, evaluates batches on the rayon pool and decides skips
/// in order; a writer thread owns the store and performs ledger lookups
/// and batch writes in the order they were sent. The lookup for batch N+1
/// is sent before the write of batch N: it only needs to see earlier runs,
/// since duplicates within this run are caught by the in-memory set.
/// Counters are added only once a batch is durably written.
fn execute(
    cfg: &StatementsConfig,
    store: &mut dyn Store,
    run: &RunInfo,
    progress: &dyn Progress,
    stop: &AtomicBool,
    stats: &mut StatementStats,
) -> Result<bool> {
    let archives = Archives::open(&cfg.archives, cfg.loose.clone(), &cfg.limits)?;
    let pool = build_pool(cfg.threads)?;
    let mut entries = pool.install(|| order_entries(&archives, cfg));
    let mut source = cfg.identity.clone().unwrap_or_else(|| archives.identity(&cfg.archives));
    if let Some(shard) = cfg.shard {
        // Each shard has its own progress.
        source.push_str(&format!("\nshard {}/{}", shard.index, shard.count));
    }
    // Resume after an unfinished run over the same inputs: skip what it
    // already evaluated, so its counters and ours add up.
    let resume = store
        .load_checkpoint(STATEMENTS_CHECKPOINT, &source)?
        .filter(|cp| !cp.complete)
        .and_then(|cp| Position::from_checkpoint_fields(&cp.sequence, &cp.chunk, cp.offset));
    if let Some(after) = &resume {
        let done = entries.partition_point(|e| archives.position(e) <= *after);
        tracing::info!(
            skipped = done,
            after = %format!("{} {}", parse::format_instant(after.retrieved_at), after.digest),
            "Resuming an unfinished run."
        );
        entries.drain(..done);
    }
    progress.begin(entries.len() as u64);
    tracing::info!(
        files = archives.files().len(),
        bytes = archives.total_bytes(),
        documents = entries.len(),
        "Archives scanned."
    );

    let (req_tx, req_rx) = crossbeam_channel::bounded::<Request>(2);
    let (known_tx, known_rx) = crossbeam_channel::bounded::<Result<HashSet<Digest>>>(1);
    std::thread::scope(|scope| {
        let pool = &pool;
        let writer = scope.spawn(move || -> (StatementStats, Result<()>) {
            let mut written = StatementStats::default();
            for req in req_rx {
                match req {
                    Request::Known(digests) => {
                        let _ = known_tx.send(store.known_digests(&digests));
                    }
                    Request::Write { docs, stats, evaluated, checkpoint } => {
                        let ctx = WriteContext {
                            run_id: &run.run_id,
                            inserted_at: now_micros(),
                            force: cfg.force,
                            checkpoint: Some(&checkpoint),
                        };
                        // On error the loop ends: dropping the receiver
                        // stops the producer at its next send.
                        if let Err(e) = store.write_documents(&docs, &ctx) {
                            return (written, Err(e));
                        }
                        // Freeing some million strings is a tenth of the
                        // writer's time; the pool does it meanwhile.
                        pool.spawn(move || drop(docs));
                        written += stats;
                        progress.advance(evaluated);
                    }
                }
            }
            (written, Ok(()))
        });
        let produced = produce(cfg, &archives, &source, &entries, pool, stop, &req_tx, &known_rx);
        drop(req_tx);
        let (written, result) =
            writer.join().map_err(|_| Error::Config("the writer thread panicked".into()))?;
        // Only durably written batches count.
        *stats = written;
        // A writer error is the root cause of any producer error.
        result?;
        produced
    })
}

/// The producing half of [`execute`]: evaluates batches in order and
/// sends lookups and writes to the writer. Returns whether it was stopped.
#[allow(clippy::too_many_arguments)]
fn produce(
    cfg: &StatementsConfig,
    archives: &Archives,
    source: &str,
    entries: &[Entry],
    pool: &rayon::ThreadPool,
    stop: &AtomicBool,
    req_tx: &crossbeam_channel::Sender<Request>,
    known_rx: &crossbeam_channel::Receiver<Result<HashSet<Digest>>>,
) -> Result<bool> {
    let writer_gone = || Error::Config("the store writer stopped".into());
    let lookup = |batch: &[Entry]| -> Result<()> {
        if !cfg.force {
            let digests = batch.iter().filter(|e| e.failure.is_none()).map(|e| e.digest).collect();
            req_tx.send(Request::Known(digests)).map_err(|_| writer_gone())?;
        }
        Ok(())
    };
    let seen = DigestSet::new();
    let mut scratch = Scratch::default();
    // One scratch per pool thread, kept across batches: `map_init` would
    // build (and grow) a fresh one for every rayon job of every batch.
    let scratches: Vec<Mutex<Scratch>> =
        (0..pool.current_num_threads()).map(|_| Mutex::default()).collect();
    let sequential = pool.current_num_threads() == 1;
    let batches: Vec<&[Entry]> = entries.chunks(cfg.batch_size).collect();
    if batches.is_empty() {
        // Nothing (left) to do still finishes the run's progress, or a
        // resumed run with nothing left would stay unfinished forever.
        let checkpoint = checkpoint_at(source, archives, &[], true);
        let write = Request::Write {
            docs: Vec::new(),
            stats: StatementStats::default(),
            evaluated: 0,
            checkpoint,
        };
        req_tx.send(write).map_err(|_| writer_gone())?;
        return Ok(false);
    }
    lookup(batches[0])?;
    for (i, batch) in batches.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let ledger = if cfg.force {
            HashSet::new()
        } else {
            known_rx.recv().map_err(|_| writer_gone())??
        };
        // Queue the next lookup now, ahead of this batch's write.
        if let Some(next) = batches.get(i + 1) {
            lookup(next)?;
        }
        let known = |e: &Entry| {
            e.failure.is_none() && (ledger.contains(&e.digest) || seen.contains(&e.digest))
        };
        let outcomes: Vec<Outcome> = if sequential {
            batch
                .iter()
                .map(|e| evaluate(archives, e, known(e), &cfg.limits, &mut scratch))
                .collect()
        } else {
            pool.install(|| {
                batch
                    .par_iter()
                    .map(|e| {
                        let thread = rayon::current_thread_index().unwrap_or(0);
                        let mut s =
                            scratches[thread].lock().unwrap_or_else(PoisonError::into_inner);
                        evaluate(archives, e, known(e), &cfg.limits, &mut s)
                    })
                    .collect()
            })
        };

        let mut docs = Vec::new();
        let mut batch_stats = StatementStats::default();
        for (e, outcome) in batch.iter().zip(outcomes) {
            batch_stats.evaluated += 1;
            match outcome {
                Outcome::Failed(f) => {
                    batch_stats.failures += 1;
                    // Entries that failed in the scan have no digest yet.
                    let digest = if e.failure.is_some() {
                        "unknown".to_owned()
                    } else {
                        e.digest.to_string()
                    };
                    tracing::warn!(
                        input = %archives.origin(e),
                        digest = %digest,
                        kind = f.kind.as_str(),
                        reason = %f.reason,
                        "Document failed."
                    );
                }
                Outcome::Known => batch_stats.skipped += 1,
                Outcome::Ready(doc) => {
                    // A digest seen earlier in this batch is a duplicate too.
                    if seen.insert(doc.digest) {
                        batch_stats.backfilled += 1;
                        batch_stats.claims_written += doc.claims.len() as u64;
                        docs.push(*doc);
                    } else {
                        batch_stats.skipped += 1;
                    }
                }
            }
        }
        let evaluated = batch.len() as u64;
        let last = i + 1 == batches.len();
        let checkpoint = checkpoint_at(source, archives, batch, last);
        req_tx
            .send(Request::Write { docs, stats: batch_stats, evaluated, checkpoint })
            .map_err(|_| writer_gone())?;
    }
    Ok(false)
}

/// Name of the `statements` progress in `checkpoints`.
pub const STATEMENTS_CHECKPOINT: &str = "statements";

/// The checkpoint after `batch`: its last position; `complete` after the
/// last batch, so the next run starts over (and skips by the ledger).
fn checkpoint_at(source: &str, archives: &Archives, batch: &[Entry], complete: bool) -> Checkpoint {
    let (sequence, chunk, offset) =
        batch.last().map(|e| archives.position(e).to_checkpoint_fields()).unwrap_or_default();
    Checkpoint {
        data_type: STATEMENTS_CHECKPOINT.into(),
        source: source.to_owned(),
        sequence,
        chunk,
        offset,
        complete,
    }
}

/// Scans all inputs and returns the entries to evaluate, in evaluation
/// order, filtered by `--retrieved-since` and capped by `--max-documents`.
pub fn order_entries(archives: &Archives, cfg: &StatementsConfig) -> Vec<Entry> {
    let mut entries = archives.scan(&cfg.limits);
    if let Some(shard) = cfg.shard {
        entries.retain(|e| shard.owns(archives, e));
    }
    if let Some(since) = cfg.retrieved_since {
        // Entries that already failed have no known time; they are kept so
        // that no bad input goes unreported.
        entries.retain(|e| e.failure.is_some() || e.retrieved_at >= since);
    }
    entries.par_sort_unstable_by_key(|e| archives.sort_key(e));
    if let Some(max) = cfg.max_documents {
        entries.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    entries
}
