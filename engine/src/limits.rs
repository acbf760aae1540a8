//! Resource limits on input, and the failure of a document over them.

use crate::error::{DocumentFailure, FailureKind};

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

pub(crate) fn too_big(len: usize, limits: &Limits) -> DocumentFailure {
    DocumentFailure::new(
        FailureKind::Limit,
        format!(
            "document is {len} bytes, over the {} byte document limit",
            limits.max_document_bytes
        ),
    )
}
