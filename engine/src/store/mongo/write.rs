//! What the store writes: a batch's statements then its ledger entries,
//! EPSS upserts, runs and checkpoints, rollbacks and the signals pass, each
//! as bulk operations ([`super::bulk`]).

use std::collections::HashMap;
use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::sync::Collection;
use serde_json::{Map, Value as Json};

use super::bulk::Op;
use super::codec::{
    checkpoint_doc, epss_change, epss_set, ledger_doc, run_doc, same_kev, signals_of, statement_doc,
};
use super::{
    BatchOutcome, Checkpoint, EpssRow, MongoStore, RollbackReport, RollbackScope, RunRecord,
    RunStatus, UpsertCounts, WriteContext, MAX_IN_VALUES,
};
use crate::error::Result;
use crate::mongo::client::error_message;
use crate::mongo::value::json_to_bson;
use crate::parse::DocumentWrite;
use crate::time::{format_instant, format_timestamp};

/// Retry budget when recording a failed run: the store is probably what
/// failed, so do not wait long for it.
const FAILED_RUN_BUDGET: Duration = Duration::from_secs(5);

/// Updates buffered by `enrich_statements` before they are written.
const ENRICH_FLUSH: usize = 10_000;

impl MongoStore {
    /// Statements, then ledger entries, of one batch.
    pub(super) fn write_batch(
        &self,
        docs: &[DocumentWrite],
        ctx: &WriteContext<'_>,
        inserted: &str,
    ) -> Result<BatchOutcome> {
        if docs.is_empty() {
            return Ok(BatchOutcome::default());
        }
        // Signals from the epss collection, as SQLite's sub-selects give
        // them: one $in query for the batch.
        let mut ids: Vec<&str> = docs
            .iter()
            .flat_map(|d| d.claims.iter().map(|c| c.vulnerability_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let signals = if self.enrich_on_write { self.epss_signals(&ids)? } else { HashMap::new() };
        let digests: Vec<String> = docs.iter().map(|d| d.digest.to_string()).collect();
        if ctx.force {
            let deletes: Vec<Op> = digests
                .chunks(MAX_IN_VALUES)
                .map(|chunk| {
                    let list: Vec<Bson> = chunk.iter().map(|s| Bson::String(s.clone())).collect();
                    Op::DeleteMany(doc! { "document.digest": { "$in": list } })
                })
                .collect();
            self.write(&self.statements, "replace statements", &deletes)?;
        }
        let none = (Bson::Null, Bson::Null);
        let mut statements = Vec::new();
        let mut ledger = Vec::with_capacity(docs.len());
        for (doc, digest) in docs.iter().zip(&digests) {
            let retrieved = format_instant(doc.retrieved_at);
            for c in &doc.claims {
                let sig = signals.get(&c.vulnerability_id).cloned().unwrap_or_else(|| none.clone());
                statements.push(Op::Insert(statement_doc(
                    doc, c, digest, &retrieved, inserted, ctx.run_id, sig,
                )));
            }
            ledger.push(Op::Insert(ledger_doc(doc, digest, &retrieved, ctx)));
        }
        // Statements first: a ledger entry means its statements are stored.
        // Duplicates are statements already present (an interrupted batch).
        self.write(&self.statements, "write statements", &statements)?;
        drop(statements);
        let mut dups = self.write(&self.documents, "write ledger", &ledger)?;
        let mut outcome = BatchOutcome::default();
        if !ctx.force && !dups.is_empty() {
            // An entry this run wrote itself (a write retried after a lost
            // reply) is ours; one another run wrote is its document, and
            // that run counts it (its statements are the ones just
            // found present).
            let owners = self.ledger_runs(dups.iter().map(|&i| digests[i].as_str()))?;
            outcome.recorded_elsewhere = dups
                .drain(..)
                .filter(|&i| owners.get(&digests[i]).is_none_or(|r| r != ctx.run_id))
                .collect();
        }
        if !dups.is_empty() {
            // Digests already in the ledger under --force: the entry is
            // replaced, as SQLite's upsert does.
            let replaces: Vec<Op> = dups
                .into_iter()
                .filter_map(|i| match &ledger[i] {
                    Op::Insert(d) => Some(Op::Replace {
                        filter: doc! { "digest": d.get_str("digest").unwrap_or_default() },
                        replacement: d.clone(),
                    }),
                    _ => None,
                })
                .collect();
            self.write(&self.documents, "update ledger", &replaces)?;
        }
        Ok(outcome)
    }

    /// Saves `cp`, written at `now`, over the stored one.
    pub(super) fn write_checkpoint(&self, cp: &Checkpoint, now: &str) -> Result<()> {
        let filter = doc! { "dataType": &cp.data_type, "source": &cp.source };
        let replacement = checkpoint_doc(cp, now);
        let dups = self.write(
            &self.checkpoints,
            "write checkpoint",
            &[Op::Replace { filter, replacement }],
        )?;
        if dups.is_empty() {
            Ok(())
        } else {
            Err(self.conn.error("write checkpoint", "duplicate key on upsert"))
        }
    }

    /// Deletes the checkpoints of `source` (of `data_type` only, if
    /// given); returns how many.
    pub(super) fn delete_checkpoints(
        &mut self,
        source: &str,
        data_type: Option<&str>,
    ) -> Result<u64> {
        let mut filter = doc! { "source": source };
        if let Some(t) = data_type {
            filter.insert("dataType", t);
        }
        // Counted first: a delete retried after a lost acknowledgement
        // would report 0 for what it did remove.
        let (coll, f) = (&self.checkpoints, &filter);
        let n = self.conn.retry("remove checkpoints", self.conn.retry_budget, || {
            coll.count_documents(f.clone()).run()
        })?;
        if n > 0 {
            self.write(&self.checkpoints, "remove checkpoints", &[Op::DeleteMany(filter)])?;
        }
        Ok(n)
    }

    /// Inserts new rows and updates changed ones, as SQLite's upsert does,
    /// then moves the checkpoint.
    pub(super) fn upsert_epss(
        &mut self,
        rows: &[EpssRow],
        checkpoint: Option<&Checkpoint>,
        now: i64,
    ) -> Result<UpsertCounts> {
        self.ensure_indexes()?;
        let now = format_timestamp(now);
        let mut counts = UpsertCounts::default();
        let stored = self.stored_epss(rows)?;
        let mut inserts = Vec::new();
        let mut inserted_rows = Vec::new();
        let mut updates = Vec::new();
        for r in rows {
            match epss_change(r, stored.get(r.cve.as_str()), &now) {
                None => counts.unchanged += 1,
                Some(op) => {
                    counts.upserted += 1;
                    if matches!(op, Op::Insert(_)) {
                        inserts.push(op);
                        inserted_rows.push(r);
                    } else {
                        updates.push(op);
                    }
                }
            }
        }
        let there: Vec<EpssRow> = self
            .write(&self.epss, "write epss", &inserts)?
            .into_iter()
            .map(|i| inserted_rows[i].clone())
            .collect();
        if !there.is_empty() {
            // Inserted meanwhile: by this very write, retried after a lost
            // acknowledgement (the stored row carries this batch's time),
            // or by another writer, whose row is then judged like any
            // stored one, so that each change is counted by one writer.
            let stored = self.stored_epss(&there)?;
            for r in &there {
                let old = stored.get(r.cve.as_str());
                if old.is_some_and(|d| d.get_str("createdAt") == Ok(now.as_str())) {
                    continue;
                }
                match epss_change(r, old, &now) {
                    None => {
                        counts.upserted -= 1;
                        counts.unchanged += 1;
                    }
                    Some(Op::Insert(_)) => updates.push(Op::Update {
                        filter: doc! { "cve": r.cve.as_str() },
                        update: doc! { "$set": epss_set(r, &now) },
                    }),
                    Some(op) => updates.push(op),
                }
            }
        }
        self.write(&self.epss, "write epss", &updates)?;
        // Only now, with the rows acknowledged, does the checkpoint move.
        if let Some(cp) = checkpoint {
            self.write_checkpoint(cp, &now)?;
        }
        Ok(counts)
    }

    /// Saves a run's record (a failed run's with a short retry budget).
    pub(super) fn save_run(&mut self, run: &RunRecord) -> Result<()> {
        let budget = if run.status == RunStatus::Failed {
            FAILED_RUN_BUDGET
        } else {
            self.conn.retry_budget
        };
        let saved = std::mem::replace(&mut self.conn.retry_budget, budget);
        let result = (|| {
            self.ensure_indexes()?;
            let replacement = run_doc(run);
            let mut filter = doc! { "runId": &run.run_id };
            if run.status == RunStatus::Abandoned {
                // Only a run still `running` is abandoned: one that ended
                // meanwhile matches nothing, and the upsert's insert then
                // fails on the unique runId (a duplicate, ignored here).
                filter.insert("status", RunStatus::Running.as_str());
            }
            let op = Op::Replace { filter, replacement };
            self.write(&self.runs, "record run", &[op]).map(drop)
        })();
        self.conn.retry_budget = saved;
        result
    }

    /// Deletes the statements, then the ledger entries, of the documents
    /// in `scope` (only counts them on a dry run).
    pub(super) fn roll_back(
        &mut self,
        scope: &RollbackScope,
        dry_run: bool,
    ) -> Result<RollbackReport> {
        // The scope is read off the ledger, as in SQLite: a run's documents
        // are the ledger entries it wrote last.
        let filter = match scope {
            RollbackScope::Run(id) => doc! { "runId": id },
            RollbackScope::Inserted { since, until } => doc! {
                "processedAt": { "$gte": format_timestamp(*since), "$lt": format_timestamp(*until) },
            },
        };
        let mut digests: Vec<String> = self
            .find_all(&self.documents, "rollback", filter, Some(doc! { "digest": 1, "_id": 0 }))?
            .iter()
            .filter_map(|d| d.get_str("digest").ok().map(str::to_owned))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        let lists: Vec<Bson> = digests
            .chunks(MAX_IN_VALUES)
            .map(|c| Bson::Array(c.iter().map(|d| Bson::String(d.clone())).collect()))
            .collect();
        let mut statements = 0;
        for list in &lists {
            let coll = &self.statements;
            let filter = doc! { "document.digest": { "$in": list.clone() } };
            let filter = &filter;
            statements += self.conn.retry("rollback", self.conn.retry_budget, || {
                coll.count_documents(filter.clone()).run()
            })?;
        }
        if !dry_run && !lists.is_empty() {
            self.ensure_indexes()?;
            // Statements first, ledger entries second: if this is cut
            // short, the ledger still names the documents and running the
            // same rollback again finishes it.
            let by_digest = |field: &str| -> Vec<Op> {
                lists.iter().map(|l| Op::DeleteMany(doc! { field: { "$in": l.clone() } })).collect()
            };
            self.write(&self.statements, "rollback statements", &by_digest("document.digest"))?;
            self.write(&self.documents, "rollback ledger", &by_digest("digest"))?;
        }
        Ok(RollbackReport { statements, digests })
    }

    /// Sets every statement's signals from the `epss` collection; returns
    /// how many changed.
    pub(super) fn enrich_all(&mut self) -> Result<u64> {
        self.ensure_indexes()?;
        // The epss collection in memory (a few hundred thousand rows at
        // most), then one pass over the statements: only those whose
        // signals differ are updated.
        let mut signals: HashMap<String, (Bson, Bson)> = HashMap::new();
        self.find_sorted(&self.epss, doc! { "cve": 1 }, &mut |d| {
            if let Ok(cve) = d.get_str("cve") {
                signals.insert(cve.to_owned(), signals_of(&d));
            }
            Ok(())
        })?;
        let none = (Bson::Null, Bson::Null);
        let mut pending = Vec::new();
        let mut changed = 0u64;
        let coll = &self.statements;
        let projection = doc! { "_id": 1, "vulnerabilityId": 1, "signals": 1 };
        let projection = &projection;
        let mut cursor = self.conn.retry("enrich statements", self.conn.retry_budget, || {
            coll.find(doc! {}).projection(projection.clone()).run()
        })?;
        loop {
            let more = cursor
                .advance()
                .map_err(|e| self.conn.error("enrich statements", &error_message(&e)))?;
            if more {
                let d: Document = cursor
                    .deserialize_current()
                    .map_err(|e| self.conn.error("enrich statements", &e.to_string()))?;
                let vid = d.get_str("vulnerabilityId").unwrap_or_default();
                let (kev, epss) = signals.get(vid).unwrap_or(&none);
                let current = d.get_document("signals").ok();
                let cur = |k: &str| current.and_then(|s| s.get(k)).unwrap_or(&Bson::Null);
                if !same_kev(cur("kev"), kev) || cur("epss") != epss {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    // The whole signals document: some wire-compatible
                    // servers store a scalar boolean $set as 0/1.
                    let signals = doc! {
                        "severity": cur("severity").clone(),
                        "kev": kev.clone(),
                        "epss": epss.clone(),
                    };
                    pending.push(Op::Update {
                        filter: doc! { "_id": id },
                        update: doc! { "$set": { "signals": signals } },
                    });
                }
            }
            if pending.len() >= ENRICH_FLUSH || (!more && !pending.is_empty()) {
                self.write(&self.statements, "enrich statements", &pending)?;
                changed += pending.len() as u64;
                pending.clear();
            }
            if !more {
                return Ok(changed);
            }
        }
    }

    /// Loads archive envelope lines into raw collection `collection` in
    /// Excititor's `vex.raw` shape: `content` as binData (the document's
    /// exact bytes), `retrievedAt` as a BSON date. Lines that are not JSON
    /// objects are skipped. For tests, demos and seeding benchmarks.
    pub fn import_raw(&mut self, collection: &str, lines: &[&str]) -> Result<u64> {
        use base64::Engine as _;
        use serde_json::value::RawValue;
        let mut ops = Vec::new();
        for line in lines {
            let Ok(fields) = serde_json::from_str::<Map<String, Json>>(line) else { continue };
            let Ok(raw) = serde_json::from_str::<HashMap<String, Box<RawValue>>>(line) else {
                continue;
            };
            let mut d = Document::new();
            for (k, v) in &fields {
                let value = match (k.as_str(), v) {
                    ("retrievedAt", Json::String(t)) => crate::time::parse_instant(t)
                        .map(|us| Bson::DateTime(mongodb::bson::DateTime::from_millis(us / 1000)))
                        .unwrap_or_else(|| Bson::String(t.clone())),
                    ("content", Json::String(b64)) => {
                        match base64::engine::general_purpose::STANDARD.decode(b64) {
                            Ok(bytes) => Bson::Binary(mongodb::bson::Binary {
                                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                                bytes,
                            }),
                            Err(_) => Bson::String(b64.clone()),
                        }
                    }
                    ("content", _) => Bson::Binary(mongodb::bson::Binary {
                        subtype: mongodb::bson::spec::BinarySubtype::Generic,
                        bytes: raw
                            .get("content")
                            .map_or(b"null".to_vec(), |r| r.get().as_bytes().to_vec()),
                    }),
                    _ => json_to_bson(v),
                };
                d.insert(k.clone(), value);
            }
            ops.push(Op::Insert(d));
        }
        let coll: Collection<Document> = self.conn.db.collection(collection);
        self.write(&coll, "import raw documents", &ops)?;
        Ok(ops.len() as u64)
    }
}
