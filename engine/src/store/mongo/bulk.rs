//! The bulk writer: operations grouped into commands within the server's
//! limits (count and BSON size, computed exactly), written unordered on one
//! of two paths, `Client::bulk_write` on 8.0+ servers, the collection-level
//! `insert` / `update` / `delete` commands otherwise. A duplicate key (11000)
//! on a unique index means "already present" and is returned, not failed.

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{
    DeleteManyModel, InsertOneModel, ReplaceOneModel, UpdateOneModel, WriteModel,
};
use mongodb::sync::Collection;

use super::MongoStore;
use crate::error::Result;
use crate::mongo::client::{top_level, TRANSIENT_CODES};
use crate::mongo::value::bson_i64;

/// Most write operations in one command (the server's own limit).
const MAX_OPS_PER_COMMAND: usize = 100_000;

/// Most bytes of documents in one command: the 16 MiB BSON limit, less
/// room for the command envelope.
const MAX_BYTES_PER_COMMAND: usize = 16 * 1024 * 1024 - 64 * 1024;

/// Duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// One write of a bulk.
#[derive(Clone, Debug)]
pub(super) enum Op {
    Insert(Document),
    Update { filter: Document, update: Document },
    Replace { filter: Document, replacement: Document },
    DeleteMany(Document),
}

impl Op {
    /// Approximate encoded size, for splitting commands.
    fn size(&self) -> usize {
        match self {
            Op::Insert(d) | Op::DeleteMany(d) => doc_size(d),
            Op::Update { filter, update: d } | Op::Replace { filter, replacement: d } => {
                doc_size(filter) + doc_size(d) + 32
            }
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Op::Insert(_) => 0,
            Op::Update { .. } | Op::Replace { .. } => 1,
            Op::DeleteMany(_) => 2,
        }
    }

    fn model(&self, coll: &Collection<Document>) -> WriteModel {
        let ns = coll.namespace();
        match self.clone() {
            Op::Insert(document) => {
                InsertOneModel::builder().namespace(ns).document(document).build().into()
            }
            Op::Update { filter, update } => UpdateOneModel::builder()
                .namespace(ns)
                .filter(filter)
                .update(update)
                .upsert(true)
                .build()
                .into(),
            Op::Replace { filter, replacement } => ReplaceOneModel::builder()
                .namespace(ns)
                .filter(filter)
                .replacement(replacement)
                .upsert(true)
                .build()
                .into(),
            Op::DeleteMany(filter) => {
                DeleteManyModel::builder().namespace(ns).filter(filter).build().into()
            }
        }
    }
}

/// Exact BSON size of a document.
pub(super) fn doc_size(d: &Document) -> usize {
    5 + d.iter().map(|(k, v)| 2 + k.len() + bson_size(v)).sum::<usize>()
}

fn bson_size(v: &Bson) -> usize {
    match v {
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
        Bson::Int32(_) => 4,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 5 + s.len(),
        Bson::Document(d) => doc_size(d),
        Bson::Array(a) => {
            5 + a.iter().enumerate().map(|(i, v)| 2 + decimal_len(i) + bson_size(v)).sum::<usize>()
        }
        Bson::ObjectId(_) => 12,
        Bson::Binary(b) => 5 + b.bytes.len(),
        Bson::Decimal128(_) => 16,
        // Rare kinds: an overestimate is harmless.
        _ => 64,
    }
}

fn decimal_len(mut i: usize) -> usize {
    let mut n = 1;
    while i >= 10 {
        i /= 10;
        n += 1;
    }
    n
}

/// Outcome of one bulk command: the indexes that hit a duplicate key, or a
/// write error that is not a duplicate (fatal).
type WriteOutcome = std::result::Result<Vec<usize>, String>;

impl MongoStore {
    /// Writes `ops` (unordered) in commands within the size limits.
    /// Returns the indexes of `ops` that hit a duplicate key.
    pub(super) fn write(
        &self,
        coll: &Collection<Document>,
        context: &str,
        ops: &[Op],
    ) -> Result<Vec<usize>> {
        let mut dups = Vec::new();
        let mut start = 0;
        while start < ops.len() {
            // One command: same kind of op (for the collection commands),
            // at most MAX_OPS_PER_COMMAND ops and MAX_BYTES_PER_COMMAND
            // bytes (at least one op).
            let kind = ops[start].kind();
            let mut end = start;
            let mut bytes = 0;
            while end < ops.len()
                && end - start < MAX_OPS_PER_COMMAND
                && (self.conn.bulk_api || ops[end].kind() == kind)
            {
                let size = ops[end].size();
                if end > start && bytes + size > MAX_BYTES_PER_COMMAND {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let chunk = &ops[start..end];
            let outcome = if self.conn.bulk_api {
                self.write_bulk(coll, context, chunk)?
            } else {
                self.write_commands(coll, context, chunk)?
            };
            match outcome {
                Ok(d) => dups.extend(d.into_iter().map(|i| i + start)),
                Err(msg) => return Err(self.conn.error(context, &msg)),
            }
            start = end;
        }
        Ok(dups)
    }

    /// One `Client::bulk_write` command.
    fn write_bulk(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        let client = &self.conn.client;
        let wc = &self.conn.write_concern;
        self.conn.retry(context, self.conn.retry_budget, || {
            let models: Vec<WriteModel> = chunk.iter().map(|op| op.model(coll)).collect();
            match client.bulk_write(models).ordered(false).write_concern(wc.clone()).run() {
                Ok(_) => Ok(Ok(Vec::new())),
                Err(e) => match &*e.kind {
                    // Only write errors: the rest of the bulk was applied.
                    // A top-level error (the source: network, shutdown...)
                    // means an unknown part was, so the whole is retried.
                    ErrorKind::BulkWrite(bw)
                        if bw.write_concern_errors.is_empty() && top_level(&e).is_none() =>
                    {
                        let mut idx: Vec<usize> = bw.write_errors.keys().copied().collect();
                        idx.sort_unstable();
                        Ok(split_duplicates(idx.into_iter().map(|i| {
                            let w = &bw.write_errors[&i];
                            (i, w.code, w.message.as_str())
                        })))
                    }
                    _ => Err(e),
                },
            }
        })
    }

    /// The pre-8.0 path: `insert` (insert_many), `update` (one command
    /// with many statements) or `delete` (delete_many). A chunk holds one
    /// kind of op.
    fn write_commands(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        match chunk.first() {
            None => Ok(Ok(Vec::new())),
            Some(Op::Insert(_)) => self.insert_command(coll, context, chunk),
            Some(Op::DeleteMany(_)) => {
                for op in chunk {
                    if let Op::DeleteMany(filter) = op {
                        self.conn.retry(context, self.conn.retry_budget, || {
                            coll.delete_many(filter.clone()).run()
                        })?;
                    }
                }
                Ok(Ok(Vec::new()))
            }
            Some(Op::Update { .. } | Op::Replace { .. }) => {
                self.update_command(coll, context, chunk)
            }
        }
    }

    /// The inserts of `chunk` as one `insert_many`.
    fn insert_command(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        let docs: Vec<&Document> = chunk
            .iter()
            .filter_map(|op| if let Op::Insert(d) = op { Some(d) } else { None })
            .collect();
        let docs = &docs;
        self.conn.retry(context, self.conn.retry_budget, || {
            match coll.insert_many(docs.iter().copied()).ordered(false).run() {
                Ok(_) => Ok(Ok(Vec::new())),
                Err(e) => match &*e.kind {
                    ErrorKind::InsertMany(im) if im.write_concern_error.is_none() => {
                        let errors = im.write_errors.as_deref().unwrap_or_default();
                        Ok(split_duplicates(
                            errors.iter().map(|w| (w.index, w.code, w.message.as_str())),
                        ))
                    }
                    _ => Err(e),
                },
            }
        })
    }

    /// The updates and replacements of `chunk` as one `update` command
    /// (the driver has no many-statement update of its own).
    fn update_command(
        &self,
        coll: &Collection<Document>,
        context: &str,
        chunk: &[Op],
    ) -> Result<WriteOutcome> {
        let db = &self.conn.db;
        let updates: Vec<Bson> = chunk
            .iter()
            .filter_map(|op| match op {
                Op::Update { filter, update } => Some(doc! {
                    "q": filter.clone(), "u": update.clone(), "upsert": true, "multi": false,
                }),
                Op::Replace { filter, replacement } => Some(doc! {
                    "q": filter.clone(), "u": replacement.clone(), "upsert": true,
                    "multi": false,
                }),
                _ => None,
            })
            .map(Bson::Document)
            .collect();
        let wc_doc = mongodb::bson::to_document(&self.conn.write_concern).unwrap_or_default();
        let command = doc! {
            "update": coll.name(),
            "updates": updates,
            "ordered": false,
            "writeConcern": wc_doc,
        };
        let command = &command;
        let reply = self.conn.retry(context, self.conn.retry_budget, || {
            let reply = db.run_command(command.clone()).run()?;
            // A write concern error in an ok:1 reply.
            if let Ok(wce) = reply.get_document("writeConcernError") {
                let code = wce.get("code").and_then(bson_i64).unwrap_or(0);
                if TRANSIENT_CODES.contains(&(code as i32)) {
                    return Err(mongodb::error::Error::custom(format!(
                        "write concern error {code}"
                    )));
                }
            }
            Ok(reply)
        })?;
        Ok(update_outcome(&reply))
    }
}

/// The outcome of an `update` command from its reply: a write concern
/// error (not transient, or it was retried) is fatal.
fn update_outcome(reply: &Document) -> WriteOutcome {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(format!("write concern error: {}", wce.get_str("errmsg").unwrap_or("unknown")));
    }
    let errors = reply.get_array("writeErrors").map(|a| a.as_slice()).unwrap_or(&[]);
    split_duplicates(errors.iter().filter_map(|w| {
        let w = w.as_document()?;
        let index = w.get("index").and_then(bson_i64)?;
        let code = w.get("code").and_then(bson_i64).unwrap_or(0);
        Some((index as usize, code as i32, w.get_str("errmsg").unwrap_or("")))
    }))
}

/// Splits write errors into duplicate keys (returned) and the first other
/// error (fatal).
fn split_duplicates<'a>(errors: impl Iterator<Item = (usize, i32, &'a str)>) -> WriteOutcome {
    let mut dups = Vec::new();
    for (index, code, message) in errors {
        if code == DUPLICATE_KEY {
            dups.push(index);
        } else {
            return Err(format!("write error {code}: {message}"));
        }
    }
    Ok(dups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_sizes_are_exact() {
        let d = doc! {
            "a": 1i32, "b": "xyz", "c": [1i64, 2i64], "d": { "e": Bson::Null, "f": 1.5, "g": true },
        };
        let encoded = mongodb::bson::to_vec(&d).unwrap();
        assert_eq!(doc_size(&d), encoded.len());
    }
}
