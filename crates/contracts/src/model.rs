//! Stored rows, the API objects, request bodies and the arithmetic that derives totals.

use diesel::prelude::*;
use feria_billing::fees::{self, FeeInclusion, FeeSchedule};
use feria_catalog::ProductId;
use feria_kernel::{Currency, Mode, Money, PlatformId, Timestamp, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::ContractError;
use crate::schema::{contract_buyers, contract_fees, contract_items, contract_sellers, contracts};

feria_kernel::define_id!(
    /// A contract (an invoice between buyers and sellers).
    ContractId,
    "inv"
);

feria_kernel::define_id!(
    /// A line of a contract.
    ContractItemId,
    "item"
);

feria_kernel::define_id!(
    /// A custom fee line of a contract.
    ContractFeeId,
    "fee"
);

/// Most units on one line, and largest unit price (minor units): totals stay inside i64.
pub const MAX_QUANTITY: i64 = 1_000_000;
pub const MAX_PRICE_MINOR: i64 = feria_kernel::money::MAX_AMOUNT_MINOR;
/// Most items, buyers, sellers or fees on one contract.
pub const MAX_LINES: usize = 100;

/// Where a contract is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being written; not yet sent to the buyers.
    Draft,
    /// Sent to the buyers (and still editable: a change is re-sent by the caller).
    Open,
    /// Paid by the buyers and paid out to the sellers and fees; final.
    Settled,
    /// Cancelled before settlement; final.
    Void,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Open => "open",
            Status::Settled => "settled",
            Status::Void => "void",
        }
    }

    pub fn parse(value: &str) -> Status {
        match value {
            "open" => Status::Open,
            "settled" => Status::Settled,
            "void" => Status::Void,
            _ => Status::Draft,
        }
    }

    /// Items, parties, fees and details change only before settlement.
    pub fn is_editable(self) -> bool {
        matches!(self, Status::Draft | Status::Open)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contracts)]
pub(crate) struct ContractRow {
    pub id: ContractId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub user_id: Option<UserId>,
    pub notes: String,
    pub status: String,
    pub currency: String,
    pub include_processor_fees: bool,
    pub include_service_fees: bool,
    pub include_platform_fees: bool,
    pub due_at: Option<Timestamp>,
    pub sent_at: Option<Timestamp>,
    pub last_sent_at: Option<Timestamp>,
    pub last_payment_attempt_at: Option<Timestamp>,
    pub paid_at: Option<Timestamp>,
    pub settle_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ContractRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status)
    }

    pub fn currency(&self) -> Currency {
        Currency::from_code(&self.currency).unwrap_or(Currency::USD)
    }

    /// Who pays which fee. Issue 6 and the seed's example (`subTotal` 90, `total` 100 with
    /// every flag on) say a fee *included* in the contract is paid by the buyers on top,
    /// and one not included comes out of what the sellers are owed — exactly what
    /// billing's `FeeInclusion` means.
    pub fn inclusion(&self) -> FeeInclusion {
        FeeInclusion {
            processor: self.include_processor_fees,
            service: self.include_service_fees,
            platform: self.include_platform_fees,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_items)]
pub(crate) struct ItemRow {
    pub id: ContractItemId,
    pub contract_id: ContractId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub product_id: Option<ProductId>,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_buyers)]
pub(crate) struct BuyerRow {
    pub contract_id: ContractId,
    pub user_id: UserId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub due_minor: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_sellers)]
pub(crate) struct SellerRow {
    pub contract_id: ContractId,
    pub user_id: UserId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub owed_minor: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_fees)]
pub(crate) struct FeeRow {
    pub id: ContractFeeId,
    pub contract_id: ContractId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub name: String,
    pub amount_minor: i64,
    pub created_at: Timestamp,
}

/// A contract with everything on it, as stored.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub row: ContractRow,
    pub items: Vec<ItemRow>,
    pub buyers: Vec<BuyerRow>,
    pub sellers: Vec<SellerRow>,
    pub fees: Vec<FeeRow>,
}

/// What a contract's lines add up to. Derived on every read, never stored or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of the item lines.
    pub sub_total: Money,
    pub platform_fee: Money,
    pub service_fee: Money,
    pub processor_fee: Money,
    /// Sum of the custom fee lines.
    pub custom_fees: Money,
    /// What the buyers pay together.
    pub total: Money,
    /// What the sellers receive together: `total` minus every fee.
    pub net: Money,
}

impl Totals {
    /// Fees as settlement records them: custom fee lines go to the platform.
    pub fn platform_with_custom(&self) -> Result<Money, ContractError> {
        Ok(self.platform_fee.checked_add(self.custom_fees)?)
    }
}

impl Loaded {
    /// The totals by `feria_billing::fees::compute` (one rounding rule), with the
    /// processor fee of a prepaid-credit settlement (none), plus custom fee lines on top.
    pub fn totals(
        &self,
        platform_percent: Decimal,
        schedule: &FeeSchedule,
    ) -> Result<Totals, ContractError> {
        let currency = self.row.currency();
        let mut sub_total = Money::zero(currency);
        for item in &self.items {
            let line =
                Money::from_minor(item.unit_price_minor, currency).checked_mul(item.quantity)?;
            sub_total = sub_total.checked_add(line)?;
        }
        let mut custom_fees = Money::zero(currency);
        for fee in &self.fees {
            custom_fees = custom_fees.checked_add(Money::from_minor(fee.amount_minor, currency))?;
        }
        let breakdown = fees::compute(
            sub_total,
            platform_percent,
            schedule,
            self.row.inclusion(),
            false,
        )
        .map_err(|error| match error {
            fees::FeeError::FeesExceedAmount => {
                ContractError::invalid("fees", "the fees exceed the contract's subtotal")
            }
            other => ContractError::Billing(other.into()),
        })?;
        Ok(Totals {
            sub_total,
            platform_fee: breakdown.platform_fee,
            service_fee: breakdown.service_fee,
            processor_fee: breakdown.processor_fee,
            custom_fees,
            total: breakdown.total.checked_add(custom_fees)?,
            net: breakdown.net,
        })
    }

    pub fn object(
        &self,
        platform_percent: Decimal,
        schedule: &FeeSchedule,
    ) -> Result<ContractObject, ContractError> {
        let totals = self.totals(platform_percent, schedule)?;
        let currency = self.row.currency();
        let money = |minor: i64| Money::from_minor(minor, currency).to_decimal();
        let mut items = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let line =
                Money::from_minor(item.unit_price_minor, currency).checked_mul(item.quantity)?;
            items.push(ItemObject {
                id: item.id.clone(),
                product_id: item.product_id.clone(),
                name: item.name.clone(),
                quantity: item.quantity,
                unit_price: money(item.unit_price_minor),
                line_total: line.to_decimal(),
            });
        }
        let row = &self.row;
        Ok(ContractObject {
            id: row.id.clone(),
            platform_id: row.platform_id.clone(),
            user_id: row.user_id.clone(),
            items,
            notes: row.notes.clone(),
            sent: row.sent_at,
            last_sent: row.last_sent_at,
            due: row.due_at,
            last_payment_attempt: row.last_payment_attempt_at,
            paid: row.paid_at,
            sub_total: totals.sub_total.to_decimal(),
            total: totals.total.to_decimal(),
            currency: row.currency.to_ascii_lowercase(),
            status: row.status(),
            buyers: self
                .buyers
                .iter()
                .map(|b| BuyerObject {
                    user_id: b.user_id.clone(),
                    due: money(b.due_minor),
                })
                .collect(),
            sellers: self
                .sellers
                .iter()
                .map(|s| SellerObject {
                    user_id: s.user_id.clone(),
                    owed: money(s.owed_minor),
                })
                .collect(),
            fees: self
                .fees
                .iter()
                .map(|f| FeeObject {
                    id: f.id.clone(),
                    name: f.name.clone(),
                    amount: money(f.amount_minor),
                })
                .collect(),
            include_stripe_fees: row.include_processor_fees,
            include_candle_fees: row.include_service_fees,
            include_platform_fees: row.include_platform_fees,
            platform_fee: totals.platform_fee.to_decimal(),
            service_fee: totals.service_fee.to_decimal(),
            processor_fee: totals.processor_fee.to_decimal(),
            custom_fees: totals.custom_fees.to_decimal(),
            net: totals.net.to_decimal(),
            created: row.created_at,
            updated: row.updated_at,
        })
    }
}

/// A contract as the API shows it: the seed's object, plus the fee breakdown behind
/// `total` and what the sellers receive together (`net`). Every amount is derived from
/// the lines: `subTotal = Σ items`, `total = subTotal + included fees + custom fees`,
/// `net = total − every fee`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Contract)]
pub struct ContractObject {
    pub id: ContractId,
    pub platform_id: PlatformId,
    /// Who created the contract (`null` when an API key did).
    pub user_id: Option<UserId>,
    pub items: Vec<ItemObject>,
    pub notes: String,
    /// When the contract was first sent.
    pub sent: Option<Timestamp>,
    #[serde(rename = "lastSent")]
    pub last_sent: Option<Timestamp>,
    /// When payment is due.
    pub due: Option<Timestamp>,
    #[serde(rename = "lastPaymentAttempt")]
    pub last_payment_attempt: Option<Timestamp>,
    /// When the buyers were charged (at settlement).
    pub paid: Option<Timestamp>,
    #[serde(rename = "subTotal", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 90.0)]
    pub sub_total: Decimal,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 100.0)]
    pub total: Decimal,
    #[schema(example = "usd")]
    pub currency: String,
    pub status: Status,
    pub buyers: Vec<BuyerObject>,
    pub sellers: Vec<SellerObject>,
    pub fees: Vec<FeeObject>,
    /// The processor's fee is added for the buyers (no processor fee on credits yet).
    #[serde(rename = "includeStripeFees")]
    pub include_stripe_fees: bool,
    /// The operator's service fee is added for the buyers (else the sellers absorb it).
    #[serde(rename = "includeCandleFees")]
    pub include_candle_fees: bool,
    /// The platform's fee is added for the buyers (else the sellers absorb it).
    #[serde(rename = "includePlatformFees")]
    pub include_platform_fees: bool,
    #[serde(rename = "platformFee", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub platform_fee: Decimal,
    #[serde(rename = "serviceFee", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub service_fee: Decimal,
    #[serde(rename = "processorFee", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub processor_fee: Decimal,
    /// Sum of the custom fee lines (collected by the platform).
    #[serde(rename = "customFees", with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub custom_fees: Decimal,
    /// What the sellers receive together; their `owed` shares must add up to it.
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64)]
    pub net: Decimal,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A line: a product at the price in force when it was added, or a custom line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractItem)]
pub struct ItemObject {
    pub id: ContractItemId,
    /// `null` for a custom line.
    pub product_id: Option<ProductId>,
    pub name: String,
    pub quantity: i64,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 45.0)]
    pub unit_price: Decimal,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 90.0)]
    pub line_total: Decimal,
}

/// A buyer and the share of `total` they pay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractBuyer)]
pub struct BuyerObject {
    pub user_id: UserId,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 50.0)]
    pub due: Decimal,
}

/// A seller and the share of `net` they receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractSeller)]
pub struct SellerObject {
    pub user_id: UserId,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 45.0)]
    pub owed: Decimal,
}

/// A custom fee line: charged to the buyers on top, collected by the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractFee)]
pub struct FeeObject {
    pub id: ContractFeeId,
    pub name: String,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 5.0)]
    pub amount: Decimal,
}

/// A new contract. Amounts are never accepted: they follow from the lines.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContract {
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub notes: Option<String>,
    /// ISO 4217 code, any case; `usd` when absent. Fixed once the contract has items.
    #[schema(value_type = Option<String>, example = "usd")]
    pub currency: Option<Currency>,
    /// When payment is due (RFC 3339).
    pub due: Option<Timestamp>,
    /// Admins (and API keys) may name the creator; a user creates in their own name.
    pub user_id: Option<UserId>,
    #[serde(rename = "includeStripeFees")]
    pub include_stripe_fees: Option<bool>,
    #[serde(rename = "includeCandleFees")]
    pub include_candle_fees: Option<bool>,
    #[serde(rename = "includePlatformFees")]
    pub include_platform_fees: Option<bool>,
}

/// Changes to a contract's details; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractChanges {
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub notes: Option<String>,
    /// Only while the contract has no items.
    #[schema(value_type = Option<String>, example = "eur")]
    pub currency: Option<Currency>,
    pub due: Option<Timestamp>,
}

/// A line to add: `product_id` (priced by the catalog at this instant) or `name` and
/// `unit_price` (a custom line); `quantity` 1 when absent.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub product_id: Option<ProductId>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    /// Custom lines only, major units.
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    #[schema(value_type = Option<f64>, example = 45.0)]
    pub unit_price: Option<Decimal>,
    #[validate(range(min = 1, max = 1000000, message = "must be between 1 and 1000000"))]
    pub quantity: Option<i64>,
}

/// A buyer to add, with their share (0 when absent).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBuyer {
    pub user_id: UserId,
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    #[schema(value_type = Option<f64>, example = 50.0)]
    pub due: Option<Decimal>,
}

/// A buyer's new share.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueChange {
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 50.0)]
    pub due: Decimal,
}

/// A seller to add, with their share (0 when absent).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSeller {
    pub user_id: UserId,
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    #[schema(value_type = Option<f64>, example = 45.0)]
    pub owed: Option<Decimal>,
}

/// A seller's new share.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwedChange {
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 45.0)]
    pub owed: Decimal,
}

/// A custom fee line.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFee {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: String,
    #[serde(with = "feria_kernel::money::decimal_number")]
    #[schema(value_type = f64, example = 5.0)]
    pub amount: Decimal,
}

/// Changes to a custom fee line.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeChanges {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    #[schema(value_type = Option<f64>, example = 5.0)]
    pub amount: Option<Decimal>,
}

/// Which fees the buyers pay on top (`true`) rather than the sellers absorbing them;
/// absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeInclusionChanges {
    #[serde(rename = "includeStripeFees")]
    pub include_stripe_fees: Option<bool>,
    #[serde(rename = "includeCandleFees")]
    pub include_candle_fees: Option<bool>,
    #[serde(rename = "includePlatformFees")]
    pub include_platform_fees: Option<bool>,
}

/// An amount from the wire: exact in the currency, not negative, not huge.
pub(crate) fn amount(
    field: &'static str,
    value: Decimal,
    currency: Currency,
) -> Result<Money, ContractError> {
    let money = Money::from_decimal_exact(value, currency).map_err(|_| {
        ContractError::invalid(
            field,
            format!(
                "{} allows at most {} decimal places",
                currency.code(),
                currency.exponent()
            ),
        )
    })?;
    if money.is_negative() {
        return Err(ContractError::invalid(field, "must not be negative"));
    }
    if money.minor() > MAX_PRICE_MINOR {
        return Err(ContractError::invalid(field, "is too large"));
    }
    Ok(money)
}
