//! Which export files a sync has to read, and from where, given their
//! checkpoints.
//!
//! Every file has a checkpoint of its own, keyed by its canonical path,
//! that says how far it was read and what it was: its size and
//! modification time, and an xxh3 hash of the bytes read (of the
//! decompressed stream, for a `.gz` file) — a [`ContentIdentity`]. So a
//! file replaced at the same path (FIRST's `epss_scores-current.csv.gz`,
//! a bucket chunk rewritten in place) is noticed and read again, while a
//! mirror that downloads the same bytes again is not re-applied. [`action`]
//! is the whole rule:
//!
//! | checkpoint of the file | the file now | action |
//! |---|---|---|
//! | none (and no legacy bucket checkpoint covers it) | | read from the start |
//! | finished | same size and mtime | skipped, not opened |
//! | finished | other size or mtime, same content hash | skipped (the identity is refreshed) |
//! | finished | other content | read from the start |
//! | part-read to offset O | first O bytes hash the same (e.g. it grew) | resumed at O |
//! | part-read to offset O | shorter than O, or changed before O | read from the start, with a warning |
//! | written before identities (a CSV) | | read from the start |
//! | any, with `--force` | | read from the start |
//!
//! Files of a bucket are ordered by (sequence, chunk), compared as
//! strings, as GitLab names them (`<sequence>/<chunk>.ndjson`, chunk
//! `%09d`). Before identities, a bucket had one checkpoint for all its
//! files, keyed by its root: "everything up to (sequence, chunk, offset)
//! is done". Such a legacy checkpoint is still honoured for files that
//! have no checkpoint of their own, so an upgrade does not replay the
//! bucket: a file it covers is hashed once and given its own checkpoint
//! (adopted, not read for rows), and the file it stopped in is resumed.
//! Once a run has accounted for every file, the legacy checkpoint is
//! retired (its position emptied, so it covers nothing). A checkpointed
//! file that was deleted from the mirror never forces a replay.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::{Checkpoint, ContentIdentity};

/// One export file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// `cve_enrichment`, `epss` (bucket) or `epss_csv`.
    pub data_type: String,
    /// The file's canonical path: the key of its checkpoint.
    pub source: String,
    /// For a bucket file, the bucket root (canonical): the key of the
    /// legacy checkpoint that may cover it.
    pub bucket: Option<String>,
    /// Sequence directory name (the CSV's file name for a CSV).
    pub sequence: String,
    /// Chunk file stem (empty for a CSV).
    pub chunk: String,
    /// Path to read.
    pub path: PathBuf,
    /// Size on disk.
    pub len: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// A CSV rather than GitLab NDJSON.
    pub csv: bool,
}

impl ExportFile {
    /// True for a gzip file, whose offsets count decompressed bytes.
    pub fn gz(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "gz")
    }

    /// The checkpoint saying this file is written up to `offset`, where
    /// its bytes before `offset` hash to `xxh3`.
    pub fn checkpoint(&self, offset: u64, complete: bool, xxh3: u64) -> Checkpoint {
        Checkpoint {
            data_type: self.data_type.clone(),
            source: self.source.clone(),
            sequence: self.sequence.clone(),
            chunk: self.chunk.clone(),
            offset,
            complete,
            identity: Some(ContentIdentity { size: self.len, mtime_ns: self.mtime_ns, xxh3 }),
        }
    }
}

/// What a sync does with one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Finished, with the size and modification time recorded: not even
    /// opened.
    Skip,
    /// Finished, but its size or modification time changed: hash it. The
    /// same content (`len` bytes hashing to `xxh3`) is skipped and its
    /// identity refreshed; anything else is read from the start.
    Verify {
        /// The length read (decompressed).
        len: u64,
        /// Its hash.
        xxh3: u64,
    },
    /// Read from `offset`. With `expect`, the bytes before `offset` must
    /// still hash to it; if they do not, or the file is now shorter, it is
    /// read from the start with a warning.
    Read {
        /// Where to resume (0: the start).
        offset: u64,
        /// The hash of the bytes before `offset`, when known.
        expect: Option<u64>,
    },
    /// Covered by its bucket's legacy checkpoint and without a checkpoint
    /// of its own: done, so it is only hashed and given one.
    Adopt,
}

/// What to do with `f`, given its own checkpoint (`own`), the legacy
/// checkpoint of its bucket (`legacy`) and `--force`. See the module docs.
pub fn action(
    f: &ExportFile,
    own: Option<&Checkpoint>,
    legacy: Option<&Checkpoint>,
    force: bool,
) -> Action {
    const FROM_START: Action = Action::Read { offset: 0, expect: None };
    if force {
        return FROM_START;
    }
    match own {
        // A CSV checkpoint from before identities: the file may have been
        // replaced. Reading a whole snapshot again only costs time (rows
        // are upserted only when changed).
        Some(Checkpoint { identity: None, .. }) => FROM_START,
        Some(cp @ Checkpoint { identity: Some(id), .. }) => {
            let same_meta = id.size == f.len && id.mtime_ns == f.mtime_ns;
            match (cp.complete, same_meta) {
                (true, true) => Action::Skip,
                // A plain file's length is the length read: another one is
                // other content, no need to hash.
                (true, false) if !f.gz() && f.len != cp.offset => FROM_START,
                (true, false) => Action::Verify { len: cp.offset, xxh3: id.xxh3 },
                (false, _) => Action::Read { offset: cp.offset, expect: Some(id.xxh3) },
            }
        }
        None => match legacy.filter(|l| l.identity.is_none()) {
            None => FROM_START,
            Some(l) => match resume_offset(f, Some(l)) {
                None => Action::Adopt,
                Some(offset) => Action::Read { offset, expect: None },
            },
        },
    }
}

/// True when `cp` is a legacy bucket checkpoint that still covers files
/// (not retired, see [`retired`]).
pub fn is_active_legacy(cp: &Checkpoint) -> bool {
    cp.identity.is_none() && !(cp.sequence.is_empty() && cp.chunk.is_empty())
}

/// A legacy bucket checkpoint with its position emptied: it covers no
/// file any more, every file having a checkpoint of its own.
pub fn retired(legacy: &Checkpoint) -> Checkpoint {
    Checkpoint {
        sequence: String::new(),
        chunk: String::new(),
        offset: 0,
        complete: true,
        identity: None,
        ..legacy.clone()
    }
}

fn canonical(p: &Path) -> Result<String> {
    Ok(std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?.display().to_string())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Size and modification time (ns since the epoch) of `path`.
fn stat(path: &Path) -> Result<(u64, i64)> {
    let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime_ns = match m.modified() {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        },
        // No modification time on this platform: size and hash decide.
        Err(_) => 0,
    };
    Ok((m.len(), mtime_ns))
}

/// Lists `root/v2/cve_enrichment/*/*.ndjson` and `root/v2/epss/*/*.ndjson`
/// in (data type, sequence, chunk) order.
pub fn list_bucket(root: &Path) -> Result<Vec<ExportFile>> {
    let bucket = canonical(root)?;
    let mut out = Vec::new();
    let mut found_layout = false;
    for data_type in ["cve_enrichment", "epss"] {
        let dir = root.join("v2").join(data_type);
        if !dir.is_dir() {
            continue;
        }
        found_layout = true;
        for seq in sorted_entries(&dir)? {
            if !seq.is_dir() {
                continue;
            }
            let sequence = seq.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            for chunk in sorted_entries(&seq)? {
                let Some(name) = chunk.file_name().and_then(|n| n.to_str()) else { continue };
                let Some(stem) = name.strip_suffix(".ndjson") else { continue };
                let (len, mtime_ns) = stat(&chunk)?;
                // Under the canonical root, without a system call per file.
                let source = Path::new(&bucket)
                    .join("v2")
                    .join(data_type)
                    .join(&sequence)
                    .join(name)
                    .display()
                    .to_string();
                out.push(ExportFile {
                    data_type: data_type.to_owned(),
                    source,
                    bucket: Some(bucket.clone()),
                    sequence: sequence.clone(),
                    chunk: stem.to_owned(),
                    path: chunk.clone(),
                    len,
                    mtime_ns,
                    csv: false,
                });
            }
        }
    }
    if !found_layout {
        return Err(Error::Config(format!(
            "{}: not an export bucket (no v2/cve_enrichment or v2/epss directory)",
            root.display()
        )));
    }
    Ok(out)
}

/// A single CSV file as an export file.
pub fn csv_file(path: &Path) -> Result<ExportFile> {
    let (len, mtime_ns) = stat(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    Ok(ExportFile {
        data_type: "epss_csv".into(),
        source: canonical(path)?,
        bucket: None,
        sequence: name,
        chunk: String::new(),
        path: path.to_owned(),
        len,
        mtime_ns,
        csv: true,
    })
}

/// Where to start reading `f` given a legacy (whole-bucket) checkpoint:
/// `None` when it is already fully written.
pub fn resume_offset(f: &ExportFile, cp: Option<&Checkpoint>) -> Option<u64> {
    let Some(cp) = cp else { return Some(0) };
    let here = (f.sequence.as_str(), f.chunk.as_str());
    let there = (cp.sequence.as_str(), cp.chunk.as_str());
    match here.cmp(&there) {
        std::cmp::Ordering::Less => None,
        std::cmp::Ordering::Equal if cp.complete => None,
        std::cmp::Ordering::Equal => Some(cp.offset),
        std::cmp::Ordering::Greater => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(seq: &str, chunk: &str) -> ExportFile {
        ExportFile {
            data_type: "cve_enrichment".into(),
            source: format!("/b/v2/cve_enrichment/{seq}/{chunk}.ndjson"),
            bucket: Some("/b".into()),
            sequence: seq.into(),
            chunk: chunk.into(),
            path: PathBuf::from(format!("{chunk}.ndjson")),
            len: 100,
            mtime_ns: 1_000,
            csv: false,
        }
    }

    /// A legacy bucket checkpoint at (seq, chunk).
    fn legacy(seq: &str, chunk: &str, offset: u64, complete: bool) -> Checkpoint {
        Checkpoint {
            data_type: "cve_enrichment".into(),
            source: "/b".into(),
            sequence: seq.into(),
            chunk: chunk.into(),
            offset,
            complete,
            identity: None,
        }
    }

    #[test]
    fn resume_after_checkpoint_even_when_its_file_is_gone() {
        let cp = legacy("1700000100", "000000001", 40, false);
        assert_eq!(resume_offset(&file("1700000000", "000000009"), Some(&cp)), None);
        assert_eq!(resume_offset(&file("1700000100", "000000000"), Some(&cp)), None);
        assert_eq!(resume_offset(&file("1700000100", "000000001"), Some(&cp)), Some(40));
        assert_eq!(resume_offset(&file("1700000100", "000000002"), Some(&cp)), Some(0));
        assert_eq!(resume_offset(&file("1700000200", "000000000"), Some(&cp)), Some(0));
        let done = legacy("1700000100", "000000001", 100, true);
        assert_eq!(resume_offset(&file("1700000100", "000000001"), Some(&done)), None);
        // The checkpointed chunk 000000005 was deleted: later chunks are
        // still new, earlier ones still done.
        let gone = legacy("1700000100", "000000005", 100, true);
        assert_eq!(resume_offset(&file("1700000100", "000000006"), Some(&gone)), Some(0));
        assert_eq!(resume_offset(&file("1700000100", "000000004"), Some(&gone)), None);
        assert_eq!(resume_offset(&file("x", "y"), None), Some(0));
    }

    #[test]
    fn own_checkpoint_decides_by_size_mtime_and_hash() {
        let f = file("1", "000000000");
        let start = Action::Read { offset: 0, expect: None };
        assert_eq!(action(&f, None, None, false), start);
        let done = f.checkpoint(100, true, 7);
        assert_eq!(action(&f, Some(&done), None, false), Action::Skip);
        assert_eq!(action(&f, Some(&done), None, true), start, "--force");
        // Touched (same size): hash it.
        let touched = ExportFile { mtime_ns: 2_000, ..f.clone() };
        assert_eq!(
            action(&touched, Some(&done), None, false),
            Action::Verify { len: 100, xxh3: 7 }
        );
        // A plain file of another size is other content.
        let grown = ExportFile { len: 150, mtime_ns: 2_000, ..f.clone() };
        assert_eq!(action(&grown, Some(&done), None, false), start);
        // A gzip file of another size may decompress to the same bytes.
        let gz = ExportFile { path: "x.csv.gz".into(), ..f.clone() };
        let gz_done = gz.checkpoint(900, true, 7);
        let gz_new = ExportFile { len: 120, ..gz.clone() };
        assert_eq!(
            action(&gz_new, Some(&gz_done), None, false),
            Action::Verify { len: 900, xxh3: 7 }
        );
        // Part-read: resume if the prefix still hashes the same.
        let part = f.checkpoint(40, false, 9);
        let resume = Action::Read { offset: 40, expect: Some(9) };
        assert_eq!(action(&f, Some(&part), None, false), resume);
        assert_eq!(action(&grown, Some(&part), None, false), resume);
        // A checkpoint without identity (a CSV before identities).
        let old = Checkpoint { identity: None, ..done.clone() };
        assert_eq!(action(&f, Some(&old), None, false), start);
    }

    #[test]
    fn legacy_checkpoint_covers_only_files_without_their_own() {
        let l = legacy("1700000100", "000000001", 40, false);
        let before = file("1700000000", "000000009");
        let at = file("1700000100", "000000001");
        let after = file("1700000200", "000000000");
        assert_eq!(action(&before, None, Some(&l), false), Action::Adopt);
        assert_eq!(action(&at, None, Some(&l), false), Action::Read { offset: 40, expect: None });
        assert_eq!(action(&after, None, Some(&l), false), Action::Read { offset: 0, expect: None });
        // Its own checkpoint wins.
        let own = before.checkpoint(100, false, 3);
        assert_eq!(
            action(&before, Some(&own), Some(&l), false),
            Action::Read { offset: 100, expect: Some(3) }
        );
        assert_eq!(
            action(&before, None, Some(&l), true),
            Action::Read { offset: 0, expect: None },
            "--force"
        );
        // Retired: covers nothing.
        let r = retired(&l);
        assert!(is_active_legacy(&l) && !is_active_legacy(&r));
        assert_eq!(
            action(&before, None, Some(&r), false),
            Action::Read { offset: 0, expect: None }
        );
    }
}
