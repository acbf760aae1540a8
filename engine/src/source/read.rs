//! Reading input bytes when they are needed: loose documents and small
//! archives are opened, checked and read at scan time and again at
//! evaluation time, so no file stays open (or mapped) in between; gzip
//! archives are decompressed into one shared spool file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use memmap2::Mmap;

use super::walk::mtime_micros;
use super::InputFile;
use crate::error::{DocumentFailure, FailureKind};

/// An I/O failure of one input.
pub(super) fn io_failure(what: &str, e: impl std::fmt::Display) -> DocumentFailure {
    DocumentFailure::new(FailureKind::Envelope, format!("{what}: {e}"))
}

/// Opens a file that is read lazily, and checks that it is still the file
/// the walk listed (same size and modification time): bytes read now must
/// be the bytes that were scanned.
pub(super) fn open_unchanged(path: &Path, f: &InputFile) -> Result<File, DocumentFailure> {
    let file = File::open(path).map_err(|e| io_failure("cannot read", e))?;
    let meta = file.metadata().map_err(|e| io_failure("cannot read", e))?;
    if meta.len() != f.size || mtime_micros(&meta) != f.mtime {
        return Err(changed());
    }
    Ok(file)
}

/// The failure of a file that changed while the run read it.
pub(super) fn changed() -> DocumentFailure {
    DocumentFailure::new(
        FailureKind::Envelope,
        "the file changed while it was being read (size, time or content differ from the scan)",
    )
}

/// Reads all of `file`, which [`open_unchanged`] says is `len` bytes, into
/// `buf` (cleared first).
pub(super) fn read_all(mut file: File, len: u64, buf: &mut Vec<u8>) -> Result<(), DocumentFailure> {
    buf.clear();
    buf.reserve(usize::try_from(len).unwrap_or(0));
    (&mut file).take(len + 1).read_to_end(buf).map_err(|e| io_failure("cannot read", e))?;
    if buf.len() as u64 != len {
        return Err(changed());
    }
    Ok(())
}

/// Reads `len` bytes at `offset`.
pub(super) fn read_at(mut file: File, offset: u64, len: u64) -> Result<Vec<u8>, DocumentFailure> {
    let mut buf = vec![0; usize::try_from(len).map_err(|_| changed())?];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| io_failure("cannot read", e))?;
    Ok(buf)
}

/// Why decompressing failed.
pub(super) enum GunzipError {
    /// More than the cap.
    TooBig,
    /// Corrupt, truncated or unreadable.
    Io(io::Error),
}

/// Decompresses a gzip stream (all its members) into `buf` (cleared
/// first), refusing to produce more than `cap` bytes.
pub(super) fn gunzip(file: File, cap: u64, buf: &mut Vec<u8>) -> Result<(), GunzipError> {
    buf.clear();
    let dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
    dec.take(cap.saturating_add(1)).read_to_end(buf).map_err(GunzipError::Io)?;
    if buf.len() as u64 > cap {
        return Err(GunzipError::TooBig);
    }
    Ok(())
}

/// The message of a decompression failure.
pub(super) fn gunzip_failure(e: GunzipError, cap: u64, limit: &str) -> DocumentFailure {
    match e {
        GunzipError::TooBig => DocumentFailure::new(
            FailureKind::Limit,
            format!("decompresses to more than {cap} bytes (the {limit} limit)"),
        ),
        GunzipError::Io(e) => io_failure("cannot decompress", e),
    }
}

/// The decompressed content of every gzip archive, one after another in
/// one unnamed temporary file (deleted when closed), mapped once all are
/// written: however many `.gz` archives there are, they cost one file
/// descriptor and one memory map.
#[derive(Default)]
pub(super) struct Spool {
    file: Option<File>,
    len: u64,
    /// Set when a failed archive could not be cut back out of the spool:
    /// its end is then unknown, so nothing more is added.
    broken: bool,
}

impl Spool {
    /// Decompresses `src` at the end of the spool, within `cap` bytes, and
    /// returns where its content starts and how long it is. On failure the
    /// spool is cut back to where it was.
    pub(super) fn add(&mut self, src: File, cap: u64) -> Result<(u64, u64), GunzipError> {
        if self.broken {
            return Err(GunzipError::Io(io::Error::other("the spool file failed earlier")));
        }
        let out = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile().map_err(GunzipError::Io)?),
        };
        let start = self.len;
        let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(src));
        let mut chunk = vec![0u8; 256 << 10];
        let mut written = 0u64;
        let result = loop {
            match dec.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    written += n as u64;
                    if written > cap {
                        break Err(GunzipError::TooBig);
                    }
                    if let Err(e) = out.write_all(&chunk[..n]) {
                        break Err(GunzipError::Io(e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(GunzipError::Io(e)),
            }
        };
        match result {
            Ok(()) => {
                self.len += written;
                Ok((start, written))
            }
            Err(e) => {
                if out.set_len(start).and_then(|_| out.seek(SeekFrom::Start(start))).is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Maps the spool (`None` when it is empty).
    pub(super) fn map(self) -> io::Result<Option<Mmap>> {
        match self.file {
            Some(f) if self.len > 0 => {
                // SAFETY: the spool is an unnamed file of this process; no
                // one else can change it.
                Ok(Some(unsafe { Mmap::map(&f)? }))
            }
            _ => Ok(None),
        }
    }
}
