//! A store that keeps nothing: `statements --dry-run`. Every document is
//! evaluated and counted as if the store were empty, and nothing is
//! written, so an archive can be validated (and parsing measured) without a
//! database.

use std::collections::HashSet;

use serde_json::Value as Json;

use super::{Checkpoint, EpssRow, Export, RunRecord, Store, UpsertCounts, WriteContext};
use crate::dedupe::Digest;
use crate::error::Result;
use crate::parse::DocumentWrite;

/// The dry-run [`Store`].
#[derive(Debug, Default)]
pub struct NullStore;

impl Store for NullStore {
    fn describe(&self) -> String {
        "dry run (nothing written)".into()
    }

    fn record_run(&mut self, _run: &RunRecord) -> Result<()> {
        Ok(())
    }

    fn known_digests(&mut self, _digests: &[Digest]) -> Result<HashSet<Digest>> {
        Ok(HashSet::new())
    }

    fn write_documents(&mut self, _docs: &[DocumentWrite], _ctx: &WriteContext<'_>) -> Result<()> {
        Ok(())
    }

    fn find_statements(&mut self, _vulnerability_id: &str, _product: &str) -> Result<Vec<Json>> {
        Ok(Vec::new())
    }

    fn export(&mut self, _what: Export, _each: &mut dyn FnMut(Json) -> Result<()>) -> Result<()> {
        Ok(())
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        Ok(Vec::new())
    }

    fn write_epss(
        &mut self,
        rows: &[EpssRow],
        _checkpoint: Option<&Checkpoint>,
        _now: i64,
    ) -> Result<UpsertCounts> {
        Ok(UpsertCounts { upserted: rows.len() as u64, unchanged: 0 })
    }

    fn load_checkpoint(&mut self, _data_type: &str, _source: &str) -> Result<Option<Checkpoint>> {
        Ok(None)
    }

    fn enrich_statements(&mut self) -> Result<u64> {
        Ok(0)
    }
}
