//! Batches of whole lines from one export file, hashed as they are read
//! (the checkpoint's content identity): slices of a memory map, or blocks
//! of a `.gz` stream decompressed into a reused buffer, within a cap.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};

/// Batches of whole lines from one file: slices of a memory map, or
/// blocks decompressed from a `.gz` stream into a reused buffer (so memory
/// stays bounded whatever the file size).
///
/// Every byte handed out or skipped is hashed on the way (xxh3 runs far
/// faster than parsing), so the hash of `[0, pos)` is at hand for each
/// checkpoint without a second pass. A gzip stream that breaks off ends
/// the lines at the last whole line before the break, and the break is
/// kept in `damage`: a line cut short is not data.
pub(super) struct Lines {
    pub(super) input: Input,
    pub(super) hasher: Xxh3,
    pub(super) damage: Option<Damage>,
}

pub(super) enum Input {
    Mapped {
        map: Option<memmap2::Mmap>,
        pos: usize,
    },
    Gz {
        reader: Box<BufReader<flate2::read::MultiGzDecoder<Counted<File>>>>,
        buf: Vec<u8>,
        pos: u64,
        cap: u64,
    },
}

/// Where (in decompressed bytes) and why a gzip stream broke off.
pub(super) struct Damage {
    pub(super) offset: u64,
    pub(super) cause: std::io::Error,
}

/// A reader that counts the bytes read through it: how much of a `.gz`
/// file is consumed, for the progress bar, which counts bytes on disk.
pub(super) struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

pub(super) fn too_big(path: &Path, cap: u64) -> Error {
    Error::Config(format!(
        "{}: decompresses to more than {cap} bytes; refusing (see --max-decompressed-size)",
        path.display()
    ))
}

impl Lines {
    /// Opens `path`; an error here is the file's, not the run's.
    pub(super) fn open(path: &Path, max_decompressed: u64) -> std::io::Result<Lines> {
        let f = File::open(path)?;
        let hasher = Xxh3::new();
        if path.extension().is_some_and(|e| e == "gz") {
            let counted = Counted { inner: f, n: 0 };
            let reader = Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(counted),
            ));
            let input = Input::Gz { reader, buf: Vec::new(), pos: 0, cap: max_decompressed };
            return Ok(Lines { input, hasher, damage: None });
        }
        let len = f.metadata()?.len();
        // SAFETY: read-only map of an export file that must not be
        // truncated while the run reads it.
        let map = if len == 0 { None } else { Some(unsafe { memmap2::Mmap::map(&f) }?) };
        Ok(Lines { input: Input::Mapped { map, pos: 0 }, hasher, damage: None })
    }

    /// Offset (in uncompressed bytes) of the next unread byte.
    pub(super) fn pos(&self) -> u64 {
        match &self.input {
            Input::Mapped { pos, .. } => *pos as u64,
            Input::Gz { pos, .. } => *pos,
        }
    }

    /// Bytes of the file on disk consumed so far (compressed, for a `.gz`
    /// file; read ahead by the decoder's buffers).
    pub(super) fn disk_pos(&self) -> u64 {
        match &self.input {
            Input::Mapped { pos, .. } => *pos as u64,
            Input::Gz { reader, .. } => reader.get_ref().get_ref().n,
        }
    }

    /// xxh3 of the bytes before [`Lines::pos`].
    pub(super) fn xxh3(&self) -> u64 {
        self.hasher.digest()
    }

    /// The next batch of up to `rows` lines, or an empty slice at the end
    /// (also at damage).
    pub(super) fn next_batch(&mut self, rows: usize, path: &Path) -> Result<&[u8]> {
        let Lines { input, hasher, damage } = self;
        match input {
            Input::Mapped { map, pos } => {
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
                hasher.update(&data[start..end]);
                Ok(&data[start..end])
            }
            Input::Gz { reader, buf, pos, cap } => {
                buf.clear();
                if damage.is_some() {
                    return Ok(buf);
                }
                for _ in 0..rows {
                    let before = buf.len();
                    match reader.read_until(b'\n', buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            *pos += n as u64;
                            // A gzip bomb stops here with a clear error.
                            if *pos > *cap {
                                return Err(too_big(path, *cap));
                            }
                        }
                        Err(cause) => {
                            let offset = *pos + (buf.len() - before) as u64;
                            buf.truncate(before);
                            *damage = Some(Damage { offset, cause });
                            break;
                        }
                    }
                }
                hasher.update(buf);
                Ok(buf)
            }
        }
    }

    /// Skips to `offset` (a line start), returning the lines skipped.
    pub(super) fn skip_to(&mut self, offset: u64, path: &Path) -> Result<u64> {
        if let Input::Mapped { map, pos } = &mut self.input {
            let data = map.as_deref().unwrap_or(&[]);
            let to = (offset as usize).clamp(*pos, data.len());
            let lines = memchr::memchr_iter(b'\n', &data[*pos..to]).count() as u64;
            self.hasher.update(&data[*pos..to]);
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

    /// Reads (and hashes) the rest without splitting it into lines.
    pub(super) fn hash_to_end(&mut self, path: &Path) -> Result<()> {
        let Lines { input, hasher, damage } = self;
        match input {
            Input::Mapped { map, pos } => {
                let data = map.as_deref().unwrap_or(&[]);
                hasher.update(&data[(*pos).min(data.len())..]);
                *pos = data.len();
            }
            Input::Gz { reader, pos, cap, .. } => {
                while damage.is_none() {
                    let block = match reader.fill_buf() {
                        Ok(b) => b,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(cause) => {
                            *damage = Some(Damage { offset: *pos, cause });
                            break;
                        }
                    };
                    if block.is_empty() {
                        break;
                    }
                    hasher.update(block);
                    let n = block.len();
                    reader.consume(n);
                    *pos += n as u64;
                    if *pos > *cap {
                        return Err(too_big(path, *cap));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `bytes` in a file of a temporary directory (gone when dropped).
    fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn numbered_lines(n: usize) -> Vec<u8> {
        (0..n).map(|i| format!("CVE-2020-{i:05},0.{i},0.5\n")).collect::<String>().into_bytes()
    }

    /// All batches of `rows` lines, concatenated.
    fn read_all(lines: &mut Lines, rows: usize, path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = lines.next_batch(rows, path).unwrap();
            if b.is_empty() {
                return out;
            }
            out.extend_from_slice(b);
        }
    }

    #[test]
    fn lines_hash_the_bytes_before_their_position_however_they_are_read() {
        let mut data = numbered_lines(5000);
        data.extend_from_slice(b"CVE-2021-0001,0.1,0.2"); // no final newline
        let whole = xxhash_rust::xxh3::xxh3_64(&data);
        for (name, bytes) in [("plain.csv", data.clone()), ("packed.csv.gz", gzip(&data))] {
            let (_dir, f) = temp_file(name, &bytes);
            let mut l = Lines::open(&f, u64::MAX).unwrap();
            assert_eq!(read_all(&mut l, 7, &f), data, "{name}");
            assert_eq!((l.pos(), l.xxh3()), (data.len() as u64, whole), "{name}");
            assert!(l.damage.is_none());
            let mut l = Lines::open(&f, u64::MAX).unwrap();
            l.hash_to_end(&f).unwrap();
            assert_eq!((l.pos(), l.xxh3()), (data.len() as u64, whole), "{name}: hash_to_end");
            // Skipping to a line start hashes the prefix.
            let at = memchr::memchr_iter(b'\n', &data).nth(99).unwrap() as u64 + 1;
            let mut l = Lines::open(&f, u64::MAX).unwrap();
            assert_eq!(l.skip_to(at, &f).unwrap(), 100);
            assert_eq!(l.xxh3(), xxhash_rust::xxh3::xxh3_64(&data[..at as usize]), "{name}");
            assert_eq!(read_all(&mut l, 1000, &f), &data[at as usize..]);
            assert_eq!(l.xxh3(), whole, "{name}: skipped, then read");
            // On disk: all of it consumed.
            assert_eq!(l.disk_pos(), bytes.len() as u64, "{name}");
        }
    }

    #[test]
    fn damaged_gzip_ends_at_the_last_whole_line_and_keeps_the_damage() {
        let data = numbered_lines(20_000);
        let packed = gzip(&data);
        let (_dir, f) = temp_file("cut.csv.gz", &packed[..packed.len() / 2]);
        let mut l = Lines::open(&f, u64::MAX).unwrap();
        let got = read_all(&mut l, 333, &f);
        assert!(!got.is_empty() && got.len() < data.len());
        assert_eq!(&data[..got.len()], &got[..], "a prefix of the content");
        assert_eq!(got.last(), Some(&b'\n'), "whole lines only");
        let d = l.damage.take().expect("the damage is kept");
        assert!(d.offset >= got.len() as u64, "{} < {}", d.offset, got.len());
        assert_eq!(l.xxh3(), xxhash_rust::xxh3::xxh3_64(&got));
        // After the damage, nothing more.
        assert!(l.next_batch(10, &f).unwrap().is_empty());
        // Hashing it whole finds the same damage.
        let mut l = Lines::open(&f, u64::MAX).unwrap();
        l.hash_to_end(&f).unwrap();
        assert!(l.damage.is_some());
    }
}
