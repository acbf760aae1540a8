//! Reads: lookups by `$in` chunks, sorted exports, stats, runs and
//! checkpoints, each retried as a whole on transient errors and mapped to
//! the model through [`super::codec`].

use std::collections::{BTreeMap, HashMap, HashSet};

use mongodb::bson::{doc, Bson, Document};
use mongodb::sync::Collection;

use super::codec::{
    checkpoint_of, document_to_json, epss_record, run_to_record, signals_of, statement_to_json,
};
use super::{Checkpoint, EpssRow, Export, MongoStore, RunRecord, MAX_IN_VALUES};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::model::{self, CheckpointState, EpssStats, LedgerEntry, Record, Statement, Stats};
use crate::mongo::client::error_message;
use crate::mongo::value::bson_i64;

impl MongoStore {
    /// Every document matching `filter`, retried as a whole on transient
    /// errors.
    pub(super) fn find_all(
        &self,
        coll: &Collection<Document>,
        context: &str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<Document>> {
        let (filter, projection) = (&filter, &projection);
        self.conn.retry(context, self.conn.retry_budget, || {
            let mut find = coll.find(filter.clone());
            if let Some(p) = projection {
                find = find.projection(p.clone());
            }
            let mut cursor = find.run()?;
            let mut out = Vec::new();
            while cursor.advance()? {
                out.push(cursor.deserialize_current()?);
            }
            Ok(out)
        })
    }

    /// `{kev, epss}` signals for the given vulnerability ids, from the
    /// `epss` collection (one `$in` query per chunk of ids).
    pub(super) fn epss_signals(&self, ids: &[&str]) -> Result<HashMap<String, (Bson, Bson)>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|s| Bson::String((*s).to_owned())).collect();
            let rows =
                self.find_all(&self.epss, "read epss", doc! { "cve": { "$in": list } }, None)?;
            for r in rows {
                if let Ok(cve) = r.get_str("cve") {
                    out.insert(cve.to_owned(), signals_of(&r));
                }
            }
        }
        Ok(out)
    }

    /// Every document of `coll` in `sort` order, one at a time.
    pub(super) fn find_sorted(
        &self,
        coll: &Collection<Document>,
        sort: Document,
        each: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        let sort = &sort;
        let mut cursor = self.conn.retry("export", self.conn.retry_budget, || {
            coll.find(doc! {}).sort(sort.clone()).run()
        })?;
        loop {
            let more =
                cursor.advance().map_err(|e| self.conn.error("export", &error_message(&e)))?;
            if !more {
                return Ok(());
            }
            let d = cursor
                .deserialize_current()
                .map_err(|e| self.conn.error("export", &e.to_string()))?;
            each(d)?;
        }
    }

    /// Counts of `coll`'s documents by the value of `key`.
    fn group(&self, coll: &Collection<Document>, key: &str) -> Result<BTreeMap<String, i64>> {
        let pipeline = [
            doc! { "$group": { "_id": format!("${key}"), "n": { "$sum": 1 } } },
            doc! { "$sort": { "_id": 1 } },
        ];
        let pipeline = &pipeline;
        let rows = self.conn.retry("stats", self.conn.retry_budget, || {
            let mut cursor = coll.aggregate(pipeline.iter().cloned()).run()?;
            let mut out = Vec::new();
            while cursor.advance()? {
                out.push(cursor.deserialize_current()?);
            }
            Ok(out)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let key = match r.get("_id") {
                    Some(Bson::String(k)) => k.clone(),
                    Some(Bson::Null) | None => "null".to_owned(),
                    Some(other) => other.to_string(),
                };
                (key, r.get("n").and_then(bson_i64).unwrap_or(0))
            })
            .collect())
    }

    /// A statement document, mapped to the logical model.
    fn statement(&self, d: Document) -> Result<Statement> {
        serde_json::from_value(statement_to_json(d))
            .map_err(|e| self.conn.error("read statement", &e.to_string()))
    }

    /// A ledger document, mapped to the logical model.
    fn ledger_entry(&self, d: &Document) -> Result<LedgerEntry> {
        serde_json::from_value(document_to_json(d))
            .map_err(|e| self.conn.error("read ledger", &e.to_string()))
    }

    /// Entries dropped by reason, summed over the ledger (client-side:
    /// only documents that dropped something are read).
    fn dropped_totals(&self) -> Result<BTreeMap<String, i64>> {
        let mut totals = BTreeMap::<String, i64>::new();
        let some = doc! { "dropped": { "$exists": true } };
        for d in self.find_all(&self.documents, "stats", some, Some(doc! { "dropped": 1 }))? {
            for (reason, n) in d.get_document("dropped").into_iter().flatten() {
                *totals.entry(reason.clone()).or_default() += bson_i64(n).unwrap_or(0);
            }
        }
        Ok(totals)
    }

    /// The `runId` of the ledger entries of `digests`.
    pub(super) fn ledger_runs<'a>(
        &self,
        digests: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, String>> {
        let digests: Vec<Bson> = digests.map(|d| Bson::String(d.to_owned())).collect();
        let mut out = HashMap::new();
        for chunk in digests.chunks(MAX_IN_VALUES) {
            let found = self.find_all(
                &self.documents,
                "read ledger",
                doc! { "digest": { "$in": chunk.to_vec() } },
                Some(doc! { "digest": 1, "runId": 1, "_id": 0 }),
            )?;
            for d in found {
                if let (Ok(digest), Ok(run)) = (d.get_str("digest"), d.get_str("runId")) {
                    out.insert(digest.to_owned(), run.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Which of `digests` the ledger holds.
    pub(super) fn ledger_digests(&self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let mut by_text: HashMap<String, Digest> =
            digests.iter().map(|d| (d.to_string(), *d)).collect();
        let mut out = HashSet::new();
        let texts: Vec<String> = by_text.keys().cloned().collect();
        for chunk in texts.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|s| Bson::String(s.clone())).collect();
            let found = self.find_all(
                &self.documents,
                "read ledger",
                doc! { "digest": { "$in": list } },
                Some(doc! { "digest": 1, "_id": 0 }),
            )?;
            for d in found {
                if let Some(digest) = d.get_str("digest").ok().and_then(|s| by_text.remove(s)) {
                    out.insert(digest);
                }
            }
        }
        Ok(out)
    }

    /// Whether the `epss` collection holds any row.
    pub(super) fn epss_present(&self) -> Result<bool> {
        let epss = &self.epss;
        let rows = self.conn.retry("inspect epss", self.conn.retry_budget, || {
            epss.find_one(doc! {}).projection(doc! { "_id": 1 }).run()
        })?;
        Ok(rows.is_some())
    }

    /// The stored `epss` documents of `rows`' CVEs, by CVE.
    pub(super) fn stored_epss(&self, rows: &[EpssRow]) -> Result<HashMap<String, Document>> {
        let mut stored: HashMap<String, Document> = HashMap::new();
        for chunk in rows.chunks(MAX_IN_VALUES) {
            let list: Vec<Bson> = chunk.iter().map(|r| Bson::String(r.cve.to_string())).collect();
            for d in
                self.find_all(&self.epss, "read epss", doc! { "cve": { "$in": list } }, None)?
            {
                if let Ok(cve) = d.get_str("cve") {
                    stored.insert(cve.to_owned(), d);
                }
            }
        }
        Ok(stored)
    }

    /// Every run, oldest first.
    pub(super) fn read_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs: Vec<RunRecord> = self
            .find_all(&self.runs, "list runs", doc! {}, None)?
            .iter()
            .map(run_to_record)
            .collect();
        runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        Ok(runs)
    }

    /// The checkpoints of `sources`, in their order.
    pub(super) fn read_checkpoints(
        &self,
        data_type: &str,
        sources: &[String],
    ) -> Result<Vec<Option<Checkpoint>>> {
        let mut found: HashMap<String, Checkpoint> = HashMap::new();
        for chunk in sources.chunks(MAX_IN_VALUES) {
            let filter = doc! { "dataType": data_type, "source": { "$in": chunk } };
            for d in self.find_all(&self.checkpoints, "read checkpoints", filter, None)? {
                let cp = checkpoint_of(&d);
                found.insert(cp.source.clone(), cp);
            }
        }
        Ok(sources.iter().map(|s| found.remove(s)).collect())
    }

    /// Every checkpoint with when it was saved, by (data type, source).
    pub(super) fn list_checkpoints(&self) -> Result<Vec<CheckpointState>> {
        let mut checkpoints: Vec<CheckpointState> = self
            .find_all(&self.checkpoints, "read checkpoints", doc! {}, None)?
            .iter()
            .map(|d| CheckpointState {
                checkpoint: checkpoint_of(d),
                updated_at: d.get_str("updatedAt").unwrap_or_default().to_owned(),
            })
            .collect();
        checkpoints.sort_by(|a, b| {
            let (a, b) = (&a.checkpoint, &b.checkpoint);
            (&a.data_type, &a.source).cmp(&(&b.data_type, &b.source))
        });
        Ok(checkpoints)
    }

    /// The statements about one vulnerability and product, in lookup order.
    pub(super) fn query_statements(
        &self,
        vulnerability_id: &str,
        product: Option<&str>,
    ) -> Result<Vec<Statement>> {
        let mut filter = doc! { "vulnerabilityId": vulnerability_id };
        if let Some(product) = product {
            filter.insert("$or", vec![doc! { "productKey": product }, doc! { "purl": product }]);
        }
        let found = self.find_all(&self.statements, "query statements", filter, None)?;
        let mut found: Vec<Statement> =
            found.into_iter().map(|d| self.statement(d)).collect::<Result<_>>()?;
        found.sort_by(|a, b| model::order::lookup(a).cmp(&model::order::lookup(b)));
        Ok(found)
    }

    /// Every record of one kind, in export order.
    pub(super) fn export_sorted(
        &self,
        what: Export,
        each: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        match what {
            Export::Statements => self.find_sorted(
                &self.statements,
                doc! { "document.digest": 1, "vulnerabilityId": 1, "productKey": 1 },
                &mut |d| each(Record::Statement(Box::new(self.statement(d)?))),
            ),
            Export::Documents => {
                self.find_sorted(&self.documents, doc! { "digest": 1 }, &mut |d| {
                    each(Record::Ledger(self.ledger_entry(&d)?))
                })
            }
            Export::Epss => self.find_sorted(&self.epss, doc! { "cve": 1 }, &mut |d| {
                each(Record::Epss(epss_record(&d)))
            }),
        }
    }

    /// Counts by collection, provider, status, format and run status.
    pub(super) fn read_stats(&self) -> Result<Stats> {
        let count = |coll: &Collection<Document>, filter: Document| -> Result<i64> {
            let filter = &filter;
            let n = self.conn.retry("stats", self.conn.retry_budget, || {
                coll.count_documents(filter.clone()).run()
            })?;
            Ok(i64::try_from(n).unwrap_or(i64::MAX))
        };
        Ok(Stats {
            statements: count(&self.statements, doc! {})?,
            by_provider: self.group(&self.statements, "providerId")?,
            by_status: self.group(&self.statements, "status")?,
            by_format: self.group(&self.statements, "document.format")?,
            documents: count(&self.documents, doc! {})?,
            dropped: self.dropped_totals()?,
            epss: EpssStats {
                rows: count(&self.epss, doc! {})?,
                // A boolean, or 0/1 on servers that store it so.
                known_exploited: count(
                    &self.epss,
                    doc! { "isKnownExploit": { "$in": [true, 1] } },
                )?,
            },
            checkpoints: self.list_checkpoints()?,
            runs: self.group(&self.runs, "status")?,
        })
    }
}
