//! Listing the input files: the paths named on the command line, and the
//! directories among them walked (following symlinks).
//!
//! Directories are walked in name order, the roots in path order. Each
//! directory is walked once and each file listed once, by device and inode:
//! a hard link, a symlink to a file already listed, or a second path to a
//! directory adds nothing. Of the paths met to one file, the smallest (by
//! key, see [`path::key`]) is kept; so the listing depends on the set of
//! paths given, not on their order. A symlink to an ancestor directory (a
//! loop) is reported once and not followed.

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::path::{self, PathArena};
use super::select::Select;
use super::{InputFile, InputKind, Storage};
use crate::error::{DocumentFailure, Error, FailureKind, Result};

/// Lists the files of `paths` into `arena`; in directories, only those
/// `select` keeps.
///
/// A path that does not exist, or is neither a file nor a directory, is a
/// fatal error (a usage mistake). Everything else that cannot be read is
/// listed with the reason, to become one counted failure.
pub(super) fn list(
    paths: &[PathBuf],
    select: &Select,
    arena: &mut PathArena,
) -> Result<Vec<InputFile>> {
    let mut roots = Vec::with_capacity(paths.len());
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if !meta.is_dir() && !meta.is_file() {
            // Opening a FIFO would block; a device is not an archive.
            return Err(Error::io(p, std::io::Error::other("not a regular file")));
        }
        roots.push((path::key(&path::os_bytes(p)).into_owned(), p, meta));
    }
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = Walker {
        arena,
        files: Vec::new(),
        ids: Vec::new(),
        rest: Vec::new(),
        dirs: HashSet::new(),
        root: 0,
        select,
        excluded: 0,
    };
    for (root, (_, p, meta)) in roots.into_iter().enumerate() {
        w.root = root as u32;
        if meta.is_dir() {
            w.walk(p);
        } else {
            // Named explicitly: read whatever its name, as a document
            // unless it is named like an archive.
            let (kind, gz) = kind_of(p).unwrap_or((InputKind::Document, has_gz_suffix(p)));
            w.file(p, kind, gz, &meta);
        }
    }
    if w.excluded > 0 {
        tracing::info!(files = w.excluded, "Files in directories not read (--glob, --exclude).");
    }
    let Walker { arena, mut files, ids, mut rest, .. } = w;
    once_each(&mut files, &ids, arena);
    files.append(&mut rest);
    files.shrink_to_fit();
    Ok(files)
}

/// Keeps one record per (device, inode): the one with the smallest key.
fn once_each(files: &mut Vec<InputFile>, ids: &[(u64, u64)], arena: &PathArena) {
    let mut order: Vec<u32> = (0..files.len() as u32).collect();
    let key = |i: u32| path::key(arena.bytes(files[i as usize].path));
    order.sort_unstable_by(|&a, &b| {
        ids[a as usize].cmp(&ids[b as usize]).then_with(|| key(a).cmp(&key(b)))
    });
    let mut keep = vec![true; files.len()];
    let mut links = 0u64;
    for w in order.windows(2) {
        if ids[w[0] as usize] == ids[w[1] as usize] {
            keep[w[1] as usize] = false;
            links += 1;
        }
    }
    if links > 0 {
        tracing::debug!(links, "Files met through more than one path are read once.");
    }
    let mut i = 0;
    files.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

struct Walker<'a> {
    arena: &'a mut PathArena,
    /// Files that could be identified.
    files: Vec<InputFile>,
    /// (device, inode) of each of `files`.
    ids: Vec<(u64, u64)>,
    /// Files and directories that cannot be read, and files that cannot
    /// be identified (elsewhere than Unix): listed as met.
    rest: Vec<InputFile>,
    /// (device, inode) of each directory walked.
    dirs: HashSet<(u64, u64)>,
    /// The path being listed (an index into the sorted paths given).
    root: u32,
    select: &'a Select,
    /// Files left out by `select`.
    excluded: u64,
}

impl Walker<'_> {
    fn walk(&mut self, root: &Path) {
        let mut it = walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
        while let Some(next) = it.next() {
            let ent = match next {
                Ok(ent) => ent,
                Err(err) => {
                    self.error(root, &err);
                    continue;
                }
            };
            if ent.file_type().is_dir() {
                let id = ent.metadata().ok().as_ref().and_then(file_id);
                if id.is_some_and(|id| !self.dirs.insert(id)) {
                    tracing::debug!(
                        input = %path::display_path(ent.path()),
                        "Directory already walked through another path."
                    );
                    it.skip_current_dir();
                }
                continue;
            }
            let Some((kind, gz)) = kind_of(ent.path()) else { continue };
            let relative = ent.path().strip_prefix(root).unwrap_or(ent.path());
            if !self.select.keeps(relative) {
                self.excluded += 1;
                continue;
            }
            match ent.metadata() {
                Ok(meta) => self.file(ent.path(), kind, gz, &meta),
                Err(e) => self.failed(ent.path(), kind, format!("cannot read: {e}")),
            }
        }
    }

    /// A walk error: a symlink loop is reported and skipped; a directory
    /// that cannot be listed, or an input-named entry that cannot be
    /// resolved (a dangling symlink), is listed as failed.
    fn error(&mut self, root: &Path, err: &walkdir::Error) {
        let at = err.path().unwrap_or(root);
        if let Some(ancestor) = err.loop_ancestor() {
            // Its target is an ancestor, being walked already: nothing is
            // left unread, so this is a warning and not a failure.
            tracing::warn!(
                input = %path::display_path(at),
                target = %path::display_path(ancestor),
                "Symlink loop not followed: it leads back to a directory being walked."
            );
            return;
        }
        let cause = err.io_error().map_or_else(|| err.to_string(), |e| e.to_string());
        if std::fs::metadata(at).is_ok_and(|m| m.is_dir()) {
            self.failed(at, InputKind::Document, format!("cannot read directory: {cause}"));
        } else if let Some((kind, _)) = kind_of(at) {
            self.failed(at, kind, format!("cannot read: {cause}"));
        } else {
            tracing::debug!(input = %path::display_path(at), cause, "Ignored unreadable entry.");
        }
    }

    fn file(&mut self, p: &Path, kind: InputKind, gz: bool, meta: &Metadata) {
        if !meta.is_file() {
            return self.failed(p, kind, "cannot read: not a regular file".into());
        }
        let path = self.arena.push(p);
        let f = InputFile {
            kind,
            mtime: mtime_micros(meta),
            gz,
            size: meta.len(),
            path,
            root: self.root,
            storage: Storage::Lazy,
        };
        match file_id(meta) {
            Some(id) => {
                self.files.push(f);
                self.ids.push(id);
            }
            None => self.rest.push(f),
        }
    }

    fn failed(&mut self, p: &Path, kind: InputKind, reason: String) {
        let path = self.arena.push(p);
        self.rest.push(InputFile {
            kind,
            mtime: 0,
            gz: false,
            size: 0,
            path,
            root: self.root,
            storage: Storage::Failed(Box::new(DocumentFailure::new(FailureKind::Envelope, reason))),
        });
    }
}

/// Modification time, Unix microseconds (0 when unknown).
pub(super) fn mtime_micros(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(unix)]
fn file_id(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &Metadata) -> Option<(u64, u64)> {
    None
}

fn ends_with_ignore_case(name: &[u8], suffix: &[u8]) -> bool {
    name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn has_gz_suffix(p: &Path) -> bool {
    p.file_name().is_some_and(|n| ends_with_ignore_case(&path::os_bytes(Path::new(n)), b".gz"))
}

/// The kind of input a file name says (`.ndjson`, `.jsonl`, `.json`, in any
/// case, each optionally followed by `.gz`), and whether it is
/// gzip-compressed. Works on the name's bytes: it need not be UTF-8.
pub(super) fn kind_of(p: &Path) -> Option<(InputKind, bool)> {
    let name = p.file_name()?;
    let name = path::os_bytes(Path::new(name));
    let (name, gz) = match ends_with_ignore_case(&name, b".gz") {
        true => (&name[..name.len() - 3], true),
        false => (&name[..], false),
    };
    if ends_with_ignore_case(name, b".ndjson") || ends_with_ignore_case(name, b".jsonl") {
        Some((InputKind::Ndjson, gz))
    } else if ends_with_ignore_case(name, b".json") {
        Some((InputKind::Document, gz))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_of_ignores_case_and_needs_no_utf8() {
        let k = |s: &str| kind_of(Path::new(s));
        assert_eq!(k("a.NDJSON"), Some((InputKind::Ndjson, false)));
        assert_eq!(k("a.JsonL.Gz"), Some((InputKind::Ndjson, true)));
        assert_eq!(k("a.Json.Gz"), Some((InputKind::Document, true)));
        assert_eq!(k("a.JSON"), Some((InputKind::Document, false)));
        assert_eq!(k("a.gz"), None);
        assert_eq!(k("a.txt"), None);
        assert_eq!(k(".json"), Some((InputKind::Document, false)));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let p = Path::new(std::ffi::OsStr::from_bytes(b"d/\xFF.JSON.GZ"));
            assert_eq!(kind_of(p), Some((InputKind::Document, true)));
        }
    }
}
