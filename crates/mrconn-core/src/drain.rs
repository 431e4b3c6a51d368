//! Bookkeeping of draining connections: which resize or removal each one
//! belongs to, how each ended, and the totals operators read.
//!
//! A *batch* is the set of connections that one `Shrink`, node removal or
//! endpoint change sent draining. Its connections join it as the loop sorts
//! them, a few at a time; once sealed (every leaving connection sorted), it
//! ends when its last connection has closed or returned to a pool, and that
//! is when its duration is reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Identifies one batch within its [`DrainBook`].
pub type BatchId = u64;

/// Why connections were sent draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainCause {
    /// A pool resize from `from` to `to` connections per node.
    Shrink {
        /// Pool size before.
        from: u32,
        /// Pool size after.
        to: u32,
    },
    /// The node's pool was removed.
    NodeRemoved,
    /// The node's endpoint changed and its pool was rebuilt.
    EndpointChanged,
}

/// How one draining connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every pending reply reached its callback; then it closed.
    Graceful,
    /// The deadline (or shutdown) closed it; `failed` callbacks got an
    /// error reply.
    Forced {
        /// Callbacks that received an error reply.
        failed: u64,
    },
    /// The link broke first; hiredis failed the `failed` callbacks still
    /// pending with NULL.
    Broken {
        /// Callbacks pending as of the last read, which received NULL.
        failed: u64,
    },
    /// A pool grew again and took the connection back.
    Reclaimed,
}

/// Totals since the manager was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Connections draining now.
    pub draining: u64,
    /// Drains that ended with every reply delivered.
    pub graceful: u64,
    /// Drains closed by the deadline or by shutdown.
    pub forced: u64,
    /// Drains ended by a broken link.
    pub broken: u64,
    /// Draining connections taken back into a pool.
    pub reclaimed: u64,
    /// Callbacks that got no reply from their shard: an error reply when a
    /// drain was forced, NULL when its link broke. The batch reports count
    /// the same.
    pub failed_callbacks: u64,
}

/// The summary of a finished batch, for its closing log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Why the batch started.
    pub cause: DrainCause,
    /// From the start of the batch to its last connection's end.
    pub elapsed: Duration,
    /// Connections that drained gracefully.
    pub graceful: u64,
    /// Connections closed by force.
    pub forced: u64,
    /// Connections whose link broke.
    pub broken: u64,
    /// Connections taken back into a pool.
    pub reclaimed: u64,
    /// Callbacks failed by force (error reply) or by the broken link (NULL).
    pub failed_callbacks: u64,
}

#[derive(Debug)]
struct Batch {
    started: Instant,
    remaining: u64,
    /// No connection joins any more.
    sealed: bool,
    report: BatchReport,
}

/// All batches of one manager and its running totals.
///
/// A batch is found by id in O(1), and leaves the book when it ends: a book
/// holds only the batches with a connection still draining (or still being
/// sorted), however many resizes came before.
#[derive(Debug, Default)]
pub struct DrainBook {
    batches: HashMap<BatchId, Batch>,
    next_id: BatchId,
    stats: DrainStats,
}

impl DrainBook {
    /// Starts a batch, empty until connections [`join`](Self::join) it.
    pub fn open(&mut self, cause: DrainCause, now: Instant) -> BatchId {
        let id = self.next_id;
        self.next_id += 1;
        self.batches.insert(
            id,
            Batch {
                started: now,
                remaining: 0,
                sealed: false,
                report: BatchReport {
                    cause,
                    elapsed: Duration::ZERO,
                    graceful: 0,
                    forced: 0,
                    broken: 0,
                    reclaimed: 0,
                    failed_callbacks: 0,
                },
            },
        );
        id
    }

    /// One more connection drains in batch `id`, which is not sealed. An
    /// unknown id is ignored.
    pub fn join(&mut self, id: BatchId) {
        if let Some(batch) = self.batches.get_mut(&id) {
            debug_assert!(!batch.sealed, "joined a sealed batch");
            batch.remaining += 1;
            self.stats.draining += 1;
        }
    }

    /// No connection joins batch `id` any more. Returns its report if every
    /// connection that joined it has already ended; a batch that none joined
    /// ends without one. An unknown id is ignored.
    pub fn seal(&mut self, id: BatchId, now: Instant) -> Option<BatchReport> {
        self.batches.get_mut(&id)?.sealed = true;
        self.end_if_done(id, now)
    }

    /// Records how one connection of batch `id` ended; returns the batch's
    /// report when it was the last one of a sealed batch. An unknown id is
    /// ignored.
    pub fn close(
        &mut self,
        id: BatchId,
        outcome: DrainOutcome,
        now: Instant,
    ) -> Option<BatchReport> {
        let batch = self.batches.get_mut(&id)?;
        let report = &mut batch.report;
        let stats = &mut self.stats;
        match outcome {
            DrainOutcome::Graceful => {
                report.graceful += 1;
                stats.graceful += 1;
            }
            DrainOutcome::Forced { failed } => {
                report.forced += 1;
                report.failed_callbacks += failed;
                stats.forced += 1;
                stats.failed_callbacks += failed;
            }
            DrainOutcome::Broken { failed } => {
                report.broken += 1;
                report.failed_callbacks += failed;
                stats.broken += 1;
                stats.failed_callbacks += failed;
            }
            DrainOutcome::Reclaimed => {
                report.reclaimed += 1;
                stats.reclaimed += 1;
            }
        }
        stats.draining -= 1;
        batch.remaining -= 1;
        self.end_if_done(id, now)
    }

    fn end_if_done(&mut self, id: BatchId, now: Instant) -> Option<BatchReport> {
        let batch = self.batches.get(&id)?;
        if !batch.sealed || batch.remaining > 0 {
            return None;
        }
        let done = self.batches.remove(&id)?;
        let r = done.report;
        (r.graceful + r.forced + r.broken + r.reclaimed > 0).then(|| BatchReport {
            elapsed: now.saturating_duration_since(done.started),
            ..r
        })
    }

    /// The totals so far.
    pub fn stats(&self) -> DrainStats {
        self.stats
    }

    /// Batches still open.
    pub fn open_batches(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reports_once_when_its_last_connection_ends() {
        let t0 = Instant::now();
        let mut book = DrainBook::default();
        let shrink = DrainCause::Shrink { from: 8, to: 1 };
        let id = book.open(shrink, t0);
        let other = book.open(DrainCause::NodeRemoved, t0);
        for _ in 0..3 {
            book.join(id);
        }
        book.join(other);
        assert_eq!(book.seal(id, t0), None);
        assert_eq!(book.seal(other, t0), None);
        assert_eq!(book.stats().draining, 4);
        assert_eq!(book.close(id, DrainOutcome::Graceful, t0), None);
        assert_eq!(book.close(id, DrainOutcome::Reclaimed, t0), None);
        let later = t0 + Duration::from_millis(40);
        let report = book
            .close(id, DrainOutcome::Forced { failed: 5 }, later)
            .unwrap();
        assert_eq!(report.cause, shrink);
        assert_eq!(report.elapsed, Duration::from_millis(40));
        assert_eq!(
            (report.graceful, report.reclaimed, report.forced),
            (1, 1, 1)
        );
        assert_eq!(report.failed_callbacks, 5);
        assert_eq!(
            book.close(id, DrainOutcome::Graceful, later),
            None,
            "closed batch"
        );
        assert_eq!(book.open_batches(), 1);
        let report = book
            .close(other, DrainOutcome::Broken { failed: 2 }, later)
            .unwrap();
        assert_eq!(report.failed_callbacks, 2);
        let s = book.stats();
        assert_eq!(
            (
                s.draining,
                s.graceful,
                s.forced,
                s.broken,
                s.reclaimed,
                s.failed_callbacks
            ),
            (0, 1, 1, 1, 1, 7),
            "failed callbacks count forced and broken-link drains"
        );
    }

    #[test]
    fn a_batch_reports_only_once_sealed() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(9);
        let mut book = DrainBook::default();
        let id = book.open(DrainCause::NodeRemoved, t0);
        book.join(id);
        // Its only connection ends while others are still being sorted.
        assert_eq!(book.close(id, DrainOutcome::Graceful, t0), None);
        book.join(id);
        assert_eq!(book.close(id, DrainOutcome::Reclaimed, t0), None);
        let report = book.seal(id, later).expect("every member ended");
        assert_eq!((report.graceful, report.reclaimed), (1, 1));
        assert_eq!(report.elapsed, Duration::from_millis(9));
        assert_eq!(book.open_batches(), 0);
        // A batch that none joined ends silently.
        let empty = book.open(DrainCause::EndpointChanged, t0);
        assert_eq!(book.seal(empty, later), None);
        assert_eq!(book.open_batches(), 0);
        assert_eq!(book.stats().draining, 0);
    }
}
