//! The producing half of a `statements` run: batches in order, parsed
//! and normalized on the pool, skips decided in order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::write::{Batch, InFlight, Request};
use super::{checkpoint_at, LogBudget, StatementsConfig};
use crate::dedupe::{Digest, DigestSet};
use crate::error::{DocumentFailure, Result};
use crate::parse::{evaluate, Outcome, Scratch};
use crate::progress::{Problem, Progress};
use crate::source::{Archives, Entry};
use crate::stats::StatementStats;
use crate::writer;

/// The producing half of [`execute`]: evaluates batches in order and
/// sends lookups and writes to the writer.
pub(super) struct Producer<'a, 'q> {
    pub(super) cfg: &'a StatementsConfig,
    pub(super) archives: &'a Archives,
    /// The checkpoint's source.
    pub(super) source: &'a str,
    pub(super) pool: &'a rayon::ThreadPool,
    pub(super) progress: &'a dyn Progress,
    pub(super) in_flight: &'a InFlight,
    pub(super) queue: &'a writer::Queue<'q, Request>,
    pub(super) known_rx: &'a crossbeam_channel::Receiver<Result<HashSet<Digest>>>,
    /// Digests evaluated in this run (in order).
    pub(super) seen: DigestSet,
    /// For a one-thread pool, which evaluates on this thread.
    pub(super) scratch: Scratch,
    pub(super) scratches: Vec<Mutex<Scratch>>,
    pub(super) failures: LogBudget,
}

impl Producer<'_, '_> {
    /// Evaluates and sends every batch of `entries`; returns whether it was
    /// stopped.
    pub(super) fn run(&mut self, entries: &[Entry], stop: &AtomicBool) -> Result<bool> {
        let batches = batches(entries, self.cfg.batch_size, self.in_flight.cap);
        if batches.is_empty() {
            // Nothing (left) to do still finishes the run's progress, or a
            // resumed run with nothing left would stay unfinished forever.
            let checkpoint = checkpoint_at(self.source, self.cfg.content, self.archives, &[], true);
            let batch = Batch {
                docs: Vec::new(),
                origins: Vec::new(),
                stats: StatementStats::default(),
                evaluated: 0,
                bytes: 0,
                checkpoint,
            };
            self.queue.send(Request::Write(Box::new(batch)))?;
            return Ok(false);
        }
        self.lookup(batches[0])?;
        for (i, batch) in batches.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Ok(true);
            }
            // Wait until the documents in flight leave room for this batch.
            let bytes = self.in_flight.acquire(batch.iter().map(|e| e.len).sum());
            let bytes = bytes.ok_or_else(writer::stopped)?;
            let ledger = if self.cfg.force {
                HashSet::new()
            } else {
                self.known_rx.recv().map_err(|_| writer::stopped())??
            };
            // Queue the next lookup now, ahead of this batch's write.
            if let Some(next) = batches.get(i + 1) {
                self.lookup(next)?;
            }
            let outcomes = self.evaluate(batch, &ledger);
            let mut batch = self.assemble(batch, outcomes, i + 1 == batches.len());
            batch.bytes = bytes;
            self.queue.send(Request::Write(Box::new(batch)))?;
        }
        Ok(false)
    }

    /// Asks the writer which of `batch`'s digests the ledger knows.
    fn lookup(&self, batch: &[Entry]) -> Result<()> {
        if self.cfg.force {
            return Ok(());
        }
        let digests = batch.iter().filter(|e| e.failure.is_none()).map(|e| e.digest).collect();
        self.queue.send(Request::Known(digests))
    }

    /// Parses and normalizes `batch` on the pool, in order; documents in
    /// `ledger` or seen earlier in this run are only recognized as known.
    fn evaluate(&mut self, batch: &[Entry], ledger: &HashSet<Digest>) -> Vec<Outcome> {
        let (archives, limits, seen) = (self.archives, &self.cfg.limits, &self.seen);
        let known = |e: &Entry| {
            e.failure.is_none() && (ledger.contains(&e.digest) || seen.contains(&e.digest))
        };
        if self.pool.current_num_threads() == 1 {
            let scratch = &mut self.scratch;
            return batch
                .iter()
                .map(|e| evaluate(archives, e, known(e), limits, scratch))
                .collect();
        }
        let scratches = &self.scratches;
        self.pool.install(|| {
            batch
                .par_iter()
                .map(|e| {
                    let thread = rayon::current_thread_index().unwrap_or(0);
                    let mut s = scratches[thread].lock().unwrap_or_else(PoisonError::into_inner);
                    evaluate(archives, e, known(e), limits, &mut s)
                })
                .collect()
        })
    }

    /// Decides, in order, what of an evaluated batch is written: failures
    /// are reported, known documents and repeats within the run skipped.
    fn assemble(&mut self, batch: &[Entry], outcomes: Vec<Outcome>, last: bool) -> Batch {
        let mut docs = Vec::new();
        let mut origins = Vec::new();
        let mut stats = StatementStats::default();
        for (e, outcome) in batch.iter().zip(outcomes) {
            stats.evaluated += 1;
            match outcome {
                Outcome::Failed(f) => {
                    stats.failures += 1;
                    report_failure(self.archives, e, &f, &mut self.failures, self.progress);
                }
                Outcome::Known => stats.skipped += 1,
                Outcome::Ready(doc) => {
                    // A digest seen earlier in this batch is a duplicate too.
                    if !self.seen.insert(doc.digest) {
                        stats.skipped += 1;
                        continue;
                    }
                    if !doc.notes.is_empty() {
                        let path = self.archives.position(e).path;
                        let line = (e.line > 0).then_some(e.line);
                        let input = self.archives.input_of(e.file).0;
                        origins.push((docs.len(), input, path, line, e.offset));
                    }
                    docs.push(*doc);
                }
            }
        }
        let checkpoint = checkpoint_at(self.source, self.cfg.content, self.archives, batch, last);
        Batch { docs, origins, stats, evaluated: batch.len() as u64, bytes: 0, checkpoint }
    }
}

/// Splits `entries` into batches of at most `docs` documents and `bytes`
/// input bytes (a larger document is a batch of its own).
pub(super) fn batches(entries: &[Entry], docs: usize, bytes: u64) -> Vec<&[Entry]> {
    let mut out = Vec::with_capacity(entries.len() / docs + 1);
    let mut rest = entries;
    while !rest.is_empty() {
        let mut n = 0;
        let mut size = 0u64;
        while n < rest.len() && n < docs && (n == 0 || size + rest[n].len <= bytes) {
            size += rest[n].len;
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        out.push(batch);
        rest = tail;
    }
    out
}

/// Logs a failed document (the first few per input) and reports it.
pub(super) fn report_failure(
    archives: &Archives,
    e: &Entry,
    f: &DocumentFailure,
    budget: &mut LogBudget,
    progress: &dyn Progress,
) {
    // Entries that failed in the scan have no digest yet.
    let digest = e.failure.is_none().then(|| e.digest.to_string());
    if budget.take(archives.input_of(e.file).0) {
        tracing::warn!(
            input = %archives.origin(e),
            digest = digest.as_deref().unwrap_or("unknown"),
            kind = f.kind.as_str(),
            reason = %f.reason,
            "Document failed."
        );
    }
    let path = archives.position(e).path;
    progress.problem(&Problem {
        input: &path,
        line: (e.line > 0).then_some(e.line),
        offset: e.offset,
        digest,
        kind: f.kind.as_str(),
        reason: &f.reason,
        dropped: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(len: u64) -> Entry {
        Entry {
            retrieved_at: 0,
            digest: Digest::default(),
            digest_declared: false,
            file: 0,
            line: 0,
            offset: 0,
            len,
            failure: None,
            content_span: None,
        }
    }

    #[test]
    fn batches_end_at_the_document_count_or_the_byte_bound() {
        let sizes = [10, 10, 10, 50, 200, 1, 1, 1, 1, 1];
        let entries: Vec<Entry> = sizes.iter().map(|&n| entry(n)).collect();
        let lens = |docs, bytes| -> Vec<usize> {
            batches(&entries, docs, bytes).iter().map(|b| b.len()).collect()
        };
        assert_eq!(lens(100, u64::MAX), [10]);
        assert_eq!(lens(3, u64::MAX), [3, 3, 3, 1]);
        // 30 fit, 80 does not; 200 is alone (larger than the bound).
        assert_eq!(lens(100, 60), [3, 1, 1, 5]);
        assert!(batches(&[], 3, 60).is_empty());
    }
}
