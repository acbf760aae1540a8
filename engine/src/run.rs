//! Run records: every command that changes the store is one entry in
//! `runs`, written when it starts (`running`), after every durable batch
//! (counters and heartbeat), and when it ends (`completed`, `stopped` or
//! `failed`). A run that was killed cannot say so itself: the next command
//! finds it `running` with its owner process gone (or silent for
//! [`RUN_STALE_AFTER`]) and marks it `abandoned` ([`reap_abandoned`]).

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::model::{RunOwner, RunRecord, RunStatus};
use crate::store::{Logged, RunLog};
use crate::time::format_timestamp;

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

/// The current time as the engine stamps it.
pub(crate) fn now() -> String {
    format_timestamp(chrono::Utc::now().timestamp_micros())
}

/// How long a `running` run on another host may stay silent before a
/// later command takes it for dead. Every durable batch is a heartbeat;
/// what can outlast this is one batch or the index build at the end of a
/// very large load.
pub const RUN_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

impl RunOwner {
    /// This process.
    pub fn current() -> RunOwner {
        let pid = std::process::id();
        RunOwner { host: host_name(), pid, boot_id: boot_id(), process_start: process_start(pid) }
    }

    /// Whether the owner still runs: `Some` when this host can tell (the
    /// same host and boot), `None` otherwise.
    pub fn is_alive(&self) -> Option<bool> {
        let here = RunOwner::current();
        if self.host != here.host || self.boot_id.is_none() || self.boot_id != here.boot_id {
            return None;
        }
        let start = process_start(self.pid);
        Some(match (start, self.process_start) {
            (Some(now), Some(then)) => now == then,
            // No /proc entry: gone.
            (None, _) => false,
            (Some(_), None) => true,
        })
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty())
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Why a `running` run is dead, or `None` when it may be alive.
fn abandoned_because(run: &RunRecord, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    if let Some(owner) = &run.owner {
        match owner.is_alive() {
            Some(false) => {
                return Some(format!(
                    "abandoned: its process {} on {} is gone",
                    owner.pid, owner.host
                ))
            }
            Some(true) => return None,
            None => {}
        }
    }
    let last = run.heartbeat_at.as_deref().unwrap_or(&run.started_at);
    let last = chrono::DateTime::parse_from_rfc3339(last).ok()?;
    let silent = now.signed_duration_since(last).to_std().ok()?;
    (silent > RUN_STALE_AFTER).then(|| {
        format!("abandoned: no heartbeat since {last} ({} minutes)", silent.as_secs() / 60)
    })
}

/// Marks `running` runs whose process is gone (or silent for
/// [`RUN_STALE_AFTER`]) `abandoned`, and returns how many. Stores apply
/// the change only to a run still `running`, so a run that ended meanwhile
/// keeps its own end.
pub fn reap_abandoned(log: &mut dyn RunLog) -> Result<u64> {
    let now = chrono::Utc::now();
    let mut reaped = 0;
    for mut run in log.runs()? {
        if run.status != RunStatus::Running {
            continue;
        }
        let Some(why) = abandoned_because(&run, now) else { continue };
        tracing::warn!(run_id = %run.run_id, command = %run.command, reason = %why, "Run abandoned.");
        run.status = RunStatus::Abandoned;
        run.error = Some(why);
        log.record_run(&run)?;
        reaped += 1;
    }
    Ok(reaped)
}

/// A run in progress: its record, kept up to date by the command's writer
/// and saved with every batch.
#[derive(Clone, Debug)]
pub struct Recorder {
    record: RunRecord,
}

impl Recorder {
    /// The record after a batch, with `counters` and a fresh heartbeat.
    pub fn beat<S: Serialize>(&mut self, counters: &S) -> &RunRecord {
        self.record.counters = serde_json::to_value(counters).unwrap_or_default();
        self.record.heartbeat_at = Some(now());
        &self.record
    }
}

/// Runs `body` as a recorded run in `target`'s run log (when it keeps
/// one: a dry run does not). `body` fills in its counters as it goes and
/// returns whether it was stopped early; whatever it returns, the record
/// ends with the counters reached (a failed store is recorded on a
/// best-effort basis: it may be what failed). Runs found abandoned are
/// marked first.
pub fn recorded<T: Logged + ?Sized, S: Serialize + Default>(
    target: &mut T,
    run: &RunInfo,
    body: impl FnOnce(&mut T, &mut S, &mut Recorder) -> Result<bool>,
) -> Result<(S, bool)> {
    if let Some(log) = target.run_log() {
        reap_abandoned(log)?;
    }
    let started = now();
    let mut recorder = Recorder {
        record: RunRecord {
            run_id: run.run_id.clone(),
            command: run.command.clone(),
            arguments: run.arguments.clone(),
            started_at: started.clone(),
            ended_at: None,
            status: RunStatus::Running,
            counters: serde_json::to_value(S::default()).unwrap_or_default(),
            error: None,
            owner: Some(RunOwner::current()),
            heartbeat_at: Some(started),
        },
    };
    if let Some(log) = target.run_log() {
        log.record_run(&recorder.record)?;
    }
    let mut counters = S::default();
    let result = body(target, &mut counters, &mut recorder);
    let mut record = recorder.record;
    record.ended_at = Some(now());
    record.heartbeat_at = record.ended_at.clone();
    record.counters = serde_json::to_value(&counters).unwrap_or_default();
    match result {
        Ok(stopped) => {
            record.status = if stopped { RunStatus::Stopped } else { RunStatus::Completed };
            if let Some(log) = target.run_log() {
                log.record_run(&record)?;
            }
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
            if let Some(Err(e2)) = target.run_log().map(|log| log.record_run(&record)) {
                tracing::warn!(error = %e2, "Could not record the failed run.");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(owner: Option<RunOwner>, heartbeat: &str) -> RunRecord {
        RunRecord {
            run_id: "r".into(),
            command: "statements".into(),
            arguments: vec![],
            started_at: heartbeat.into(),
            ended_at: None,
            status: RunStatus::Running,
            counters: serde_json::Value::Null,
            error: None,
            owner,
            heartbeat_at: Some(heartbeat.into()),
        }
    }

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_not() {
        let me = RunOwner::current();
        assert_eq!(me.is_alive(), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = RunOwner { pid, ..me.clone() };
        assert_eq!(gone.is_alive(), Some(false));
        // A reused pid (another start time) is not the owner.
        let reused = RunOwner { process_start: me.process_start.map(|s| s + 1), ..me.clone() };
        assert_eq!(reused.is_alive(), Some(false));
        // Another host, or another boot: only the heartbeat can tell.
        let elsewhere = RunOwner { host: format!("{}-elsewhere", me.host), ..me.clone() };
        assert_eq!(elsewhere.is_alive(), None);
        let rebooted = RunOwner { boot_id: Some("another boot".into()), ..me };
        assert_eq!(rebooted.is_alive(), None);
    }

    #[test]
    fn abandoned_when_the_owner_is_gone_or_the_heartbeat_is_stale() {
        let now = chrono::Utc::now();
        let fresh = format_timestamp(now.timestamp_micros());
        let old = format_timestamp((now - chrono::Duration::minutes(20)).timestamp_micros());
        let me = RunOwner::current();
        let elsewhere = RunOwner { host: "another-host".into(), ..me.clone() };
        assert_eq!(abandoned_because(&running(Some(me.clone()), &old), now), None);
        assert_eq!(abandoned_because(&running(Some(elsewhere.clone()), &fresh), now), None);
        assert!(abandoned_because(&running(Some(elsewhere), &old), now)
            .is_some_and(|w| w.contains("no heartbeat")));
        assert!(abandoned_because(&running(None, &old), now).is_some());
        let gone = RunOwner { pid: u32::MAX, ..me };
        assert!(abandoned_because(&running(Some(gone), &fresh), now)
            .is_some_and(|w| w.contains("is gone")));
    }
}
