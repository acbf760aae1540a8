//! Envelope and document parsing: the stateless per-document stage.
//!
//! [`evaluate`] takes one [`Entry`] from the mapped input to an
//! [`Outcome`]: decode the content (base64 or inline JSON), verify the
//! declared digest, parse the document with simd-json, detect its format and
//! normalize it. It holds no state across documents, so the pipeline runs it
//! on rayon over a batch; per-thread scratch buffers come from `map_init`.

use crate::dedupe::Digest;
use crate::envelope::{decode_content, read_envelope};
use crate::error::{DocumentFailure, FailureKind};
use crate::limits::Limits;
use crate::normalize::{self, Claim, DropNote, Dropped, Format, NormalizedDocument};
use crate::source::{Archives, Entry, InputKind};

/// A normalized document ready for the store.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentWrite {
    /// Verified digest of the content bytes.
    pub digest: Digest,
    /// `providerId` of the envelope.
    pub provider_id: String,
    /// Format the document was normalized as.
    pub format: Format,
    /// `sourceUri` of the envelope (or the loose file's path).
    pub source_uri: String,
    /// `retrievedAt`, Unix microseconds.
    pub retrieved_at: i64,
    /// Envelope metadata as JSON text, when present.
    pub metadata: Option<String>,
    /// The document's own id.
    pub document_id: Option<String>,
    /// The document's revision.
    pub revision: Option<String>,
    /// The statements.
    pub claims: Vec<Claim>,
    /// Entries of the document that were not written, by reason.
    pub dropped: Dropped,
    /// The defects behind `dropped`, for the log (the first few).
    pub notes: Vec<DropNote>,
}

/// What happened to one evaluated document.
#[derive(Debug)]
pub enum Outcome {
    /// It failed; counted and logged, not recorded.
    Failed(DocumentFailure),
    /// Its digest was already processed; verified but not normalized.
    Known,
    /// Normalized and ready to write.
    Ready(Box<DocumentWrite>),
}

/// Per-thread scratch space, reused across documents.
pub struct Scratch {
    /// The document bytes, parsed in place.
    buf: Vec<u8>,
    /// An envelope line with its content string left out.
    envelope: Vec<u8>,
    /// The document as decoded, when parsing may alter `buf`.
    pristine: Vec<u8>,
    buffers: simd_json::Buffers,
    /// The tape's allocation between documents (`Tape::reset` empties it
    /// and frees it from the last document's lifetime).
    tape: Option<simd_json::Tape<'static>>,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            buf: Vec::new(),
            envelope: Vec::new(),
            pristine: Vec::new(),
            buffers: simd_json::Buffers::new(64 << 10),
            tape: None,
        }
    }
}

fn fail(kind: FailureKind, reason: impl Into<String>) -> DocumentFailure {
    DocumentFailure::new(kind, reason)
}

/// Deepest JSON nesting accepted in a document. Real VEX documents stay
/// well under 40 (CSAF branch trees are the deepest).
pub const MAX_NESTING: usize = 512;

/// Returns the depth reached when `json` nests deeper than `max` (arrays
/// and objects, strings skipped), `None` otherwise. A cheap pass: strings
/// are skipped with memchr. (The tests' view of [`scan_nesting`].)
#[cfg(test)]
fn nesting_exceeds(json: &[u8], max: usize) -> Option<usize> {
    match scan_nesting(json, max) {
        Nesting::TooDeep(depth) => Some(depth),
        Nesting::Closed | Nesting::Open => None,
    }
}

/// What [`scan_nesting`] found.
#[derive(Debug, PartialEq)]
enum Nesting {
    /// Nested deeper than the limit, at this depth.
    TooDeep(usize),
    /// Every string, array and object opened is closed.
    Closed,
    /// The bytes end inside a string, array or object: cut short.
    Open,
}

/// One cheap pass over `json` (strings skipped with memchr): whether it
/// nests deeper than `max` (arrays and objects), else whether it ends with
/// something still open.
fn scan_nesting(json: &[u8], max: usize) -> Nesting {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                // Skip to the closing quote, honouring escapes.
                i += 1;
                loop {
                    // An escape at the very end leaves `i` past the end.
                    let rest = json.get(i..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(k) if json[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k;
                            break;
                        }
                        None => return Nesting::Open, // unterminated string
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Nesting::TooDeep(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        Nesting::Open
    } else {
        Nesting::Closed
    }
}

/// Parses document bytes (a leading UTF-8 BOM is tolerated), settles the
/// format (the declared one, which must agree with the detected one when
/// both are known) and normalizes it.
pub fn parse_document(
    bytes: &[u8],
    declared_format: Option<&str>,
    scratch: &mut Scratch,
) -> Result<(Format, NormalizedDocument), DocumentFailure> {
    scratch.buf.clear();
    scratch.buf.extend_from_slice(bytes);
    parse_scratch_document(declared_format, scratch)
}

/// [`parse_document`] of the bytes already in `scratch.buf`, which
/// simd-json parses in place.
fn parse_scratch_document(
    declared_format: Option<&str>,
    scratch: &mut Scratch,
) -> Result<(Format, NormalizedDocument), DocumentFailure> {
    let declared = match declared_format {
        None | Some("") => None,
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            fail(FailureKind::UnknownFormat, format!("unsupported format {name:?}"))
        })?),
    };
    let bom = if scratch.buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let body = &mut scratch.buf[bom..];
    // simd-json unescapes strings in place, so the bytes of a document it
    // rejects may no longer be what was decoded: keep a copy of one with
    // escapes for the nesting check below.
    let escaped = memchr::memchr(b'\\', body).is_some();
    if escaped {
        scratch.pristine.clear();
        scratch.pristine.extend_from_slice(body);
    }
    let mut tape = scratch.tape.take().map_or_else(simd_json::Tape::null, simd_json::Tape::reset);
    let parsed = match simd_json::fill_tape(body, &mut scratch.buffers, &mut tape) {
        Ok(()) => Ok(match tape_nesting_exceeds(&tape.0, MAX_NESTING) {
            Some(depth) => Err(too_deep(depth)),
            None => detect_and_normalize(declared, tape.as_value()),
        }),
        Err(e) => Err(e),
    };
    scratch.tape = Some(tape.reset());
    parsed.unwrap_or_else(|e| {
        // The nesting limit wins over a syntax error, as if it had been
        // checked first. Reading the tape is cheaper than this pass over
        // the bytes, which only a rejected document needs.
        let bytes = if escaped { &scratch.pristine[..] } else { &*body };
        let open = match scan_nesting(bytes, MAX_NESTING) {
            Nesting::TooDeep(depth) => return Err(too_deep(depth)),
            Nesting::Open => true,
            Nesting::Closed => false,
        };
        let what = json_error(bytes, bom, open, &e);
        Err(fail(FailureKind::Json, format!("document is not valid JSON: {what}")))
    })
}

/// What is wrong with `bytes` (a document simd-json refused), and where,
/// as a sentence: simd-json's own errors are enum names with an index that
/// is not always a byte offset, so the bytes are read again, by the UTF-8
/// validator and then serde_json, which say what and where. `base` is the
/// length of a byte-order mark before `bytes`, so offsets count from the
/// start of the document as fetched. `open` says the bytes end inside a
/// string, array or object: cut short, the usual failure, said without
/// reading them again. Runs only for a refused document.
fn json_error(bytes: &[u8], base: usize, open: bool, simd: &simd_json::Error) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "the document is empty".to_owned();
    }
    match std::str::from_utf8(bytes) {
        // A character cut at the very end is a truncation, not bad UTF-8.
        Err(e) if e.error_len().is_some() => {
            let at = e.valid_up_to();
            return format!("invalid UTF-8 (byte 0x{:02X}) at byte {}", bytes[at], base + at);
        }
        Err(_) => return truncated(bytes, base),
        Ok(_) if open => return truncated(bytes, base),
        Ok(_) => {}
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Err(e) if e.is_eof() => truncated(bytes, base),
        Err(e) if e.line() > 0 && !e.to_string().contains("recursion limit") => {
            let text = e.to_string();
            let what = text
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&text);
            // serde_json's word for a misspelt `true`, `false` or `null`.
            let what = if what == "expected ident" { "invalid literal" } else { what };
            let at = base + byte_offset(bytes, e.line(), e.column());
            format!("{what} at byte {at} (line {}, column {})", e.line(), e.column())
        }
        // serde_json accepts what simd-json refused (or gave up on its
        // nesting): say what simd-json found, in words.
        _ => simd_error_sentence(simd, base),
    }
}

/// A document that ends inside a value.
fn truncated(bytes: &[u8], base: usize) -> String {
    format!(
        "the document ends at byte {} before its JSON value is complete (truncated?)",
        base + bytes.len()
    )
}

/// The byte offset of serde_json's 1-based (line, byte column).
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let start = if line <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', bytes).nth(line - 2).map_or(bytes.len(), |i| i + 1)
    };
    (start + column.saturating_sub(1)).min(bytes.len())
}

/// simd-json's error kind as a phrase, with its position when it has one.
fn simd_error_sentence(e: &simd_json::Error, base: usize) -> String {
    use simd_json::ErrorType as T;
    let what = match e.error() {
        T::Eof => "the document ends before its JSON value is complete",
        T::InputTooLarge => "the document is larger than simd-json's 4 GiB limit",
        T::InvalidUtf8 => "invalid UTF-8",
        T::InvalidNumber | T::InvalidExponent => "invalid number",
        T::InvalidEscape | T::InvalidUnicodeEscape | T::InvalidUnicodeCodepoint => {
            "invalid escape in a string"
        }
        T::UnterminatedString => "unterminated string",
        T::TrailingData => "unexpected data after the JSON value",
        T::ExpectedObjectColon => "expected `:` after an object key",
        T::ExpectedMapComma | T::ExpectedMapEnd => "expected `,` or `}` in an object",
        T::ExpectedArrayComma | T::ExpectedArrayContent => "expected `,` or `]` in an array",
        T::ExpectedObjectKey | T::ExpectedObjectContent | T::KeyMustBeAString => {
            "expected a string key in an object"
        }
        _ => "invalid JSON",
    };
    match e.character() {
        Some(c) if c.is_ascii_graphic() && what == "invalid JSON" => {
            format!("{what} at byte {} (unexpected `{c}`)", base + e.index())
        }
        _ if e.index() > 0 => format!("{what} at byte {}", base + e.index()),
        _ => what.to_owned(),
    }
}

fn too_deep(depth: usize) -> DocumentFailure {
    fail(
        FailureKind::Limit,
        format!("document nests deeper than {MAX_NESTING} levels (at least {depth})"),
    )
}

/// [`scan_nesting`]'s depth limit, for a parsed document, read from its tape: the
/// depth of the first array or object nested deeper than `max`.
fn tape_nesting_exceeds(nodes: &[simd_json::Node<'_>], max: usize) -> Option<usize> {
    // The end (exclusive node index) of each enclosing array or object.
    let mut open: Vec<usize> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        while open.last().is_some_and(|&end| end <= i) {
            open.pop();
        }
        if let simd_json::Node::Object { count, .. } | simd_json::Node::Array { count, .. } = node {
            open.push(i + count + 1);
            if open.len() > max {
                return Some(open.len());
            }
        }
    }
    None
}

/// Settles the format of a parsed document and normalizes it.
fn detect_and_normalize(
    declared: Option<Format>,
    doc: normalize::Value<'_>,
) -> Result<(Format, NormalizedDocument), DocumentFailure> {
    let format = match (declared, Format::detect(doc)) {
        (Some(d), Some(g)) if d != g => {
            return Err(fail(
                FailureKind::UnknownFormat,
                format!("envelope says format {d} but the content is {g}"),
            ))
        }
        (Some(d), _) => d,
        (None, Some(g)) => g,
        (None, None) => {
            return Err(fail(
                FailureKind::UnknownFormat,
                "unknown format: not CSAF, CycloneDX or OpenVEX",
            ))
        }
    };
    let normalized = normalize::normalize(format, doc)
        .map_err(|e| fail(FailureKind::Normalize, format!("{format}: {e}")))?;
    Ok((format, normalized))
}

/// Evaluates one entry. `known` says the digest is already processed: the
/// content is still verified against it, but not parsed or normalized.
pub fn evaluate(
    archives: &Archives,
    entry: &Entry,
    known: bool,
    limits: &Limits,
    scratch: &mut Scratch,
) -> Outcome {
    let outcome = match evaluate_inner(archives, entry, known, limits, scratch) {
        Ok(Some(doc)) => Outcome::Ready(Box::new(doc)),
        Ok(None) => Outcome::Known,
        Err(f) => Outcome::Failed(f),
    };
    scratch.trim();
    outcome
}

/// Scratch space kept between documents, per buffer: enough for ordinary
/// documents. What a large one grew is given back, or every worker would
/// hold the peak of the largest document it ever parsed.
const SCRATCH_KEPT: usize = 8 << 20;

impl Scratch {
    /// Frees what a large document made the buffers grow to.
    fn trim(&mut self) {
        for buf in [&mut self.buf, &mut self.envelope, &mut self.pristine] {
            if buf.capacity() > SCRATCH_KEPT {
                *buf = Vec::new();
            }
        }
        // The tape holds 24 bytes per JSON value: a document of millions of
        // values leaves hundreds of megabytes in it, and in the parser's
        // buffers (whose size it does not tell; judged by the tape's).
        let nodes = SCRATCH_KEPT / std::mem::size_of::<simd_json::Node<'static>>();
        if self.tape.as_ref().is_some_and(|t| t.0.capacity() > nodes) {
            self.tape = None;
            self.buffers = simd_json::Buffers::new(64 << 10);
        }
    }
}

fn evaluate_inner(
    archives: &Archives,
    entry: &Entry,
    known: bool,
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Option<DocumentWrite>, DocumentFailure> {
    if let Some(f) = &entry.failure {
        return Err((**f).clone());
    }
    let raw = archives.read(entry)?;
    let origin = load_document(archives, entry, &raw, limits, scratch)?;
    // The document is in `scratch.buf` now; a file read for it is not
    // kept while it is parsed (a large document would be held twice).
    drop(raw);
    if entry.digest_declared {
        let actual = Digest::of(&scratch.buf);
        if actual != entry.digest {
            return Err(fail(
                FailureKind::DigestMismatch,
                format!(
                    "digest mismatch: envelope says {}, content hashes to {actual}",
                    entry.digest
                ),
            ));
        }
    }
    if known {
        return Ok(None);
    }
    let (format, normalized) = parse_scratch_document(origin.format.as_deref(), scratch)?;
    Ok(Some(DocumentWrite {
        digest: entry.digest,
        provider_id: origin.provider_id,
        format,
        source_uri: origin.source_uri,
        retrieved_at: entry.retrieved_at,
        metadata: origin.metadata,
        document_id: normalized.document_id,
        revision: normalized.revision,
        claims: normalized.claims,
        dropped: normalized.dropped,
        notes: normalized.notes,
    }))
}

/// What a document's envelope (or, for a loose file, the defaults) says
/// about it.
struct Origin {
    provider_id: String,
    /// The format the envelope declares, if any.
    format: Option<String>,
    source_uri: String,
    metadata: Option<String>,
}

/// Puts the bytes of `entry`'s document (read as `raw`) in `scratch.buf`,
/// decoded from its envelope, and returns what the envelope says.
fn load_document(
    archives: &Archives,
    entry: &Entry,
    raw: &[u8],
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Origin, DocumentFailure> {
    let file = &archives.files()[entry.file as usize];
    // The document bytes go to `scratch.buf`, where they are hashed and
    // then parsed in place.
    Ok(match file.kind {
        InputKind::Document => {
            let loose = archives.loose_defaults();
            scratch.buf.clear();
            scratch.buf.extend_from_slice(raw);
            Origin {
                provider_id: loose.provider_id.clone(),
                format: None,
                source_uri: archives.source_uri(entry),
                metadata: None,
            }
        }
        InputKind::Ndjson => {
            let (env, content) = match entry.content_span {
                Some((start, end)) => {
                    // The scan has validated the line, content string
                    // included: only the rest is parsed again, with `null`
                    // in the string's place.
                    let (start, end) = (start as usize, end as usize);
                    let envelope = &mut scratch.envelope;
                    envelope.clear();
                    envelope.extend_from_slice(&raw[..start]);
                    envelope.extend_from_slice(b"null");
                    envelope.extend_from_slice(&raw[end..]);
                    (read_envelope(envelope)?, Some(&raw[start..end]))
                }
                None => {
                    let env = read_envelope(raw)?;
                    let content = env.content.map(|c| c.get().as_bytes());
                    (env, content)
                }
            };
            decode_content(content, limits, &mut scratch.buf)?;
            Origin {
                provider_id: env.provider_id.as_deref().unwrap_or("unknown").to_owned(),
                format: env.format.as_deref().map(str::to_owned),
                source_uri: env.source_uri.as_deref().unwrap_or_default().to_owned(),
                metadata: env.metadata.map(|m| m.get().to_owned()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_a_limit_failure_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_document(deep.as_bytes(), None, &mut Scratch::default()).unwrap_err();
        assert_eq!(err.kind, FailureKind::Limit);
        // Brackets inside strings do not count; escaped quotes do not end
        // the string.
        let s = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(5000), "{".repeat(5000));
        assert_eq!(nesting_exceeds(s.as_bytes(), 2), None);
        assert_eq!(nesting_exceeds(b"[[[]]]", 2), Some(3));
        assert_eq!(nesting_exceeds(b"[[]]", 2), None);
        // Long strings (past the inline probe) with escapes on either side
        // of it.
        let long = br#"[{"k":"0123456789\"abcdef[[[[ghijklmn\"{{{{opq","l":[[]]}]"#;
        assert_eq!(nesting_exceeds(long, 3), Some(4));
        assert_eq!(nesting_exceeds(long, 4), None);
        assert_eq!(scan_nesting(b"[[]", 2), Nesting::Open);
        assert_eq!(scan_nesting(br#"["a"#, 2), Nesting::Open);
        assert_eq!(scan_nesting(br#"["]["]"#, 2), Nesting::Closed);
        // Found by the fuzz harness: a string ending in a lone backslash.
        assert_eq!(nesting_exceeds(b"{\"he\\", 2), None);
        assert_eq!(nesting_exceeds(b"\"\\", 2), None);
        assert!(parse_document(b"{\"he\\", None, &mut Scratch::default()).is_err());
        // The tape gives the same answer as the bytes for valid JSON.
        for json in [&b"[[[]]]"[..], br#"{"a":[{"b":[1,{}]}],"c":"[[["}"#, b"[[],[[]],[]]", b"1"] {
            let mut bytes = json.to_vec();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            for max in 0..5 {
                assert_eq!(tape_nesting_exceeds(&tape.0, max), nesting_exceeds(json, max), "{max}");
            }
        }
        // Too deep and also invalid (with an escape, which simd-json
        // unescapes in place): still the limit, with the same message.
        let message = |json: &str| parse_document(json.as_bytes(), None, &mut Scratch::default());
        let valid = message(&format!("{}{}", "[".repeat(600), "]".repeat(600))).unwrap_err();
        let broken =
            message(&format!("{}\"\\\"]\"{}", "[".repeat(600), "]".repeat(599))).unwrap_err();
        assert_eq!(valid.kind, FailureKind::Limit);
        assert_eq!(broken.kind, FailureKind::Limit);
        assert_eq!(valid.reason, broken.reason);
        assert!(valid.reason.ends_with("(at least 513)"), "{}", valid.reason);
    }

    #[test]
    fn json_errors_are_sentences_with_a_byte_offset() {
        let reason = |json: &[u8]| {
            let e = parse_document(json, None, &mut Scratch::default()).unwrap_err();
            assert_eq!(e.kind, FailureKind::Json, "{json:?}");
            e.reason
        };
        let cases: &[(&[u8], &str)] = &[
            (b"", "the document is empty"),
            (b"{\"a\":1", "the document ends at byte 6 before its JSON value is complete"),
            (b"[1 2]", "expected `,` or `]` at byte 3 (line 1, column 4)"),
            (b"{} x", "trailing characters at byte 3"),
            (b"x", "expected value at byte 0"),
            (b"{\"a\":tru}", "invalid literal at byte 8"),
            (b"{\"a\":\"\xff\"}", "invalid UTF-8 (byte 0xFF) at byte 6"),
            // Offsets count the byte-order mark.
            (b"\xEF\xBB\xBF{\"a\":\"\xc3\"}", "invalid UTF-8 (byte 0xC3) at byte 9"),
            (b"{\n \"b\": [1 2]\n}", "expected `,` or `]` at byte 11 (line 2, column 10)"),
            // Cut inside a string, or inside a character: truncated.
            (b"{\"a\":\"abc", "the document ends at byte 9 before"),
            (b"{\"a\":\"\xc3", "the document ends at byte 7 before"),
            (b"[[1],", "the document ends at byte 5 before"),
            (b"[1]]", "trailing characters at byte 3"),
            // simd-json refuses what serde_json reads: its finding, in words.
            (b"{\"a\":1e999}", "invalid number at byte 5"),
        ];
        for (json, want) in cases {
            let got = reason(json);
            assert!(got.starts_with("document is not valid JSON: "), "{got}");
            assert!(got.contains(want), "{json:?}: {got}");
            for debug in ["InternalError", "TapeError", "Syntax", "at character", "Eof"] {
                assert!(!got.contains(debug), "{json:?}: {got}");
            }
        }
        // An escaped document that simd-json altered in place is located in
        // the bytes as decoded.
        assert!(reason(br#"{"a":"\n\t", "b" 1}"#).contains("expected `:` at byte 17"));
    }
}
