//! How SQLite work leaves the async runtime: each statement runs on tokio's blocking pool.
//!
//! diesel-async's default runner, when a query future is dropped before the statement
//! finished (a client went away, a request timed out, a sibling extractor failed), waits
//! for the statement with `block_in_place` — which panics on a current-thread runtime,
//! and every actix worker is one. This runner waits with a plain blocking receive
//! instead: the worker pauses until the statement (bounded by SQLite's busy timeout)
//! finishes, and the connection is never touched by two tasks at once.

use std::error::Error;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::BoxFuture;

/// Runs blocking SQLite work on the current tokio runtime's blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingPool;

impl SpawnBlocking for BlockingPool {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime,
            Err(error) => {
                return Box::pin(std::future::ready(Err(
                    Box::new(error) as Box<dyn Error + Send + Sync>
                )));
            }
        };
        // The sender lives as long as the task: a disconnected receiver means "finished".
        let (finished_tx, finished_rx) = mpsc::channel::<()>();
        let join = runtime.spawn_blocking(move || {
            let _finished = finished_tx;
            task()
        });
        Box::pin(WaitOnDrop {
            join,
            finished: finished_rx,
        })
    }

    fn get_runtime() -> Self {
        BlockingPool
    }
}

struct WaitOnDrop<R> {
    join: tokio::task::JoinHandle<R>,
    finished: mpsc::Receiver<()>,
}

impl<R> Future for WaitOnDrop<R> {
    type Output = Result<R, Box<dyn Error + Send + Sync + 'static>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join)
            .poll(cx)
            .map(|result| result.map_err(|e| Box::new(e) as Box<dyn Error + Send + Sync>))
    }
}

impl<R> Drop for WaitOnDrop<R> {
    fn drop(&mut self) {
        if !self.join.is_finished() {
            // Blocks this thread until the statement is done; never panics.
            let _ = self.finished.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_future_waits_for_its_task_without_panicking() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let future = BlockingPool.spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
        });
        drop(future);
        assert!(done.load(Ordering::SeqCst), "the drop waited for the task");
        assert_eq!(BlockingPool.spawn_blocking(|| 7).await.unwrap(), 7);
    }
}
