//! The batch-writer loop shared by the statements and EPSS runners.
//!
//! The calling thread produces batches (scanning, parsing on the rayon
//! pool) while one writer thread owns the store and writes them in the
//! order they were sent, so parsing and writing overlap. The queue between
//! them is short: memory stays bounded, and a stop request is honoured
//! within a batch or two. Only batches the writer durably wrote count.

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};

/// Messages that may wait between the producer and the writer: one being
/// written, one queued, while the producer prepares the next.
const QUEUED: usize = 2;

/// The writer thread's half: owns the store and the counters of what is
/// durably written.
pub(crate) trait Consume: Send {
    /// What the producer sends.
    type Message: Send;
    /// The counters of what was durably written.
    type Written: Send;

    /// Handles one message, in the order sent. An error ends the loop.
    fn consume(&mut self, message: Self::Message) -> Result<()>;

    /// The counters once the loop has ended (however it ended). Runs on
    /// the writer thread, so whatever `self` releases on drop (a producer
    /// waiting for room) is released before the producer is joined.
    fn finish(self) -> Self::Written;
}

/// The producer's end of the queue.
pub(crate) struct Queue<'a, T>(&'a Sender<T>);

impl<T> Queue<'_, T> {
    /// Sends `message` to the writer, waiting while the queue is full.
    /// Fails once the writer has stopped (its own error says why).
    pub(crate) fn send(&self, message: T) -> Result<()> {
        self.0.send(message).map_err(|_| stopped())
    }
}

/// The error a producer meets when the writer has stopped; the writer's
/// error, which [`run`] returns instead, is the cause.
pub(crate) fn stopped() -> Error {
    Error::Config("the store writer stopped".into())
}

/// Runs `writer` on its own thread and `produce` on this one, connected by
/// a short queue. Stores the writer's counters in `written` (only durably
/// written batches count) and returns the producer's result, or the
/// writer's error, which is the root cause of any producer error.
pub(crate) fn run<W: Consume, R>(
    writer: W,
    written: &mut W::Written,
    produce: impl FnOnce(&Queue<'_, W::Message>) -> Result<R>,
) -> Result<R> {
    let (tx, rx) = crossbeam_channel::bounded::<W::Message>(QUEUED);
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || drain(writer, rx));
        let produced = produce(&Queue(&tx));
        // The writer ends once everything sent is written.
        drop(tx);
        let (counters, result) =
            handle.join().map_err(|_| Error::Config("the store writer thread panicked".into()))?;
        *written = counters;
        result?;
        produced
    })
}

/// The writer thread: consumes messages until the producer hangs up or a
/// write fails. On failure the receiver is dropped with the loop, which
/// stops the producer at its next send.
fn drain<W: Consume>(mut writer: W, rx: Receiver<W::Message>) -> (W::Written, Result<()>) {
    let mut result = Ok(());
    for message in rx {
        if let Err(e) = writer.consume(message) {
            result = Err(e);
            break;
        }
    }
    (writer.finish(), result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums what it is sent; fails on a negative number.
    struct Sum(i64);

    impl Consume for Sum {
        type Message = i64;
        type Written = i64;

        fn consume(&mut self, n: i64) -> Result<()> {
            if n < 0 {
                return Err(Error::Config(format!("cannot write {n}")));
            }
            self.0 += n;
            Ok(())
        }

        fn finish(self) -> i64 {
            self.0
        }
    }

    #[test]
    fn everything_sent_is_written_before_run_returns() {
        let mut written = 0;
        let produced = run(Sum(0), &mut written, |q| {
            for n in 1..=100 {
                q.send(n)?;
            }
            Ok("done")
        })
        .unwrap();
        assert_eq!((produced, written), ("done", 5050));
    }

    #[test]
    fn a_write_error_stops_the_producer_and_is_the_error_returned() {
        let mut written = 0;
        let mut sent = 0;
        let err = run(Sum(0), &mut written, |q| {
            for n in [1, 2, -1].into_iter().chain(3..10_000) {
                q.send(n)?;
                sent += 1;
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), Error::Config("cannot write -1".into()).to_string());
        // Only what was written before the failure counts.
        assert_eq!(written, 3);
        // The producer stopped within the queue's length.
        assert!(sent < 3 + QUEUED + 2, "sent {sent}");
    }

    #[test]
    fn a_producer_error_comes_back_after_the_writer_finished() {
        let mut written = 0;
        let err = run(Sum(0), &mut written, |q| {
            q.send(7)?;
            Err::<(), _>(Error::Config("producer failed".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("producer failed"));
        assert_eq!(written, 7);
    }
}
