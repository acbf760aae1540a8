//! The sync: which files to read and from where (by their checkpoints),
//! then batches read and parsed on this thread while a writer thread
//! upserts them with their checkpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::lines::Lines;
use super::rows::{last_wins, parse_batch, CsvLayout, LineParser};
use super::{now_micros, EpssConfig, EpssSource, FailedFile, SyncStats, LOGGED_REJECTIONS};
use crate::checkpoint::{self, Action, ExportFile};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::Recorder;
use crate::store::{Checkpoint, EpssRow, EpssSink, RunLog};
use crate::writer;

/// What a sync is to do.
pub(super) struct Plan {
    /// The files to act on, in order, with what to do with each.
    work: Vec<(ExportFile, Action)>,
    /// The legacy bucket checkpoints still in force (see
    /// [`crate::checkpoint`]).
    legacy: Vec<Checkpoint>,
}

/// Lists the files and decides, from their checkpoints, what to do with
/// each.
pub(super) fn plan(cfg: &EpssConfig, mut log: Option<&mut dyn RunLog>) -> Result<Plan> {
    let files = match &cfg.source {
        EpssSource::Bucket(root) => checkpoint::list_bucket(root)?,
        EpssSource::Csv(path) => vec![checkpoint::csv_file(path)?],
    };
    // Each file's own checkpoint, one query per data type.
    let mut own: Vec<Option<Checkpoint>> = vec![None; files.len()];
    let mut data_types: Vec<&str> = files.iter().map(|f| f.data_type.as_str()).collect();
    data_types.dedup();
    for dt in data_types {
        let at: Vec<usize> = (0..files.len()).filter(|&i| files[i].data_type == dt).collect();
        let sources: Vec<String> = at.iter().map(|&i| files[i].source.clone()).collect();
        let found = match log.as_deref_mut() {
            Some(log) => log.load_checkpoints(dt, &sources)?,
            None => Vec::new(),
        };
        for (i, cp) in at.into_iter().zip(found) {
            own[i] = cp;
        }
    }
    let mut legacy: HashMap<(String, String), Option<Checkpoint>> = HashMap::new();
    let mut out = Vec::new();
    let mut skipped = 0u64;
    for (f, own) in files.into_iter().zip(own) {
        let cover = match &f.bucket {
            Some(root) => {
                let key = (f.data_type.clone(), root.clone());
                if !legacy.contains_key(&key) {
                    let cp = match log.as_deref_mut() {
                        Some(log) => {
                            log.load_checkpoints(&f.data_type, std::slice::from_ref(root))?
                        }
                        None => Vec::new(),
                    };
                    let cp = cp.into_iter().flatten().next().filter(checkpoint::is_active_legacy);
                    legacy.insert(key.clone(), cp);
                }
                legacy[&key].as_ref()
            }
            None => None,
        };
        match checkpoint::action(&f, own.as_ref(), cover, cfg.force) {
            Action::Skip => skipped += 1,
            a => out.push((f, a)),
        }
    }
    tracing::debug!(skipped, "EPSS files unchanged since their checkpoint (size and mtime).");
    let mut legacy: Vec<Checkpoint> = legacy.into_values().flatten().collect();
    legacy.sort_by(|a, b| (&a.data_type, &a.source).cmp(&(&b.data_type, &b.source)));
    Ok(Plan { work: out, legacy })
}

/// Bytes on disk an action reads (see [`Lines::disk_pos`]).
pub(super) fn cost(f: &ExportFile, a: &Action) -> u64 {
    match a {
        Action::Skip => 0,
        // A gzip stream is decompressed from its start to resume.
        Action::Read { offset, .. } if !f.gz() => f.len.saturating_sub(*offset),
        Action::Read { .. } | Action::Verify { .. } | Action::Adopt => f.len,
    }
}

/// One batch for the writer thread: rows, the checkpoint after them, and
/// the counters they bring (added only once they are written).
pub(super) struct Batch {
    rows: Vec<EpssRow>,
    checkpoint: Option<Checkpoint>,
    counted: SyncStats,
    bytes: u64,
}

/// The sync loop; returns whether it was stopped. As in `statements`, the
/// store is owned by a writer thread while this thread parses the next
/// batch, so parsing and writing overlap.
pub(super) fn sync(
    cfg: &EpssConfig,
    store: &mut dyn EpssSink,
    recorder: &mut Recorder,
    progress: &dyn Progress,
    stop: &AtomicBool,
    stats: &mut SyncStats,
) -> Result<bool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .thread_name(|i| format!("backfill-epss-{i}"))
        .build()
        .map_err(|e| Error::Config(format!("cannot start worker threads: {e}")))?;
    let Plan { work, legacy } = plan(cfg, store.run_log())?;
    let total: u64 = work.iter().map(|(f, a)| cost(f, a)).sum();
    progress.begin(total);
    tracing::info!(files = work.len(), bytes = total, "EPSS files to read.");

    let writer = Writer { store, recorder, progress, written: SyncStats::default() };
    writer::run(writer, stats, |queue| {
        let mut producer = Producer {
            cfg,
            pool: &pool,
            stop,
            started: Instant::now(),
            queue,
            progress,
            total,
            failed: false,
        };
        producer.run(&work, &legacy)
    })
}

/// The writer thread's half of [`sync`]: owns the store.
struct Writer<'a> {
    store: &'a mut dyn EpssSink,
    recorder: &'a mut Recorder,
    progress: &'a dyn Progress,
    written: SyncStats,
}

impl writer::Consume for Writer<'_> {
    type Message = Batch;
    type Written = SyncStats;

    fn consume(&mut self, b: Batch) -> Result<()> {
        let counts = self.store.write_epss(&b.rows, b.checkpoint.as_ref(), now_micros())?;
        self.written += b.counted;
        self.written.upserted += counts.upserted;
        self.written.unchanged += counts.unchanged;
        self.progress.advance(b.bytes);
        // Counters and heartbeat, so a killed sync's record says how far it
        // got.
        if let Some(log) = self.store.run_log() {
            log.record_run(self.recorder.beat(&self.written))?;
        }
        Ok(())
    }

    fn finish(self) -> SyncStats {
        self.written
    }
}

/// The producing half of [`sync`]: reads and parses batches in order and
/// sends them to the writer.
pub(super) struct Producer<'a, 'q> {
    cfg: &'a EpssConfig,
    pool: &'a rayon::ThreadPool,
    stop: &'a AtomicBool,
    started: Instant,
    queue: &'a writer::Queue<'q, Batch>,
    progress: &'a dyn Progress,
    /// The progress bar's total, grown when a file must be read again.
    total: u64,
    /// A file failed: the legacy checkpoints stay.
    failed: bool,
}

impl Producer<'_, '_> {
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.cfg.max_duration.is_some_and(|d| self.started.elapsed() >= d)
    }

    fn send(&self, batch: Batch) -> Result<()> {
        self.queue.send(batch)
    }

    /// A checkpoint (or only progress) with no rows.
    fn send_checkpoint(&self, checkpoint: Option<Checkpoint>, bytes: u64) -> Result<()> {
        self.send(Batch { rows: Vec::new(), checkpoint, counted: SyncStats::default(), bytes })
    }

    /// Replaces a planned read of `planned` bytes by one of `now`.
    fn replan(&mut self, planned: u64, now: u64) {
        self.total = (self.total + now).saturating_sub(planned);
        self.progress.begin(self.total);
    }

    /// Acts on every file in order; returns whether it was stopped.
    fn run(&mut self, work: &[(ExportFile, Action)], legacy: &[Checkpoint]) -> Result<bool> {
        for (file, action) in work {
            if self.should_stop() {
                return Ok(true);
            }
            let stopped = match *action {
                Action::Skip => false,
                Action::Read { offset, expect } => self.read(file, offset, expect)?,
                Action::Verify { len, xxh3 } => match self.hash(file)? {
                    Ok((l, h)) if (l, h) == (len, xxh3) => {
                        tracing::info!(
                            file = %file.path.display(),
                            "EPSS file rewritten with the same content; skipped."
                        );
                        self.send_checkpoint(Some(file.checkpoint(len, true, h)), file.len)?;
                        false
                    }
                    _ => {
                        tracing::info!(file = %file.path.display(), "EPSS file changed; reading it.");
                        self.send_checkpoint(None, file.len)?;
                        self.replan(0, cost(file, &Action::Read { offset: 0, expect: None }));
                        self.read(file, 0, None)?
                    }
                },
                Action::Adopt => {
                    match self.hash(file)? {
                        Ok((len, h)) => {
                            tracing::debug!(
                                file = %file.path.display(),
                                "EPSS file covered by the bucket's checkpoint; adopted."
                            );
                            self.send_checkpoint(Some(file.checkpoint(len, true, h)), file.len)?;
                        }
                        Err(failure) => self.fail(failure, SyncStats::default())?,
                    }
                    false
                }
            };
            if stopped {
                return Ok(true);
            }
        }
        if !self.failed {
            // Every file listed has a checkpoint of its own now.
            for l in legacy {
                tracing::info!(
                    data_type = %l.data_type,
                    bucket = %l.source,
                    "Bucket checkpoint replaced by per-file checkpoints."
                );
                self.send_checkpoint(Some(checkpoint::retired(l)), 0)?;
            }
        }
        Ok(false)
    }

    /// Records `failure` (with the counters of the file so far) and goes
    /// on with the next file.
    fn fail(&mut self, failure: FailedFile, mut counted: SyncStats) -> Result<()> {
        tracing::warn!(
            file = %failure.file,
            offset = failure.offset,
            error = %failure.error,
            "EPSS file failed; the rows before the failure were kept."
        );
        self.failed = true;
        counted.failed_files += 1;
        counted.failures.push(failure);
        self.send(Batch { rows: Vec::new(), checkpoint: None, counted, bytes: 0 })
    }

    /// Hashes all of `file` (decompressed): its length and xxh3, or why it
    /// could not be read.
    fn hash(&self, file: &ExportFile) -> Result<std::result::Result<(u64, u64), FailedFile>> {
        let mut lines = match Lines::open(&file.path, self.cfg.max_decompressed_bytes) {
            Ok(l) => l,
            Err(e) => return Ok(Err(FailedFile::unopened(file, &e))),
        };
        lines.hash_to_end(&file.path)?;
        Ok(match lines.damage.take() {
            Some(d) => Err(FailedFile::damaged(file, &d)),
            None => Ok((lines.pos(), lines.xxh3())),
        })
    }

    /// Reads `file` from `offset` (see [`Action::Read`]); returns whether
    /// it was stopped.
    fn read(&mut self, file: &ExportFile, offset: u64, expect: Option<u64>) -> Result<bool> {
        let path = &file.path;
        let cap = self.cfg.max_decompressed_bytes;
        let counted = SyncStats { files: 1, ..SyncStats::default() };
        let mut lines = match Lines::open(path, cap) {
            Ok(l) => l,
            Err(e) => {
                self.fail(FailedFile::unopened(file, &e), counted)?;
                return Ok(false);
            }
        };
        let parser = if file.csv {
            // The layout comes from the first lines, also when resuming.
            let mut head = match Lines::open(path, cap) {
                Ok(l) => l,
                Err(e) => {
                    self.fail(FailedFile::unopened(file, &e), counted)?;
                    return Ok(false);
                }
            };
            let first = head.next_batch(2, path)?.to_vec();
            if let Some(d) = head.damage.take().filter(|_| file.len > 0) {
                self.fail(FailedFile::damaged(file, &d), counted)?;
                return Ok(false);
            }
            if first.is_empty() {
                // As a header-only file: no rows, and finished.
                tracing::warn!(file = %path.display(), "EPSS file is empty; no rows.");
                let done = file.checkpoint(0, true, lines.xxh3());
                self.send(Batch {
                    rows: Vec::new(),
                    checkpoint: Some(done),
                    counted,
                    bytes: file.len,
                })?;
                return Ok(false);
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let layout = CsvLayout::read(&first, name)
                .map_err(|reason| Error::Config(format!("{}: {reason}", path.display())))?;
            LineParser::Csv(layout)
        } else {
            LineParser::Gitlab
        };
        let data_start = match &parser {
            LineParser::Csv(l) => l.data_offset,
            LineParser::Gitlab => 0,
        };
        // Line numbers for messages: count what the header and the resume
        // skipped.
        let mut line_no = lines.skip_to(offset.max(data_start), path)?;
        let changed = lines.pos() < offset || expect.is_some_and(|h| h != lines.xxh3());
        if changed {
            tracing::warn!(
                file = %path.display(),
                offset,
                "EPSS file shrank or changed before its checkpoint offset; reading it again from the start."
            );
            let restart = Action::Read { offset: 0, expect: None };
            self.replan(cost(file, &Action::Read { offset, expect }), cost(file, &restart));
            lines = match Lines::open(path, cap) {
                Ok(l) => l,
                Err(e) => {
                    self.fail(FailedFile::unopened(file, &e), counted)?;
                    return Ok(false);
                }
            };
            line_no = lines.skip_to(data_start, path)?;
        }
        self.read_batches(file, &parser, lines, line_no, data_start, counted)
    }

    /// The batch loop of [`Producer::read`], from where `lines` stands.
    fn read_batches(
        &mut self,
        file: &ExportFile,
        parser: &LineParser,
        mut lines: Lines,
        mut line_no: u64,
        data_start: u64,
        mut counted: SyncStats,
    ) -> Result<bool> {
        let path = &file.path;
        let from_start = lines.pos() <= data_start;
        // Progress counts bytes on disk, as `cost` planned them: a gzip
        // stream from its start, as it is decompressed from there to
        // resume; a plain file from where it resumes.
        let mut disk = if file.gz() || from_start { 0 } else { lines.disk_pos() };
        let mut file_rejected = 0u64;
        let mut file_lines = 0u64;
        loop {
            if self.should_stop() {
                return Ok(true);
            }
            let from = lines.pos();
            let data = lines.next_batch(self.cfg.batch_rows, path)?;
            if data.is_empty() {
                let bytes = lines.disk_pos().saturating_sub(disk);
                if let Some(d) = lines.damage.take() {
                    // Not finished: the file is read again once replaced.
                    let failure = FailedFile::damaged(file, &d);
                    self.fail(failure, counted)?;
                } else {
                    if from_start && file_lines == 0 {
                        tracing::warn!(file = %path.display(), "EPSS file has no rows.");
                    }
                    // End of file: mark it finished so reruns skip it.
                    let checkpoint = Some(file.checkpoint(from, true, lines.xxh3()));
                    self.send(Batch { rows: Vec::new(), checkpoint, counted, bytes })?;
                }
                break;
            }
            let len = data.len() as u64;
            let batch = self.pool.install(|| parse_batch(parser, data, line_no));
            line_no += batch.lines_spanned;
            file_lines += batch.lines;
            counted.rows += batch.lines;
            counted.rejected += batch.rejected.len() as u64;
            for (line, reason) in &batch.rejected {
                file_rejected += 1;
                if file_rejected <= LOGGED_REJECTIONS {
                    tracing::warn!(
                        file = %path.display(),
                        line,
                        reason = %reason,
                        "EPSS row rejected."
                    );
                }
            }
            let rows = self.pool.install(|| last_wins(batch.rows, &mut counted.superseded));
            let checkpoint = Some(file.checkpoint(from + len, false, lines.xxh3()));
            let now = lines.disk_pos();
            let bytes = now.saturating_sub(disk);
            disk = now;
            self.send(Batch { rows, checkpoint, counted, bytes })?;
            counted = SyncStats::default();
        }
        if file_rejected > LOGGED_REJECTIONS {
            tracing::warn!(
                file = %path.display(),
                rejected = file_rejected,
                "More EPSS rows rejected than logged."
            );
        }
        Ok(false)
    }
}
