//! Raw document envelopes (`vex.raw`'s shape, one per NDJSON line): read
//! just far enough to order a document, or whole, with its content
//! decoded (base64 or an inline JSON object).

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dedupe::Digest;
use crate::error::{DocumentFailure, FailureKind};
use crate::limits::{too_big, Limits};
use crate::time::parse_instant;

fn fail(kind: FailureKind, reason: impl Into<String>) -> DocumentFailure {
    DocumentFailure::new(kind, reason)
}

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

/// Base64 as found in the wild: standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
pub(crate) fn decode_content(
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
                return Err(too_big(s.len() / 4 * 3, limits));
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
        return Err(too_big(len, limits));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
