//! Group commit: one fsync covers every append that arrived while the previous fsync ran.
//!
//! Callers append under the partition lock, then [`Flusher::sync`] the partitions they wrote
//! and await the result; the flusher task takes every waiting request, fsyncs each dirty
//! partition once (outside the partition lock, on a blocking thread) and answers all of them.
//! A failed fsync poisons that partition's log (it refuses further appends) and fails the
//! waiters: nothing acknowledged is ever not on disk.
//!
//! The request queue is bounded ([`FLUSH_QUEUE`]); the flusher task itself never sends to it,
//! so a full queue only makes callers wait.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::topics::Partition;

type Waiter = (Vec<Arc<Partition>>, oneshot::Sender<Result<(), String>>);

/// Requests that may wait for the flusher. Each round takes every queued request, so this
/// also caps how many one fsync covers: 4096 per round is over a million acks=-1 requests a
/// second even on the slowest disk measured (~280 fsyncs/s), beyond what one node serves,
/// while a request costs the queue a few dozen bytes. When it is full, callers wait in
/// [`Flusher::sync`] (back-pressure to their connection, whose reader stops at
/// `MAX_IN_FLIGHT` answers) instead of the queue growing without bound.
pub const FLUSH_QUEUE: usize = 4096;

/// The fsync the flusher performs on a segment file: `File::sync_data` in the broker
/// ([`Flusher::start`]). The one seam for injecting storage failures in tests
/// ([`Flusher::start_with_fsync`]); runs on a blocking thread.
pub type Fsync = Arc<dyn Fn(&std::fs::File) -> std::io::Result<()> + Send + Sync>;

/// Handle to the group-commit task.
#[derive(Debug, Clone)]
pub struct Flusher {
    tx: mpsc::Sender<Waiter>,
}

impl Flusher {
    /// Starts the flusher task on the current runtime; each group commit's duration goes to
    /// `metrics` (`shoal_log_flush_duration_seconds`).
    pub fn start(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self::start_with_fsync(metrics, Arc::new(|f: &std::fs::File| f.sync_data()))
    }

    /// [`Flusher::start`] with `fsync` in place of `File::sync_data` (tests make it fail).
    pub fn start_with_fsync(metrics: Arc<crate::metrics::Metrics>, fsync: Fsync) -> Self {
        let (tx, rx) = mpsc::channel(FLUSH_QUEUE);
        tokio::spawn(run(rx, metrics, fsync));
        Self { tx }
    }

    /// Asks for an fsync of `partitions` without waiting for it (write-behind: keeps the page
    /// cache's backlog of unwritten data small under acks=0/1). Skipped when the queue is
    /// full: the rounds already queued are busy with the disk, and the next
    /// `log.flush.writeback.bytes` appended asks again.
    pub fn sync_in_background(&self, partitions: Vec<Arc<Partition>>) {
        let (tx, _) = oneshot::channel();
        let _ = self.tx.try_send((partitions, tx));
    }

    /// Resolves once every batch appended to `partitions` before this call is on disk.
    ///
    /// Errors: a message when the fsync failed (the partition is now poisoned) or the flusher
    /// stopped.
    pub async fn sync(&self, partitions: Vec<Arc<Partition>>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((partitions, tx))
            .await
            .map_err(|_| "flusher stopped".to_string())?;
        rx.await.map_err(|_| "flusher stopped".to_string())?
    }
}

async fn run(mut rx: mpsc::Receiver<Waiter>, metrics: Arc<crate::metrics::Metrics>, fsync: Fsync) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let mut unique: Vec<Arc<Partition>> = Vec::new();
        for (parts, _) in &waiters {
            for p in parts {
                if !unique.iter().any(|u| Arc::ptr_eq(u, p)) {
                    unique.push(Arc::clone(p));
                }
            }
        }
        let targets: Vec<(Arc<Partition>, shoal_log::SyncTarget)> = unique
            .into_iter()
            .filter_map(|p| {
                let t = shoal_log::PartitionLog::sync_target(&*p.log())?;
                Some((p, t))
            })
            .collect();
        let started = std::time::Instant::now();
        let fsync = Arc::clone(&fsync);
        let results = tokio::task::spawn_blocking(move || {
            targets
                .into_iter()
                .map(|(p, t)| {
                    let r = fsync(&t.file);
                    (p, t.upto_offset, t.upto_bytes, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        metrics.flushed(started.elapsed());
        let Ok(results) = results else {
            for (_, reply) in waiters {
                let _ = reply.send(Err("fsync task failed".to_string()));
            }
            continue;
        };
        let mut failed: Vec<Arc<Partition>> = Vec::new();
        for (p, upto, upto_bytes, r) in results {
            let mut log = p.log();
            if shoal_log::PartitionLog::sync_done(&mut *log, upto, upto_bytes, r).is_err() {
                failed.push(Arc::clone(&p));
            }
        }
        for (parts, reply) in waiters {
            let bad = parts
                .iter()
                .any(|p| failed.iter().any(|f| Arc::ptr_eq(f, p)));
            let _ = reply.send(if bad {
                Err("fsync failed; partition is read-only until restart".to_string())
            } else {
                Ok(())
            });
        }
    }
}
