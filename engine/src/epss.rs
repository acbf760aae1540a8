//! EPSS / CVE-enrichment sync: GitLab's export bucket and FIRST's daily CSV.
//!
//! Files are read in (sequence, chunk) order after the store's checkpoint,
//! in batches of lines. Each batch is parsed in parallel on rayon (order
//! kept), duplicate CVEs inside it are resolved (last one wins), and the
//! rows are upserted together with the new checkpoint. So a rerun resumes
//! exactly after the last durable batch, mid-file too. A stop signal or
//! `--max-duration` ends the run between batches.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, ExportFile};
use crate::error::{Error, Result};
use crate::parse::format_instant;
use crate::pipeline::Progress;
use crate::run::{recorded, RunInfo};
use crate::store::{Checkpoint, EpssRow, Store};

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
}

impl Default for EpssConfig {
    fn default() -> EpssConfig {
        EpssConfig {
            source: EpssSource::Bucket(PathBuf::new()),
            batch_rows: 50_000,
            threads: 0,
            max_duration: None,
            max_decompressed_bytes: 4 << 30,
        }
    }
}

/// Counters of an EPSS sync. `rows = upserted + unchanged + superseded +
/// rejected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStats {
    /// Files read (fully or in part).
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
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, o: SyncStats) {
        self.files += o.files;
        self.rows += o.rows;
        self.upserted += o.upserted;
        self.unchanged += o.unchanged;
        self.superseded += o.superseded;
        self.rejected += o.rejected;
    }
}

impl fmt::Display for SyncStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sync completed: files {}, rows {}, upserted {}, unchanged {}, rejected {}.",
            self.files, self.rows, self.upserted, self.unchanged, self.rejected
        )
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

/// True when `s` is `CVE-\d{4}-\d{4,15}`.
pub fn valid_cve(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 13
        && b.len() <= 24
        && b.starts_with(b"CVE-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// Every digit string of length 4 to 15, numbered consecutively: `0000` is
/// 0, `9999` is 9,999, `00000` is 10,000 and so on. 1,111,111,111,110,000
/// numbers in all.
const CVE_NUMBERS: u64 = 1_111_111_111_110_000;

/// A CVE id (`CVE-\d{4}-\d{4,15}`): valid by construction, and kept
/// inline rather than on the heap, since a sync handles millions of rows
/// and the embedded store's writer reads them one after another.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CveId {
    len: u8,
    bytes: [u8; 24],
}

impl CveId {
    /// `None` unless `s` is `CVE-\d{4}-\d{4,15}`.
    pub fn parse(s: &str) -> Option<CveId> {
        if !valid_cve(s) {
            return None;
        }
        let mut bytes = [0u8; 24];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(CveId { len: s.len() as u8, bytes })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // ASCII by construction, so this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// A lossless integer for the id: `year * CVE_NUMBERS + number`, where
    /// `number` counts the id's digit string as above, so `CVE-2024-0001`
    /// and `CVE-2024-00001` differ. The largest key (year 9999) is below
    /// 2^64; it is returned as the same 64 bits in an `i64` (negative for
    /// years above 8302), which is what SQLite stores. Integer keys make
    /// the embedded store's `epss` table a rowid B-tree, several times
    /// cheaper to upsert than text keys.
    pub fn key(&self) -> i64 {
        let b = &self.bytes[..usize::from(self.len)];
        let digits = |s: &[u8]| s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        let year = digits(&b[4..8]);
        let num = &b[9..];
        // Numbers of all shorter lengths come first: 10^4 + ... + 10^(len-1).
        let before: u64 = (4..num.len() as u32).map(|k| 10u64.pow(k)).sum();
        (year * CVE_NUMBERS + before + digits(num)) as i64
    }
}

impl std::ops::Deref for CveId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for CveId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for CveId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CveId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<CveId, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        CveId::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a CVE id")))
    }
}

/// [`CveId::key`] of `cve`; `None` for anything that is not a CVE id.
pub fn cve_key(cve: &str) -> Option<i64> {
    CveId::parse(cve).map(|c| c.key())
}

fn check_score(name: &str, v: f64) -> std::result::Result<f64, String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} {v} is outside [0, 1]"))
    }
}

/// One GitLab `cve_enrichment` record; any other key is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitlabRecord<'a> {
    #[serde(borrow)]
    cve_id: std::borrow::Cow<'a, str>,
    epss_score: f64,
    #[serde(default)]
    is_known_exploit: bool,
}

/// Parses one GitLab export line.
pub fn parse_gitlab_line(line: &[u8]) -> std::result::Result<EpssRow, String> {
    let r: GitlabRecord<'_> = serde_json::from_slice(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            e.to_string()
        }
    })?;
    let cve =
        CveId::parse(&r.cve_id).ok_or_else(|| format!("cve_id {:?} is not a CVE id", r.cve_id))?;
    Ok(EpssRow {
        cve,
        epss_score: check_score("epss_score", r.epss_score)?,
        percentile: None,
        is_known_exploit: Some(r.is_known_exploit),
        model_version: None,
        score_date: None,
    })
}

/// Column layout of a CSV file, from its comment and header lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvLayout {
    cve: Option<usize>,
    epss: usize,
    percentile: Option<usize>,
    date: Option<usize>,
    model: Option<usize>,
    columns: usize,
    /// CVE for a per-CVE time series (from the file name).
    file_cve: Option<CveId>,
    /// From `#model_version:…`.
    model_version: Option<Arc<str>>,
    /// From `score_date:…` or the file name, RFC 3339.
    score_date: Option<Arc<str>>,
    /// Bytes taken by the comment and header lines.
    pub data_offset: u64,
    /// Lines taken by them.
    pub data_line: u64,
}

/// The CVE id inside a file name such as `CVE-2021-0001.csv` or
/// `mirror__CVE-2021-0001.epss_excerpt.csv`.
fn cve_in_name(name: &str) -> Option<CveId> {
    let start = name.find("CVE-")?;
    let rest = &name[start..];
    let end = rest
        .char_indices()
        .skip(4)
        .find(|&(i, c)| !(c.is_ascii_digit() || (c == '-' && i == 8)))
        .map_or(rest.len(), |(i, _)| i);
    let id = &rest[..end];
    CveId::parse(id)
}

/// `2026-09-29T12:00:22Z`, `2023-03-07T00:00:00+0000` or `2023-03-07` as
/// RFC 3339 UTC.
fn normalize_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(t) = crate::parse::parse_instant(s) {
        return Some(format_instant(t));
    }
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .map(|t| format_instant(t.timestamp_micros()))
}

impl CsvLayout {
    /// Reads the optional `#model_version:…,score_date:…` comment and the
    /// header from the start of `data`. `file_name` supplies the score date
    /// of old files (`epss_scores-YYYY-MM-DD.csv`) and the CVE of a per-CVE
    /// series (`CVE-2021-0001….csv`).
    pub fn read(data: &[u8], file_name: &str) -> std::result::Result<CsvLayout, String> {
        let mut layout = CsvLayout::default();
        let mut pos = 0usize;
        let next_line = |pos: &mut usize| -> Option<String> {
            if *pos >= data.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &data[*pos..]).map_or(data.len(), |i| *pos + i);
            let line = String::from_utf8_lossy(&data[*pos..end]).trim().to_owned();
            *pos = (end + 1).min(data.len());
            Some(line)
        };
        let mut header = next_line(&mut pos).ok_or("file is empty")?;
        layout.data_line = 1;
        let header_bom = header.trim_start_matches('\u{feff}').to_owned();
        header = header_bom;
        if let Some(comment) = header.strip_prefix('#') {
            for part in comment.split(',') {
                if let Some((k, v)) = part.split_once(':') {
                    match k.trim() {
                        "model_version" => layout.model_version = Some(v.trim().into()),
                        "score_date" => layout.score_date = normalize_date(v).map(Arc::from),
                        _ => {}
                    }
                }
            }
            header = next_line(&mut pos).ok_or("no header line after the comment")?;
            layout.data_line = 2;
        }
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
        layout.columns = cols.len();
        layout.cve = find("cve");
        layout.epss =
            find("epss").ok_or_else(|| format!("header {header:?} has no epss column"))?;
        layout.percentile = find("percentile");
        layout.date = find("date");
        layout.model = find("model");
        if layout.cve.is_none() {
            layout.file_cve = Some(cve_in_name(file_name).ok_or_else(|| {
                format!("header {header:?} has no cve column and the file name names no CVE")
            })?);
        }
        if layout.score_date.is_none() {
            // epss_scores-2021-04-14.csv: the date is in the name.
            layout.score_date = file_name
                .strip_prefix("epss_scores-")
                .and_then(|r| r.get(..10))
                .and_then(normalize_date)
                .map(Arc::from);
        }
        layout.data_offset = pos as u64;
        Ok(layout)
    }

    /// Parses one data line.
    pub fn parse_line(&self, line: &[u8]) -> std::result::Result<EpssRow, String> {
        let text = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_owned())?;
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() > self.columns {
            return Err(format!("{} fields, the header has {}", fields.len(), self.columns));
        }
        let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).filter(|s| !s.is_empty());
        let cve = match (&self.file_cve, get(self.cve)) {
            (Some(c), _) => *c,
            (None, Some(c)) => {
                CveId::parse(c).ok_or_else(|| format!("cve {c:?} is not a CVE id"))?
            }
            (None, None) => return Err("no cve".into()),
        };
        let num = |name: &str, i: Option<usize>| -> std::result::Result<Option<f64>, String> {
            match get(i) {
                None => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .map_err(|_| format!("{name} {v:?} is not a number"))
                    .and_then(|x| check_score(name, x))
                    .map(Some),
            }
        };
        let epss = num("epss", Some(self.epss))?.ok_or("no epss value")?;
        let percentile = num("percentile", self.percentile)?;
        let score_date = match get(self.date) {
            Some(d) => {
                Some(normalize_date(d).ok_or_else(|| format!("date {d:?} is not a date"))?.into())
            }
            None => self.score_date.clone(),
        };
        let model_version =
            get(self.model).map(|m| Arc::from(*m)).or_else(|| self.model_version.clone());
        Ok(EpssRow {
            cve,
            epss_score: epss,
            percentile,
            is_known_exploit: None,
            model_version,
            score_date,
        })
    }
}

/// How the lines of one file are parsed.
#[derive(Clone, Debug)]
enum LineParser {
    Gitlab,
    Csv(CsvLayout),
}

impl LineParser {
    fn parse(&self, line: &[u8]) -> std::result::Result<EpssRow, String> {
        match self {
            LineParser::Gitlab => parse_gitlab_line(line),
            LineParser::Csv(l) => l.parse_line(line),
        }
    }
}

/// Batches of whole lines from one file: slices of a memory map, or
/// blocks decompressed from a `.gz` stream into a reused buffer (so memory
/// stays bounded whatever the file size).
enum Lines {
    Mapped {
        map: Option<memmap2::Mmap>,
        pos: usize,
    },
    Gz {
        reader: Box<BufReader<flate2::read::MultiGzDecoder<std::fs::File>>>,
        buf: Vec<u8>,
        pos: u64,
        cap: u64,
    },
}

impl Lines {
    fn open(path: &Path, max_decompressed: u64) -> Result<Lines> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        if path.extension().is_some_and(|e| e == "gz") {
            let reader =
                Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f)));
            return Ok(Lines::Gz { reader, buf: Vec::new(), pos: 0, cap: max_decompressed });
        }
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        // SAFETY: read-only map of an export file that must not be
        // truncated while the run reads it.
        let map = if len == 0 {
            None
        } else {
            Some(unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?)
        };
        Ok(Lines::Mapped { map, pos: 0 })
    }

    /// Offset (in uncompressed bytes) of the next unread byte.
    fn pos(&self) -> u64 {
        match self {
            Lines::Mapped { pos, .. } => *pos as u64,
            Lines::Gz { pos, .. } => *pos,
        }
    }

    /// The next batch of up to `rows` lines, or an empty slice at the end.
    fn next_batch(&mut self, rows: usize, path: &Path) -> Result<&[u8]> {
        match self {
            Lines::Mapped { map, pos } => {
                let data = map.as_deref().unwrap_or(&[]);
                let start = *pos;
                if start >= data.len() {
                    return Ok(&[]);
                }
                let end = match memchr::memchr_iter(b'\n', &data[start..]).nth(rows - 1) {
                    Some(i) => start + i + 1,
                    None => data.len(),
                };
                *pos = end;
                Ok(&data[start..end])
            }
            Lines::Gz { reader, buf, pos, cap } => {
                buf.clear();
                for _ in 0..rows {
                    let n = reader.read_until(b'\n', buf).map_err(|e| Error::io(path, e))?;
                    if n == 0 {
                        break;
                    }
                    *pos += n as u64;
                    // A gzip bomb stops here with a clear error.
                    if *pos > *cap {
                        return Err(Error::Config(format!(
                            "{}: decompresses to more than {cap} bytes; refusing (see --max-decompressed-size)",
                            path.display()
                        )));
                    }
                }
                Ok(buf)
            }
        }
    }

    /// Skips to `offset` (a line start), returning the newlines skipped.
    fn skip_to(&mut self, offset: u64, path: &Path) -> Result<u64> {
        if let Lines::Mapped { map, pos } = self {
            let data = map.as_deref().unwrap_or(&[]);
            let to = (offset as usize).clamp(*pos, data.len());
            let lines = memchr::memchr_iter(b'\n', &data[*pos..to]).count() as u64;
            *pos = to;
            return Ok(lines);
        }
        let mut lines = 0u64;
        while self.pos() < offset {
            if self.next_batch(1, path)?.is_empty() {
                break;
            }
            lines += 1;
        }
        Ok(lines)
    }
}

/// Rejections logged per file before only counting.
const LOGGED_REJECTIONS: u64 = 20;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs an EPSS sync into `store`.
pub fn run_epss(
    cfg: &EpssConfig,
    store: &mut dyn Store,
    run: &RunInfo,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<SyncReport> {
    if cfg.batch_rows == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let (stats, stopped) =
        recorded(store, run, |store, stats| sync(cfg, store, progress, stop, stats))?;
    Ok(SyncReport { stats, stopped, run_id: run.run_id.clone() })
}

/// The files to read, each with the checkpoint it resumes from.
fn plan(cfg: &EpssConfig, store: &mut dyn Store) -> Result<Vec<(ExportFile, u64)>> {
    let files = match &cfg.source {
        EpssSource::Bucket(root) => checkpoint::list_bucket(root)?,
        EpssSource::Csv(path) => vec![checkpoint::csv_file(path)?],
    };
    let mut out = Vec::new();
    let mut cps: HashMap<(String, String), Option<Checkpoint>> = HashMap::new();
    for f in files {
        let key = (f.data_type.clone(), f.source.clone());
        if !cps.contains_key(&key) {
            let cp = store.load_checkpoint(&f.data_type, &f.source)?;
            cps.insert(key.clone(), cp);
        }
        if let Some(start) = checkpoint::resume_offset(&f, cps[&key].as_ref()) {
            out.push((f, start));
        }
    }
    Ok(out)
}

/// One batch for the writer thread: rows, the checkpoint after them, and
/// the counters they bring (added only once they are written).
struct Batch {
    rows: Vec<EpssRow>,
    checkpoint: Checkpoint,
    counted: SyncStats,
    bytes: u64,
}

/// The sync loop; returns whether it was stopped. As in `statements`, the
/// store is owned by a writer thread while this thread parses the next
/// batch, so parsing and writing overlap.
fn sync(
    cfg: &EpssConfig,
    store: &mut dyn Store,
    progress: &dyn Progress,
    stop: &AtomicBool,
    stats: &mut SyncStats,
) -> Result<bool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .thread_name(|i| format!("backfill-epss-{i}"))
        .build()
        .map_err(|e| Error::Config(format!("cannot start worker threads: {e}")))?;
    let work = plan(cfg, store)?;
    let total: u64 = work.iter().map(|(f, start)| f.len.saturating_sub(*start)).sum();
    progress.begin(total);
    tracing::info!(files = work.len(), bytes = total, "EPSS files to read.");

    let (tx, rx) = crossbeam_channel::bounded::<Batch>(2);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> (SyncStats, Result<()>) {
            let mut written = SyncStats::default();
            for b in rx {
                // On error the loop ends: dropping the receiver stops the
                // producer at its next send.
                match store.write_epss(&b.rows, Some(&b.checkpoint), now_micros()) {
                    Ok(counts) => {
                        written += b.counted;
                        written.upserted += counts.upserted;
                        written.unchanged += counts.unchanged;
                        progress.advance(b.bytes);
                    }
                    Err(e) => return (written, Err(e)),
                }
            }
            (written, Ok(()))
        });
        let produced = produce(cfg, &work, &pool, stop, &tx);
        drop(tx);
        let (written, result) =
            writer.join().map_err(|_| Error::Config("the epss writer thread panicked".into()))?;
        // Only durably written batches count.
        *stats = written;
        // A writer error is the root cause of any producer error.
        result?;
        produced
    })
}

/// The producing half of [`sync`]: reads and parses batches in order and
/// sends them to the writer. Returns whether it was stopped.
fn produce(
    cfg: &EpssConfig,
    work: &[(ExportFile, u64)],
    pool: &rayon::ThreadPool,
    stop: &AtomicBool,
    tx: &crossbeam_channel::Sender<Batch>,
) -> Result<bool> {
    let started = Instant::now();
    let should_stop =
        || stop.load(Ordering::Relaxed) || cfg.max_duration.is_some_and(|d| started.elapsed() >= d);
    let writer_gone = || Error::Config("the epss writer stopped".into());
    for (file, start) in work {
        if should_stop() {
            return Ok(true);
        }
        let mut lines = Lines::open(&file.path, cfg.max_decompressed_bytes)?;
        let parser = if file.csv {
            // The layout comes from the first lines, also when resuming.
            let head = lines.next_batch(2, &file.path)?.to_vec();
            let name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let layout = CsvLayout::read(&head, name)
                .map_err(|reason| Error::Config(format!("{}: {reason}", file.path.display())))?;
            let mut reopened = Lines::open(&file.path, cfg.max_decompressed_bytes)?;
            reopened.skip_to(layout.data_offset, &file.path)?;
            lines = reopened;
            LineParser::Csv(layout)
        } else {
            LineParser::Gitlab
        };
        // Line numbers for messages: count what the header and the resume
        // skipped.
        let mut line_no = match &parser {
            LineParser::Csv(l) => l.data_line,
            LineParser::Gitlab => 0,
        };
        line_no += lines.skip_to(*start, &file.path)?;
        // The file is counted with its first batch.
        let mut counted = SyncStats { files: 1, ..SyncStats::default() };
        let mut file_rejected = 0u64;
        loop {
            if should_stop() {
                return Ok(true);
            }
            let from = lines.pos();
            let data = lines.next_batch(cfg.batch_rows, &file.path)?;
            if data.is_empty() {
                // End of file: mark it finished so reruns skip it.
                let end = Batch {
                    rows: Vec::new(),
                    checkpoint: file.checkpoint(from, true),
                    counted,
                    bytes: 0,
                };
                tx.send(end).map_err(|_| writer_gone())?;
                break;
            }
            let bytes = data.len() as u64;
            let batch = pool.install(|| parse_batch(&parser, data, line_no));
            line_no += batch.lines_spanned;
            counted.rows += batch.lines;
            counted.rejected += batch.rejected.len() as u64;
            for (line, reason) in &batch.rejected {
                file_rejected += 1;
                if file_rejected <= LOGGED_REJECTIONS {
                    tracing::warn!(
                        file = %file.path.display(),
                        line,
                        reason = %reason,
                        "EPSS row rejected."
                    );
                }
            }
            let rows = pool.install(|| last_wins(batch.rows, &mut counted.superseded));
            let checkpoint = file.checkpoint(from + bytes, false);
            tx.send(Batch { rows, checkpoint, counted, bytes }).map_err(|_| writer_gone())?;
            counted = SyncStats::default();
        }
        if file_rejected > LOGGED_REJECTIONS {
            tracing::warn!(
                file = %file.path.display(),
                rejected = file_rejected,
                "More EPSS rows rejected than logged."
            );
        }
    }
    Ok(false)
}

/// One row per CVE, the last one of the batch winning (GitLab fails the
/// whole slice instead), in [`CveId::key`] order: the embedded store writes
/// in that order, and sorting here, in parallel, keeps the single writer
/// thread's memory accesses sequential. Counts the rows replaced.
fn last_wins(mut parsed: Vec<(i64, EpssRow)>, superseded: &mut u64) -> Vec<EpssRow> {
    // Stable: rows of one CVE stay in file order, so the last is last.
    parsed.par_sort_by_key(|(key, _)| *key);
    let mut out = Vec::with_capacity(parsed.len());
    let mut rows = parsed.into_iter().peekable();
    while let Some((key, row)) = rows.next() {
        if rows.peek().is_some_and(|(next, _)| *next == key) {
            *superseded += 1;
        } else {
            out.push(row);
        }
    }
    out
}

struct ParsedBatch {
    /// ([`CveId::key`], row), in file order.
    rows: Vec<(i64, EpssRow)>,
    /// (line number, reason), in file order.
    rejected: Vec<(u64, String)>,
    /// Non-blank data lines.
    lines: u64,
    /// Newlines crossed (for line numbering).
    lines_spanned: u64,
}

/// Parses a batch in parallel: split at newlines into pieces, parse the
/// pieces on rayon, concatenate in order.
fn parse_batch(parser: &LineParser, data: &[u8], first_line: u64) -> ParsedBatch {
    let pieces = crate::source::split_at_newlines(data, (data.len() / 16).max(64 << 10));
    let parts: Vec<ParsedBatch> = pieces
        .par_iter()
        .map(|&(s, e)| {
            // Sized for the shortest plausible rows (a FIRST CSV line is
            // about 30 bytes) so that it never grows: every regrowth of a
            // large vector copies it into freshly faulted pages.
            let mut part = ParsedBatch {
                rows: Vec::with_capacity((e - s) / 24 + 1),
                rejected: Vec::new(),
                lines: 0,
                lines_spanned: 0,
            };
            let mut pos = s;
            while pos < e {
                let nl = memchr::memchr(b'\n', &data[pos..e]).map_or(e, |i| pos + i);
                part.lines_spanned += 1;
                let line = data[pos..nl].trim_ascii();
                pos = nl + 1;
                if line.is_empty() {
                    continue;
                }
                part.lines += 1;
                match parser.parse(line) {
                    Ok(r) => part.rows.push((r.cve.key(), r)),
                    Err(reason) => part.rejected.push((part.lines_spanned, reason)),
                }
            }
            part
        })
        .collect();
    let rows = parts.iter().map(|p| p.rows.len()).sum();
    let mut out = ParsedBatch {
        rows: Vec::with_capacity(rows),
        rejected: Vec::new(),
        lines: 0,
        lines_spanned: 0,
    };
    for p in parts {
        let base = first_line + out.lines_spanned;
        out.rows.extend(p.rows);
        out.rejected.extend(p.rejected.into_iter().map(|(l, r)| (base + l, r)));
        out.lines += p.lines;
        out.lines_spanned += p.lines_spanned;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cve_keys_are_distinct_and_cover_the_whole_id_space() {
        let ids = [
            "CVE-1999-0001",
            "CVE-1999-00001",
            "CVE-1999-0010",
            "CVE-2021-44228",
            "CVE-2024-123456789012345",
            "CVE-9999-999999999999999",
            "CVE-0000-0000",
        ];
        let keys: std::collections::HashSet<i64> =
            ids.iter().map(|c| cve_key(c).unwrap()).collect();
        assert_eq!(keys.len(), ids.len());
        assert_eq!(cve_key("CVE-0000-0000"), Some(0));
        assert_eq!(cve_key("CVE-0000-9999"), Some(9_999));
        assert_eq!(cve_key("CVE-0000-00000"), Some(10_000));
        assert_eq!(cve_key("CVE-0001-0000"), Some(CVE_NUMBERS as i64));
        // The largest id fits in 64 bits (as the same bits of an i64).
        assert_eq!(
            cve_key("CVE-9999-999999999999999").unwrap() as u64,
            9_999 * CVE_NUMBERS + CVE_NUMBERS - 1
        );
        assert_eq!(cve_key("GHSA-xxxx"), None);
        assert_eq!(cve_key("CVE-2024-123"), None);
    }

    #[test]
    fn cve_ids() {
        assert!(valid_cve("CVE-2021-44228"));
        assert!(valid_cve("CVE-1999-0001"));
        assert!(valid_cve("CVE-2024-123456789012345"));
        assert!(!valid_cve("CVE-2024-123"));
        assert!(!valid_cve("CVE-2024-1234567890123456"));
        assert!(!valid_cve("cve-2024-1234"));
        assert!(!valid_cve("invalid"));
        assert!(!valid_cve("CVE-20x4-1234"));
    }

    #[test]
    fn gitlab_lines_accepted_and_rejected() {
        let ok = parse_gitlab_line(
            br#"{"cve_id":"CVE-2021-44228","epss_score":0.9427,"is_known_exploit":true}"#,
        )
        .unwrap();
        assert_eq!(ok.is_known_exploit, Some(true));
        let default_kev =
            parse_gitlab_line(br#"{ "cve_id": "CVE-1999-0003", "epss_score": 0.2 }"#).unwrap();
        assert_eq!(default_kev.is_known_exploit, Some(false));
        for bad in [
            &br#"{"epss_score":0.2}"#[..],
            br#"{"cve_id":"invalid","epss_score":0.5}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":0.1,"unexpected_field":1}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":1.5}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":-0.1}"#,
            b"not json at all",
        ] {
            assert!(parse_gitlab_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn first_csv_with_comment_line_and_both_date_formats() {
        let data = b"#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z\ncve,epss,percentile\nCVE-1999-0001,0.03351,0.88255\n";
        let l = CsvLayout::read(data, "epss_scores-2026-09-29.csv").unwrap();
        assert_eq!(l.data_line, 2);
        let r = l.parse_line(b"CVE-1999-0001,0.03351,0.88255").unwrap();
        assert_eq!(r.model_version.as_deref(), Some("v2026.06.15"));
        assert_eq!(r.score_date.as_deref(), Some("2026-09-29T12:00:22Z"));
        assert_eq!(r.percentile, Some(0.88255));
        assert_eq!(r.is_known_exploit, None);
        let old = b"#model_version:v2023.03.01,score_date:2023-03-07T00:00:00+0000\ncve,epss,percentile\n";
        let l = CsvLayout::read(old, "x.csv").unwrap();
        assert_eq!(l.score_date.as_deref(), Some("2023-03-07T00:00:00Z"));
        // Pre-2022 files: no comment line, date from the file name.
        let l = CsvLayout::read(b"cve,epss,percentile\n", "epss_scores-2021-04-14.csv").unwrap();
        assert_eq!(l.data_line, 1);
        assert_eq!(l.score_date.as_deref(), Some("2021-04-14T00:00:00Z"));
        assert!(l.parse_line(b"CVE-1,0.1,0.2").is_err());
        assert!(l.parse_line(b"CVE-2021-0001,abc,0.2").is_err());
        assert!(l.parse_line(b"CVE-2021-0001,0.1,0.2,extra").is_err());
    }

    #[test]
    fn per_cve_time_series_takes_the_cve_from_the_file_name() {
        let l = CsvLayout::read(b"date,model,epss,percentile\n", "CVE-2021-0001.epss_excerpt.csv")
            .unwrap();
        let r = l.parse_line(b"2021-06-10,v1,0.00416").unwrap();
        assert_eq!(r.cve, "CVE-2021-0001");
        assert_eq!(r.percentile, None);
        assert_eq!(r.model_version.as_deref(), Some("v1"));
        assert_eq!(r.score_date.as_deref(), Some("2021-06-10T00:00:00Z"));
        assert!(CsvLayout::read(b"date,model,epss\n", "scores.csv").is_err());
        assert_eq!(
            cve_in_name("giterlizzi__CVE-2021-0001.epss_excerpt.csv").as_deref(),
            Some("CVE-2021-0001")
        );
        assert_eq!(cve_in_name("CVE-2021-44228.csv").as_deref(), Some("CVE-2021-44228"));
        assert_eq!(cve_in_name("CVE-21-1.csv"), None);
    }

    #[test]
    fn parse_batch_numbers_lines_across_pieces() {
        let mut data = Vec::new();
        for i in 0..5000 {
            if i % 1000 == 7 {
                data.extend_from_slice(b"garbage\n");
            } else {
                data.extend_from_slice(
                    format!("{{\"cve_id\":\"CVE-2020-{:05}\",\"epss_score\":0.5}}\n", i).as_bytes(),
                );
            }
        }
        let b = parse_batch(&LineParser::Gitlab, &data, 100);
        assert_eq!(b.lines, 5000);
        assert_eq!(b.rows.len(), 4995);
        let lines: Vec<u64> = b.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [108, 1108, 2108, 3108, 4108]);
        // In file order, each with its key.
        assert_eq!(b.rows[0].0, cve_key("CVE-2020-00000").unwrap());
        assert_eq!(b.rows[4994].1.cve, "CVE-2020-04999");
    }

    #[test]
    fn last_wins_keeps_the_last_row_of_each_cve_in_key_order() {
        let row = |cve: &str, score: f64| {
            let cve = CveId::parse(cve).unwrap();
            (cve.key(), EpssRow { cve, epss_score: score, ..row_template() })
        };
        let parsed = vec![
            row("CVE-2021-10000", 0.1),
            row("CVE-2021-1000", 0.2),
            row("CVE-2021-10000", 0.3),
            row("CVE-2020-9999", 0.4),
            row("CVE-2021-10000", 0.5),
        ];
        let mut superseded = 0;
        let out = last_wins(parsed, &mut superseded);
        assert_eq!(superseded, 2);
        let got: Vec<(&str, f64)> = out.iter().map(|r| (r.cve.as_str(), r.epss_score)).collect();
        assert_eq!(got, [("CVE-2020-9999", 0.4), ("CVE-2021-1000", 0.2), ("CVE-2021-10000", 0.5)]);
    }

    fn row_template() -> EpssRow {
        EpssRow {
            cve: CveId::parse("CVE-2000-0000").unwrap(),
            epss_score: 0.0,
            percentile: None,
            is_known_exploit: None,
            model_version: None,
            score_date: None,
        }
    }
}
