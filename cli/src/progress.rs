//! The progress bar: drawn on stderr only when it is a terminal.

use std::io::IsTerminal;

use backfill_engine::Progress;
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
