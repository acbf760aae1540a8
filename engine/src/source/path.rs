//! Paths as bytes: file names on Unix need not be UTF-8, so every input
//! path is kept as its bytes, in one arena, and given two text forms.
//!
//! * The *key* names a file in the evaluation order and in checkpoints. It
//!   is injective: a UTF-8 path without a backslash is its own key; any
//!   other path is written with `\\` for a backslash and `\xHH` for each
//!   byte that is not UTF-8. So a key with a backslash is always an escaped
//!   one, and two distinct names never share a key.
//! * The *display* form, for messages and `sourceUri`: a UTF-8 path as it
//!   is, any other path as its key.

use std::borrow::Cow;
use std::path::Path;

/// All input paths, concatenated. A path is an (offset, length) pair into
/// it, so a million files cost their names' bytes and no allocation each.
#[derive(Default)]
pub(crate) struct PathArena {
    bytes: Vec<u8>,
}

/// One path in a [`PathArena`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct PathRef {
    start: u64,
    len: u32,
}

impl PathArena {
    /// Stores `p`.
    pub(crate) fn push(&mut self, p: &Path) -> PathRef {
        let b = os_bytes(p);
        let start = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&b);
        // Paths are bounded by PATH_MAX (4096) on every Unix.
        PathRef { start, len: u32::try_from(b.len()).unwrap_or(u32::MAX) }
    }

    /// The bytes of a stored path.
    pub(crate) fn bytes(&self, r: PathRef) -> &[u8] {
        let s = r.start as usize;
        &self.bytes[s..s + r.len as usize]
    }

    /// A stored path, to open.
    pub(crate) fn path(&self, r: PathRef) -> &Path {
        path_of(self.bytes(r))
    }

    /// Frees what pushing left unused.
    pub(crate) fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

/// The bytes of a path.
#[cfg(unix)]
pub(crate) fn os_bytes(p: &Path) -> Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt as _;
    Cow::Borrowed(p.as_os_str().as_bytes())
}

/// The bytes of a path (UTF-8; elsewhere than Unix names are Unicode).
#[cfg(not(unix))]
pub(crate) fn os_bytes(p: &Path) -> Cow<'_, [u8]> {
    match p.to_string_lossy() {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

#[cfg(unix)]
fn path_of(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt as _;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn path_of(b: &[u8]) -> &Path {
    // Only ever bytes that `os_bytes` made, which are UTF-8.
    Path::new(std::str::from_utf8(b).unwrap_or_default())
}

/// The key of a path: injective, and ordered as the evaluation order's
/// tie-break (see the module doc).
pub(crate) fn key(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\\') => Cow::Borrowed(s),
        _ => Cow::Owned(escape(b)),
    }
}

/// The display form of a path (see the module doc).
pub(crate) fn display(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(escape(b)),
    }
}

/// The display form of a [`Path`].
pub(crate) fn display_path(p: &Path) -> String {
    display(&os_bytes(p)).into_owned()
}

fn escape(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_for_distinct_names() {
        let names: &[&[u8]] = &[
            b"dir/a.json",
            b"dir/caf\xE9.json",
            b"dir/caf\xE8.json",
            b"dir/caf\\xE9.json",
            b"dir/caf\\\\xE9.json",
            b"dir/caf\xC3.json",
            "dir/café.json".as_bytes(),
            b"dir/\\",
            b"dir/\\\\",
        ];
        let keys: std::collections::HashSet<String> =
            names.iter().map(|n| key(n).into_owned()).collect();
        assert_eq!(keys.len(), names.len(), "{keys:?}");
        assert_eq!(key(b"dir/a.json"), "dir/a.json");
        assert_eq!(key(b"dir/caf\xE9.json"), "dir/caf\\xE9.json");
        assert_eq!(key(b"a\\b"), "a\\\\b");
        assert_eq!(display(b"a\\b"), "a\\b");
        assert_eq!(display(b"caf\xE9"), "caf\\xE9");
    }

    #[cfg(unix)]
    #[test]
    fn arena_keeps_non_utf8_bytes() {
        use std::os::unix::ffi::OsStrExt as _;
        let mut a = PathArena::default();
        let p = Path::new(std::ffi::OsStr::from_bytes(b"d/\xFF\xFE.json"));
        let r = a.push(p);
        let q = a.push(Path::new("d/b.json"));
        assert_eq!(a.path(r), p);
        assert_eq!(a.bytes(q), b"d/b.json");
    }
}
