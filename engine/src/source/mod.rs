//! Raw-document sources: NDJSON archives and loose JSON documents.
//!
//! [`Archives::open`] lists the input files (walking directories, once per
//! file by device and inode) and keeps one small record per file, its path
//! in a shared arena. A first, parallel pass ([`Archives::scan`]) reads just
//! enough of every envelope to place it in the global (`retrievedAt`,
//! `digest`) order: one small [`Entry`] per document. The pipeline sorts the
//! entries and then reads documents batch by batch ([`Archives::read`]).
//!
//! How bytes are read depends on the file, so that a million inputs cost
//! neither a million memory maps nor a million open files:
//!
//! * the largest NDJSON archives (up to [`MAX_KEPT_MAPS`] of them, of at
//!   least [`KEEP_MAPPED_MIN_BYTES`]) are memory-mapped for the whole run,
//!   and documents are slices of the map;
//! * `.gz` archives are decompressed one after another into one temporary
//!   spool file, mapped once;
//! * any other file, loose documents included, is opened when it is
//!   scanned and again when each of its documents is evaluated; its size
//!   and modification time must not have changed since it was listed, and
//!   its documents' digests are verified again, so a file changed during
//!   the run is a failure, never wrong data.

#[cfg(feature = "mongodb")]
mod mongo;
mod path;
mod read;
mod select;
mod stdin;
mod walk;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;

use crate::dedupe::Digest;
use crate::error::{DocumentFailure, FailureKind, Result};
use crate::limits::{too_big, Limits};
#[cfg(feature = "mongodb")]
pub use mongo::RawSpool;
use path::{PathArena, PathRef};
pub use select::Select;
pub use stdin::StdinSpool;

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

/// NDJSON archives at least this big are kept memory-mapped for the run
/// (the common case: a few big archives, read as slices of their maps).
pub const KEEP_MAPPED_MIN_BYTES: u64 = 1 << 20;

/// At most this many archives are kept mapped (the largest ones), far
/// below the kernel's limit on a process's maps (`vm.max_map_count`,
/// 65,530 by default), which thread stacks and the allocator need too.
pub const MAX_KEPT_MAPS: usize = 4096;

/// One input file: a small record (a million of them are listed at once).
pub struct InputFile {
    /// How the bytes are read.
    pub kind: InputKind,
    /// Modification time when listed, Unix microseconds.
    pub mtime: i64,
    /// Gzip-compressed.
    gz: bool,
    /// Size on disk when listed.
    size: u64,
    path: PathRef,
    /// Which of the paths given (in path order) it was found under.
    root: u32,
    storage: Storage,
}

/// Where an input file's bytes come from.
enum Storage {
    /// Opened and read when needed (see the module doc).
    Lazy,
    /// Kept mapped: an index into [`Archives::maps`].
    Mapped(u32),
    /// Decompressed into the spool, at `start`, `len` bytes long.
    Spool { start: u64, len: u64 },
    /// Cannot be read, and why: reported as one failed document, so
    /// nothing disappears silently.
    Failed(Box<DocumentFailure>),
}

/// The set of input files of a run.
pub struct Archives {
    files: Vec<InputFile>,
    /// The paths given, in path order.
    roots: Vec<PathBuf>,
    paths: PathArena,
    maps: Vec<Mmap>,
    spool: Option<Mmap>,
    loose: LooseFileDefaults,
    limits: Limits,
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
    /// Whether `digest` must be verified when the document is evaluated:
    /// it came from the envelope, or the bytes are read again from a file
    /// that could have changed since the scan computed it.
    pub digest_declared: bool,
    /// Index into [`Archives::files`].
    pub file: u32,
    /// 1-based line number in an archive; 0 for a loose document.
    pub line: u64,
    /// Byte range of the line (or the whole file), in the decompressed
    /// content for a `.gz` file.
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
    /// Key of the input file's path: the path itself when it is UTF-8
    /// without a backslash, else escaped (`\\`, `\xHH`), so that two
    /// distinct names never share a key.
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
    /// files loose documents; anything else ignored). Suffixes match in any
    /// case, and a `.gz` suffix on any of these is decompressed (within
    /// `limits.max_decompressed_bytes`).
    ///
    /// A path that does not exist, or is neither a regular file nor a
    /// directory, is an error: it is a usage mistake. Anything that exists
    /// but cannot be read (a file or directory that cannot be opened, a
    /// corrupt or truncated `.gz`, a gzip bomb, a dangling symlink or a
    /// FIFO inside a directory) becomes one failed document, wherever it
    /// appears.
    pub fn open(paths: &[PathBuf], loose: LooseFileDefaults, limits: &Limits) -> Result<Archives> {
        Archives::open_selected(paths, &Select::default(), loose, limits)
    }

    /// [`Archives::open`], reading only the files of directories that
    /// `select` keeps (`--glob`, `--exclude`).
    pub fn open_selected(
        paths: &[PathBuf],
        select: &Select,
        loose: LooseFileDefaults,
        limits: &Limits,
    ) -> Result<Archives> {
        let mut arena = PathArena::default();
        let mut files = walk::list(paths, select, &mut arena)?;
        arena.shrink();
        // In the order `walk::list` numbers them.
        let mut roots = paths.to_vec();
        roots.sort_by_cached_key(|p| path::key(&path::os_bytes(p)).into_owned());
        let mut archives = Archives {
            files: Vec::new(),
            roots,
            paths: arena,
            maps: Vec::new(),
            spool: None,
            loose,
            limits: *limits,
            rank: Vec::new(),
        };
        archives.keep_maps(&mut files);
        archives.spool_gzip(&mut files);
        let mut order: Vec<u32> = (0..files.len() as u32).collect();
        // By the key Position compares, so the two orders agree.
        order.sort_by_cached_key(|&i| path::key(archives.paths.bytes(files[i as usize].path)));
        let mut rank = vec![0u32; files.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        archives.files = files;
        archives.rank = rank;
        Ok(archives)
    }

    /// Maps the largest NDJSON archives for the whole run.
    fn keep_maps(&mut self, files: &mut [InputFile]) {
        let mut big: Vec<usize> = (0..files.len())
            .filter(|&i| {
                let f = &files[i];
                f.kind == InputKind::Ndjson
                    && !f.gz
                    && f.size >= KEEP_MAPPED_MIN_BYTES
                    && matches!(f.storage, Storage::Lazy)
            })
            .collect();
        // Largest first; the path breaks ties so the choice is stable.
        big.sort_by(|&a, &b| {
            let key =
                |i: usize| (std::cmp::Reverse(files[i].size), self.paths.bytes(files[i].path));
            key(a).cmp(&key(b))
        });
        big.truncate(MAX_KEPT_MAPS);
        for i in big {
            let f = &mut files[i];
            let mapped = read::open_unchanged(self.paths.path(f.path), f).and_then(|file| {
                // SAFETY: the map is read-only; an archive must not be
                // truncated while a run reads it, as with any
                // memory-mapped input.
                unsafe { Mmap::map(&file) }.map_err(|e| read::io_failure("cannot map", e))
            });
            f.storage = match mapped {
                Ok(map) => {
                    self.maps.push(map);
                    Storage::Mapped(self.maps.len() as u32 - 1)
                }
                Err(fail) => Storage::Failed(Box::new(fail)),
            };
        }
    }

    /// Decompresses the `.gz` archives into the spool.
    fn spool_gzip(&mut self, files: &mut [InputFile]) {
        let cap = self.limits.max_decompressed_bytes;
        let mut spool = read::Spool::default();
        for f in files.iter_mut() {
            if f.kind != InputKind::Ndjson || !f.gz || !matches!(f.storage, Storage::Lazy) {
                continue;
            }
            let added = read::open_unchanged(self.paths.path(f.path), f).and_then(|src| {
                spool
                    .add(src, cap)
                    .map_err(|e| read::gunzip_failure(e, cap, "--max-decompressed-size"))
            });
            f.storage = match added {
                Ok((start, len)) => Storage::Spool { start, len },
                Err(fail) => Storage::Failed(Box::new(fail)),
            };
        }
        match spool.map() {
            Ok(map) => self.spool = map,
            Err(e) => {
                let fail = read::io_failure("cannot map the decompressed spool", e);
                for f in files.iter_mut().filter(|f| matches!(f.storage, Storage::Spool { .. })) {
                    f.storage = Storage::Failed(Box::new(fail.clone()));
                }
            }
        }
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
            path: path::key(self.path_bytes(e.file)).into_owned(),
            offset: e.offset,
        }
    }

    /// A stable name for this set of inputs: the canonical paths' keys,
    /// sorted. A checkpoint belongs to one such set.
    pub fn identity(&self, given: &[PathBuf]) -> String {
        let mut names: Vec<String> = given
            .iter()
            .map(|p| {
                let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                path::key(&path::os_bytes(&p)).into_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        names.join("\n")
    }

    /// The input files, in the order they were listed.
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// The paths given, in path order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The path given (on the command line) under which `file` was found,
    /// and its index among them: what logs count problems per.
    pub fn input_of(&self, file: u32) -> (u32, &Path) {
        let root = self.files[file as usize].root;
        (root, &self.roots[root as usize])
    }

    /// The path of an input file.
    pub fn path(&self, file: u32) -> &Path {
        self.paths.path(self.files[file as usize].path)
    }

    fn path_bytes(&self, file: u32) -> &[u8] {
        self.paths.bytes(self.files[file as usize].path)
    }

    /// Total bytes of input (decompressed, for `.gz` archives).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match f.storage {
                Storage::Spool { len, .. } => len,
                _ => f.size,
            })
            .sum()
    }

    /// The bytes an entry points at: borrowed from a map, or read from its
    /// file now. A file that cannot be read again, or changed since the
    /// scan, is a failure.
    pub fn read<'a>(&'a self, e: &Entry) -> Result<Cow<'a, [u8]>, DocumentFailure> {
        let f = &self.files[e.file as usize];
        let slice = |bytes: &'a [u8], base: u64| {
            slice_at(bytes, base, e).map(Cow::Borrowed).ok_or_else(read::changed)
        };
        match &f.storage {
            Storage::Mapped(m) => slice(&self.maps[*m as usize], 0),
            Storage::Spool { start, .. } => {
                slice(self.spool.as_deref().unwrap_or_default(), *start)
            }
            Storage::Failed(fail) => Err((**fail).clone()),
            Storage::Lazy => {
                let path = self.paths.path(f.path);
                match f.kind {
                    InputKind::Ndjson => {
                        read::read_at(read::open_unchanged(path, f)?, e.offset, e.len)
                            .map(Cow::Owned)
                    }
                    InputKind::Document => {
                        let mut buf = Vec::new();
                        self.read_document(f, &mut buf)?;
                        if buf.len() as u64 != e.len {
                            return Err(read::changed());
                        }
                        Ok(Cow::Owned(buf))
                    }
                }
            }
        }
    }

    /// Reads (and decompresses) a loose document into `buf`.
    fn read_document(&self, f: &InputFile, buf: &mut Vec<u8>) -> Result<(), DocumentFailure> {
        let file = read::open_unchanged(self.paths.path(f.path), f)?;
        if !f.gz {
            return read::read_all(file, f.size, buf);
        }
        // A document is read whole into memory, so its decompressed size is
        // bounded by the document limit too.
        let doc_max = self.limits.max_document_bytes as u64;
        let (cap, limit) = if doc_max < self.limits.max_decompressed_bytes {
            (doc_max, "--max-document-size")
        } else {
            (self.limits.max_decompressed_bytes, "--max-decompressed-size")
        };
        read::gunzip(file, cap, buf).map_err(|e| read::gunzip_failure(e, cap, limit))
    }

    /// Defaults for loose documents.
    pub fn loose_defaults(&self) -> &LooseFileDefaults {
        &self.loose
    }

    /// Human-readable origin of an entry: `path:line` or `path`.
    pub fn origin(&self, e: &Entry) -> String {
        let path = path::display(self.path_bytes(e.file));
        if e.line > 0 {
            format!("{path}:{}", e.line)
        } else {
            path.into_owned()
        }
    }

    /// The `sourceUri` of a loose document: its path (escaped where it is
    /// not UTF-8).
    pub fn source_uri(&self, e: &Entry) -> String {
        path::display(self.path_bytes(e.file)).into_owned()
    }

    /// Reads every envelope just far enough to order it, in parallel on the
    /// current rayon pool. Entries come back grouped by file: loose
    /// documents first, then archives.
    pub fn scan(&self, limits: &Limits) -> Vec<Entry> {
        let mut tasks: Vec<(u32, usize, usize)> = Vec::new();
        let mut documents: Vec<u32> = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            let i = i as u32;
            match (f.kind, self.mapped(f)) {
                (InputKind::Document, _) => documents.push(i),
                (InputKind::Ndjson, Some(bytes)) => {
                    for (start, end) in split_at_newlines(bytes, CHUNK_BYTES) {
                        tasks.push((i, start, end));
                    }
                }
                // One task reads the whole file.
                (InputKind::Ndjson, None) => tasks.push((i, 0, 0)),
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
        // Loose documents first, into the vector returned: with a million
        // of them, a second copy would double the scan's peak memory.
        let mut out: Vec<Entry> = documents
            .par_iter()
            .map_init(Vec::new, |buf, &file| self.scan_document(file, limits, buf))
            .collect();
        out.reserve_exact(parts.iter().map(|p| p.1.len()).sum::<usize>());
        // Line numbers were counted per chunk; make them absolute.
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

    /// The bytes of a file that stays mapped (its own map or the spool).
    fn mapped(&self, f: &InputFile) -> Option<&[u8]> {
        match f.storage {
            Storage::Mapped(m) => Some(&self.maps[m as usize]),
            Storage::Spool { start, len } => {
                // No spool map at all when every `.gz` archive was empty.
                let spool = self.spool.as_deref().unwrap_or_default();
                let (start, len) = (usize::try_from(start).ok()?, usize::try_from(len).ok()?);
                spool.get(start..start.checked_add(len)?)
            }
            _ => None,
        }
    }

    fn scan_task(&self, file: u32, start: usize, end: usize, limits: &Limits) -> (Vec<Entry>, u64) {
        let f = &self.files[file as usize];
        let failed = |fail: DocumentFailure| (vec![failed_entry(file, 0, 0, 0, fail)], 0);
        match (&f.storage, self.mapped(f)) {
            (_, Some(bytes)) => return scan_lines(bytes, file, start, end, limits),
            (Storage::Spool { .. }, None) => return failed(read::changed()),
            _ => {}
        }
        if let Storage::Failed(fail) = &f.storage {
            return failed((**fail).clone());
        }
        // Read lazily: mapped for the scan only, then read line by line
        // when evaluated.
        let file_handle = match read::open_unchanged(self.paths.path(f.path), f) {
            Ok(h) => h,
            Err(fail) => return failed(fail),
        };
        if f.size == 0 {
            return (Vec::new(), 0);
        }
        // SAFETY: read-only, and dropped at the end of this scan task; the
        // entries' digests are verified when the lines are read again.
        let map = match unsafe { Mmap::map(&file_handle) } {
            Ok(m) => m,
            Err(e) => return failed(read::io_failure("cannot map", e)),
        };
        drop(file_handle);
        let (mut entries, lines) = scan_lines(&map, file, 0, map.len(), limits);
        for e in entries.iter_mut().filter(|e| e.failure.is_none()) {
            e.digest_declared = true;
        }
        (entries, lines)
    }

    fn scan_document(&self, file: u32, limits: &Limits, buf: &mut Vec<u8>) -> Entry {
        let f = &self.files[file as usize];
        let fail = |fail| failed_entry(file, 0, 0, 0, fail);
        if let Storage::Failed(f) = &f.storage {
            return fail((**f).clone());
        }
        if !f.gz && f.size > limits.max_document_bytes as u64 {
            return failed_entry(file, 0, 0, f.size as usize, too_big(f.size as usize, limits));
        }
        if let Err(f) = self.read_document(f, buf) {
            return fail(f);
        }
        if buf.len() > limits.max_document_bytes {
            return fail(too_big(buf.len(), limits));
        }
        let e = Entry {
            retrieved_at: self.loose.retrieved_at.unwrap_or(f.mtime),
            digest: Digest::of(buf),
            // Read again when evaluated: verified then.
            digest_declared: true,
            file,
            line: 0,
            offset: 0,
            len: buf.len() as u64,
            failure: None,
            content_span: None,
        };
        // Documents are read whole; a big one's buffer is not kept for the
        // rest of the scan.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        e
    }
}

/// The `len` bytes at `base + offset` of `bytes`, when they are there.
fn slice_at<'a>(bytes: &'a [u8], base: u64, e: &Entry) -> Option<&'a [u8]> {
    let start = usize::try_from(base.checked_add(e.offset)?).ok()?;
    let end = start.checked_add(usize::try_from(e.len).ok()?)?;
    bytes.get(start..end)
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
        out.push(match crate::envelope::scan_envelope(&data[s..e], limits) {
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

    fn open(paths: &[PathBuf]) -> Archives {
        let loose = LooseFileDefaults { retrieved_at: Some(0), ..Default::default() };
        Archives::open(paths, loose, &Limits::default()).unwrap()
    }

    fn line(n: usize) -> String {
        format!("{{\"retrievedAt\":\"2024-01-01T00:00:00Z\",\"content\":{{\"n\":{n}}}}}\n")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Evaluates `e` as already known: reads it and verifies its digest.
    fn verify(a: &Archives, e: &Entry) -> std::result::Result<(), DocumentFailure> {
        match crate::parse::evaluate(
            a,
            e,
            true,
            &Limits::default(),
            &mut crate::parse::Scratch::default(),
        ) {
            crate::parse::Outcome::Failed(f) => Err(f),
            _ => Ok(()),
        }
    }

    #[test]
    fn a_file_changed_after_the_scan_is_a_failure_not_wrong_data() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("a.json");
        let archive = dir.path().join("a.ndjson");
        for (p, before, after) in
            [(&doc, "{\"a\":1}".to_owned(), "{\"a\":2}".to_owned()), (&archive, line(1), line(2))]
        {
            std::fs::write(p, &before).unwrap();
            let a = open(std::slice::from_ref(p));
            let entries = a.scan(&Limits::default());
            assert_eq!(entries.len(), 1);
            assert!(verify(&a, &entries[0]).is_ok());
            // Same size and modification time: only the digest tells.
            let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
            std::fs::write(p, &after).unwrap();
            std::fs::File::options().write(true).open(p).unwrap().set_modified(mtime).unwrap();
            let f = verify(&a, &entries[0]).unwrap_err();
            assert_eq!(f.kind, FailureKind::DigestMismatch, "{f}");
            // Another size: the file is seen to have changed.
            std::fs::write(p, after + " ").unwrap();
            let f = verify(&a, &entries[0]).unwrap_err();
            assert!(f.reason.contains("changed while it was being read"), "{f}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_have_distinct_positions_ordered_like_the_sort() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        for name in [&b"\xE9.json"[..], b"\xE8.json", b"\xE9\xE9.json", b"\\xE9.json"] {
            let p = dir.path().join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(p, "{}").unwrap();
        }
        let a = open(&[dir.path().to_owned()]);
        let mut entries = a.scan(&Limits::default());
        entries.sort_by_key(|e| a.sort_key(e));
        let positions: Vec<Position> = entries.iter().map(|e| a.position(e)).collect();
        assert_eq!(positions.len(), 4);
        for w in positions.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
        let checkpoint = positions[1].to_checkpoint_fields();
        let back = Position::from_checkpoint_fields(&checkpoint.0, &checkpoint.1, checkpoint.2);
        assert_eq!(back.as_ref(), Some(&positions[1]));
        assert_eq!(entries.partition_point(|e| a.position(e) <= positions[1]), 2);
    }

    #[test]
    fn only_big_archives_stay_mapped_and_gz_archives_share_one_spool() {
        let dir = tempfile::tempdir().unwrap();
        let big: String = (0..30_000).map(line).collect();
        assert!(big.len() as u64 >= KEEP_MAPPED_MIN_BYTES);
        std::fs::write(dir.path().join("big.ndjson"), &big).unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("small{i:02}.ndjson")), line(i)).unwrap();
        }
        std::fs::write(dir.path().join("z1.ndjson.gz"), gzip(line(1).as_bytes())).unwrap();
        // A corrupt one between two good ones is cut out of the spool.
        std::fs::write(dir.path().join("z2.ndjson.gz"), &gzip(big.as_bytes())[..5000]).unwrap();
        std::fs::write(dir.path().join("z3.ndjson.gz"), gzip(line(3).as_bytes())).unwrap();
        let a = open(&[dir.path().to_owned()]);
        assert_eq!(a.maps.len(), 1);
        assert_eq!(a.spool.as_deref().map(<[u8]>::len), Some(line(1).len() + line(3).len()));
        let entries = a.scan(&Limits::default());
        assert_eq!(entries.len(), 30_000 + 20 + 3);
        let failed: Vec<&Entry> = entries.iter().filter(|e| e.failure.is_some()).collect();
        assert_eq!(failed.len(), 1);
        assert!(a.origin(failed[0]).ends_with("z2.ndjson.gz"));
        for e in entries.iter().filter(|e| e.failure.is_none()) {
            let raw = a.read(e).unwrap();
            assert!(raw.starts_with(b"{\"retrievedAt\"") && raw.ends_with(b"}}"));
            assert!(verify(&a, e).is_ok());
        }
    }

    #[test]
    fn an_empty_gz_archive_holds_no_document() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.ndjson.gz");
        std::fs::write(&p, gzip(b"")).unwrap();
        let a = open(&[p]);
        assert!(a.spool.is_none());
        assert!(a.scan(&Limits::default()).is_empty());
    }

    #[test]
    fn trim_line_strips_bom_cr_and_spaces() {
        let d = b"\xEF\xBB\xBF {\"a\":1} \r";
        let (s, e) = trim_line(d, 0, d.len());
        assert_eq!(&d[s..e], b"{\"a\":1}");
    }
}
