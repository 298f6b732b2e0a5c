//! Confirmation and entitlements: a quote's payment is verified on chain through
//! JSON-RPC, then granted as one entitlement per transaction hash (a unique constraint,
//! across every tenant), numbered per wallet: `ent:<chain_id>:<wallet>:<000001>`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::chain::{Chain, Onchain};
use crate::error::OnchainError;
use crate::evm::{self, Address};
use crate::offer;
use crate::quote::{self, Quote, QuoteId};
use crate::schema::onchain_entitlements;

/// An entitlement as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = onchain_entitlements)]
pub struct Entitlement {
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub entitlement_id: String,
    pub chain_id: i64,
    pub wallet: String,
    pub sequence: i64,
    pub offer_id: String,
    pub quote_id: QuoteId,
    pub workspace_id: Option<String>,
    pub tx_hash: String,
    pub policy_hash: String,
    pub membership: bool,
    pub transferable: bool,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// `pending` or `final` ([`Finality`]).
    pub finality: String,
    /// The block the payment was in when last checked.
    pub block_number: Option<i64>,
    pub block_hash: Option<String>,
    /// `operator` or `payment_reorged` ([`REORGED`]) when revoked.
    pub revoked_reason: Option<String>,
    pub finality_check_at: Option<Timestamp>,
    pub finality_lease_until: Option<Timestamp>,
    pub finality_lease_token: Option<String>,
}

/// The revocation reason of an entitlement whose payment a reorg removed or changed.
pub const REORGED: &str = "payment_reorged";
/// The revocation reason of an operator's revocation.
pub const BY_OPERATOR: &str = "operator";

/// Whether the payment can still be undone by a reorg (`pending`) or not (`final`: its
/// block is at or below the chain's `finalized` block, or `ONCHAIN_FINALITY_BLOCKS` deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Finality {
    Pending,
    Final,
}

impl Finality {
    pub fn as_str(self) -> &'static str {
        match self {
            Finality::Pending => "pending",
            Finality::Final => "final",
        }
    }

    pub fn parse(text: &str) -> Finality {
        if text == "final" {
            Finality::Final
        } else {
            Finality::Pending
        }
    }
}

/// `active`, `expired` (past `expires_at`) or `revoked` (by an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntitlementState {
    Active,
    Expired,
    Revoked,
}

/// An entitlement as the API shows it: the seed's fields, plus `chain_id`, `tx_hash`,
/// `expires_at` and `revoked_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntitlementObject {
    #[schema(example = "ent:8453:0x3ea6cbf98d23e2cf7b6f4f9bb1fb4f50b710f2d5:000001")]
    pub entitlement_id: String,
    pub offer_id: String,
    pub wallet_address: String,
    /// The workspace of a workspace-bound offer.
    pub workspace_id: Option<String>,
    pub state: EntitlementState,
    pub policy_hash: String,
    pub issued_at: Timestamp,
    pub chain_id: i64,
    pub tx_hash: String,
    /// `null`: does not expire.
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked: `operator`, or `payment_reorged` (a reorg removed or changed
    /// its payment before it was final; the quote may be paid again).
    pub revoked_reason: Option<String>,
    /// `pending` until the payment is final on chain, then `final`.
    pub finality: Finality,
}

impl Entitlement {
    pub fn state(&self, now: Timestamp) -> EntitlementState {
        if self.revoked_at.is_some() {
            EntitlementState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            EntitlementState::Expired
        } else {
            EntitlementState::Active
        }
    }

    pub fn to_object(&self, now: Timestamp) -> EntitlementObject {
        EntitlementObject {
            entitlement_id: self.entitlement_id.clone(),
            offer_id: self.offer_id.clone(),
            wallet_address: self.wallet.clone(),
            workspace_id: self.workspace_id.clone(),
            state: self.state(now),
            policy_hash: self.policy_hash.clone(),
            issued_at: self.issued_at,
            chain_id: self.chain_id,
            tx_hash: self.tx_hash.clone(),
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            revoked_reason: self.revoked_reason.clone(),
            finality: Finality::parse(&self.finality),
        }
    }

    /// Whether a reorg took its payment away.
    pub fn reorged(&self) -> bool {
        self.revoked_reason.as_deref() == Some(REORGED)
    }
}

/// A confirmation request.
#[derive(Debug, Clone, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    #[schema(example = "cq_01HZZXFQ27ZP6MP0V2R9M6V3KX")]
    pub quote_id: String,
    pub wallet: String,
    pub offer_id: String,
    /// 0x and 64 hex digits.
    pub tx_hash: String,
    #[schema(example = 8453)]
    pub chain_id: i64,
}

/// What a confirmation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The payment is verified: the entitlement (new, or the same one again on a replay).
    /// Boxed: far larger than the pending answer.
    Active(Box<Entitlement>),
    /// The transaction is valid so far but not yet deep enough.
    Pending {
        quote_id: QuoteId,
        tx_hash: String,
        /// Whether the transaction is in a block yet.
        mined: bool,
        confirmations: u64,
        required: u64,
    },
}

/// The 200 answer of a confirmation (the seed's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfirmedObject {
    /// `entitlement_active`.
    #[schema(example = "entitlement_active")]
    pub status: String,
    pub entitlement_id: String,
    pub offer_id: String,
    pub wallet: String,
    pub tx_hash: String,
    pub policy_hash: String,
    pub activated_at: Timestamp,
}

/// The 202 answer: come back after more blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingObject {
    /// `pending_confirmation`.
    #[schema(example = "pending_confirmation")]
    pub status: String,
    /// `insufficient_confirmations` (mined, not deep enough) or `tx_pending` (not mined).
    #[schema(example = "insufficient_confirmations")]
    pub code: String,
    #[schema(value_type = String)]
    pub quote_id: QuoteId,
    pub tx_hash: String,
    pub confirmations: u64,
    pub required: u64,
}

impl Confirmation {
    pub fn pending_object(
        quote_id: &QuoteId,
        tx_hash: &str,
        mined: bool,
        confirmations: u64,
        required: u64,
    ) -> PendingObject {
        PendingObject {
            status: "pending_confirmation".to_owned(),
            code: if mined {
                "insufficient_confirmations"
            } else {
                "tx_pending"
            }
            .to_owned(),
            quote_id: quote_id.clone(),
            tx_hash: tx_hash.to_owned(),
            confirmations,
            required,
        }
    }

    pub fn confirmed_object(entitlement: &Entitlement) -> ConfirmedObject {
        ConfirmedObject {
            status: "entitlement_active".to_owned(),
            entitlement_id: entitlement.entitlement_id.clone(),
            offer_id: entitlement.offer_id.clone(),
            wallet: entitlement.wallet.clone(),
            tx_hash: entitlement.tx_hash.clone(),
            policy_hash: entitlement.policy_hash.clone(),
            activated_at: entitlement.issued_at,
        }
    }
}

fn parse_tx_hash(value: &str) -> Result<String, OnchainError> {
    let digits = value.strip_prefix("0x").unwrap_or("");
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OnchainError::invalid(
            "tx_hash",
            "must be 0x followed by 64 hexadecimal digits",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

/// The answer when the hash or the quote already has an entitlement: the same one for
/// the same quote and hash (a replay), else a conflict. `None`: neither has one.
///
/// One statement reads both (across tenants on purpose: one payment grants one
/// entitlement, wherever it is), so a grant committed between two reads cannot make a
/// replay look like a conflict.
async fn existing(
    conn: &mut DbConn,
    quote: &Quote,
    tx_hash: &str,
) -> Result<Option<Entitlement>, OnchainError> {
    let found = with_conn!(conn, c => {
        onchain_entitlements::table
            .filter(
                onchain_entitlements::chain_id
                    .eq(quote.chain_id)
                    .and(onchain_entitlements::tx_hash.eq(tx_hash))
                    .or(onchain_entitlements::quote_id.eq(&quote.id)),
            )
            // A payment a reorg removed holds neither its hash nor its quote any more.
            .filter(
                onchain_entitlements::revoked_reason
                    .is_null()
                    .or(onchain_entitlements::revoked_reason.ne(REORGED)),
            )
            .select(Entitlement::as_select())
            .load::<Entitlement>(c)
            .await
    })?;
    if let Some(same) = found
        .iter()
        .find(|e| e.quote_id == quote.id && e.tx_hash == tx_hash && e.chain_id == quote.chain_id)
    {
        return Ok(Some(same.clone()));
    }
    if found
        .iter()
        .any(|e| e.tx_hash == tx_hash && e.chain_id == quote.chain_id)
    {
        return Err(OnchainError::TxAlreadyUsed);
    }
    if !found.is_empty() {
        return Err(OnchainError::QuoteAlreadyUsed);
    }
    Ok(None)
}

/// Verifies the payment of a quote on chain and grants its entitlement.
pub async fn confirm(
    conn: &mut DbConn,
    tenant: &Tenant,
    onchain: &Onchain,
    request: ConfirmRequest,
) -> Result<Confirmation, OnchainError> {
    let chain = onchain.chain(request.chain_id)?;
    let wallet = quote::parse_wallet(&request.wallet)?;
    let tx_hash = parse_tx_hash(&request.tx_hash)?;
    let quote_id: QuoteId = request
        .quote_id
        .parse()
        .map_err(|_| OnchainError::QuoteNotFound)?;
    let quote = quote::get(conn, tenant, &quote_id).await?;
    if quote.wallet != wallet.to_string() {
        return Err(OnchainError::QuoteMismatch("wallet"));
    }
    if quote.offer_id != request.offer_id {
        return Err(OnchainError::QuoteMismatch("offer"));
    }
    if quote.chain_id != request.chain_id {
        return Err(OnchainError::ChainMismatch(format!(
            "the quote is payable on chain {}, not {}",
            quote.chain_id, request.chain_id
        )));
    }
    if let Some(granted) = existing(conn, &quote, &tx_hash).await? {
        return Ok(Confirmation::Active(Box::new(granted)));
    }

    let verified = verify(chain, &quote, wallet, &tx_hash).await?;
    let required = chain.confirmations;
    let (confirmations, mined, block) = match verified {
        Verified::NotMined => (0, false, None),
        Verified::Mined {
            confirmations,
            block_number,
            block_hash,
        } => (confirmations, true, Some((block_number, block_hash))),
    };
    if confirmations < required {
        return Ok(Confirmation::Pending {
            quote_id: quote.id,
            tx_hash,
            mined,
            confirmations,
            required,
        });
    }
    grant(conn, tenant, &quote, &tx_hash, block)
        .await
        .map(|granted| Confirmation::Active(Box::new(granted)))
}

enum Verified {
    NotMined,
    Mined {
        confirmations: u64,
        block_number: u64,
        block_hash: String,
    },
}

/// Everything the chain must show for `tx_hash` to pay `quote`.
async fn verify(
    chain: &Chain,
    quote: &Quote,
    wallet: Address,
    tx_hash: &str,
) -> Result<Verified, OnchainError> {
    let rpc = &chain.rpc;
    let node_chain = rpc.chain_id().await?;
    if i64::try_from(node_chain).ok() != Some(chain.chain_id) {
        return Err(OnchainError::ChainMismatch(format!(
            "the node configured for chain {} serves chain {node_chain}",
            chain.chain_id
        )));
    }
    let tx = rpc
        .transaction(tx_hash)
        .await?
        .ok_or(OnchainError::TxNotFound)?;
    if tx.from != wallet {
        return Err(OnchainError::WalletMismatch(tx.from.to_string()));
    }
    if tx.to != Some(chain.token) {
        return Err(OnchainError::WrongRecipient(format!(
            "the transaction calls {}, not the token contract {}",
            tx.to
                .map(|a| a.to_string())
                .unwrap_or_else(|| "nothing".into()),
            chain.token
        )));
    }
    let amount: u128 = offer::parse_amount_atomic(&quote.amount_atomic)?;
    let call = evm::decode_transfer_call(&tx.input).ok_or_else(|| {
        OnchainError::CalldataMismatch("the transaction is not a token transfer".into())
    })?;
    if call.to != chain.treasury {
        return Err(OnchainError::WrongRecipient(format!(
            "the transfer pays {}, not the treasury {}",
            call.to, chain.treasury
        )));
    }
    if call.amount != Some(amount) {
        return Err(OnchainError::AmountMismatch(format!(
            "the transfer is for {} atomic units, the quote for {amount}",
            call.amount
                .map(|a| a.to_string())
                .unwrap_or_else(|| "more than 2^128".into())
        )));
    }
    if evm::to_hex(&tx.input) != quote.calldata {
        return Err(OnchainError::CalldataMismatch(
            "the transaction's calldata is not the quote's (it must end with the quote id)".into(),
        ));
    }
    if tx.block_number.is_none() {
        return Ok(Verified::NotMined);
    }
    let Some(receipt) = rpc.receipt(tx_hash).await? else {
        return Ok(Verified::NotMined);
    };
    if !receipt.succeeded {
        return Err(OnchainError::TxFailed);
    }
    // Status alone proves nothing (a call to an address with no code succeeds): the
    // token itself must log the transfer to the treasury.
    let transfers: Vec<evm::TransferEvent> = receipt
        .logs
        .iter()
        .filter_map(evm::decode_transfer_log)
        .filter(|event| event.token == chain.token && event.from == wallet)
        .collect();
    let Some(paid) = transfers.iter().find(|event| event.to == chain.treasury) else {
        return Err(OnchainError::WrongRecipient(
            "the token logged no transfer from the wallet to the treasury".into(),
        ));
    };
    if paid.value.is_none_or(|value| value < amount) {
        return Err(OnchainError::AmountMismatch(
            "the token logged less than the quoted amount to the treasury".into(),
        ));
    }
    let timestamp = rpc
        .block_timestamp(receipt.block_number)
        .await?
        .ok_or(OnchainError::TxNotFound)?;
    let mined_at = i64::try_from(timestamp).ok().and_then(Timestamp::from_unix);
    if mined_at.is_none_or(|at| at > quote.expires_at) {
        return Err(OnchainError::QuoteExpired);
    }
    let head = rpc.block_number().await?;
    let confirmations = head.saturating_sub(receipt.block_number).saturating_add(1);
    Ok(Verified::Mined {
        confirmations,
        block_number: receipt.block_number,
        block_hash: receipt.block_hash,
    })
}

/// Attempts at numbering an entitlement when concurrent grants for the same wallet
/// take the same sequence number (PostgreSQL; SQLite's write lock serialises them).
const GRANT_ATTEMPTS: usize = 8;

async fn grant(
    conn: &mut DbConn,
    tenant: &Tenant,
    quote: &Quote,
    tx_hash: &str,
    block: Option<(u64, String)>,
) -> Result<Entitlement, OnchainError> {
    let offer = offer::get(conn, tenant, &quote.offer_id).await?;
    let (block_number, block_hash) = match block {
        Some((number, hash)) => (i64::try_from(number).ok(), Some(hash)),
        None => (None, None),
    };
    let mut last = None;
    for _ in 0..GRANT_ATTEMPTS {
        let now = Timestamp::now();
        let attempt = conn
            .transaction(async |c| -> Result<Entitlement, OnchainError> {
                let highest: Option<i64> = with_conn!(c, c => {
                    onchain_entitlements::table
                        .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
                        .filter(onchain_entitlements::mode.eq(tenant.mode))
                        .filter(onchain_entitlements::chain_id.eq(quote.chain_id))
                        .filter(onchain_entitlements::wallet.eq(&quote.wallet))
                        .select(diesel::dsl::max(onchain_entitlements::sequence))
                        .first::<Option<i64>>(c)
                        .await
                })?;
                let sequence = highest.unwrap_or(0) + 1;
                let entitlement = Entitlement {
                    platform_id: tenant.platform_id.clone(),
                    mode: tenant.mode,
                    entitlement_id: format!(
                        "ent:{}:{}:{sequence:06}",
                        quote.chain_id, quote.wallet
                    ),
                    chain_id: quote.chain_id,
                    wallet: quote.wallet.clone(),
                    sequence,
                    offer_id: quote.offer_id.clone(),
                    quote_id: quote.id.clone(),
                    workspace_id: quote.workspace_id.clone(),
                    tx_hash: tx_hash.to_owned(),
                    policy_hash: quote.policy_hash.clone(),
                    membership: offer.membership,
                    transferable: offer.transferable,
                    issued_at: now,
                    expires_at: offer
                        .duration_days
                        .map(|days| now.add(time::Duration::days(days))),
                    revoked_at: None,
                    finality: Finality::Pending.as_str().to_owned(),
                    block_number,
                    block_hash: block_hash.clone(),
                    revoked_reason: None,
                    finality_check_at: Some(now),
                    finality_lease_until: None,
                    finality_lease_token: None,
                };
                with_conn!(c, c => {
                    diesel::insert_into(onchain_entitlements::table)
                        .values(&entitlement)
                        .execute(c)
                        .await
                })?;
                feria_events::record(
                    c,
                    tenant,
                    feria_events::EventType::EntitlementActivated,
                    &entitlement.to_object(now),
                )
                .await?;
                Ok(entitlement)
            })
            .await;
        match attempt {
            Ok(entitlement) => return Ok(entitlement),
            Err(OnchainError::Db(error))
                if error.is_unique_violation("tx_hash")
                    || error.is_unique_violation("quote_id") =>
            {
                // A concurrent confirmation granted it first: answer as a replay would.
                return match existing(conn, quote, tx_hash).await? {
                    Some(granted) => Ok(granted),
                    None => Err(OnchainError::Db(error)),
                };
            }
            Err(OnchainError::Db(error))
                if matches!(error, DbError::UniqueViolation { .. }) || error.is_retryable() =>
            {
                last = Some(error);
            }
            Err(other) => return Err(other),
        }
    }
    Err(OnchainError::Db(last.unwrap_or_else(|| {
        DbError::Conflict("could not number the entitlement".into())
    })))
}

/// Whether the wallet holds an active (not revoked, not expired) membership entitlement.
pub async fn has_active_membership(
    conn: &mut DbConn,
    tenant: &Tenant,
    wallet: &Address,
    now: Timestamp,
) -> Result<bool, OnchainError> {
    let count: i64 = with_conn!(conn, c => {
        onchain_entitlements::table
            .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
            .filter(onchain_entitlements::mode.eq(tenant.mode))
            .filter(onchain_entitlements::wallet.eq(wallet.to_string()))
            .filter(onchain_entitlements::membership.eq(true))
            .filter(onchain_entitlements::revoked_at.is_null())
            .filter(
                onchain_entitlements::expires_at
                    .is_null()
                    .or(onchain_entitlements::expires_at.gt(now)),
            )
            .count()
            .get_result(c)
            .await
    })?;
    Ok(count > 0)
}

/// The wallet's entitlements in this tenant and mode, oldest first.
pub async fn of_wallet(
    conn: &mut DbConn,
    tenant: &Tenant,
    wallet: &str,
) -> Result<Vec<Entitlement>, OnchainError> {
    let wallet = quote::parse_wallet(wallet)?;
    Ok(with_conn!(conn, c => {
        onchain_entitlements::table
            .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
            .filter(onchain_entitlements::mode.eq(tenant.mode))
            .filter(onchain_entitlements::wallet.eq(wallet.to_string()))
            .order((
                onchain_entitlements::issued_at.asc(),
                onchain_entitlements::chain_id.asc(),
                onchain_entitlements::sequence.asc(),
            ))
            .select(Entitlement::as_select())
            .load::<Entitlement>(c)
            .await
    })?)
}

/// One entitlement of the tenant.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    entitlement_id: &str,
) -> Result<Entitlement, OnchainError> {
    let found = with_conn!(conn, c => {
        onchain_entitlements::table
            .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
            .filter(onchain_entitlements::mode.eq(tenant.mode))
            .filter(onchain_entitlements::entitlement_id.eq(entitlement_id))
            .select(Entitlement::as_select())
            .first::<Entitlement>(c)
            .await
            .optional()
    })?;
    found.ok_or(OnchainError::EntitlementNotFound)
}

/// Revokes an entitlement (operators); revoking again changes nothing.
pub async fn revoke(
    conn: &mut DbConn,
    tenant: &Tenant,
    entitlement_id: &str,
) -> Result<Entitlement, OnchainError> {
    let now = Timestamp::now();
    // The revocation and its `entitlement.revoked` event commit together; revoking an
    // already revoked entitlement changes nothing and records nothing.
    conn.transaction(async |conn| -> Result<Entitlement, OnchainError> {
        let revoked = with_conn!(conn, c => {
            diesel::update(
                onchain_entitlements::table
                    .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
                    .filter(onchain_entitlements::mode.eq(tenant.mode))
                    .filter(onchain_entitlements::entitlement_id.eq(entitlement_id))
                    .filter(onchain_entitlements::revoked_at.is_null()),
            )
            .set((
                onchain_entitlements::revoked_at.eq(now),
                onchain_entitlements::revoked_reason.eq(BY_OPERATOR),
            ))
            .execute(c)
            .await
        })?;
        let found = with_conn!(conn, c => {
            onchain_entitlements::table
                .filter(onchain_entitlements::platform_id.eq(&tenant.platform_id))
                .filter(onchain_entitlements::mode.eq(tenant.mode))
                .filter(onchain_entitlements::entitlement_id.eq(entitlement_id))
                .select(Entitlement::as_select())
                .first::<Entitlement>(c)
                .await
                .optional()
        })?;
        let entitlement = found.ok_or(OnchainError::EntitlementNotFound)?;
        if revoked > 0 {
            feria_events::record(
                conn,
                tenant,
                feria_events::EventType::EntitlementRevoked,
                &entitlement.to_object(now),
            )
            .await?;
        }
        Ok(entitlement)
    })
    .await
}
