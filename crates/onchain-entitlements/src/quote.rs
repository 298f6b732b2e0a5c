//! Checkout quotes: the exact transaction a wallet must send to buy an offer, valid for a
//! while. The calldata is the token's `transfer(treasury, amount_atomic)` followed by the
//! quote id's ASCII bytes, so a transaction matches exactly one quote.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::chain::Onchain;
use crate::entitlement;
use crate::error::OnchainError;
use crate::evm::{self, Address};
use crate::offer;
use crate::schema::onchain_quotes;

feria_kernel::define_id!(
    /// A checkout quote.
    QuoteId,
    "cq"
);

/// A quote as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = onchain_quotes)]
pub struct Quote {
    pub id: QuoteId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub offer_id: String,
    pub wallet: String,
    pub workspace_id: Option<String>,
    pub chain_id: i64,
    pub currency: String,
    pub amount_atomic: String,
    pub decimals: i32,
    pub token_address: String,
    pub treasury_address: String,
    pub calldata: String,
    pub policy_hash: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// A checkout request.
#[derive(Debug, Clone, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The paying wallet: 0x and 40 hex digits; mixed case must pass its EIP-55 checksum.
    #[schema(example = "0x3ea6cbf98d23e2cf7b6f4f9bb1fb4f50b710f2d5")]
    pub wallet: String,
    #[schema(example = "edut.crm.pro.annual")]
    pub offer_id: String,
    /// Required for workspace-bound offers.
    #[serde(default)]
    #[schema(example = "workspace.work.acme")]
    pub workspace_id: Option<String>,
}

/// The transaction to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteTx {
    /// The token contract.
    pub to: String,
    /// `transfer(treasury, amount_atomic)` calldata followed by the quote id's bytes.
    pub data: String,
    /// Always `0x0`: the payment is in the token, not in ether.
    #[schema(example = "0x0")]
    pub value: String,
}

/// A quote as the API shows it (the seed's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteObject {
    #[schema(value_type = String, example = "cq_01HZZXFQ27ZP6MP0V2R9M6V3KX")]
    pub quote_id: QuoteId,
    pub wallet: String,
    pub offer_id: String,
    #[schema(example = "USDC")]
    pub currency: String,
    /// `amount_atomic` in major units, exactly (`199.00`).
    #[schema(example = "199.00")]
    pub amount: String,
    #[schema(example = "199000000")]
    pub amount_atomic: String,
    #[schema(example = 6)]
    pub decimals: i32,
    /// SHA-256 (hex) of the offer's policies as canonical JSON (docs/ONCHAIN.md).
    pub policy_hash: String,
    pub expires_at: Timestamp,
    pub tx: QuoteTx,
}

impl Quote {
    pub fn tenant(&self) -> Tenant {
        Tenant::new(self.platform_id.clone(), self.mode)
    }

    pub fn to_object(&self) -> QuoteObject {
        let amount = self
            .amount_atomic
            .parse::<u128>()
            .map(|atomic| evm::format_amount(atomic, self.decimals.unsigned_abs()))
            .unwrap_or_else(|_| self.amount_atomic.clone());
        QuoteObject {
            quote_id: self.id.clone(),
            wallet: self.wallet.clone(),
            offer_id: self.offer_id.clone(),
            currency: self.currency.clone(),
            amount,
            amount_atomic: self.amount_atomic.clone(),
            decimals: self.decimals,
            policy_hash: self.policy_hash.clone(),
            expires_at: self.expires_at,
            tx: QuoteTx {
                to: self.token_address.clone(),
                data: self.calldata.clone(),
                value: "0x0".to_owned(),
            },
        }
    }
}

/// Parses a wallet address, lower-cased.
pub fn parse_wallet(value: &str) -> Result<Address, OnchainError> {
    Address::parse(value).map_err(OnchainError::address("wallet"))
}

/// Issues a quote for `wallet` to buy `offer_id`.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    onchain: &Onchain,
    request: QuoteRequest,
) -> Result<Quote, OnchainError> {
    let wallet = parse_wallet(&request.wallet)?;
    let offer = offer::get_active(conn, tenant, &request.offer_id).await?;
    let workspace_id = request
        .workspace_id
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty());
    if offer.workspace_bound && workspace_id.is_none() {
        return Err(OnchainError::invalid(
            "workspace_id",
            "is required: the offer is bound to a workspace",
        ));
    }
    if let Some(workspace) = &workspace_id
        && workspace.chars().count() > 200
    {
        return Err(OnchainError::invalid(
            "workspace_id",
            "must be at most 200 characters",
        ));
    }
    let chain = onchain.chain(offer.chain_id)?;
    let now = Timestamp::now();
    if offer.member_only && !entitlement::has_active_membership(conn, tenant, &wallet, now).await? {
        return Err(OnchainError::MembershipRequired);
    }
    let amount = offer.amount()?;
    let id = QuoteId::new();
    let calldata = evm::transfer_calldata(chain.treasury, amount, id.as_str().as_bytes());
    let ttl = time::Duration::try_from(onchain.quote_ttl).unwrap_or(time::Duration::minutes(15));
    let quote = Quote {
        id,
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        offer_id: offer.offer_id.clone(),
        wallet: wallet.to_string(),
        workspace_id: if offer.workspace_bound {
            workspace_id
        } else {
            None
        },
        chain_id: offer.chain_id,
        currency: offer.currency.clone(),
        amount_atomic: offer.amount_atomic.clone(),
        decimals: offer.decimals,
        token_address: chain.token.to_string(),
        treasury_address: chain.treasury.to_string(),
        calldata: evm::to_hex(&calldata),
        policy_hash: offer.policies().hash(),
        expires_at: now.add(ttl),
        created_at: now,
    };
    with_conn!(conn, c => {
        diesel::insert_into(onchain_quotes::table)
            .values(&quote)
            .execute(c)
            .await
    })?;
    Ok(quote)
}

/// The quote; `QuoteNotFound` when absent in this tenant and mode.
pub async fn get(conn: &mut DbConn, tenant: &Tenant, id: &QuoteId) -> Result<Quote, OnchainError> {
    let quote = with_conn!(conn, c => {
        onchain_quotes::table
            .find(id)
            .filter(onchain_quotes::platform_id.eq(&tenant.platform_id))
            .filter(onchain_quotes::mode.eq(tenant.mode))
            .select(Quote::as_select())
            .first::<Quote>(c)
            .await
            .optional()
    })?;
    quote.ok_or(OnchainError::QuoteNotFound)
}
