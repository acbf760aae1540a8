//! Which export files a sync still has to read, given its checkpoint.
//!
//! Files are ordered by (sequence, chunk), compared as strings, as GitLab
//! names them (`<sequence>/<chunk>.ndjson`, chunk `%09d`). A checkpoint
//! names the last file written and how far; everything after it in that
//! order is new. The checkpointed file itself need not exist any more, so
//! a pruned bucket never forces a full replay.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Checkpoint;

/// One export file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// `cve_enrichment`, `epss` (bucket) or `epss_csv`.
    pub data_type: String,
    /// The bucket root or the CSV path (canonical), the checkpoint's key.
    pub source: String,
    /// Sequence directory name (the CSV's file name for a CSV).
    pub sequence: String,
    /// Chunk file stem (empty for a CSV).
    pub chunk: String,
    /// Path to read.
    pub path: PathBuf,
    /// Size on disk.
    pub len: u64,
    /// A CSV rather than GitLab NDJSON.
    pub csv: bool,
}

impl ExportFile {
    /// The checkpoint saying this file is written up to `offset`.
    pub fn checkpoint(&self, offset: u64, complete: bool) -> Checkpoint {
        Checkpoint {
            data_type: self.data_type.clone(),
            source: self.source.clone(),
            sequence: self.sequence.clone(),
            chunk: self.chunk.clone(),
            offset,
            complete,
        }
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

/// Lists `root/v2/cve_enrichment/*/*.ndjson` and `root/v2/epss/*/*.ndjson`
/// in (data type, sequence, chunk) order.
pub fn list_bucket(root: &Path) -> Result<Vec<ExportFile>> {
    let source = canonical(root)?;
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
                let len = std::fs::metadata(&chunk).map_err(|e| Error::io(&chunk, e))?.len();
                out.push(ExportFile {
                    data_type: data_type.to_owned(),
                    source: source.clone(),
                    sequence: sequence.clone(),
                    chunk: stem.to_owned(),
                    path: chunk.clone(),
                    len,
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
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    Ok(ExportFile {
        data_type: "epss_csv".into(),
        source: canonical(path)?,
        sequence: name,
        chunk: String::new(),
        path: path.to_owned(),
        len,
        csv: true,
    })
}

/// Where to start reading `f` given the checkpoint of its source: `None`
/// when it is already fully written.
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
            source: "/b".into(),
            sequence: seq.into(),
            chunk: chunk.into(),
            path: PathBuf::new(),
            len: 100,
            csv: false,
        }
    }

    #[test]
    fn resume_after_checkpoint_even_when_its_file_is_gone() {
        let cp = file("1700000100", "000000001").checkpoint(40, false);
        assert_eq!(resume_offset(&file("1700000000", "000000009"), Some(&cp)), None);
        assert_eq!(resume_offset(&file("1700000100", "000000000"), Some(&cp)), None);
        assert_eq!(resume_offset(&file("1700000100", "000000001"), Some(&cp)), Some(40));
        assert_eq!(resume_offset(&file("1700000100", "000000002"), Some(&cp)), Some(0));
        assert_eq!(resume_offset(&file("1700000200", "000000000"), Some(&cp)), Some(0));
        let done = file("1700000100", "000000001").checkpoint(100, true);
        assert_eq!(resume_offset(&file("1700000100", "000000001"), Some(&done)), None);
        // The checkpointed chunk 000000005 was deleted: later chunks are
        // still new, earlier ones still done.
        let gone = file("1700000100", "000000005").checkpoint(100, true);
        assert_eq!(resume_offset(&file("1700000100", "000000006"), Some(&gone)), Some(0));
        assert_eq!(resume_offset(&file("1700000100", "000000004"), Some(&gone)), None);
        assert_eq!(resume_offset(&file("x", "y"), None), Some(0));
    }
}
