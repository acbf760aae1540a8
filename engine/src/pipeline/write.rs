//! The writer thread of a `statements` run: owns the store, writes each
//! batch with its checkpoint and the run's record, and counts what is
//! durably written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::{now_micros, stamped, LogBudget, StatementsConfig};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::parse::DocumentWrite;
use crate::progress::{DroppedEntries, Problem, Progress};
use crate::run::{Recorder, RunInfo};
use crate::source::Archives;
use crate::stats::StatementStats;
use crate::store::{Checkpoint, StatementSink, WriteContext};
use crate::writer;

/// A request to the writer thread, which owns the store. Requests are
/// served in order.
pub(super) enum Request {
    /// Which of these digests are in the ledger (answered on the reply
    /// channel).
    Known(Vec<Digest>),
    /// Write these documents, then count the batch.
    Write(Box<Batch>),
}

/// One batch for the writer.
pub(super) struct Batch {
    /// The documents to write, in order.
    pub(super) docs: Vec<DocumentWrite>,
    /// Where each document with drop notes came from: (index in `docs`,
    /// input, line, offset).
    pub(super) origins: Vec<(usize, u32, String, Option<u64>, u64)>,
    /// Counters decided before the write (evaluated, skipped, failures);
    /// the writer adds what it wrote.
    pub(super) stats: StatementStats,
    /// Documents the batch moves the progress by.
    pub(super) evaluated: u64,
    /// Input bytes it holds in [`InFlight`], released once written.
    pub(super) bytes: u64,
    /// The run's progress after it.
    pub(super) checkpoint: Checkpoint,
}

/// The writer thread's state: the store, and the counters of what is
/// durably written.
pub(super) struct Writer<'a, C> {
    pub(super) store: &'a mut dyn StatementSink,
    pub(super) cfg: &'a StatementsConfig,
    pub(super) run: &'a RunInfo,
    pub(super) recorder: &'a mut Recorder,
    pub(super) progress: &'a dyn Progress,
    /// Frees written documents meanwhile.
    pub(super) pool: &'a rayon::ThreadPool,
    pub(super) archives: &'a Archives,
    pub(super) in_flight: &'a Arc<InFlight>,
    /// However the writer ends, a producer waiting for room stops.
    pub(super) _closing: C,
    /// Answers [`Request::Known`].
    pub(super) known_tx: crossbeam_channel::Sender<Result<HashSet<Digest>>>,
    pub(super) written: StatementStats,
    pub(super) notes: LogBudget,
}

impl<C: Send> writer::Consume for Writer<'_, C> {
    type Message = Request;
    type Written = StatementStats;

    fn consume(&mut self, request: Request) -> Result<()> {
        match request {
            Request::Known(digests) => {
                let _ = self.known_tx.send(self.store.known_digests(&digests));
            }
            Request::Write(batch) => {
                let bytes = batch.bytes;
                let docs = self.write(batch)?;
                // Freeing some million strings is a tenth of the writer's
                // time; the pool does it meanwhile.
                let in_flight = Arc::clone(self.in_flight);
                self.pool.spawn(move || {
                    drop(docs);
                    in_flight.release(bytes);
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> StatementStats {
        self.notes.summarize(self.archives, "Entries dropped");
        self.written
    }
}

impl<C> Writer<'_, C> {
    /// Writes one batch (with the checkpoint and the run's record, in one
    /// transaction where the store allows), counts it, reports its drop
    /// notes and hands the documents back to be freed.
    fn write(&mut self, batch: Box<Batch>) -> Result<Vec<DocumentWrite>> {
        let Batch { docs, origins, stats, evaluated, checkpoint, .. } = *batch;
        // The record saved with the batch counts every document as this
        // run's; another run may have recorded some first (see below).
        let count = |elsewhere: &[usize]| {
            let mut after = self.written;
            after += stats;
            for (i, d) in docs.iter().enumerate() {
                if elsewhere.binary_search(&i).is_ok() {
                    after.skipped += 1;
                } else {
                    after.add_backfilled(d);
                }
            }
            after
        };
        let mut after = count(&[]);
        let ctx = WriteContext {
            run_id: &self.run.run_id,
            inserted_at: now_micros(),
            force: self.cfg.force,
            checkpoint: Some(&stamped(checkpoint, &self.run.run_id)),
            run: Some(self.recorder.beat(&after)),
        };
        let mut outcome = self.store.write_documents(&docs, &ctx)?;
        if !outcome.recorded_elsewhere.is_empty() {
            // Concurrent runs over one archive: a document counts as
            // backfilled only for the run that wrote its ledger entry.
            outcome.recorded_elsewhere.sort_unstable();
            after = count(&outcome.recorded_elsewhere);
            tracing::info!(
                documents = outcome.recorded_elsewhere.len(),
                "Documents recorded by another run meanwhile; counted as skipped."
            );
            if let Some(log) = self.store.run_log() {
                log.record_run(self.recorder.beat(&after))?;
            }
        }
        self.written = after;
        for (i, input, path, line, offset) in &origins {
            if outcome.recorded_elsewhere.binary_search(i).is_ok() {
                continue;
            }
            self.report_notes(&docs[*i], *input, path, *line, *offset);
        }
        self.progress.advance(evaluated);
        Ok(docs)
    }

    /// Logs (the first few per input) and reports a written document's
    /// drop notes.
    fn report_notes(
        &mut self,
        doc: &DocumentWrite,
        input: u32,
        path: &str,
        line: Option<u64>,
        offset: u64,
    ) {
        let digest = doc.digest.to_string();
        for note in &doc.notes {
            if self.notes.take(input) {
                tracing::warn!(
                    input = %path,
                    line,
                    digest = %digest,
                    at = %note.at,
                    reason = %note.reason,
                    entries = note.entries,
                    "Entries dropped: {}.",
                    note.detail
                );
            }
            let dropped =
                DroppedEntries { reason: note.reason, at: &note.at, entries: note.entries };
            self.progress.problem(&Problem {
                input: path,
                line,
                offset,
                digest: Some(digest.clone()),
                kind: "dropped",
                reason: &note.detail,
                dropped: Some(dropped),
            });
        }
    }
}

/// The input bytes of the documents between evaluation and the end of
/// their write, bounded: a parsed document takes several times its size,
/// so without a bound a run of large documents (a batch of them, one
/// batch being written, one queued, one parsed) could hold several limits'
/// worth at once. Ordinary batches never wait.
pub(super) struct InFlight {
    /// (bytes held, closed).
    pub(super) state: Mutex<(u64, bool)>,
    pub(super) freed: std::sync::Condvar,
    /// The bound: the largest document accepted.
    pub(super) cap: u64,
}

impl InFlight {
    pub(super) fn new(cap: u64) -> InFlight {
        InFlight {
            state: Mutex::new((0, false)),
            freed: std::sync::Condvar::new(),
            cap: cap.max(1),
        }
    }

    /// Waits until `bytes` fit (or nothing else is held) and holds them;
    /// returns what it holds, or `None` once the writer has ended.
    pub(super) fn acquire(&self, bytes: u64) -> Option<u64> {
        let bytes = bytes.min(self.cap);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.1 && state.0 > 0 && state.0 + bytes > self.cap {
            state = self.freed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.1 {
            return None;
        }
        state.0 += bytes;
        Some(bytes)
    }

    pub(super) fn release(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(bytes);
        self.freed.notify_all();
    }

    /// A guard that closes the bound when dropped: nothing waits any more.
    pub(super) fn closing(&self) -> impl Drop + '_ {
        struct Close<'a>(&'a InFlight);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.1 = true;
                self.0.freed.notify_all();
            }
        }
        Close(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_waits_for_room_and_stops_when_closed() {
        let f = std::sync::Arc::new(InFlight::new(100));
        assert_eq!(f.acquire(60), Some(60));
        // Larger than the bound: held as the bound, once room is made.
        let waiter = {
            let f = std::sync::Arc::clone(&f);
            std::thread::spawn(move || f.acquire(500))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "60 + 100 do not fit in 100");
        f.release(60);
        assert_eq!(waiter.join().unwrap(), Some(100));
        let waiter = {
            let f = std::sync::Arc::clone(&f);
            std::thread::spawn(move || f.acquire(1))
        };
        drop(f.closing());
        assert_eq!(waiter.join().unwrap(), None, "the writer ended: nothing to wait for");
    }
}
