//! Raw-document sources: NDJSON archives and loose JSON documents.
//!
//! Files are memory-mapped. A first, parallel pass ([`Archives::scan`])
//! splits each archive at line boundaries and reads just enough of every
//! envelope to place it in the global (`retrievedAt`, `digest`) order: one
//! small [`Entry`] per document. The pipeline sorts the entries and then
//! loads documents batch by batch from the mapped bytes.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;

use crate::dedupe::Digest;
use crate::error::{DocumentFailure, Error, FailureKind, Result};
use crate::parse;

/// Resource limits applied while reading input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest document (decoded content) accepted, in bytes.
    pub max_document_bytes: usize,
    /// Longest archive line accepted, in bytes.
    pub max_line_bytes: usize,
    /// Largest decompressed size of one `.gz` input.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        // 64 MiB documents; a base64 line is 4/3 of that plus the envelope.
        Limits {
            max_document_bytes: 64 << 20,
            max_line_bytes: 96 << 20,
            max_decompressed_bytes: 16 << 30,
        }
    }
}

/// How a loose `*.json` file found in a directory is described, since it
/// has no envelope of its own.
#[derive(Clone, Debug)]
pub struct LooseFileDefaults {
    /// `providerId` given to loose files.
    pub provider_id: String,
    /// `retrievedAt` (Unix microseconds) for loose files; `None` uses the
    /// file's modification time.
    pub retrieved_at: Option<i64>,
}

impl Default for LooseFileDefaults {
    fn default() -> Self {
        LooseFileDefaults { provider_id: "local".into(), retrieved_at: None }
    }
}

/// What one input file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// One envelope per line.
    Ndjson,
    /// A single raw document (digest from its bytes).
    Document,
}

/// One mapped input file.
pub struct InputFile {
    /// Path as given or found while walking.
    pub path: PathBuf,
    /// How the bytes are read.
    pub kind: InputKind,
    /// Modification time, Unix microseconds.
    pub mtime: i64,
    data: Option<Mmap>,
    /// Why the file could not be opened, when it could not. Reported as one
    /// failed document so nothing disappears silently.
    open_error: Option<String>,
}

impl InputFile {
    /// The file's bytes (empty when it could not be opened).
    pub fn bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }
}

/// The set of input files of a run.
pub struct Archives {
    files: Vec<InputFile>,
    loose: LooseFileDefaults,
    /// Each file's rank in path order: the tie-break of the evaluation
    /// order, so it does not depend on the order paths were given in.
    rank: Vec<u32>,
}

/// Where a document sits, and its place in the global order.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `retrievedAt` as Unix microseconds (`i64::MIN` when unknown, which
    /// only happens for entries that already failed).
    pub retrieved_at: i64,
    /// Declared digest, or the one computed from the content.
    pub digest: Digest,
    /// Whether `digest` came from the envelope (and so must be verified).
    pub digest_declared: bool,
    /// Index into [`Archives::files`].
    pub file: u32,
    /// 1-based line number in an archive; 0 for a loose document.
    pub line: u64,
    /// Byte range of the line (or the whole file).
    pub offset: u64,
    /// Length of that range.
    pub len: u64,
    /// Set when the scan already knows the document fails.
    pub failure: Option<Box<DocumentFailure>>,
    /// Byte range, within the line, of a base64 `content` string (quotes
    /// included): the scan has validated it, so evaluation need not read
    /// the whole string again to parse the rest of the envelope.
    pub content_span: Option<(u32, u32)>,
}

/// A document's place in the global evaluation order: (`retrievedAt`,
/// `digest`), then its path and byte offset, so equal keys still order
/// deterministically. Also what a `statements` checkpoint records.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// `retrievedAt`, Unix microseconds.
    pub retrieved_at: i64,
    /// The digest.
    pub digest: Digest,
    /// Path of the input file.
    pub path: String,
    /// Byte offset in it.
    pub offset: u64,
}

impl Position {
    /// Encodes the position in a checkpoint's (sequence, chunk, offset).
    pub fn to_checkpoint_fields(&self) -> (String, String, u64) {
        (format!("{:+021}|{}", self.retrieved_at, self.digest), self.path.clone(), self.offset)
    }

    /// Decodes [`Position::to_checkpoint_fields`].
    pub fn from_checkpoint_fields(sequence: &str, chunk: &str, offset: u64) -> Option<Position> {
        let (t, d) = sequence.split_once('|')?;
        Some(Position {
            retrieved_at: t.parse().ok()?,
            digest: d.parse().ok()?,
            path: chunk.to_owned(),
            offset,
        })
    }
}

impl Archives {
    /// Opens every path: a file ending in `.ndjson` (or `.jsonl`) is an
    /// archive, any other file is one loose document, and a directory is
    /// walked in name order (`*.ndjson`/`*.jsonl` archives, other `*.json`
    /// files loose documents; anything else ignored). A `.gz` suffix on any
    /// of these is decompressed (to a temporary file, within
    /// `limits.max_decompressed_bytes`). A path that does not exist or is
    /// not a regular file is an error; inside a directory, a file that
    /// cannot be read becomes one failed document, and so does a gzip bomb.
    pub fn open(paths: &[PathBuf], loose: LooseFileDefaults, limits: &Limits) -> Result<Archives> {
        let mut files = Vec::new();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            if meta.is_dir() {
                walk(p, limits, &mut files)?;
            } else {
                let (kind, gz) = kind_of(p).unwrap_or((InputKind::Document, false));
                files.push(open_file(p, kind, gz, true, limits)?);
            }
        }
        let mut order: Vec<usize> = (0..files.len()).collect();
        // By the same string Position compares, so the two orders agree.
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        order.sort_by(|&a, &b| names[a].cmp(&names[b]));
        let mut rank = vec![0u32; files.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r as u32;
        }
        Ok(Archives { files, loose, rank })
    }

    /// The sort key of an entry in the evaluation order (cheap to compare;
    /// agrees with [`Archives::position`]).
    pub fn sort_key(&self, e: &Entry) -> (i64, Digest, u32, u64) {
        (e.retrieved_at, e.digest, self.rank[e.file as usize], e.offset)
    }

    /// The full position of an entry, as checkpoints record it.
    pub fn position(&self, e: &Entry) -> Position {
        Position {
            retrieved_at: e.retrieved_at,
            digest: e.digest,
            path: self.files[e.file as usize].path.display().to_string(),
            offset: e.offset,
        }
    }

    /// A stable name for this set of inputs: the canonical paths, sorted.
    /// A checkpoint belongs to one such set.
    pub fn identity(&self, given: &[PathBuf]) -> String {
        let mut names: Vec<String> = given
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string())
            .collect();
        names.sort();
        names.dedup();
        names.join("\n")
    }

    /// The opened files, in the order they were given or found.
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// Total bytes of input.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes().len() as u64).sum()
    }

    /// The bytes an entry points at.
    pub fn slice(&self, e: &Entry) -> &[u8] {
        let b = self.files[e.file as usize].bytes();
        &b[e.offset as usize..(e.offset + e.len) as usize]
    }

    /// Defaults for loose documents.
    pub fn loose_defaults(&self) -> &LooseFileDefaults {
        &self.loose
    }

    /// Human-readable origin of an entry: `path:line` or `path`.
    pub fn origin(&self, e: &Entry) -> String {
        let path = self.files[e.file as usize].path.display();
        if e.line > 0 {
            format!("{path}:{}", e.line)
        } else {
            path.to_string()
        }
    }

    /// Reads every envelope just far enough to order it, in parallel on the
    /// current rayon pool. Entries come back in input order.
    pub fn scan(&self, limits: &Limits) -> Vec<Entry> {
        let mut tasks: Vec<(u32, usize, usize)> = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            match f.kind {
                InputKind::Ndjson if f.open_error.is_none() => {
                    for (start, end) in split_at_newlines(f.bytes(), CHUNK_BYTES) {
                        tasks.push((i as u32, start, end));
                    }
                }
                _ => tasks.push((i as u32, 0, f.bytes().len())),
            }
        }
        let parts: Vec<(u32, Vec<Entry>, u64)> = tasks
            .par_iter()
            .with_max_len(1)
            .map(|&(file, start, end)| {
                let (entries, lines) = self.scan_task(file, start, end, limits);
                (file, entries, lines)
            })
            .collect();
        // Line numbers were counted per chunk; make them absolute.
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
        let mut last_file = u32::MAX;
        let mut base = 0u64;
        for (file, entries, lines) in parts {
            if file != last_file {
                base = 0;
                last_file = file;
            }
            for mut e in entries {
                if e.line > 0 {
                    e.line += base;
                }
                out.push(e);
            }
            base += lines;
        }
        out
    }

    fn scan_task(&self, file: u32, start: usize, end: usize, limits: &Limits) -> (Vec<Entry>, u64) {
        let f = &self.files[file as usize];
        if let Some(err) = &f.open_error {
            let fail = DocumentFailure::new(FailureKind::Envelope, err.clone());
            return (vec![failed_entry(file, 0, 0, 0, fail)], 0);
        }
        match f.kind {
            InputKind::Document => (vec![self.scan_loose(file, limits)], 0),
            InputKind::Ndjson => scan_lines(f.bytes(), file, start, end, limits),
        }
    }

    fn scan_loose(&self, file: u32, limits: &Limits) -> Entry {
        let f = &self.files[file as usize];
        let bytes = f.bytes();
        let mut e = Entry {
            retrieved_at: self.loose.retrieved_at.unwrap_or(f.mtime),
            digest: Digest::default(),
            digest_declared: false,
            file,
            line: 0,
            offset: 0,
            len: bytes.len() as u64,
            failure: None,
            content_span: None,
        };
        if bytes.len() > limits.max_document_bytes {
            e.failure = Some(Box::new(too_big(bytes.len(), limits)));
        } else {
            e.digest = Digest::of(bytes);
        }
        e
    }
}

/// Archives are split into chunks of about this size for the parallel scan.
const CHUNK_BYTES: usize = 4 << 20;

/// Splits `data` into ranges of about `size` bytes, each ending just after a
/// newline (or at the end).
pub(crate) fn split_at_newlines(data: &[u8], size: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let target = (start + size).min(data.len());
        let end = if target == data.len() {
            target
        } else {
            match memchr::memchr(b'\n', &data[target..]) {
                Some(i) => target + i + 1,
                None => data.len(),
            }
        };
        out.push((start, end));
        start = end;
    }
    out
}

fn scan_lines(
    data: &[u8],
    file: u32,
    start: usize,
    end: usize,
    limits: &Limits,
) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut line_no = 0u64;
    let mut pos = start;
    while pos < end {
        let nl = memchr::memchr(b'\n', &data[pos..end]).map_or(end, |i| pos + i);
        line_no += 1;
        let (s, e) = trim_line(data, pos, nl);
        pos = nl + 1;
        if s == e {
            continue; // blank lines are not documents
        }
        let len = e - s;
        if len > limits.max_line_bytes {
            let fail = DocumentFailure::new(
                FailureKind::Limit,
                format!("line is {len} bytes, over the {} byte line limit", limits.max_line_bytes),
            );
            out.push(failed_entry(file, line_no, s, len, fail));
            continue;
        }
        out.push(match parse::scan_envelope(&data[s..e], limits) {
            Ok(env) => Entry {
                retrieved_at: env.retrieved_at,
                digest: env.digest,
                digest_declared: env.digest_declared,
                file,
                line: line_no,
                offset: s as u64,
                len: len as u64,
                failure: None,
                content_span: env.content_span,
            },
            Err(fail) => failed_entry(file, line_no, s, len, fail),
        });
    }
    (out, line_no)
}

/// Strips a UTF-8 BOM, surrounding ASCII whitespace and a trailing `\r`.
fn trim_line(data: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    if data[s..e].starts_with(b"\xEF\xBB\xBF") {
        s += 3;
    }
    while s < e && data[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && data[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

fn failed_entry(file: u32, line: u64, offset: usize, len: usize, fail: DocumentFailure) -> Entry {
    Entry {
        retrieved_at: i64::MIN,
        digest: Digest::default(),
        digest_declared: false,
        file,
        line,
        offset: offset as u64,
        len: len as u64,
        failure: Some(Box::new(fail)),
        content_span: None,
    }
}

pub(crate) fn too_big(len: usize, limits: &Limits) -> DocumentFailure {
    DocumentFailure::new(
        FailureKind::Limit,
        format!(
            "document is {len} bytes, over the {} byte document limit",
            limits.max_document_bytes
        ),
    )
}

/// The kind of input a file name says, and whether it is gzip-compressed.
fn kind_of(p: &Path) -> Option<(InputKind, bool)> {
    let name = p.file_name()?.to_str()?;
    let (name, gz) = match name.strip_suffix(".gz") {
        Some(n) => (n, true),
        None => (name, false),
    };
    if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        Some((InputKind::Ndjson, gz))
    } else if name.ends_with(".json") {
        Some((InputKind::Document, gz))
    } else {
        None
    }
}

fn walk(dir: &Path, limits: &Limits, out: &mut Vec<InputFile>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // Follows symlinks, like a user listing the folder would.
        match std::fs::metadata(&p) {
            Ok(meta) if meta.is_dir() => walk(&p, limits, out)?,
            // Anything named like an input is read or reported: a dangling
            // symlink, a FIFO or an unreadable file is one failed document.
            _ => {
                if let Some((kind, gz)) = kind_of(&p) {
                    out.push(open_file(&p, kind, gz, false, limits)?);
                }
            }
        }
    }
    Ok(())
}

fn open_file(
    p: &Path,
    kind: InputKind,
    gz: bool,
    explicit: bool,
    limits: &Limits,
) -> Result<InputFile> {
    let opened = std::fs::metadata(p).and_then(|meta| {
        // Checked before opening: opening a FIFO would block.
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as i64);
        let f = File::open(p)?;
        let f = if gz { decompress(f, limits.max_decompressed_bytes)? } else { f };
        let len = f.metadata()?.len();
        // SAFETY: the map is read-only; the archive must not be truncated
        // while a run reads it, as with any memory-mapped input.
        let map = if len == 0 { None } else { Some(unsafe { Mmap::map(&f)? }) };
        Ok((map, mtime))
    });
    match opened {
        Ok((data, mtime)) => {
            Ok(InputFile { path: p.to_owned(), kind, mtime, data, open_error: None })
        }
        // A path the user named must be readable; inside a walked
        // directory, one unreadable file is one failed document. A gzip
        // bomb is a failed document either way.
        Err(e) if explicit && e.kind() != std::io::ErrorKind::FileTooLarge => Err(Error::io(p, e)),
        Err(e) => Ok(InputFile {
            path: p.to_owned(),
            kind,
            mtime: 0,
            data: None,
            open_error: Some(format!("{}: cannot read: {e}", p.display())),
        }),
    }
}

/// Decompresses a gzip stream into an unnamed temporary file (deleted when
/// closed), refusing to write more than `cap` bytes.
fn decompress(f: File, cap: u64) -> std::io::Result<File> {
    let mut out = tempfile::tempfile()?;
    let dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
    let written = std::io::copy(&mut std::io::Read::take(dec, cap + 1), &mut out)?;
    if written > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("decompresses to more than {cap} bytes (the --max-decompressed-size limit)"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_on_newlines_and_cover_everything() {
        let data = b"aaaa\nbb\ncccccc\nd\n\neee";
        for size in 1..data.len() + 2 {
            let cs = split_at_newlines(data, size);
            assert_eq!(cs.first().unwrap().0, 0);
            assert_eq!(cs.last().unwrap().1, data.len());
            for w in cs.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert_eq!(data[w[0].1 - 1], b'\n');
            }
        }
    }

    #[test]
    fn trim_line_strips_bom_cr_and_spaces() {
        let d = b"\xEF\xBB\xBF {\"a\":1} \r";
        let (s, e) = trim_line(d, 0, d.len());
        assert_eq!(&d[s..e], b"{\"a\":1}");
    }
}
