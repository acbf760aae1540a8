//! Model <-> document mapping: the logical statement, ledger, EPSS, run
//! and checkpoint shapes as BSON documents, written exactly as SQLite's
//! rows read back (instants as RFC 3339 strings), and read back into the
//! model. JSON values go through [`crate::mongo::value`].

use mongodb::bson::{doc, Bson, Document};
use serde_json::{Map, Value as Json};

use super::bulk::Op;
use super::{Checkpoint, ContentIdentity, EpssRow, RunRecord, RunStatus, WriteContext};
use crate::model::{self, EpssRecord};
use crate::mongo::value::{bson_i64, bson_to_json, doc_to_json, json_to_bson};
use crate::normalize::Claim;
use crate::parse::DocumentWrite;
use crate::time::format_timestamp;

/// A number stored as Double, Int32 or Int64.
fn bson_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Double(f) => Some(*f),
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

/// A string, or null for none.
pub(super) fn opt_str(v: Option<&str>) -> Bson {
    v.map_or(Bson::Null, |s| Bson::String(s.to_owned()))
}

/// `signals.kev` and `signals.epss` from one `epss` document, as SQLite
/// computes them.
pub(super) fn signals_of(row: &Document) -> (Bson, Bson) {
    let (kev, epss) = model::signals_of(Some(&epss_record(row)));
    let epss = epss.map_or(Bson::Null, |e| {
        Bson::Document(doc! {
            "score": e.score,
            "percentile": e.percentile.map_or(Bson::Null, Bson::Double),
            "date": opt_str(e.date.as_deref()),
        })
    });
    (kev.map_or(Bson::Null, Bson::Boolean), epss)
}

/// A KEV flag stored as a boolean or as 0/1.
pub(super) fn kev_of(v: &Bson) -> Option<bool> {
    match v {
        Bson::Boolean(b) => Some(*b),
        other => bson_i64(other).map(|i| i != 0),
    }
}

/// Whether two stored KEV flags say the same, whatever their type.
pub(super) fn same_kev(a: &Bson, b: &Bson) -> bool {
    kev_of(a) == kev_of(b)
}

/// One statement in the logical shape, with its signals.
pub(super) fn statement_doc(
    doc: &DocumentWrite,
    c: &Claim,
    digest: &str,
    retrieved: &str,
    inserted: &str,
    run_id: &str,
    (kev, epss): (Bson, Bson),
) -> Document {
    let metadata: Document =
        c.metadata.iter().map(|(k, v)| (k.to_owned(), Bson::String(v.to_owned()))).collect();
    doc! {
        "vulnerabilityId": &c.vulnerability_id,
        "aliases": c.aliases.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
        "productKey": &c.product_key,
        "purl": opt_str(c.purl.as_deref()),
        "providerId": &doc.provider_id,
        "status": c.status.as_str(),
        "justification": opt_str(c.justification.map(|j| j.as_str())),
        "detail": opt_str(c.detail.as_deref()),
        "action": opt_str(c.action.as_deref()),
        "document": {
            "digest": digest,
            "format": doc.format.as_str(),
            "sourceUri": &doc.source_uri,
            "retrievedAt": retrieved,
            "documentId": opt_str(doc.document_id.as_deref()),
            "revision": opt_str(doc.revision.as_deref()),
        },
        "firstSeen": retrieved,
        "lastSeen": retrieved,
        "signals": { "severity": opt_str(c.severity.as_deref()), "kev": kev, "epss": epss },
        "metadata": metadata,
        "insertedAt": inserted,
        "runId": run_id,
    }
}

/// One ledger entry, with the drop counts only where there are some.
pub(super) fn ledger_doc(
    doc: &DocumentWrite,
    digest: &str,
    retrieved: &str,
    ctx: &WriteContext<'_>,
) -> Document {
    let metadata = doc
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Json>(m).ok())
        .map_or(Bson::Null, |m| json_to_bson(&m));
    let mut d = doc! {
        "digest": digest,
        "format": doc.format.as_str(),
        "providerId": &doc.provider_id,
        "sourceUri": &doc.source_uri,
        "retrievedAt": retrieved,
        "statements": doc.claims.len() as i64,
        "metadata": metadata,
        "runId": ctx.run_id,
        "processedAt": format_timestamp(ctx.inserted_at),
    };
    // Only where something was dropped, so `stats` reads only those.
    if !doc.dropped.is_empty() {
        d.insert("dropped", dropped_bson(&doc.dropped));
    }
    d
}

/// A statement document in the logical JSON shape, keys in the same order
/// as SQLite's `statement_row`.
pub(super) fn statement_to_json(mut d: Document) -> Json {
    let mut m = Map::new();
    for key in [
        "vulnerabilityId",
        "aliases",
        "productKey",
        "purl",
        "providerId",
        "status",
        "justification",
        "detail",
        "action",
        "document",
        "firstSeen",
        "lastSeen",
        "signals",
        "metadata",
        "insertedAt",
        "runId",
    ] {
        m.insert(key.to_owned(), d.remove(key).map_or(Json::Null, bson_to_json));
    }
    // `kev` is a boolean, whatever a wire-compatible server made of it.
    if let Some(kev) = m.get_mut("signals").and_then(|s| s.get_mut("kev")) {
        if let Some(i) = kev.as_f64() {
            *kev = Json::Bool(i != 0.0);
        }
    }
    Json::Object(m)
}

/// An `epss` document, mapped to the logical model.
pub(super) fn epss_record(d: &Document) -> EpssRecord {
    let text = |k: &str| d.get_str(k).ok().map(str::to_owned);
    EpssRecord {
        cve: text("cve").unwrap_or_default(),
        epss_score: d.get("epssScore").and_then(bson_f64).unwrap_or(f64::NAN),
        percentile: d.get("percentile").and_then(bson_f64),
        is_known_exploit: d.get("isKnownExploit").and_then(kev_of).unwrap_or(false),
        model_version: text("modelVersion"),
        score_date: text("scoreDate"),
        created_at: text("createdAt").unwrap_or_default(),
        updated_at: text("updatedAt").unwrap_or_default(),
    }
}

/// A document's drop counts as stored: the non-zero ones by reason.
fn dropped_bson(dropped: &crate::normalize::Dropped) -> Bson {
    serde_json::to_value(dropped).map_or(Bson::Document(Document::new()), |v| json_to_bson(&v))
}

/// A ledger document in the logical JSON shape.
pub(super) fn document_to_json(d: &Document) -> Json {
    let get = |k: &str| d.get(k).cloned().map_or(Json::Null, bson_to_json);
    // Entries written before drops were counted have none recorded.
    let dropped = d.get("dropped").cloned().map_or(Json::Object(Map::new()), bson_to_json);
    serde_json::json!({
        "digest": get("digest"),
        "format": get("format"),
        "providerId": get("providerId"),
        "sourceUri": get("sourceUri"),
        "retrievedAt": get("retrievedAt"),
        "statements": get("statements"),
        "dropped": dropped,
        "metadata": get("metadata"),
        "runId": get("runId"),
        "processedAt": get("processedAt"),
    })
}

/// A run document, mapped to the logical model.
pub(super) fn run_to_record(d: &Document) -> RunRecord {
    let s = |k: &str| d.get_str(k).unwrap_or_default().to_owned();
    let opt = |k: &str| d.get_str(k).ok().map(str::to_owned);
    RunRecord {
        run_id: s("runId"),
        command: s("command"),
        arguments: d
            .get_array("arguments")
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        started_at: s("startedAt"),
        ended_at: opt("endedAt"),
        status: RunStatus::from_name(d.get_str("status").unwrap_or_default()),
        counters: d.get("counters").cloned().map_or(Json::Null, bson_to_json),
        error: opt("error"),
        owner: d
            .get_document("owner")
            .ok()
            .and_then(|o| serde_json::from_value(doc_to_json(o.clone())).ok()),
        heartbeat_at: opt("heartbeatAt"),
    }
}

/// What an EPSS upsert does to one row, computed from the stored row
/// exactly as the SQLite upsert decides it.
pub(super) fn epss_change(row: &EpssRow, stored: Option<&Document>, now: &str) -> Option<Op> {
    let filter = doc! { "cve": row.cve.as_str() };
    let Some(old) = stored else {
        return Some(Op::Insert(doc! {
            "cve": row.cve.as_str(),
            "epssScore": row.epss_score,
            "percentile": row.percentile.map_or(Bson::Null, Bson::Double),
            "isKnownExploit": row.is_known_exploit.unwrap_or(false),
            "modelVersion": opt_str(row.model_version.as_deref()),
            "scoreDate": opt_str(row.score_date.as_deref()),
            "createdAt": now,
            "updatedAt": now,
        }));
    };
    if !model::epss_changed(&epss_record(old), row) {
        return None;
    }
    Some(Op::Update { filter, update: doc! { "$set": epss_set(row, now) } })
}

/// The `$set` of a changed EPSS row: `None` fields keep the stored value.
pub(super) fn epss_set(row: &EpssRow, now: &str) -> Document {
    let mut set = doc! { "epssScore": row.epss_score, "updatedAt": now };
    if let Some(p) = row.percentile {
        set.insert("percentile", p);
    }
    if let Some(k) = row.is_known_exploit {
        set.insert("isKnownExploit", k);
    }
    if let Some(m) = &row.model_version {
        set.insert("modelVersion", &**m);
    }
    if let Some(d) = &row.score_date {
        set.insert("scoreDate", &**d);
    }
    set
}

/// A run's document (the whole record, replaced on each save).
pub(super) fn run_doc(run: &RunRecord) -> Document {
    let counters = json_to_bson(&run.counters);
    let owner = run
        .owner
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
        .map_or(Bson::Null, |o| json_to_bson(&o));
    doc! {
        "runId": &run.run_id,
        "command": &run.command,
        "arguments": run.arguments.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
        "startedAt": &run.started_at,
        "endedAt": opt_str(run.ended_at.as_deref()),
        "status": run.status.as_str(),
        "counters": counters,
        "error": opt_str(run.error.as_deref()),
        "owner": owner,
        "heartbeatAt": opt_str(run.heartbeat_at.as_deref()),
    }
}

/// The document of a checkpoint written at `now`.
pub(super) fn checkpoint_doc(cp: &Checkpoint, now: &str) -> Document {
    let mut d = doc! {
        "dataType": &cp.data_type,
        "source": &cp.source,
        "sequence": &cp.sequence,
        "chunk": &cp.chunk,
        "offset": i64::try_from(cp.offset).unwrap_or(i64::MAX),
        "complete": cp.complete,
        "updatedAt": now,
    };
    // Absent rather than null without one, as in documents written before
    // identities existed.
    if let Some(id) = &cp.identity {
        d.insert(
            "identity",
            doc! {
                "size": i64::try_from(id.size).unwrap_or(i64::MAX),
                "mtimeNs": id.mtime_ns,
                "xxh3": id.xxh3_hex(),
            },
        );
    }
    d
}

/// A checkpoint document in its logical shape; a malformed `identity`
/// reads as none (the file is then read again, never wrongly skipped).
pub(super) fn checkpoint_of(d: &Document) -> Checkpoint {
    let text = |k: &str| d.get_str(k).unwrap_or_default().to_owned();
    let identity = d.get_document("identity").ok().and_then(|i| {
        Some(ContentIdentity {
            size: i.get("size").and_then(bson_i64)?.max(0) as u64,
            mtime_ns: i.get("mtimeNs").and_then(bson_i64)?,
            xxh3: ContentIdentity::parse_xxh3(i.get_str("xxh3").ok()?)?,
        })
    });
    Checkpoint {
        data_type: text("dataType"),
        source: text("source"),
        sequence: text("sequence"),
        chunk: text("chunk"),
        offset: d.get("offset").and_then(bson_i64).map_or(0, |o| o.max(0) as u64),
        complete: d.get("complete").and_then(kev_of).unwrap_or(false),
        identity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_documents_keep_their_content_identity() {
        let legacy = Checkpoint {
            data_type: "cve_enrichment".into(),
            source: "/b".into(),
            sequence: "1".into(),
            chunk: "000000001".into(),
            offset: 40,
            complete: false,
            identity: None,
        };
        let d = checkpoint_doc(&legacy, "t");
        assert!(!d.contains_key("identity"), "as written before identities");
        assert_eq!(checkpoint_of(&d), legacy);
        let file = Checkpoint {
            source: "/b/v2/cve_enrichment/1/000000000.ndjson".into(),
            complete: true,
            identity: Some(ContentIdentity { size: 100, mtime_ns: -5, xxh3: u64::MAX }),
            ..legacy.clone()
        };
        let d = checkpoint_doc(&file, "t");
        assert_eq!(
            d.get_document("identity").unwrap(),
            &doc! { "size": 100_i64, "mtimeNs": -5_i64, "xxh3": "ffffffffffffffff" }
        );
        assert_eq!(checkpoint_of(&d), file);
        // A damaged identity reads as none: the file is read again.
        let mut bad = d.clone();
        bad.insert("identity", doc! { "size": 100_i64, "mtimeNs": -5_i64, "xxh3": "xyz" });
        assert_eq!(checkpoint_of(&bad).identity, None);
    }

    fn row(score: f64) -> EpssRow {
        EpssRow {
            cve: crate::cve::CveId::parse("CVE-2024-0001").unwrap(),
            epss_score: score,
            percentile: None,
            is_known_exploit: None,
            model_version: None,
            score_date: None,
        }
    }

    #[test]
    fn epss_changes_follow_the_sqlite_rules() {
        let now = "2025-01-01T00:00:00Z";
        let Some(Op::Insert(new)) = epss_change(&row(0.5), None, now) else { panic!() };
        assert_eq!(new.get_bool("isKnownExploit"), Ok(false));
        assert_eq!(new.get("percentile"), Some(&Bson::Null));
        // Same score, no other values given: unchanged.
        assert!(epss_change(&row(0.5), Some(&new), now).is_none());
        // A new percentile is a change; a None percentile is not.
        let with_pct = EpssRow { percentile: Some(0.9), ..row(0.5) };
        assert!(epss_change(&with_pct, Some(&new), now).is_some());
        // KEV false given and stored false: unchanged; true: changed.
        let kev = EpssRow { is_known_exploit: Some(false), ..row(0.5) };
        assert!(epss_change(&kev, Some(&new), now).is_none());
        let kev = EpssRow { is_known_exploit: Some(true), ..row(0.5) };
        assert!(epss_change(&kev, Some(&new), now).is_some());
        // A score date alone is not a change.
        let dated = EpssRow { score_date: Some("2025-01-02".into()), ..row(0.5) };
        assert!(epss_change(&dated, Some(&new), now).is_none());
        assert!(epss_change(&row(0.6), Some(&new), now).is_some());
    }
}
