//! The progress bar: drawn on stderr only when it is a terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use backfill_engine::{Problem, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// An indicatif bar behind the engine's [`Progress`] callback.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for `unit`s (documents, rows); hidden unless stderr is a
    /// terminal and `quiet` is off.
    pub fn new(unit: &str, quiet: bool) -> Bar {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(5)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let template = format!("{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar(bar)
    }

    /// Ends the bar: `finish` when complete, `abandon` when not.
    pub fn end(&self, complete: bool) {
        if complete {
            self.0.finish();
        } else {
            self.0.abandon();
        }
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

/// The bar plus the `--failures` file: every [`Problem`] as one JSON line.
pub struct Reporter {
    bar: Bar,
    failures: Option<Mutex<FailureFile>>,
}

struct FailureFile {
    path: PathBuf,
    out: BufWriter<File>,
    /// The first write error; reported once the run has ended.
    error: Option<std::io::Error>,
}

impl Reporter {
    /// A reporter drawing `bar`, writing problems to `failures` (created
    /// or truncated now, so a path that cannot be written fails before the
    /// run).
    pub fn new(bar: Bar, failures: Option<&Path>) -> anyhow::Result<Reporter> {
        let failures = match failures {
            None => None,
            Some(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                Some(Mutex::new(FailureFile {
                    path: path.to_owned(),
                    out: BufWriter::new(file),
                    error: None,
                }))
            }
        };
        Ok(Reporter { bar, failures })
    }

    /// Ends the bar and flushes the failures file, failing if any write
    /// to it failed.
    pub fn end(self, complete: bool) -> anyhow::Result<()> {
        self.bar.end(complete);
        if let Some(f) = self.failures {
            let mut f = f.into_inner().unwrap_or_else(PoisonError::into_inner);
            let flushed = f.out.flush();
            if let Some(e) = f.error.take().map(Err).unwrap_or(flushed).err() {
                return Err(e).with_context(|| format!("cannot write {}", f.path.display()));
            }
        }
        Ok(())
    }
}

impl Progress for Reporter {
    fn begin(&self, total: u64) {
        self.bar.begin(total);
    }

    fn advance(&self, n: u64) {
        self.bar.advance(n);
    }

    fn problem(&self, problem: &Problem<'_>) {
        let Some(f) = &self.failures else { return };
        let mut f = f.lock().unwrap_or_else(PoisonError::into_inner);
        if f.error.is_none() {
            let written = serde_json::to_writer(&mut f.out, problem)
                .map_err(std::io::Error::from)
                .and_then(|()| f.out.write_all(b"\n"));
            f.error = written.err();
        }
    }
}
