//! The finality watcher: re-checks the payment of every entitlement that is not yet
//! final, until it is.
//!
//! A payment is final when its block is at or below the chain's `finalized` block, where
//! the node serves that tag, else when it is `finality_blocks` deep
//! (`ONCHAIN_FINALITY_BLOCKS`, itself included). Until then each round asks the node for
//! the transaction's receipt again: gone, failed, or in another block than the one it was
//! granted on (a reorg), the entitlement is revoked with reason `payment_reorged`, an
//! `entitlement.revoked` event is recorded with it, and the quote may be paid (and
//! confirmed) again: the partial unique indexes on hash and quote skip reorged rows.
//!
//! Several servers may run the watcher on one database: each round leases the rows it
//! checks (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's `BEGIN IMMEDIATE` serialises the
//! claim), and writes its verdict only while it holds the lease, so each check, and each
//! revocation with its event, happens once. See docs/ONCHAIN.md, "Finality".

use std::collections::HashMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{Db, DbConn, DbError, Tenant, Timestamp, with_conn};
use serde::Serialize;

use crate::chain::{Chain, Onchain};
use crate::entitlement::{Entitlement, Finality, REORGED};
use crate::error::OnchainError;
use crate::rpc::RpcError;
use crate::schema::onchain_entitlements;

/// Rows claimed per round.
const BATCH: i64 = 100;
/// How long a claim lasts: longer than a round's RPC calls (each bounded by the client's
/// deadline and retries); a crashed server's claims run out after it.
const LEASE: Duration = Duration::from_secs(120);

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FinalityReport {
    /// Entitlements whose payment was looked at.
    pub checked: u64,
    /// ... found final.
    pub finalized: u64,
    /// ... found gone or changed: revoked `payment_reorged`.
    pub reorged: u64,
    /// ... not final yet: looked at again next round.
    pub pending: u64,
    /// ... not looked at (node unreachable or chain not configured): released for later.
    pub deferred: u64,
}

/// What the chain says of one payment.
enum Verdict {
    /// Still there, in the block it was granted on (or, for a row granted before blocks
    /// were recorded, the block it is in now).
    Seen {
        finality: Finality,
        block_number: u64,
        block_hash: String,
    },
    Reorged(&'static str),
}

fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Leases the due entitlements whose payment is not final.
async fn claim(db: &Db, now: Timestamp, token: &str) -> Result<Vec<Entitlement>, DbError> {
    let mut conn = db.conn().await?;
    let lease_until = now.add(span(LEASE));
    conn.transaction(async |c| -> Result<Vec<Entitlement>, DbError> {
        // The due rows (a macro: the selection's type is per backend).
        macro_rules! due {
            () => {
                onchain_entitlements::table
                    .filter(onchain_entitlements::finality.eq(Finality::Pending.as_str()))
                    .filter(
                        onchain_entitlements::revoked_reason
                            .is_null()
                            .or(onchain_entitlements::revoked_reason.ne(REORGED)),
                    )
                    .filter(
                        onchain_entitlements::finality_check_at
                            .is_null()
                            .or(onchain_entitlements::finality_check_at.le(now)),
                    )
                    .filter(
                        onchain_entitlements::finality_lease_until
                            .is_null()
                            .or(onchain_entitlements::finality_lease_until.lt(now)),
                    )
                    .order(onchain_entitlements::finality_check_at.asc())
                    .limit(BATCH)
                    .select(Entitlement::as_select())
            };
        }
        // Backend-specific: row locking. SQLite's BEGIN IMMEDIATE already excludes other
        // writers; PostgreSQL skips rows another server is claiming.
        let rows: Vec<Entitlement> = with_conn!(c,
            sqlite: c => due!().load(c).await,
            postgres: c => due!().for_update().skip_locked().load(c).await,
        )?;
        for row in &rows {
            with_conn!(c, c => {
                diesel::update(
                    onchain_entitlements::table
                        .filter(onchain_entitlements::platform_id.eq(&row.platform_id))
                        .filter(onchain_entitlements::mode.eq(row.mode))
                        .filter(onchain_entitlements::entitlement_id.eq(&row.entitlement_id)),
                )
                .set((
                    onchain_entitlements::finality_lease_until.eq(Some(lease_until)),
                    onchain_entitlements::finality_lease_token.eq(Some(token)),
                ))
                .execute(c)
                .await
            })?;
        }
        Ok(rows)
    })
    .await
}

/// The chain's view of one payment. `finalized`: the chain's `finalized` block, if the
/// node serves it; `head`: its latest block.
async fn judge(
    chain: &Chain,
    entitlement: &Entitlement,
    head: u64,
    finalized: Option<u64>,
) -> Result<Verdict, RpcError> {
    let Some(receipt) = chain.rpc.receipt(&entitlement.tx_hash).await? else {
        return Ok(Verdict::Reorged(
            "the payment's transaction is no longer on chain",
        ));
    };
    if !receipt.succeeded {
        return Ok(Verdict::Reorged("the payment's transaction now reverts"));
    }
    if entitlement
        .block_hash
        .as_deref()
        .is_some_and(|granted| granted != receipt.block_hash)
    {
        return Ok(Verdict::Reorged(
            "the payment's transaction is now in another block",
        ));
    }
    let is_final = match finalized {
        Some(finalized) => receipt.block_number <= finalized,
        None => {
            head.saturating_sub(receipt.block_number).saturating_add(1) >= chain.finality_blocks
        }
    };
    Ok(Verdict::Seen {
        finality: if is_final {
            Finality::Final
        } else {
            Finality::Pending
        },
        block_number: receipt.block_number,
        block_hash: receipt.block_hash,
    })
}

/// The row of `$e`, as long as the lease `$token` holds it.
macro_rules! this_row {
    ($e:expr, $token:expr) => {
        onchain_entitlements::table
            .filter(onchain_entitlements::platform_id.eq(&$e.platform_id))
            .filter(onchain_entitlements::mode.eq($e.mode))
            .filter(onchain_entitlements::entitlement_id.eq(&$e.entitlement_id))
            .filter(onchain_entitlements::finality_lease_token.eq($token))
    };
}

/// Writes a verdict, if this round still holds the row's lease.
async fn record(
    conn: &mut DbConn,
    entitlement: &Entitlement,
    token: &str,
    verdict: Option<Verdict>,
    next_check: Timestamp,
) -> Result<(), OnchainError> {
    let now = Timestamp::now();
    match verdict {
        None => {
            with_conn!(conn, c => {
                diesel::update(this_row!(entitlement, token))
                    .set((
                        onchain_entitlements::finality_lease_until.eq(None::<Timestamp>),
                        onchain_entitlements::finality_lease_token.eq(None::<String>),
                        onchain_entitlements::finality_check_at.eq(Some(next_check)),
                    ))
                    .execute(c)
                    .await
            })?;
        }
        Some(Verdict::Seen {
            finality,
            block_number,
            block_hash,
        }) => {
            with_conn!(conn, c => {
                diesel::update(this_row!(entitlement, token))
                    .set((
                        onchain_entitlements::finality.eq(finality.as_str()),
                        onchain_entitlements::block_number.eq(i64::try_from(block_number).ok()),
                        onchain_entitlements::block_hash.eq(Some(&block_hash)),
                        onchain_entitlements::finality_lease_until.eq(None::<Timestamp>),
                        onchain_entitlements::finality_lease_token.eq(None::<String>),
                        onchain_entitlements::finality_check_at.eq(Some(next_check)),
                    ))
                    .execute(c)
                    .await
            })?;
        }
        Some(Verdict::Reorged(why)) => {
            let tenant = Tenant::new(entitlement.platform_id.clone(), entitlement.mode);
            let revoked_at = entitlement.revoked_at.unwrap_or(now);
            conn.transaction(async |c| -> Result<(), OnchainError> {
                let changed = with_conn!(c, c => {
                    diesel::update(this_row!(entitlement, token))
                        .set((
                            onchain_entitlements::revoked_at.eq(Some(revoked_at)),
                            onchain_entitlements::revoked_reason.eq(Some(REORGED)),
                            onchain_entitlements::finality_lease_until.eq(None::<Timestamp>),
                            onchain_entitlements::finality_lease_token.eq(None::<String>),
                        ))
                        .execute(c)
                        .await
                })?;
                // Revoked already (by an operator): the event was recorded then; the row
                // now frees its hash and quote all the same.
                if changed > 0 && entitlement.revoked_at.is_none() {
                    let mut revoked = entitlement.clone();
                    revoked.revoked_at = Some(revoked_at);
                    revoked.revoked_reason = Some(REORGED.to_owned());
                    feria_events::record(
                        c,
                        &tenant,
                        feria_events::EventType::EntitlementRevoked,
                        &revoked.to_object(now),
                    )
                    .await?;
                }
                Ok(())
            })
            .await?;
            tracing::warn!(
                entitlement = %entitlement.entitlement_id,
                platform = %entitlement.platform_id,
                tx_hash = %entitlement.tx_hash,
                reason = why,
                "payment reorged: entitlement revoked"
            );
        }
    }
    Ok(())
}

/// One round: claims the due entitlements not yet final, asks each one's chain about its
/// payment, records the verdicts. `every`: when a payment still pending is looked at next.
pub async fn run_round(
    db: &Db,
    onchain: &Onchain,
    every: Duration,
) -> Result<FinalityReport, OnchainError> {
    let now = Timestamp::now();
    let token = feria_kernel::secret::random_token("lease_");
    let claimed = claim(db, now, &token).await?;
    let mut report = FinalityReport::default();
    if claimed.is_empty() {
        return Ok(report);
    }
    let next_check = now.add(span(every));
    // The chain's head and finalized block, once per chain and round.
    let mut tips: HashMap<i64, Result<(u64, Option<u64>), RpcError>> = HashMap::new();
    let mut conn = db.conn().await?;
    for entitlement in &claimed {
        let verdict = match onchain.chain(entitlement.chain_id) {
            Err(_) => None,
            Ok(chain) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = tips.entry(chain.chain_id)
                {
                    slot.insert(
                        async {
                            let finalized = chain.rpc.finalized_block().await?;
                            let head = chain.rpc.block_number().await?;
                            Ok((head, finalized))
                        }
                        .await,
                    );
                }
                match tips.get(&chain.chain_id) {
                    Some(Ok((head, finalized))) => {
                        judge(chain, entitlement, *head, *finalized).await.ok()
                    }
                    _ => None,
                }
            }
        };
        match &verdict {
            None => report.deferred += 1,
            Some(Verdict::Seen {
                finality: Finality::Final,
                ..
            }) => report.finalized += 1,
            Some(Verdict::Seen { .. }) => report.pending += 1,
            Some(Verdict::Reorged(_)) => report.reorged += 1,
        }
        if verdict.is_some() {
            report.checked += 1;
        }
        record(&mut conn, entitlement, &token, verdict, next_check).await?;
    }
    Ok(report)
}

/// Runs [`run_round`] every `every` for as long as the task lives.
pub async fn watch(db: Db, onchain: Onchain, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match run_round(&db, &onchain, every).await {
            Ok(report) if report.reorged > 0 => tracing::warn!(?report, "finality round"),
            Ok(report) if report.checked > 0 => tracing::debug!(?report, "finality round"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "finality round failed; retrying next round"),
        }
    }
}
