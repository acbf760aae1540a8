//! The dry run (`statements --dry-run`): a [`StatementSink`] that keeps
//! nothing. Every document is evaluated and counted as if the store were
//! empty, and nothing is written or recorded, so an archive can be
//! validated (and parsing measured) without a database.

use super::{BatchOutcome, Logged, StatementSink, WriteContext};
use crate::error::Result;
use crate::parse::DocumentWrite;

/// The dry-run sink.
#[derive(Debug, Default)]
pub struct DryRun;

impl Logged for DryRun {}

impl StatementSink for DryRun {
    fn write_documents(
        &mut self,
        _docs: &[DocumentWrite],
        _ctx: &WriteContext<'_>,
    ) -> Result<BatchOutcome> {
        Ok(BatchOutcome::default())
    }
}
