//! The writer thread: receives batches over a short bounded queue and writes each as one
//! transaction; applies retention once a minute. The engine never waits for it: when the
//! queue is full the engine keeps coalescing changes in its journal and the next flush
//! carries them (`busy` counts how often that happened).
use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Caps, Retention, Store};
use crate::{engine::Changes, model::Nanos};

/// Batches waiting for the writer, at most. One: while the writer works, the engine keeps
/// coalescing changes in its journal, which is smaller than queued batches (a flood's batch
/// holds up to a whole device table).
const QUEUE: usize = 1;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Writer counters, read by metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    /// Batches that failed to commit (their rows are lost; the error is logged).
    pub errors: AtomicU64,
    /// Flushes skipped because the writer was still busy (nothing lost: changes coalesce).
    pub busy: AtomicU64,
    pub pruned: AtomicU64,
    /// Duration of the last commit, in microseconds.
    pub last_commit_us: AtomicU64,
}

pub struct Writer {
    tx: mpsc::Sender<Changes>,
    thread: JoinHandle<()>,
    pub stats: Arc<StoreStats>,
}

impl Writer {
    /// Starts the writer thread. `clock` gives ns since the epoch, for retention.
    pub fn spawn(
        mut store: Store,
        retention: Retention,
        caps: Caps,
        clock: fn() -> Nanos,
    ) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Changes>(QUEUE);
        let stats = Arc::new(StoreStats::default());
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("l2watch-store".into())
            .spawn(move || {
                let mut last_prune: Option<Instant> = None;
                while let Some(batch) = rx.blocking_recv() {
                    let t = Instant::now();
                    match store.write(&batch) {
                        Ok(()) => {
                            st.batches.fetch_add(1, Relaxed);
                            st.rows.fetch_add(batch.rows() as u64, Relaxed);
                            st.last_commit_us
                                .store(t.elapsed().as_micros() as u64, Relaxed);
                        }
                        Err(e) => {
                            st.errors.fetch_add(1, Relaxed);
                            warn!(error = %e, rows = batch.rows(), "store batch lost");
                        }
                    }
                    if last_prune.is_none_or(|p| p.elapsed() >= PRUNE_EVERY) {
                        last_prune = Some(Instant::now());
                        match store.prune(clock(), &retention, caps) {
                            Ok(n) => {
                                st.pruned.fetch_add(n, Relaxed);
                            }
                            Err(e) => warn!(error = %e, "store retention failed"),
                        }
                    }
                }
                if let Err(e) = store.checkpoint() {
                    warn!(error = %e, "store checkpoint at shutdown failed");
                }
                info!(path = %store.path().display(), "store closed");
            })
            .expect("spawn the store thread");
        Writer { tx, thread, stats }
    }

    /// Hands the engine's changes to the writer unless it is still busy; cheap and never
    /// blocks. Returns false when the writer was busy.
    pub fn flush(&self, take: impl FnOnce() -> Changes) -> bool {
        match self.tx.try_reserve() {
            Ok(permit) => {
                let batch = take();
                if !batch.is_empty() {
                    permit.send(batch);
                }
                true
            }
            Err(_) => {
                self.stats.busy.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Writes the last batch and waits for the thread to finish, from a plain thread.
    pub fn finish_blocking(self, last: Changes) {
        if !last.is_empty() && self.tx.blocking_send(last).is_err() {
            warn!("store thread gone; last batch lost");
        }
        drop(self.tx);
        if self.thread.join().is_err() {
            warn!("store thread panicked");
        }
    }

    /// Writes the last batch and waits for the thread to finish.
    pub async fn finish(self, last: Changes) {
        if !last.is_empty() && self.tx.send(last).await.is_err() {
            warn!("store thread gone; last batch lost");
        }
        drop(self.tx);
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_or(true, |r| r.is_err())
        {
            warn!("store thread panicked");
        }
    }
}
