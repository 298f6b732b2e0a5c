//! Caches that stay true when several Feria nodes serve one database.
//!
//! A node keeps some answers in memory (authenticated credentials, the platforms' CORS
//! origins). Each such cache stamps its entries with the [`epoch`] of the [`Topic`]s they
//! depend on and stops trusting an entry once one of them moves. A change moves them in
//! two ways:
//!
//! - on the node that made it, [`changed`] once its transaction has committed (at once);
//! - on every node, through PostgreSQL's `NOTIFY`: [`announce`] queues a notification on
//!   the channel [`CHANNEL`] inside the change's transaction, so it is delivered if and
//!   only if the change commits, and [`listen`] (one task per node, its own connection)
//!   moves the same epochs when it arrives — a few milliseconds after the commit.
//!
//! A node that is not listening cannot know what others changed: while its listener is
//! connecting or has lost its connection, [`trusted`] is false and caches answer nothing
//! from memory (every request reads the database), and when it is back every epoch moves,
//! since notifications sent meanwhile are lost. A process that never starts a listener
//! (SQLite, which one node serves; a crate embedded in a single service) trusts its own
//! changes alone, as before.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::{Db, DbConn, DbError};

/// The PostgreSQL notification channel of cache changes.
pub const CHANNEL: &str = "feria_coherence";

/// The listener connection's `application_name` (how an operator finds it in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "feria-coherence";

/// How many epochs access-token rotations are spread over: a rotation untrusts 1/64 of
/// the sessions cached, not all of them.
pub const ACCESS_SHARDS: usize = 64;

/// What a cached answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Credentials that may end many at once: keys rolled, session families revoked.
    Credentials,
    /// One shard of access tokens, moved when one of them was rotated away
    /// ([`Topic::access_shard`]).
    AccessShard(u8),
    /// What authentication reads of a user: the role, a scheduled deletion.
    Authorization,
    /// A platform's settings that nodes keep (its CORS origins).
    Platforms,
}

const NAMED: usize = 3;
const EPOCHS: usize = NAMED + ACCESS_SHARDS;

static EPOCH: [AtomicU64; EPOCHS] = [const { AtomicU64::new(0) }; EPOCHS];

impl Topic {
    /// The shard of the access token whose digest is `digest`.
    pub fn access_shard(digest: &str) -> Topic {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        digest.hash(&mut hasher);
        // Below ACCESS_SHARDS (64), so it fits a u8.
        Topic::AccessShard((hasher.finish() % ACCESS_SHARDS as u64) as u8)
    }

    fn index(self) -> usize {
        match self {
            Topic::Credentials => 0,
            Topic::Authorization => 1,
            Topic::Platforms => 2,
            Topic::AccessShard(shard) => NAMED + usize::from(shard) % ACCESS_SHARDS,
        }
    }

    /// The notification's payload.
    fn payload(self) -> String {
        match self {
            Topic::Credentials => "credentials".into(),
            Topic::Authorization => "authorization".into(),
            Topic::Platforms => "platforms".into(),
            Topic::AccessShard(shard) => format!("access:{shard}"),
        }
    }

    /// The topic a payload names; `None` for one this version does not know (the
    /// listener then moves every epoch: a newer node's change is still seen).
    fn from_payload(payload: &str) -> Option<Topic> {
        match payload {
            "credentials" => Some(Topic::Credentials),
            "authorization" => Some(Topic::Authorization),
            "platforms" => Some(Topic::Platforms),
            other => other
                .strip_prefix("access:")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| usize::from(*n) < ACCESS_SHARDS)
                .map(Topic::AccessShard),
        }
    }
}

/// The topic's epoch now: read it *before* looking up what is cached under it.
pub fn epoch(topic: Topic) -> u64 {
    EPOCH[topic.index()].load(Ordering::Acquire)
}

/// Moves the topic's epoch in this process: call once the change has committed.
pub fn changed(topic: Topic) {
    EPOCH[topic.index()].fetch_add(1, Ordering::AcqRel);
    if topic == Topic::Platforms {
        PLATFORMS_WATCH.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn changed_everything() {
    for epoch in &EPOCH {
        epoch.fetch_add(1, Ordering::AcqRel);
    }
    PLATFORMS_WATCH.send_modify(|n| *n = n.wrapping_add(1));
}

/// Wakes the tasks that reload platform settings ([`platform_changes`]).
static PLATFORMS_WATCH: LazyLock<tokio::sync::watch::Sender<u64>> =
    LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// A receiver that sees every change of [`Topic::Platforms`], on this node or another:
/// a task keeping a snapshot of platform settings reloads when it fires.
pub fn platform_changes() -> tokio::sync::watch::Receiver<u64> {
    PLATFORMS_WATCH.subscribe()
}

/// Tells the other nodes of a change, from inside its transaction: PostgreSQL delivers
/// the notification when (and only if) the transaction commits. Nothing on SQLite.
/// The node making the change still calls [`changed`] after the commit.
pub async fn announce(conn: &mut DbConn, topic: Topic) -> Result<(), DbError> {
    // Imported here only: its `load` would shadow the atomics' elsewhere in this module.
    use diesel_async::RunQueryDsl;
    if let DbConn::Postgres(c) = conn {
        let c: &mut crate::db::PgConn = c;
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(topic.payload())
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Whether this node's listener is missing, live or down.
const SINGLE: u8 = 0;
const LISTENING: u8 = 1;
const DEAF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(SINGLE);

/// Whether caches may answer from memory: always in a process that does not listen
/// (it trusts its own changes), and only while the listener is connected in one that
/// does.
pub fn trusted() -> bool {
    STATE.load(Ordering::Acquire) != DEAF
}

/// Whether this process listens and its listener is connected (for `/readyz` and
/// metrics).
pub fn listening() -> bool {
    STATE.load(Ordering::Acquire) == LISTENING
}

/// How often the listener checks its connection with a query: a connection cut without
/// a word (a dropped network path) is noticed within this and the query's timeout.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// How long a keep-alive query or a connection attempt may take.
const DEADLINE: Duration = Duration::from_secs(3);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens for other nodes' changes for as long as the returned task runs (PostgreSQL;
/// `None` on SQLite, which one node serves). Until its first connection, and whenever it
/// has lost it, caches answer nothing from memory ([`trusted`]).
pub fn listen(db: &Db) -> Option<tokio::task::JoinHandle<()>> {
    let connector = db.pg_connector()?;
    STATE.store(DEAF, Ordering::Release);
    Some(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match listen_once(&connector).await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(error) => {
                    tracing::warn!(%error, "cache-change listener lost; caches read the database until it is back");
                }
            }
            STATE.store(DEAF, Ordering::Release);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }))
}

/// One connection's life: LISTEN, then apply notifications until it fails.
async fn listen_once(connector: &crate::db::postgres::PgConnector) -> Result<(), String> {
    use futures_util::StreamExt;

    let (client, mut connection) =
        tokio::time::timeout(DEADLINE, connector.connect_raw(APPLICATION_NAME))
            .await
            .map_err(|_| "connecting timed out".to_string())??;
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here; notifications come out of it as messages.
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            // A broken connection answers every later poll with its error at once: stop
            // at the first, or this loop would spin without ever yielding.
            let failed = message.is_err();
            if sender.send(message).is_err() || failed {
                break;
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    tokio::time::timeout(DEADLINE, client.batch_execute(&format!("LISTEN {CHANNEL}")))
        .await
        .map_err(|_| "LISTEN timed out".to_string())?
        .map_err(|e| e.to_string())?;
    // Listening from here on; whatever changed while we were not is unknown: forget it.
    changed_everything();
    STATE.store(LISTENING, Ordering::Release);
    tracing::info!(
        channel = CHANNEL,
        "listening for other nodes' cache changes"
    );
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.tick().await;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                    match Topic::from_payload(note.payload()) {
                        Some(topic) => changed(topic),
                        None => changed_everything(),
                    }
                }
                Some(Ok(_notice)) => {}
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("connection closed".into()),
            },
            _ = keepalive.tick() => {
                tokio::time::timeout(DEADLINE, client.simple_query("SELECT 1"))
                    .await
                    .map_err(|_| "keep-alive query timed out".to_string())?
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_topic_and_nothing_else() {
        for topic in [
            Topic::Credentials,
            Topic::Authorization,
            Topic::Platforms,
            Topic::AccessShard(0),
            Topic::AccessShard(63),
        ] {
            assert_eq!(Topic::from_payload(&topic.payload()), Some(topic));
        }
        assert_eq!(Topic::from_payload("access:64"), None);
        assert_eq!(Topic::from_payload("access:x"), None);
        assert_eq!(Topic::from_payload("billing"), None);
    }

    #[test]
    fn a_change_moves_its_topic_only() {
        let shard = Topic::access_shard("some digest");
        let before = [
            epoch(Topic::Credentials),
            epoch(shard),
            epoch(Topic::Platforms),
        ];
        changed(shard);
        assert_eq!(epoch(Topic::Credentials), before[0]);
        assert_eq!(epoch(shard), before[1] + 1);
        assert_eq!(epoch(Topic::Platforms), before[2]);
    }
}
