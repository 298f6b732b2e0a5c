//! SQLite's writers take turns in the order they asked, inside the process.
//!
//! SQLite allows one write transaction at a time; `BEGIN IMMEDIATE` takes that lock or, if
//! another connection holds it, retries in SQLite's busy handler: it sleeps 1, 2, 5, 10,
//! ... up to 100 ms between tries, and whoever tries just after the lock is released gets
//! it, not whoever has waited longest. A connection that has just committed and begins
//! again wins every time against waiters asleep in the handler, and the waiters sleep
//! through moments when the lock is free. The bench's purchase storm and settle runs
//! (32 clients, 4 connections) had a p99 near 1 s and requests past 2 s; back-to-back
//! writers on every connection starved one into the busy timeout's "database is locked"
//! (503 `database_busy`) within a second (`crates/kernel/tests/db.rs`).
//!
//! So the process's own writers queue on a fair (first-in, first-out) async lock before
//! `BEGIN IMMEDIATE`: the lock passes to the next in line the moment a transaction ends,
//! and a transaction waiting for its turn holds no thread. SQLite's busy handler stays for
//! the writers the queue cannot see: another process (a `feria` command) or another pool
//! on the same file.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::DbError;

/// The queue of one database file's writers; shared by every connection of its pool.
#[derive(Debug, Clone)]
pub(super) struct WriterQueue {
    lock: Arc<Mutex<()>>,
    /// The longest a transaction waits for its turn: SQLite's busy timeout, so a writer
    /// gives up no sooner and no later than it would have on the lock itself.
    patience: Duration,
}

impl WriterQueue {
    pub(super) fn new(patience: Duration) -> WriterQueue {
        WriterQueue {
            lock: Arc::new(Mutex::new(())),
            patience,
        }
    }

    pub(super) fn for_connection(&self) -> WriteTurn {
        WriteTurn {
            queue: self.clone(),
            held: None,
        }
    }
}

/// One connection's place in its [`WriterQueue`]: held from before its outermost
/// transaction begins until that transaction ends (or the connection is dropped).
#[derive(Debug)]
pub struct WriteTurn {
    queue: WriterQueue,
    held: Option<OwnedMutexGuard<()>>,
}

impl WriteTurn {
    /// Waits for the turn unless this connection already holds it (a nested transaction
    /// runs inside its outer one's turn). `Ok(true)` when this call took it: the caller
    /// ends the turn when its transaction ends.
    pub(super) async fn take(&mut self) -> Result<bool, DbError> {
        if self.held.is_some() {
            return Ok(false);
        }
        let waiting = self.queue.lock.clone().lock_owned();
        match tokio::time::timeout(self.queue.patience, waiting).await {
            Ok(guard) => {
                self.held = Some(guard);
                Ok(true)
            }
            // The same error as SQLite's own "database is locked" after the busy timeout.
            Err(_) => Err(DbError::Conflict(format!(
                "waited {} ms for another write transaction to finish",
                self.queue.patience.as_millis()
            ))),
        }
    }

    /// Passes the turn to the next writer in line.
    pub(super) fn end(&mut self) {
        self.held = None;
    }
}
