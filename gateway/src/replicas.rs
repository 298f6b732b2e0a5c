//! Read-only routes on PostgreSQL read replicas (docs/DEPLOYMENT.md, "Read replicas").
//!
//! A handler that only reads runs its domain call through [`Reads::run`] instead of
//! `db.conn()`: the kernel picks a replica that is fresh enough and has replayed the
//! caller's last write, or the primary ([`feria_kernel::Db::read`]). After every write
//! request with a valid credential, [`remember_writes`] records the primary's WAL insert
//! position for that client in the [`WritePositions`] store, so the client reads its own
//! writes. Without replicas both cost nothing: `run` is `db.conn()` and no position is
//! asked for.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use feria_auth::{Actor, Principal};
use feria_kernel::db::{ReplicaFallback, WritePositions};
use feria_kernel::{Db, DbConn};

use crate::error::HttpError;
use crate::metrics::Metrics;

impl ReplicaFallback for HttpError {
    fn falls_back(&self) -> bool {
        self.error.falls_back()
    }
    fn retries_on_primary(&self) -> bool {
        self.error.retries_on_primary()
    }
}

/// The database for read-only handlers, shared by every worker.
pub struct Reads {
    db: Db,
    positions: Arc<dyn WritePositions>,
    metrics: web::Data<Metrics>,
}

impl Reads {
    pub fn new(db: Db, positions: Arc<dyn WritePositions>, metrics: web::Data<Metrics>) -> Reads {
        Reads {
            db,
            positions,
            metrics,
        }
    }

    /// Runs the read-only `f` for `caller` on a replica that has replayed the caller's last
    /// write, or on the primary; again on the primary if the replica fails under it. `f`
    /// must not write (a replica refuses it).
    pub async fn run<T>(
        &self,
        caller: &Principal,
        f: impl AsyncFnMut(&mut DbConn) -> Result<T, HttpError>,
    ) -> Result<T, HttpError> {
        let after = if self.db.has_replicas() {
            self.positions.get(&client_key(caller)).await
        } else {
            None
        };
        let (outcome, source) = self.db.read(after, f).await;
        self.metrics.read_served(source);
        outcome
    }

    /// The store of the clients' write positions.
    pub fn positions(&self) -> &Arc<dyn WritePositions> {
        &self.positions
    }
}

/// The key a client's write position is kept under: an API key's id, or a session's
/// platform, mode and user (every session of the user reads the user's writes). Never a
/// secret: a shared store may be read by its operators.
pub fn client_key(principal: &Principal) -> String {
    match &principal.actor {
        Actor::ApiKey { key_id } => format!("key:{key_id}"),
        Actor::User { user_id, .. } => format!(
            "user:{}:{}:{}",
            principal.tenant.platform_id,
            principal.tenant.mode.as_str(),
            user_id
        ),
    }
}

/// Middleware: after a request that may have written (any method but GET, HEAD and
/// OPTIONS; whatever its status, since a refusal may come after a commit) by a client
/// with a valid credential, records the primary's WAL insert position for that client.
/// One query on the primary per such request, and only with replicas configured.
pub async fn remember_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let may_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let reads = req
        .app_data::<web::Data<Reads>>()
        .filter(|reads| may_write && reads.db.has_replicas())
        .cloned();
    let response = next.call(req).await?;
    if let Some(reads) = reads
        && let Some(principal) = crate::caller::authenticate(response.request()).await
    {
        match reads.db.write_position().await {
            Ok(Some(position)) => {
                reads
                    .positions
                    .record(&client_key(&principal), position)
                    .await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                %error,
                "cannot read the primary's WAL position after a write; this client's next \
                 reads may not see it if they go to a replica"
            ),
        }
    }
    Ok(response)
}
