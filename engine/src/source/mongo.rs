//! The `vex.raw` source: raw documents read from a MongoDB collection
//! (Excititor's `vex.raw`) and spooled to a temporary NDJSON archive, so
//! that the ordinary pipeline reads them like any other archive.

use mongodb::bson::{doc, Bson, Document};
use mongodb::sync::Collection;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::mongo::client::{error_message, Connection};
use crate::mongo::value::doc_to_json;
use crate::time::format_instant;

/// Raw documents of a MongoDB raw collection (Excititor's `vex.raw`),
/// spooled to a temporary NDJSON archive of envelopes that the ordinary
/// pipeline reads (memory-mapped). The file is deleted when this is
/// dropped.
#[derive(Debug)]
pub struct RawSpool {
    path: std::path::PathBuf,
    /// Documents spooled.
    pub documents: u64,
}

impl RawSpool {
    /// Streams collection `collection` of the database named by
    /// `uri` (default `backfill`) into a new file in the temporary
    /// directory, in ascending (`retrievedAt`, `digest`). `content` may be
    /// binData, a base64 string, JSON text or an embedded document; a
    /// `retrievedAt` may be a BSON date or a string; a missing `digest`
    /// is taken from a `sha256:` `_id`, else computed later from the bytes.
    pub fn create(uri: &str, collection: &str) -> Result<RawSpool> {
        let conn = Connection::open(uri)?;
        let name = format!(
            "backfill-raw-{}-{}.ndjson",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let path = std::env::temp_dir().join(name);
        let io = |e: std::io::Error| Error::io(&path, e);
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut spool = RawSpool { path: path.clone(), documents: 0 };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        spool.documents = spool_raw(&conn, collection, &mut out, &path)?;
        std::io::Write::flush(&mut out).map_err(io)?;
        Ok(spool)
    }

    /// The spooled archive.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for RawSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes every document of `collection`, as envelopes in the archive
/// order, to `out`; returns how many.
fn spool_raw(
    conn: &Connection,
    collection: &str,
    out: &mut dyn std::io::Write,
    path: &std::path::Path,
) -> Result<u64> {
    let coll: Collection<Document> = conn.db.collection(collection);
    let context = format!("read {collection}");
    let sort = doc! { "retrievedAt": 1, "digest": 1 };
    let sort = &sort;
    let mut cursor = conn.retry(&context, conn.retry_budget, || {
        coll.find(doc! {}).sort(sort.clone()).allow_disk_use(true).run()
    })?;
    let mut n = 0;
    while cursor.advance().map_err(|e| conn.error(&context, &error_message(&e)))? {
        let d: Document =
            cursor.deserialize_current().map_err(|e| conn.error(&context, &e.to_string()))?;
        let line = serde_json::to_string(&raw_envelope(d)).unwrap_or_default();
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| Error::io(path, e))?;
        n += 1;
    }
    tracing::info!(collection, documents = n, "Raw collection spooled.");
    Ok(n)
}

/// One `vex.raw` document as an archive envelope.
fn raw_envelope(mut d: Document) -> Json {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut m = Map::new();
    for key in ["digest", "providerId", "format", "sourceUri"] {
        if let Some(Bson::String(v)) = d.remove(key) {
            m.insert(key.to_owned(), Json::String(v));
        }
    }
    if !m.contains_key("digest") {
        if let Some(Bson::String(id)) =
            d.get("_id").filter(|id| matches!(id, Bson::String(s) if s.starts_with("sha256:")))
        {
            m.insert("digest".to_owned(), Json::String(id.clone()));
        }
    }
    match d.remove("retrievedAt") {
        Some(Bson::DateTime(t)) => {
            m.insert(
                "retrievedAt".into(),
                format_instant(t.timestamp_millis().saturating_mul(1000)).into(),
            );
        }
        Some(Bson::String(t)) => {
            m.insert("retrievedAt".into(), t.into());
        }
        _ => {}
    }
    if let Some(Bson::Document(meta)) = d.remove("metadata") {
        m.insert("metadata".into(), doc_to_json(meta));
    }
    let content = match d.remove("content") {
        Some(Bson::Binary(b)) => Some(Json::String(b64(&b.bytes))),
        Some(Bson::String(s)) => {
            // The document text itself, or (as in vex.raw) its base64.
            let text = s.trim_start_matches('\u{feff}').trim_start();
            if text.starts_with('{') || text.starts_with('[') {
                Some(Json::String(b64(s.as_bytes())))
            } else {
                Some(Json::String(s))
            }
        }
        Some(Bson::Document(inline)) => Some(doc_to_json(inline)),
        _ => None,
    };
    if let Some(c) = content {
        m.insert("content".into(), c);
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_documents_become_envelopes_whatever_the_content_type() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let text = "\u{feff}{\"a\": 1}";
        let binary = doc! {
            "_id": "sha256:abc",
            "providerId": "redhat",
            "retrievedAt": mongodb::bson::DateTime::from_millis(1_700_000_000_123),
            "metadata": { "etag": "x" },
            "content": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: text.as_bytes().to_vec(),
            },
        };
        let e = raw_envelope(binary);
        assert_eq!(e["digest"], "sha256:abc");
        assert_eq!(e["retrievedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(e["content"], b64(text.as_bytes()));
        assert_eq!(e["metadata"]["etag"], "x");
        // JSON text in a string: its bytes, base64-encoded.
        let e = raw_envelope(doc! { "retrievedAt": "2025-01-01T00:00:00Z", "content": text });
        assert_eq!(e["content"], b64(text.as_bytes()));
        assert_eq!(e["retrievedAt"], "2025-01-01T00:00:00Z");
        // A base64 string passes through; an embedded document is inline.
        let e = raw_envelope(doc! { "content": b64(b"{}") });
        assert_eq!(e["content"], b64(b"{}"));
        let e = raw_envelope(doc! { "content": { "statements": [] } });
        assert_eq!(e["content"], serde_json::json!({ "statements": [] }));
        assert!(e.get("digest").is_none());
    }
}
