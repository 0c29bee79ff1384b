//! The agent's tasks, supervised as one set: the ingest thread, the HTTP server, the link
//! watcher and the kernel log forwarder. Any of them ending before shutdown is a failure of
//! the whole agent: readiness clears, the reason is logged, and `run` returns the error so
//! the process exits non-zero and systemd or Kubernetes restarts it, instead of it serving
//! stale data. Shutdown is one token fanned out to every task.
use std::{future::Future, time::Duration};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How a task ended: Ok when it stopped because shutdown was asked for.
pub type TaskResult = Result<(), String>;

pub struct Supervisor {
    tasks: JoinSet<(&'static str, TaskResult)>,
    shutdown: CancellationToken,
    /// Test hook: `L2WATCH_TEST_FAIL_TASK=<task>:<ms>` makes that async task fail after ms
    /// (the ingest thread has its own, `L2WATCH_TEST_FAIL_INGEST_AFTER_MS`).
    fail_hook: Option<(String, Duration)>,
}

/// A task that failed, or ended when it should not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub task: &'static str,
    pub reason: String,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Supervisor {
        let fail_hook = std::env::var("L2WATCH_TEST_FAIL_TASK").ok().and_then(|v| {
            let (task, ms) = v.split_once(':')?;
            Some((task.to_string(), Duration::from_millis(ms.parse().ok()?)))
        });
        Supervisor {
            tasks: JoinSet::new(),
            shutdown,
            fail_hook,
        }
    }

    /// The shutdown token every task watches.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs an async task.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = TaskResult> + Send + 'static,
    {
        let hook = self.hook_for(name);
        self.tasks.spawn(async move {
            let r = match hook {
                Some(after) => tokio::select! {
                    r = task => r,
                    _ = tokio::time::sleep(after) => Err("failed on purpose (test hook)".into()),
                },
                None => task.await,
            };
            (name, r)
        });
    }

    /// Runs a blocking task on its own named thread; a panic is a failure like any other.
    pub fn spawn_thread<F>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(&CancellationToken) -> TaskResult + Send + 'static,
    {
        let (done, ended) = tokio::sync::oneshot::channel();
        let stop = self.shutdown.clone();
        std::thread::Builder::new()
            .name(format!("l2watch-{name}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&stop)))
                    .unwrap_or_else(|p| Err(panic_text(&*p)));
                let _ = done.send(r);
            })
            .expect("spawn a thread");
        // Not through `spawn`: a thread's test hook is its own (it must really stop).
        self.tasks.spawn(async move {
            let r = ended
                .await
                .unwrap_or_else(|_| Err("vanished without a word".into()));
            (name, r)
        });
    }

    fn hook_for(&self, name: &str) -> Option<Duration> {
        self.fail_hook
            .as_ref()
            .filter(|(t, _)| t == name)
            .map(|(_, d)| *d)
    }

    /// Waits for the first task to end before shutdown. Pending forever while all run (and
    /// when there are none).
    pub async fn failed(&mut self) -> Failure {
        loop {
            let Some(joined) = self.tasks.join_next().await else {
                return std::future::pending().await;
            };
            let (task, r) = match joined {
                Ok(x) => x,
                Err(e) => ("unknown", Err(format!("task panicked: {e}"))),
            };
            if self.shutdown.is_cancelled() {
                if let Err(reason) = r {
                    warn!(task, error = %reason, "task failed while stopping");
                }
                continue;
            }
            let reason = r.err().unwrap_or_else(|| "ended before shutdown".into());
            return Failure { task, reason };
        }
    }

    /// After shutdown: waits up to `grace` for every task to end; returns how many did not
    /// (they are aborted).
    pub async fn drain(mut self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok((task, Err(reason))))) => {
                    warn!(task, error = %reason, "task failed while stopping")
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    let left = self.tasks.len();
                    self.tasks.abort_all();
                    return left;
                }
            }
        }
        0
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_or_panics_is_a_failure() {
        let stop = CancellationToken::new();
        let mut s = Supervisor::new(stop.clone());
        let s2 = stop.clone();
        s.spawn("waits", async move {
            s2.cancelled().await;
            Ok(())
        });
        s.spawn("quits", async { Ok(()) });
        let f = s.failed().await;
        assert_eq!(f.task, "quits");
        assert_eq!(f.reason, "ended before shutdown");
        s.spawn_thread("panics", |_| panic!("boom"));
        let f = s.failed().await;
        assert_eq!((f.task, f.reason.as_str()), ("panics", "panicked: boom"));
        stop.cancel();
        assert_eq!(s.drain(Duration::from_secs(5)).await, 0);
    }
}
