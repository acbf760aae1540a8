//! Shared inputs for the criterion benches: synthetic archives written by
//! the engine's own generator into a temporary directory.

use std::path::PathBuf;

use backfill_engine::gen::{RawArchiveGen, RawGenOptions};
use backfill_engine::Format;

/// A generated raw archive on disk (deleted when dropped).
pub struct Archive {
    _dir: tempfile::TempDir,
    /// Path of the NDJSON file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its line count.
    pub lines: u64,
}

/// Writes an archive of `count` documents drawn from `formats`, with no
/// duplicates or malformed lines unless asked.
pub fn archive(formats: &[Format], count: u64, dup_ratio: f64, bad_ratio: f64) -> Archive {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("raw.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let opts = RawGenOptions {
        count,
        seed: 42,
        formats: formats.to_vec(),
        dup_ratio,
        bad_ratio,
        ..RawGenOptions::default()
    };
    let report = RawArchiveGen::new(opts).write_to(&mut out).expect("write");
    drop(out);
    Archive { _dir: dir, path, bytes: report.bytes, lines: report.lines }
}

/// An archive of `count` documents of all three formats.
pub fn mixed_archive(count: u64) -> Archive {
    archive(&[Format::Csaf, Format::CycloneDx, Format::OpenVex], count, 0.0, 0.0)
}

/// The decoded documents of a `count`-document archive of one format, and
/// their total size in bytes.
pub fn format_documents(format: Format, count: u64) -> (Vec<Vec<u8>>, u64) {
    let docs = documents(&archive(&[format], count, 0.0, 0.0));
    let bytes = docs.iter().map(|d| d.len() as u64).sum();
    (docs, bytes)
}

/// A new SQLite store in a temporary directory (deleted with it).
pub fn new_store() -> (tempfile::TempDir, backfill_engine::SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = backfill_engine::SqliteStore::open(dir.path().join("b.db"), &Default::default())
        .expect("open store");
    (dir, store)
}

/// The content bytes of every well-formed document of an archive, decoded.
pub fn documents(a: &Archive) -> Vec<Vec<u8>> {
    let archives = backfill_engine::Archives::open(
        std::slice::from_ref(&a.path),
        Default::default(),
        &backfill_engine::Limits::default(),
    )
    .expect("open archive");
    let limits = backfill_engine::Limits::default();
    archives
        .scan(&limits)
        .iter()
        .filter(|e| e.failure.is_none())
        .map(|e| {
            let raw = archives.read(e).expect("bytes");
            let env = backfill_engine::read_envelope(&raw).expect("envelope");
            backfill_engine::content_bytes(env.content, &limits).expect("content").into_owned()
        })
        .collect()
}
