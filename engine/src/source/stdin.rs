//! Standard input as an archive (`--archive -`): the stream is copied, in
//! fixed-size chunks, to a temporary file on disk, then read like any
//! NDJSON archive.
//!
//! A run evaluates documents in (`retrievedAt`, `digest`) order, which
//! needs every envelope before the first is evaluated; spooling to disk
//! keeps memory bounded (one chunk) whatever the stream's size. A gzip
//! stream (by its magic bytes) is decompressed on the way, within
//! `--max-decompressed-size`. The spool's [`ContentIdentity`] (length and
//! xxh3 of the bytes) goes into the run's checkpoint, so a stopped run is
//! resumed only by the same stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::model::ContentIdentity;

/// Standard input spooled to a temporary NDJSON archive, deleted when
/// this is dropped.
#[derive(Debug)]
pub struct StdinSpool {
    file: tempfile::TempPath,
    identity: ContentIdentity,
}

/// Bytes copied at a time.
const CHUNK: usize = 256 << 10;

impl StdinSpool {
    /// Copies `input` (the process's standard input, or any stream) into
    /// a new file in the temporary directory, decompressing it when it is
    /// gzip, refusing more than `cap` decompressed bytes. When `stop` is
    /// set, copying ends early: the run that follows stops before its
    /// first batch, and the partial content's identity resumes nothing.
    pub fn create(input: impl Read, cap: u64, stop: &AtomicBool) -> Result<StdinSpool> {
        let file = tempfile::Builder::new()
            .prefix("backfill-stdin-")
            .suffix(".ndjson")
            .tempfile()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let (out, path) = file.into_parts();
        let mut input = BufReader::with_capacity(CHUNK, input);
        let gz = input.fill_buf().map_err(stdin_error)?.starts_with(&[0x1f, 0x8b]);
        let copied = if gz {
            copy(flate2::bufread::MultiGzDecoder::new(input), out, cap, &path, stop)
        } else {
            copy(input, out, cap, &path, stop)
        }?;
        Ok(StdinSpool { file: path, identity: copied })
    }

    /// The spooled archive.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// What was read: its length and hash.
    pub fn identity(&self) -> ContentIdentity {
        self.identity
    }
}

/// Copies `from` to `to`, hashing what passes; more than `cap` bytes is a
/// limit error.
fn copy(
    mut from: impl Read,
    to: std::fs::File,
    cap: u64,
    path: &Path,
    stop: &AtomicBool,
) -> Result<ContentIdentity> {
    let mut to = io::BufWriter::with_capacity(CHUNK, to);
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut size = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stdin_error(e)),
        };
        size += n as u64;
        if size > cap {
            let why = format!("more than {cap} bytes (the --max-decompressed-size limit)");
            return Err(stdin_error(io::Error::other(why)));
        }
        hash.update(&chunk[..n]);
        to.write_all(&chunk[..n]).map_err(|e| spool_error(path, e))?;
    }
    to.flush().map_err(|e| spool_error(path, e))?;
    Ok(ContentIdentity { size, mtime_ns: 0, xxh3: hash.digest() })
}

fn stdin_error(e: io::Error) -> Error {
    Error::io(Path::new("<standard input>"), e)
}

fn spool_error(spool: &Path, e: io::Error) -> Error {
    Error::io(spool, io::Error::new(e.kind(), format!("spooling standard input: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    static GO: AtomicBool = AtomicBool::new(false);

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_streams_spool_to_the_same_bytes_and_identity() {
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(50_000);
        let plain = StdinSpool::create(&text[..], u64::MAX, &GO).unwrap();
        let gz = StdinSpool::create(&gzip(&text)[..], u64::MAX, &GO).unwrap();
        assert_eq!(std::fs::read(plain.path()).unwrap(), text);
        assert_eq!(std::fs::read(gz.path()).unwrap(), text);
        assert_eq!(plain.identity(), gz.identity());
        assert_eq!(plain.identity().size, text.len() as u64);
        let other = StdinSpool::create(&text[1..], u64::MAX, &GO).unwrap();
        assert_ne!(other.identity().xxh3, plain.identity().xxh3);
        let path = plain.path().to_owned();
        drop(plain);
        assert!(!path.exists(), "the spool is deleted when dropped");
    }

    #[test]
    fn a_stream_over_the_cap_is_refused() {
        let err = StdinSpool::create(&gzip(&[b'x'; 10_000])[..], 1_000, &GO).unwrap_err();
        assert!(err.to_string().contains("--max-decompressed-size"), "{err}");
        assert!(StdinSpool::create(&b""[..], 0, &GO).unwrap().identity().size == 0);
        let stopped = AtomicBool::new(true);
        assert_eq!(StdinSpool::create(&b"abc"[..], 9, &stopped).unwrap().identity().size, 0);
    }
}
