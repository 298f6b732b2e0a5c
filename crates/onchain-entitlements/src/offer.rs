//! Offers: what a wallet can buy, its price in a token's atomic units on one chain, and
//! its policies. Operators create, replace and retire them; everyone of the platform
//! lists the active ones.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, with_conn};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::OnchainError;
use crate::schema::onchain_offers;

/// Largest price in atomic units (10^30): far above any real price, far inside `u128`.
const MAX_AMOUNT_ATOMIC: u128 = 1_000_000_000_000_000_000_000_000_000_000;
const MAX_DECIMALS: i32 = 30;
const MAX_TEXT: usize = 200;
const MAX_SUMMARY: usize = 2000;

/// An offer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = onchain_offers)]
pub struct Offer {
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub offer_id: String,
    pub issuer_id: String,
    pub title: String,
    pub summary: String,
    pub status: String,
    pub currency: String,
    pub amount_atomic: String,
    pub decimals: i32,
    pub chain_id: i64,
    pub member_only: bool,
    pub workspace_bound: bool,
    pub transferable: bool,
    pub membership: bool,
    pub duration_days: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_RETIRED: &str = "retired";

/// An offer's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// The token's symbol (`USDC`).
    #[schema(example = "USDC")]
    pub currency: String,
    /// The price in the token's atomic units, as a decimal string.
    #[schema(example = "199000000")]
    pub amount_atomic: String,
    /// The token's decimals (USDC: 6).
    #[schema(example = 6)]
    pub decimals: i32,
    /// The EVM chain id the offer is paid on.
    #[schema(example = 8453)]
    pub chain_id: i64,
}

/// What an entitlement of the offer allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// Checkout needs an active membership entitlement of the wallet.
    pub member_only: bool,
    /// Checkout names a `workspace_id`; the entitlement is for that workspace.
    pub workspace_bound: bool,
    /// Whether the entitlement may move to another wallet (no transfer exists yet:
    /// non-transferable entitlements have no way to move).
    pub transferable: bool,
}

impl Policies {
    /// The documented canonical JSON: keys in alphabetical order, no white space,
    /// `{"member_only":true,"transferable":false,"workspace_bound":true}`.
    pub fn canonical_json(&self) -> String {
        format!(
            r#"{{"member_only":{},"transferable":{},"workspace_bound":{}}}"#,
            self.member_only, self.transferable, self.workspace_bound
        )
    }

    /// SHA-256 (lower-case hex) of [`Policies::canonical_json`].
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}

/// An offer as the API shows it: the seed's fields, plus `membership` and
/// `duration_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfferObject {
    #[schema(example = "edut.crm.pro.annual")]
    pub offer_id: String,
    #[schema(example = "edut.firstparty")]
    pub issuer_id: String,
    pub title: String,
    pub summary: String,
    /// `active` or `retired`.
    #[schema(example = "active")]
    pub status: String,
    pub pricing: Pricing,
    pub policies: Policies,
    /// Buying it makes the wallet a member (what `member_only` offers require).
    pub membership: bool,
    /// How long an entitlement lasts, in days; `null`: for ever.
    #[schema(example = 365)]
    pub duration_days: Option<i64>,
}

impl Offer {
    pub fn policies(&self) -> Policies {
        Policies {
            member_only: self.member_only,
            workspace_bound: self.workspace_bound,
            transferable: self.transferable,
        }
    }

    /// The price in atomic units (checked when stored).
    pub fn amount(&self) -> Result<u128, OnchainError> {
        self.amount_atomic
            .parse()
            .map_err(|_| OnchainError::Db(DbError::Config("stored amount_atomic".into())))
    }

    pub fn to_object(&self) -> OfferObject {
        OfferObject {
            offer_id: self.offer_id.clone(),
            issuer_id: self.issuer_id.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            status: self.status.clone(),
            pricing: Pricing {
                currency: self.currency.clone(),
                amount_atomic: self.amount_atomic.clone(),
                decimals: self.decimals,
                chain_id: self.chain_id,
            },
            policies: self.policies(),
            membership: self.membership,
            duration_days: self.duration_days,
        }
    }
}

/// The fields of an offer an operator sets (`PUT` replaces all of them).
#[derive(Debug, Clone, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct OfferFields {
    #[schema(example = "edut.firstparty")]
    pub issuer_id: String,
    #[schema(example = "EDUT CRM Pro")]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub pricing: Pricing,
    pub policies: Policies,
    /// Buying it makes the wallet a member.
    #[serde(default)]
    pub membership: bool,
    /// How long an entitlement lasts, in days (1 to 36500); absent: for ever.
    #[serde(default)]
    pub duration_days: Option<i64>,
}

/// A new offer: its `offer_id` and the fields of [`OfferFields`].
#[derive(Debug, Clone, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewOffer {
    /// 1 to 100 of `a-z 0-9 . _ -`, starting with a letter or digit.
    #[schema(example = "edut.crm.pro.annual")]
    pub offer_id: String,
    #[schema(example = "edut.firstparty")]
    pub issuer_id: String,
    #[schema(example = "EDUT CRM Pro")]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub pricing: Pricing,
    pub policies: Policies,
    #[serde(default)]
    pub membership: bool,
    #[serde(default)]
    pub duration_days: Option<i64>,
}

impl NewOffer {
    fn split(self) -> (String, OfferFields) {
        (
            self.offer_id,
            OfferFields {
                issuer_id: self.issuer_id,
                title: self.title,
                summary: self.summary,
                pricing: self.pricing,
                policies: self.policies,
                membership: self.membership,
                duration_days: self.duration_days,
            },
        )
    }
}

fn check_offer_id(offer_id: &str) -> Result<(), OnchainError> {
    let ok = (1..=100).contains(&offer_id.len())
        && offer_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && offer_id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(OnchainError::invalid(
            "offer_id",
            "must be 1 to 100 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit",
        ))
    }
}

fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), OnchainError> {
    if required && value.trim().is_empty() {
        return Err(OnchainError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(OnchainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Parses a decimal string of atomic units: digits only, above zero, at most 10^30.
pub fn parse_amount_atomic(value: &str) -> Result<u128, OnchainError> {
    let invalid = || {
        OnchainError::invalid(
            "pricing.amount_atomic",
            "must be a decimal string of digits, above 0 and at most 10^30",
        )
    };
    if value.is_empty() || value.len() > 31 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let amount: u128 = value.parse().map_err(|_| invalid())?;
    if amount == 0 || amount > MAX_AMOUNT_ATOMIC {
        return Err(invalid());
    }
    Ok(amount)
}

impl OfferFields {
    fn check(&self) -> Result<(), OnchainError> {
        check_text("issuer_id", &self.issuer_id, MAX_TEXT, true)?;
        check_text("title", &self.title, MAX_TEXT, true)?;
        check_text("summary", &self.summary, MAX_SUMMARY, false)?;
        let currency = &self.pricing.currency;
        if !(1..=16).contains(&currency.len())
            || !currency
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(OnchainError::invalid(
                "pricing.currency",
                "must be 1 to 16 upper-case letters or digits (`USDC`)",
            ));
        }
        parse_amount_atomic(&self.pricing.amount_atomic)?;
        if !(0..=MAX_DECIMALS).contains(&self.pricing.decimals) {
            return Err(OnchainError::invalid(
                "pricing.decimals",
                format!("must be between 0 and {MAX_DECIMALS}"),
            ));
        }
        if self.pricing.chain_id <= 0 {
            return Err(OnchainError::invalid(
                "pricing.chain_id",
                "must be positive",
            ));
        }
        if let Some(days) = self.duration_days
            && !(1..=36_500).contains(&days)
        {
            return Err(OnchainError::invalid(
                "duration_days",
                "must be between 1 and 36500",
            ));
        }
        Ok(())
    }
}

/// Creates an offer (operators).
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    new: NewOffer,
) -> Result<Offer, OnchainError> {
    let (offer_id, fields) = new.split();
    check_offer_id(&offer_id)?;
    fields.check()?;
    let now = Timestamp::now();
    let offer = Offer {
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        offer_id,
        issuer_id: fields.issuer_id,
        title: fields.title,
        summary: fields.summary,
        status: STATUS_ACTIVE.to_owned(),
        currency: fields.pricing.currency,
        amount_atomic: fields.pricing.amount_atomic,
        decimals: fields.pricing.decimals,
        chain_id: fields.pricing.chain_id,
        member_only: fields.policies.member_only,
        workspace_bound: fields.policies.workspace_bound,
        transferable: fields.policies.transferable,
        membership: fields.membership,
        duration_days: fields.duration_days,
        created_at: now,
        updated_at: now,
    };
    let inserted = with_conn!(conn, c => {
        diesel::insert_into(onchain_offers::table)
            .values(&offer)
            .execute(c)
            .await
    })
    .map_err(DbError::from);
    match inserted {
        Ok(_) => Ok(offer),
        Err(DbError::UniqueViolation { .. }) => Err(OnchainError::OfferExists),
        Err(error) => Err(error.into()),
    }
}

/// The offer, active or retired; `OfferNotFound` when absent in this tenant and mode.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    offer_id: &str,
) -> Result<Offer, OnchainError> {
    let offer = with_conn!(conn, c => {
        onchain_offers::table
            .filter(onchain_offers::platform_id.eq(&tenant.platform_id))
            .filter(onchain_offers::mode.eq(tenant.mode))
            .filter(onchain_offers::offer_id.eq(offer_id))
            .select(Offer::as_select())
            .first::<Offer>(c)
            .await
            .optional()
    })?;
    offer.ok_or(OnchainError::OfferNotFound)
}

/// The active offer (for checkout): retired ones are not found.
pub async fn get_active(
    conn: &mut DbConn,
    tenant: &Tenant,
    offer_id: &str,
) -> Result<Offer, OnchainError> {
    let offer = get(conn, tenant, offer_id).await?;
    if offer.status == STATUS_ACTIVE {
        Ok(offer)
    } else {
        Err(OnchainError::OfferNotFound)
    }
}

/// Offers of the tenant, oldest first: active ones, or (operators) retired ones too.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    include_retired: bool,
) -> Result<Vec<Offer>, OnchainError> {
    let offers = with_conn!(conn, c => {
        let mut query = onchain_offers::table
            .filter(onchain_offers::platform_id.eq(&tenant.platform_id))
            .filter(onchain_offers::mode.eq(tenant.mode))
            .into_boxed();
        if !include_retired {
            query = query.filter(onchain_offers::status.eq(STATUS_ACTIVE));
        }
        query
            .order((onchain_offers::created_at.asc(), onchain_offers::offer_id.asc()))
            .select(Offer::as_select())
            .load::<Offer>(c)
            .await
    })?;
    Ok(offers)
}

/// Replaces an offer's fields (operators). Quotes already issued keep their price.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    offer_id: &str,
    fields: OfferFields,
) -> Result<Offer, OnchainError> {
    fields.check()?;
    let updated = with_conn!(conn, c => {
        diesel::update(
            onchain_offers::table
                .filter(onchain_offers::platform_id.eq(&tenant.platform_id))
                .filter(onchain_offers::mode.eq(tenant.mode))
                .filter(onchain_offers::offer_id.eq(offer_id)),
        )
        .set((
            onchain_offers::issuer_id.eq(&fields.issuer_id),
            onchain_offers::title.eq(&fields.title),
            onchain_offers::summary.eq(&fields.summary),
            onchain_offers::currency.eq(&fields.pricing.currency),
            onchain_offers::amount_atomic.eq(&fields.pricing.amount_atomic),
            onchain_offers::decimals.eq(fields.pricing.decimals),
            onchain_offers::chain_id.eq(fields.pricing.chain_id),
            onchain_offers::member_only.eq(fields.policies.member_only),
            onchain_offers::workspace_bound.eq(fields.policies.workspace_bound),
            onchain_offers::transferable.eq(fields.policies.transferable),
            onchain_offers::membership.eq(fields.membership),
            onchain_offers::duration_days.eq(fields.duration_days),
            onchain_offers::updated_at.eq(Timestamp::now()),
        ))
        .execute(c)
        .await
    })?;
    if updated == 0 {
        return Err(OnchainError::OfferNotFound);
    }
    get(conn, tenant, offer_id).await
}

/// Retires an offer (operators): no new quotes; entitlements already granted stay.
pub async fn retire(
    conn: &mut DbConn,
    tenant: &Tenant,
    offer_id: &str,
) -> Result<Offer, OnchainError> {
    let updated = with_conn!(conn, c => {
        diesel::update(
            onchain_offers::table
                .filter(onchain_offers::platform_id.eq(&tenant.platform_id))
                .filter(onchain_offers::mode.eq(tenant.mode))
                .filter(onchain_offers::offer_id.eq(offer_id)),
        )
        .set((
            onchain_offers::status.eq(STATUS_RETIRED),
            onchain_offers::updated_at.eq(Timestamp::now()),
        ))
        .execute(c)
        .await
    })?;
    if updated == 0 {
        return Err(OnchainError::OfferNotFound);
    }
    get(conn, tenant, offer_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_hash_is_sha256_of_the_canonical_json() {
        let policies = Policies {
            member_only: true,
            workspace_bound: true,
            transferable: false,
        };
        assert_eq!(
            policies.canonical_json(),
            r#"{"member_only":true,"transferable":false,"workspace_bound":true}"#
        );
        assert_eq!(policies.hash().len(), 64);
        assert_ne!(
            policies.hash(),
            Policies {
                transferable: true,
                ..policies
            }
            .hash()
        );
    }

    #[test]
    fn amounts_parse_strictly() {
        assert_eq!(parse_amount_atomic("199000000").ok(), Some(199_000_000));
        for bad in [
            "",
            "0",
            "-1",
            "1.5",
            " 1",
            "1e6",
            "10000000000000000000000000000001",
        ] {
            assert!(parse_amount_atomic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offer_ids() {
        assert!(check_offer_id("edut.crm.pro.annual").is_ok());
        for bad in ["", ".x", "Edut", "a b", &"a".repeat(101)] {
            assert!(check_offer_id(bad).is_err(), "{bad}");
        }
    }
}
