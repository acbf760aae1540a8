//! EPSS / CVE-enrichment sync: GitLab's export bucket and FIRST's daily CSV.
//!
//! Files are read in (sequence, chunk) order, each from where its own
//! checkpoint says (see [`crate::checkpoint`] for the rules: a file
//! replaced at the same path is read again, the same bytes downloaded
//! again are not), in batches of lines. Each batch is hashed onto the
//! file's content hash, parsed in parallel on rayon (order kept),
//! duplicate CVEs inside it are resolved (last one wins), and the rows are
//! upserted together with the file's new checkpoint. So a rerun resumes
//! exactly after the last durable batch, mid-file too. A stop signal or
//! `--max-duration` ends the run between batches.
//!
//! A file that cannot be read to its end (it cannot be opened, or its
//! gzip stream is damaged) fails alone: the rows before the damage are
//! written, its checkpoint is not marked finished, the other files are
//! read, and the run ends as failed (see [`run_epss`]). An empty file is
//! read as one without rows, with a warning.

mod lines;
mod rows;
mod sync;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checkpoint::ExportFile;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::{recorded, RunInfo};
use crate::store::EpssSink;

pub use rows::{parse_gitlab_line, CsvLayout};

use lines::Damage;

/// Where EPSS data comes from.
#[derive(Clone, Debug)]
pub enum EpssSource {
    /// An offline mirror of GitLab's export bucket:
    /// `DIR/v2/{cve_enrichment,epss}/<sequence>/<chunk>.ndjson`.
    Bucket(PathBuf),
    /// One FIRST CSV (`epss_scores-YYYY-MM-DD.csv[.gz]`), or a per-CVE
    /// time series (`CVE-….csv` with `date,model,epss,percentile`).
    Csv(PathBuf),
}

/// Configuration of an EPSS sync.
#[derive(Clone, Debug)]
pub struct EpssConfig {
    /// The input.
    pub source: EpssSource,
    /// Lines per batch (one store write and checkpoint each).
    pub batch_rows: usize,
    /// Worker threads for parsing; 0 means one per core.
    pub threads: usize,
    /// End the run cleanly at the first batch boundary after this long.
    pub max_duration: Option<Duration>,
    /// Largest decompressed size accepted for a `.gz` file.
    pub max_decompressed_bytes: u64,
    /// Read every file from the start, whatever the checkpoints say.
    pub force: bool,
}

impl Default for EpssConfig {
    fn default() -> EpssConfig {
        EpssConfig {
            source: EpssSource::Bucket(PathBuf::new()),
            batch_rows: 50_000,
            threads: 0,
            max_duration: None,
            max_decompressed_bytes: 4 << 30,
            force: false,
        }
    }
}

/// Counters of an EPSS sync. `rows = upserted + unchanged + superseded +
/// rejected`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStats {
    /// Files whose rows were read (fully or in part, including failed
    /// ones). A file skipped because its checkpoint says it is done, also
    /// when that took a content hash to tell, is not counted.
    pub files: u64,
    /// Data lines read.
    pub rows: u64,
    /// Rows inserted or changed.
    pub upserted: u64,
    /// Rows already stored with the same values.
    pub unchanged: u64,
    /// Rows replaced by a later row for the same CVE in the same batch.
    pub superseded: u64,
    /// Rows rejected (bad JSON, missing or unknown key, bad CVE id, score
    /// outside [0, 1]).
    pub rejected: u64,
    /// Files that could not be read to their end (also in `files`).
    #[serde(default)]
    pub failed_files: u64,
    /// Which files failed and why.
    #[serde(default)]
    pub failures: Vec<FailedFile>,
}

impl SyncStats {
    /// One line naming the first failed file and its cause (and how many
    /// others failed); `None` when no file failed.
    pub fn failure_line(&self) -> Option<String> {
        let first = self.failures.first()?;
        Some(match self.failures.len() - 1 {
            0 => first.to_string(),
            n => format!("{first} (and {n} more failed files; see `backfill runs`)"),
        })
    }
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, o: SyncStats) {
        self.files += o.files;
        self.rows += o.rows;
        self.upserted += o.upserted;
        self.unchanged += o.unchanged;
        self.superseded += o.superseded;
        self.rejected += o.rejected;
        self.failed_files += o.failed_files;
        self.failures.extend(o.failures);
    }
}

impl fmt::Display for SyncStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sync completed: files {}, rows {}, upserted {}, unchanged {}, superseded {}, rejected {}",
            self.files, self.rows, self.upserted, self.unchanged, self.superseded, self.rejected
        )?;
        if self.failed_files > 0 {
            write!(f, ", failed files {}", self.failed_files)?;
        }
        f.write_str(".")
    }
}

/// A file that could not be read to its end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedFile {
    /// The file, as given or listed.
    pub file: String,
    /// Bytes of it (decompressed) read before it failed.
    pub offset: u64,
    /// Why, in one line.
    pub error: String,
}

impl FailedFile {
    fn unopened(file: &ExportFile, e: &std::io::Error) -> FailedFile {
        FailedFile {
            file: file.path.display().to_string(),
            offset: 0,
            error: format!("cannot open: {e}"),
        }
    }

    fn damaged(file: &ExportFile, d: &Damage) -> FailedFile {
        FailedFile {
            file: file.path.display().to_string(),
            offset: d.offset,
            error: format!(
                "gzip data damaged at byte {} of the decompressed stream ({}); the rows before it were written",
                d.offset, d.cause
            ),
        }
    }
}

impl fmt::Display for FailedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.error)
    }
}

/// How a sync ended.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// Counters.
    pub stats: SyncStats,
    /// Ended early by a stop signal or `--max-duration`.
    pub stopped: bool,
    /// The run id.
    pub run_id: String,
}

/// Rejections logged per file before only counting.
const LOGGED_REJECTIONS: u64 = 20;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs an EPSS sync into `store`.
///
/// A file that cannot be read to its end (it cannot be opened, or its
/// gzip stream is damaged) does not stop the others: the rows before the
/// damage are written, the file is listed in [`SyncStats::failures`], and
/// the run is recorded as failed with [`SyncStats::failure_line`] as its
/// error. The report is still returned (`Ok`), so the caller can print
/// the counters before it fails.
pub fn run_epss(
    cfg: &EpssConfig,
    store: &mut dyn EpssSink,
    run: &RunInfo,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<SyncReport> {
    if cfg.batch_rows == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    // The counters and the stop of a run that failed only by failed files.
    let mut files_failed: Option<(SyncStats, bool)> = None;
    let outcome = recorded(store, run, |store, stats, recorder| {
        let stopped = sync::sync(cfg, store, recorder, progress, stop, stats)?;
        match stats.failure_line() {
            Some(line) => {
                files_failed = Some((stats.clone(), stopped));
                Err(Error::Config(line))
            }
            None => Ok(stopped),
        }
    });
    match (outcome, files_failed) {
        (Ok((stats, stopped)), _) => Ok(SyncReport { stats, stopped, run_id: run.run_id.clone() }),
        (Err(_), Some((stats, stopped))) => {
            Ok(SyncReport { stats, stopped, run_id: run.run_id.clone() })
        }
        (Err(e), None) => Err(e),
    }
}
