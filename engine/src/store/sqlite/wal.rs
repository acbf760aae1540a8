//! Flushing the WAL (copying it into the main file) while a run writes,
//! off the writer's thread.
//!
//! SQLite calls this a "checkpoint" (`PRAGMA wal_checkpoint`); here that
//! word means only a run's resume point, so the WAL side is a "flush"
//! everywhere but in SQLite's own names.

use std::path::Path;

use rusqlite::Connection;

use super::{err, SqliteStore};
use crate::error::Result;

/// WAL frames (16 KiB pages) that wake the background flusher: 16 MiB.
/// Early and often, so the copy (and the disk writes) run while the
/// writer works, on a core parsing leaves idle, and the final flush,
/// which nothing overlaps, has little left: a 71k-statement run took 0.233 s
/// against 0.278 s at 64 MiB (EPSS day CSV 0.242 s against 0.280 s).
pub(super) const FLUSH_FRAMES: i32 = 1024;

/// WAL frames at which the writer itself flushes and restarts the WAL: 256
/// MiB.
const WAL_LIMIT_FRAMES: i32 = 16384;

/// Copies the WAL into the main file on its own thread and connection while
/// a run writes, so the single writer never stops for it (a twentieth of its
/// time) and the copy runs on whatever core parsing leaves idle. Its
/// flushes are PASSIVE: they never wait for the writer, and what they
/// leave is copied by the next one or by the final (TRUNCATE) flush.
pub(super) struct WalFlusher {
    wake: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WalFlusher {
    /// A flusher with its own connection to `path`, or `None` when that or
    /// its thread cannot start.
    fn start(path: &Path, busy_timeout: std::time::Duration) -> Option<WalFlusher> {
        let conn = Connection::open(path).and_then(|c| c.busy_timeout(busy_timeout).map(|()| c));
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "No background WAL flushes.");
                return None;
            }
        };
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let thread =
            std::thread::Builder::new().name("backfill-wal-flush".into()).spawn(move || {
                for () in woken {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "Background WAL flush failed.");
                    }
                }
            });
        match thread {
            Ok(thread) => Some(WalFlusher { wake, thread }),
            Err(e) => {
                tracing::debug!(error = %e, "No background WAL flushes.");
                None
            }
        }
    }

    /// Ends the thread after its current flush.
    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

impl SqliteStore {
    /// Flushes the WAL so everything written is in the main file.
    pub fn flush_wal(&mut self) -> Result<()> {
        self.stop_wal_flusher().map_err(|e| err(&self.path, "flush WAL", e))?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| err(&self.path, "flush WAL", e))
    }

    /// Starts the background flusher, unless it runs already. Without it
    /// (a thread that cannot start) SQLite's automatic flushes stay on.
    pub(super) fn start_wal_flusher(&mut self) -> rusqlite::Result<()> {
        if self.wal_flusher.is_some() {
            return Ok(());
        }
        let Some(c) = WalFlusher::start(&self.path, self.busy_timeout) else {
            return Ok(());
        };
        let wake = c.wake.clone();
        // Replaces the automatic flush, which runs in the writer.
        self.conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
            if frames >= WAL_LIMIT_FRAMES {
                // PASSIVE flushes cannot restart a WAL the writer keeps
                // appending to: copy the rest here and start it over, which
                // keeps the file (and what the kernel must write back) small.
                if let Err(e) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::RESTART) {
                    tracing::debug!(error = %e, "Restarting the WAL failed.");
                }
            } else if frames >= FLUSH_FRAMES {
                let _ = wake.try_send(());
            }
            Ok(())
        }))?;
        self.wal_flusher = Some(c);
        Ok(())
    }

    /// Stops the background flusher (after its current flush) and puts
    /// SQLite's automatic one back.
    pub(super) fn stop_wal_flusher(&mut self) -> rusqlite::Result<()> {
        if let Some(c) = self.wal_flusher.take() {
            // The hook holds a sender: drop it first, or the thread waits on.
            self.conn
                .wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>)?;
            self.conn.pragma_update(None, "wal_autocheckpoint", FLUSH_FRAMES)?;
            c.stop();
        }
        Ok(())
    }
}
