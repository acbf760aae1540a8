//! Envelope and document parsing: the stateless per-document stage.
//!
//! [`evaluate`] takes one [`Entry`] from the mapped input to an
//! [`Outcome`]: decode the content (base64 or inline JSON), verify the
//! declared digest, parse the document with simd-json, detect its format and
//! normalize it. It holds no state across documents, so the pipeline runs it
//! on rayon over a batch; per-thread scratch buffers come from `map_init`.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dedupe::Digest;
use crate::error::{DocumentFailure, FailureKind};
use crate::normalize::{self, Claim, Format, NormalizedDocument};
use crate::source::{self, Archives, Entry, InputKind, Limits};

/// One raw document envelope, as stored in `vex.raw` and in NDJSON
/// archives. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// `sha256:<hex>` of the content bytes; computed when absent.
    #[serde(borrow, default)]
    pub digest: Option<Cow<'a, str>>,
    /// Publisher of the document (`redhat`, `cisco`, ...).
    #[serde(rename = "providerId", borrow, default)]
    pub provider_id: Option<Cow<'a, str>>,
    /// `csaf`, `cyclonedx` or `openvex`; detected when absent.
    #[serde(borrow, default)]
    pub format: Option<Cow<'a, str>>,
    /// Where the document was fetched from.
    #[serde(rename = "sourceUri", borrow, default)]
    pub source_uri: Option<Cow<'a, str>>,
    /// When it was fetched (RFC 3339).
    #[serde(rename = "retrievedAt", borrow, default)]
    pub retrieved_at: Option<Cow<'a, str>>,
    /// Free-form provider metadata, kept verbatim in the ledger.
    #[serde(borrow, default)]
    pub metadata: Option<&'a RawValue>,
    /// Base64 string of the bytes as fetched, or the document inline.
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
}

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

/// Base64 as found in the wild: standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn fail(kind: FailureKind, reason: impl Into<String>) -> DocumentFailure {
    DocumentFailure::new(kind, reason)
}

/// What the ordering pass takes from an envelope line.
pub(crate) struct ScannedEnvelope {
    /// `retrievedAt`, Unix microseconds.
    pub retrieved_at: i64,
    /// The declared digest, or the one computed from the content.
    pub digest: Digest,
    /// Whether `digest` was declared.
    pub digest_declared: bool,
    /// See [`Entry::content_span`].
    pub content_span: Option<(u32, u32)>,
}

/// Reads an envelope line for the ordering pass: `retrievedAt`, the digest
/// (declared, or computed from the content when absent) and where a base64
/// content string sits in the line.
pub(crate) fn scan_envelope(
    line: &[u8],
    limits: &Limits,
) -> Result<ScannedEnvelope, DocumentFailure> {
    let env = read_envelope(line)?;
    let at = env
        .retrieved_at
        .as_deref()
        .ok_or_else(|| fail(FailureKind::Envelope, "envelope has no retrievedAt"))?;
    let retrieved_at = parse_instant(at).ok_or_else(|| {
        fail(FailureKind::Envelope, format!("retrievedAt {at:?} is not an RFC 3339 instant"))
    })?;
    let content_span = env.content.filter(|c| c.get().starts_with('"')).and_then(|c| {
        // `c` borrows from `line`, so the difference is its offset there.
        let start = c.get().as_ptr() as usize - line.as_ptr() as usize;
        Some((u32::try_from(start).ok()?, u32::try_from(start + c.get().len()).ok()?))
    });
    let (digest, digest_declared) = match env.digest.as_deref() {
        Some(d) => (d.parse::<Digest>().map_err(|e| fail(FailureKind::Envelope, e))?, true),
        None => (Digest::of(&content_bytes(env.content, limits)?), false),
    };
    Ok(ScannedEnvelope { retrieved_at, digest, digest_declared, content_span })
}

/// Parses one envelope line.
pub fn read_envelope(line: &[u8]) -> Result<Envelope<'_>, DocumentFailure> {
    serde_json::from_slice::<Envelope<'_>>(line)
        .map_err(|e| fail(FailureKind::Envelope, format!("envelope is not valid JSON: {e}")))
}

/// The document bytes of an envelope's `content`: base64-decoded when it is
/// a string, the raw JSON text when it is an inline object.
pub fn content_bytes<'a>(
    content: Option<&'a RawValue>,
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, DocumentFailure> {
    let raw = content.ok_or_else(|| fail(FailureKind::Envelope, "envelope has no content"))?;
    if raw.get().starts_with('{') {
        check_inline_size(raw.get().len(), limits)?;
        return Ok(Cow::Borrowed(raw.get().as_bytes()));
    }
    let mut out = Vec::new();
    decode_content(Some(raw.get().as_bytes()), limits, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Like [`content_bytes`], but from the raw JSON text of `content`, and
/// writes the bytes into `out` (cleared first), so the pipeline decodes every
/// document into one reused buffer.
fn decode_content(
    text: Option<&[u8]>,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<(), DocumentFailure> {
    let text = text.ok_or_else(|| fail(FailureKind::Envelope, "envelope has no content"))?;
    out.clear();
    match text.first() {
        Some(b'"') => {
            // The envelope parser has validated the string already; only
            // one with escapes (rare in base64) needs unescaping.
            let inner = &text[1..text.len() - 1];
            let s: Cow<'_, [u8]> = if memchr::memchr(b'\\', inner).is_some() {
                let s: String = serde_json::from_slice(text)
                    .map_err(|e| fail(FailureKind::Envelope, format!("content string: {e}")))?;
                Cow::Owned(s.into_bytes())
            } else {
                Cow::Borrowed(inner)
            };
            // Decoded size is at most 3/4 of the text: refuse before
            // allocating.
            if s.len() / 4 * 3 > limits.max_document_bytes + 3 {
                return Err(source::too_big(s.len() / 4 * 3, limits));
            }
            // The SIMD decoder takes well-formed input (with or without
            // padding) several times faster; whatever it refuses goes to
            // the `base64` crate, which also names what is wrong.
            let simd = if s.ends_with(b"=") {
                base64_simd::STANDARD
            } else {
                base64_simd::STANDARD_NO_PAD
            };
            if simd.decode_append(&s, out).is_ok() {
                return Ok(());
            }
            out.clear();
            B64.decode_vec(&s, out)
                .map_err(|e| fail(FailureKind::Json, format!("content is not valid base64: {e}")))
        }
        Some(b'{') => {
            check_inline_size(text.len(), limits)?;
            out.extend_from_slice(text);
            Ok(())
        }
        _ => {
            Err(fail(FailureKind::Envelope, "content is neither a base64 string nor a JSON object"))
        }
    }
}

/// Refuses an inline JSON object `content` over the document size limit.
fn check_inline_size(len: usize, limits: &Limits) -> Result<(), DocumentFailure> {
    if len > limits.max_document_bytes {
        return Err(source::too_big(len, limits));
    }
    Ok(())
}

/// Parses `2025-10-19T12:00:00Z` (any RFC 3339 offset), a date-time without
/// offset (taken as UTC) or a bare date (midnight UTC) into Unix
/// microseconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Formats Unix microseconds as RFC 3339 UTC (`2025-10-19T12:00:00Z`, with
/// a fraction only when there is one).
pub fn format_instant(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Deepest JSON nesting accepted in a document. Real VEX documents stay
/// well under 40 (CSAF branch trees are the deepest).
pub const MAX_NESTING: usize = 512;

/// Returns the depth reached when `json` nests deeper than `max` (arrays
/// and objects, strings skipped), `None` otherwise. A cheap pass: strings
/// are skipped with memchr.
fn nesting_exceeds(json: &[u8], max: usize) -> Option<usize> {
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
                        None => return None, // unterminated: the parser reports it
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
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
    let body = match scratch.buf.strip_prefix(b"\xEF\xBB\xBF") {
        Some(_) => &mut scratch.buf[3..],
        None => &mut scratch.buf[..],
    };
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
        match nesting_exceeds(bytes, MAX_NESTING) {
            Some(depth) => Err(too_deep(depth)),
            None => Err(fail(FailureKind::Json, format!("document is not valid JSON: {e}"))),
        }
    })
}

fn too_deep(depth: usize) -> DocumentFailure {
    fail(
        FailureKind::Limit,
        format!("document nests deeper than {MAX_NESTING} levels (at least {depth})"),
    )
}

/// [`nesting_exceeds`] of a parsed document, read from its tape: the
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

/// Formats Unix microseconds as RFC 3339 UTC with exactly six fractional
/// digits (`2025-10-19T12:00:00.000000Z`), for the times the engine itself
/// stamps (insertion, processing, run start and end, EPSS created/updated).
/// Fixed width keeps them ordered as text, which range queries such as
/// `rollback --inserted-since` rely on.
pub fn format_timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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
    match evaluate_inner(archives, entry, known, limits, scratch) {
        Ok(Some(doc)) => Outcome::Ready(Box::new(doc)),
        Ok(None) => Outcome::Known,
        Err(f) => Outcome::Failed(f),
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
    let raw = archives.slice(entry);
    let file = &archives.files()[entry.file as usize];
    // The document bytes go to `scratch.buf`, where they are hashed and
    // then parsed in place.
    let (provider_id, declared_format, source_uri, metadata) = match file.kind {
        InputKind::Document => {
            let loose = archives.loose_defaults();
            scratch.buf.clear();
            scratch.buf.extend_from_slice(raw);
            (loose.provider_id.clone(), None, file.path.display().to_string(), None)
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
            (
                env.provider_id.as_deref().unwrap_or("unknown").to_owned(),
                env.format.as_deref().map(str::to_owned),
                env.source_uri.as_deref().unwrap_or_default().to_owned(),
                env.metadata.map(|m| m.get().to_owned()),
            )
        }
    };
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
    let (format, normalized) = parse_scratch_document(declared_format.as_deref(), scratch)?;
    Ok(Some(DocumentWrite {
        digest: entry.digest,
        provider_id,
        format,
        source_uri,
        retrieved_at: entry.retrieved_at,
        metadata,
        document_id: normalized.document_id,
        revision: normalized.revision,
        claims: normalized.claims,
    }))
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
    fn instants_in_every_accepted_shape() {
        let z = parse_instant("2025-10-19T12:00:00Z").unwrap();
        assert_eq!(parse_instant("2025-10-19T14:00:00+02:00"), Some(z));
        assert_eq!(parse_instant("2025-10-19T12:00:00"), Some(z));
        assert_eq!(parse_instant("2025-10-19"), Some(z - 12 * 3_600_000_000));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(format_instant(z), "2025-10-19T12:00:00Z");
    }

    #[test]
    fn content_base64_and_inline() {
        let limits = Limits::default();
        let env: Envelope = serde_json::from_str(r#"{"content":"e30="}"#).unwrap();
        assert_eq!(&*content_bytes(env.content, &limits).unwrap(), b"{}");
        let env: Envelope = serde_json::from_str(r#"{"content":"e30"}"#).unwrap();
        assert_eq!(&*content_bytes(env.content, &limits).unwrap(), b"{}");
        let env: Envelope = serde_json::from_str(r#"{"content":{"a": 1}}"#).unwrap();
        assert_eq!(&*content_bytes(env.content, &limits).unwrap(), br#"{"a": 1}"#);
        let env: Envelope = serde_json::from_str(r#"{"content":"%%%"}"#).unwrap();
        assert_eq!(content_bytes(env.content, &limits).unwrap_err().kind, FailureKind::Json);
        let env: Envelope = serde_json::from_str(r#"{"content":12}"#).unwrap();
        assert_eq!(content_bytes(env.content, &limits).unwrap_err().kind, FailureKind::Envelope);
    }

    #[test]
    fn base64_is_decoded_as_the_base64_crate_decodes_it() {
        use base64::Engine as _;
        let limits = Limits::default();
        // Lengths 0..64 cover every tail the SIMD decoder handles apart
        // from its 32-byte blocks, padded and not.
        for n in 0..64usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            for text in [
                base64::engine::general_purpose::STANDARD.encode(&bytes),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
            ] {
                let env = format!(r#"{{"content":"{text}"}}"#);
                let env: Envelope = serde_json::from_str(&env).unwrap();
                assert_eq!(&*content_bytes(env.content, &limits).unwrap(), &bytes[..], "{text}");
            }
        }
        // Malformed (and escaped) text: the same answer as the `base64` crate,
        // and a refusal names the reason.
        for bad in ["e30=e30=", "e3", "e31=", "e30==", "e3 0", r"ZZZ\/", r"ZZZ\\"] {
            let text = format!(r#""{bad}""#);
            let line = format!(r#"{{"content":{text}}}"#);
            let env: Envelope = serde_json::from_str(&line).unwrap();
            let reference = B64.decode(serde_json::from_str::<String>(&text).unwrap());
            match content_bytes(env.content, &limits) {
                Ok(got) => assert_eq!(Ok(got.into_owned()), reference, "{bad}"),
                Err(e) => {
                    assert!(reference.is_err(), "{bad}: {e}");
                    assert!(e.reason.starts_with("content is not valid base64: "), "{bad}: {e}");
                }
            }
        }
    }

    #[test]
    fn content_over_the_limit_is_refused_before_decoding() {
        let limits = Limits { max_document_bytes: 8, ..Limits::default() };
        let env: Envelope = serde_json::from_str(r#"{"content":"e30ge30ge30ge30ge30g"}"#).unwrap();
        assert_eq!(content_bytes(env.content, &limits).unwrap_err().kind, FailureKind::Limit);
    }

    #[test]
    fn scan_computes_missing_digest_and_parses_declared_one() {
        let limits = Limits::default();
        let line = br#"{"retrievedAt":"2025-01-01T00:00:00Z","content":"e30="}"#;
        let s = scan_envelope(line, &limits).unwrap();
        assert_eq!(s.retrieved_at, parse_instant("2025-01-01").unwrap());
        assert_eq!(s.digest, Digest::of(b"{}"));
        assert!(!s.digest_declared);
        let (start, end) = s.content_span.unwrap();
        assert_eq!(&line[start as usize..end as usize], br#""e30=""#);
        let line = format!(
            r#"{{"retrievedAt":"2025-01-01","digest":"{}","content":"e30="}}"#,
            Digest::of(b"x")
        );
        let s = scan_envelope(line.as_bytes(), &limits).unwrap();
        assert_eq!(s.digest, Digest::of(b"x"));
        assert!(s.digest_declared);
        assert!(scan_envelope(b"{\"content\":\"e30=\"}", &limits).is_err());
        assert!(scan_envelope(b"not json", &limits).is_err());
    }
}
