//! Run records: every command that changes the store is one entry in
//! `runs`, written when it starts (`running`) and again when it ends
//! (`completed`, `stopped` or `failed`, with its counters).

use serde::Serialize;

use crate::error::Result;
use crate::parse::format_timestamp;
use crate::store::{RunRecord, RunStatus, Store};

/// Identity of a run, given by the caller.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Unique run id (see [`new_run_id`]).
    pub run_id: String,
    /// Subcommand name.
    pub command: String,
    /// Arguments, credentials already redacted.
    pub arguments: Vec<String>,
}

/// A new run id: UTC start time plus random bits, sortable by time.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    let noise = xxhash_rust::xxh3::xxh3_64(
        &[std::process::id().to_le_bytes(), nanos.to_le_bytes()].concat(),
    );
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), noise as u32)
}

fn now() -> String {
    format_timestamp(chrono::Utc::now().timestamp_micros())
}

/// Runs `body` as a recorded run. `body` fills in its counters as it goes
/// and returns whether it was stopped early; whatever it returns, the
/// record ends with the counters reached (a failed store is recorded on a
/// best-effort basis: it may be what failed).
pub fn recorded<S: Serialize + Default>(
    store: &mut dyn Store,
    run: &RunInfo,
    body: impl FnOnce(&mut dyn Store, &mut S) -> Result<bool>,
) -> Result<(S, bool)> {
    let mut record = RunRecord {
        run_id: run.run_id.clone(),
        command: run.command.clone(),
        arguments: run.arguments.clone(),
        started_at: now(),
        ended_at: None,
        status: RunStatus::Running,
        counters: serde_json::to_value(S::default()).unwrap_or_default(),
        error: None,
    };
    store.record_run(&record)?;
    let mut counters = S::default();
    let result = body(store, &mut counters);
    record.ended_at = Some(now());
    record.counters = serde_json::to_value(&counters).unwrap_or_default();
    match result {
        Ok(stopped) => {
            record.status = if stopped { RunStatus::Stopped } else { RunStatus::Completed };
            store.record_run(&record)?;
            tracing::info!(
                run_id = %run.run_id,
                command = %run.command,
                status = record.status.as_str(),
                counters = %record.counters,
                "Run ended."
            );
            Ok((counters, stopped))
        }
        Err(e) => {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
            if let Err(e2) = store.record_run(&record) {
                tracing::warn!(error = %e2, "Could not record the failed run.");
            }
            Err(e)
        }
    }
}
