//! How SQLite work leaves the async runtime: each statement runs on a blocking thread of
//! its connection pool's own runtime (below), whichever runtime awaits it.
//!
//! diesel-async's default runner, when a query future is dropped before the statement
//! finished (a client went away, a request timed out, a sibling extractor failed), waits
//! for the statement with `block_in_place` — which panics on a current-thread runtime,
//! and every actix worker is one. This runner waits with a plain blocking receive
//! instead: the worker pauses until the statement (bounded by SQLite's busy timeout)
//! finishes, and the connection is never touched by two tasks at once.

use std::error::Error;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::BoxFuture;

/// Runs blocking SQLite work: on the threads of the connection's pool
/// ([`BlockingPool::for_pool`]), or, for a connection made without one, on the current
/// tokio runtime's blocking pool.
#[derive(Debug, Clone, Default)]
pub struct BlockingPool {
    threads: Option<Arc<PoolThreads>>,
}

/// The threads of one connection pool: the blocking pool of a runtime of its own (one
/// idle worker thread), at most one thread per pooled connection.
///
/// Each actix worker is a runtime with its own blocking pool, and any worker may hold
/// every pooled connection at once, so each of those pools had to allow a thread per
/// connection: under load the threads grew to the pool's size times the workers, each
/// keeping its allocator pages (mimalloc's per-thread pages for rows and JSON, glibc's
/// arenas for SQLite's page cache). Here every worker's statements share the pool's
/// threads. One per connection is enough and never too few: a connection runs one
/// statement at a time, so a statement waiting for another connection's lock (SQLite's
/// busy timeout) never keeps that connection's next statement from a thread.
#[derive(Debug)]
struct PoolThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PoolThreads {
    fn drop(&mut self) {
        // The last connection may go away on an async worker, where a runtime may not
        // block to shut down; running statements finish on their threads regardless.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl BlockingPool {
    /// Threads for a pool of `connections` connections.
    pub fn for_pool(connections: usize) -> std::io::Result<BlockingPool> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(connections.max(1))
            .thread_name("feria-sqlite")
            .build()?;
        Ok(BlockingPool {
            threads: Some(Arc::new(PoolThreads {
                runtime: Some(runtime),
            })),
        })
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, tokio::runtime::TryCurrentError> {
        match self.threads.as_ref().and_then(|t| t.runtime.as_ref()) {
            Some(runtime) => Ok(runtime.handle().clone()),
            None => tokio::runtime::Handle::try_current(),
        }
    }
}

impl SpawnBlocking for BlockingPool {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let runtime = match self.handle() {
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
        BlockingPool::default()
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
        let future = BlockingPool::default().spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
        });
        drop(future);
        assert!(done.load(Ordering::SeqCst), "the drop waited for the task");
        assert_eq!(
            BlockingPool::default().spawn_blocking(|| 7).await.unwrap(),
            7
        );
    }
}
