//! The `statements` pipeline: scan, order, then batch by batch: ledger
//! lookup, parallel parse + normalize, in-order dedupe, one bulk write.
//!
//! Results do not depend on thread count or batch size: documents are put
//! in (`retrievedAt`, `digest`) order before any decision is made, the
//! parallel stage is a pure function of each document, and every decision
//! with state (skip, write) is taken in that order on one thread.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::dedupe::{Digest, DigestSet};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::parse::Scratch;
use crate::progress::Progress;
use crate::run::{recorded, Recorder, RunInfo};
use crate::source::{Archives, Entry, LooseFileDefaults, Position, Select};
use crate::stats::StatementStats;
use crate::store::{Checkpoint, ContentIdentity, RunLog, RunStatus, StatementSink};
use crate::time::format_instant;
use crate::writer;

use self::produce::Producer;
use self::write::{InFlight, Writer};

mod produce;
mod write;

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
    /// The content of a spooled stream (standard input, a raw collection):
    /// a stopped run's checkpoint resumes only the same content, since a
    /// position in another stream's order would skip its earlier
    /// documents. `None` for files, whose checkpoints name them.
    pub content: Option<ContentIdentity>,
    /// Read only files of walked directories matching one of these globs
    /// (all when empty).
    pub glob: Vec<String>,
    /// Leave out files of walked directories matching one of these.
    pub exclude: Vec<String>,
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
            content: None,
            glob: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

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

/// Runs `backfill statements` into `sink` (a store, or a dry run). Checks `stop` between batches:
/// when set, the current batch is flushed and the run is recorded as
/// stopped.
pub fn run_statements(
    cfg: &StatementsConfig,
    sink: &mut dyn StatementSink,
    run: &RunInfo,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<StatementsReport> {
    if cfg.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let (stats, stopped) = recorded(sink, run, |store, stats, recorder| {
        store.begin_load()?;
        let result = execute(cfg, store, run, recorder, progress, stop, stats);
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

/// Log lines per input of each kind (failed documents, dropped entries);
/// the rest are counted in one line per input, and all of them go to
/// [`Progress::problem`].
pub const LOGGED_PER_INPUT: u64 = 20;

/// Counts problems per input (a path given: an archive, or a directory
/// with all it holds), to log only the first few of each.
#[derive(Default)]
struct LogBudget(HashMap<u32, u64>);

impl LogBudget {
    /// Counts one more problem in input `root` (see
    /// [`Archives::input_of`]); whether to log it.
    fn take(&mut self, root: u32) -> bool {
        let n = self.0.entry(root).or_default();
        *n += 1;
        *n <= LOGGED_PER_INPUT
    }

    /// One line per input with more problems than were logged.
    fn summarize(&self, archives: &Archives, what: &str) {
        let mut over: Vec<(&u32, &u64)> =
            self.0.iter().filter(|(_, &n)| n > LOGGED_PER_INPUT).collect();
        over.sort();
        for (&root, &n) in over {
            let path = archives.roots()[root as usize].display();
            tracing::warn!(
                input = %path,
                more = n - LOGGED_PER_INPUT,
                total = n,
                "{what}: {} more in this input than logged (--failures FILE lists every one).",
                n - LOGGED_PER_INPUT
            );
        }
    }
}

/// The batch loop; returns whether it was stopped.
///
/// Two threads share the work so that parsing never waits for the store
/// ([`writer::run`]): this one scans, evaluates batches on the rayon pool
/// and decides skips in order; the writer thread owns the store and
/// performs ledger lookups and batch writes in the order they were sent.
/// The lookup for batch N+1 is sent before the write of batch N: it only
/// needs to see earlier runs, since duplicates within this run are caught
/// by the in-memory set. Counters are added only once a batch is durably
/// written.
fn execute(
    cfg: &StatementsConfig,
    store: &mut dyn StatementSink,
    run: &RunInfo,
    recorder: &mut Recorder,
    progress: &dyn Progress,
    stop: &AtomicBool,
    stats: &mut StatementStats,
) -> Result<bool> {
    let select = Select::new(&cfg.glob, &cfg.exclude)?;
    let archives = Archives::open_selected(&cfg.archives, &select, cfg.loose.clone(), &cfg.limits)?;
    let pool = build_pool(cfg.threads)?;
    let mut entries = pool.install(|| order_entries(&archives, cfg));
    let source = checkpoint_source(cfg, &archives);
    // Resume after an unfinished run over the same inputs: skip what it
    // already evaluated, so its counters and ours add up.
    let mut resume = resume_point(store.run_log(), &source, cfg.content)?;
    if let (Some(after), Some(_), Some(first)) = (&mut resume, cfg.content, entries.first()) {
        // The same bytes spooled again: one file, at a new temporary path,
        // which must not reorder it against the checkpoint's position.
        after.path = archives.position(first).path;
    }
    if let Some(after) = &resume {
        let done = entries.partition_point(|e| archives.position(e) <= *after);
        tracing::info!(
            skipped = done,
            after = %format!("{} {}", format_instant(after.retrieved_at), after.digest),
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

    // Shared with the pool, which frees written documents.
    let in_flight = Arc::new(InFlight::new(cfg.limits.max_document_bytes as u64));
    let (known_tx, known_rx) = crossbeam_channel::bounded::<Result<HashSet<Digest>>>(1);
    let writer = Writer {
        store,
        cfg,
        run,
        recorder,
        progress,
        pool: &pool,
        archives: &archives,
        in_flight: &in_flight,
        _closing: in_flight.closing(),
        known_tx,
        written: StatementStats::default(),
        notes: LogBudget::default(),
    };
    writer::run(writer, stats, |queue| {
        let mut producer = Producer {
            cfg,
            archives: &archives,
            source: &source,
            pool: &pool,
            progress,
            in_flight: &in_flight,
            queue,
            known_rx: &known_rx,
            seen: DigestSet::new(),
            scratch: Scratch::default(),
            // One scratch per pool thread, kept across batches: `map_init`
            // would build (and grow) a fresh one for every rayon job of
            // every batch.
            scratches: (0..pool.current_num_threads()).map(|_| Mutex::default()).collect(),
            failures: LogBudget::default(),
        };
        let stopped = producer.run(&entries, stop);
        producer.failures.summarize(&archives, "Documents failed");
        stopped
    })
}

/// Where to resume: after the position of the unfinished run over
/// `source`, unless that run is still going (a run started beside it, over
/// the same inputs, evaluates everything; the ledger skips what either
/// writes). `None` without a run log, or after a finished run.
fn resume_point(
    log: Option<&mut dyn RunLog>,
    source: &str,
    content: Option<ContentIdentity>,
) -> Result<Option<Position>> {
    let Some(log) = log else { return Ok(None) };
    let sources = [source.to_owned()];
    let Some(cp) = log.load_checkpoints(STATEMENTS_CHECKPOINT, &sources)?.pop().flatten() else {
        return Ok(None);
    };
    if cp.complete {
        return Ok(None);
    }
    if cp.identity != content {
        tracing::warn!(
            source,
            "The stopped run over this source read other content: starting over (the ledger \
             skips what is already written)."
        );
        return Ok(None);
    }
    let (position, writer) = match cp.sequence.split_once(RUN_MARK) {
        Some((position, run)) => (position, Some(run)),
        None => (cp.sequence.as_str(), None),
    };
    if let Some(run) = writer {
        // Runs found abandoned were marked when this one started.
        let running = log.runs()?.iter().any(|r| r.run_id == run && r.status == RunStatus::Running);
        if running {
            tracing::info!(
                run_id = run,
                "Another run over the same inputs is going on: not resuming it; every document \
                 is evaluated, and the ledger skips what either run writes."
            );
            return Ok(None);
        }
    }
    Ok(Position::from_checkpoint_fields(position, &cp.chunk, cp.offset))
}

/// Between a `statements` checkpoint's position and the run that wrote it.
const RUN_MARK: &str = "|run ";

/// What the inputs and the options that choose documents are called in
/// `checkpoints`: a checkpoint resumes only the same command over the same
/// inputs. A filtered run (`--retrieved-since`, `--max-documents`,
/// `--shard`, `--retrieved-at`, `--glob`, `--exclude`) has a scope of its own, so stopping it and
/// rerunning without the filter does not resume it (and call half the
/// archive done).
fn checkpoint_source(cfg: &StatementsConfig, archives: &Archives) -> String {
    let mut source = cfg.identity.clone().unwrap_or_else(|| archives.identity(&cfg.archives));
    if let Some(shard) = cfg.shard {
        source.push_str(&format!("\nshard {}/{}", shard.index, shard.count));
    }
    if let Some(since) = cfg.retrieved_since {
        source.push_str(&format!("\nretrieved-since {}", format_instant(since)));
    }
    if let Some(max) = cfg.max_documents {
        source.push_str(&format!("\nmax-documents {max}"));
    }
    for g in &cfg.glob {
        source.push_str(&format!("\nglob {g}"));
    }
    for x in &cfg.exclude {
        source.push_str(&format!("\nexclude {x}"));
    }
    if let Some(at) = cfg.loose.retrieved_at {
        // It orders loose documents, so positions mean something else.
        source.push_str(&format!("\nretrieved-at {}", format_instant(at)));
    }
    source
}

/// `cp` naming the run that wrote it (see [`resume_point`]).
fn stamped(mut cp: Checkpoint, run_id: &str) -> Checkpoint {
    if !cp.sequence.is_empty() {
        cp.sequence.push_str(RUN_MARK);
        cp.sequence.push_str(run_id);
    }
    cp
}

/// Name of the `statements` progress in `checkpoints`.
pub const STATEMENTS_CHECKPOINT: &str = "statements";

/// The checkpoint after `batch`: its last position; `complete` after the
/// last batch, so the next run starts over (and skips by the ledger).
fn checkpoint_at(
    source: &str,
    content: Option<ContentIdentity>,
    archives: &Archives,
    batch: &[Entry],
    complete: bool,
) -> Checkpoint {
    let (sequence, chunk, offset) =
        batch.last().map(|e| archives.position(e).to_checkpoint_fields()).unwrap_or_default();
    Checkpoint {
        data_type: STATEMENTS_CHECKPOINT.into(),
        source: source.to_owned(),
        sequence,
        chunk,
        offset,
        complete,
        identity: content,
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
