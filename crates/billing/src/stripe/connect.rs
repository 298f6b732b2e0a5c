//! Stripe Connect: sellers' accounts and the transfers that pay them.

use std::collections::BTreeMap;

use feria_kernel::Money;
use serde::Deserialize;

use super::amount::{from_stripe_amount, to_stripe_amount};
use super::client::{IdempotencyKey, StripeClient, path_id};
use super::form::Form;
use super::{Metadata, StripeError};

/// Who runs the connected account's dashboard and onboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    /// Stripe-hosted onboarding and a light dashboard: the usual marketplace seller.
    Express,
    /// Everything through the platform's own UI and API.
    Custom,
    /// A full Stripe account of the seller's own.
    Standard,
}

impl AccountType {
    fn as_str(self) -> &'static str {
        match self {
            AccountType::Express => "express",
            AccountType::Custom => "custom",
            AccountType::Standard => "standard",
        }
    }
}

/// A capability to request for a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    CardPayments,
    /// Receiving transfers from the platform: what a seller needs.
    Transfers,
}

impl Capability {
    fn as_str(self) -> &'static str {
        match self {
            Capability::CardPayments => "card_payments",
            Capability::Transfers => "transfers",
        }
    }
}

/// `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount {
    pub account_type: AccountType,
    /// Two-letter country; Stripe's default is the platform's.
    pub country: Option<String>,
    pub email: Option<String>,
    /// Required for custom accounts; requested for express ones.
    pub capabilities: Vec<Capability>,
    pub metadata: Metadata,
}

/// A connected account, with what Feria checks before paying it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// `acct_...`
    pub id: String,
    /// `express`, `custom`, `standard` (absent for some controller-based accounts).
    #[serde(rename = "type", default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// May take payments.
    #[serde(default)]
    pub charges_enabled: bool,
    /// May be paid out to its bank.
    #[serde(default)]
    pub payouts_enabled: bool,
    /// The seller finished onboarding.
    #[serde(default)]
    pub details_submitted: bool,
    /// Capability name → `active`, `inactive` or `pending`.
    #[serde(default)]
    pub capabilities: BTreeMap<String, String>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl Account {
    /// Whether transfers to this account will be accepted.
    pub fn can_receive_transfers(&self) -> bool {
        self.capabilities.get("transfers").map(String::as_str) == Some("active")
    }
}

/// `POST /v1/transfers`: moves money from the platform's balance to a connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTransfer {
    pub amount: Money,
    /// `acct_...`
    pub destination: String,
    /// The group of the charge this pays out of (see [`super::ChargeOffSession`]).
    pub transfer_group: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
}

/// A transfer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transfer {
    /// `tr_...`
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `acct_...`
    #[serde(default, with = "super::client::expandable")]
    pub destination: Option<String>,
    #[serde(default)]
    pub transfer_group: Option<String>,
    #[serde(default)]
    pub reversed: bool,
    #[serde(default)]
    pub amount_reversed: i64,
    #[serde(default)]
    pub metadata: Metadata,
}

impl Transfer {
    pub fn money(&self) -> Result<Money, StripeError> {
        from_stripe_amount(self.amount, &self.currency)
    }
}

/// Takes (part of) a transfer back from the connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTransferReversal {
    /// `tr_...`
    pub transfer: String,
    /// What to take back; at most what is not reversed yet.
    pub amount: Money,
    pub metadata: Metadata,
}

/// A transfer reversal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransferReversal {
    /// `trr_...`
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `tr_...`
    #[serde(default, with = "super::client::expandable")]
    pub transfer: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl StripeClient {
    /// Creates a connected account for a seller (`acct_...`). It cannot receive
    /// transfers until its holder finishes onboarding (`details_submitted`, capability
    /// `transfers` active).
    pub async fn create_account(
        &self,
        request: &CreateAccount,
        idempotency_key: &IdempotencyKey,
    ) -> Result<Account, StripeError> {
        let mut form = Form::new();
        form.push("type", request.account_type.as_str())
            .push_opt("country", request.country.as_deref())
            .push_opt("email", request.email.as_deref());
        for capability in &request.capabilities {
            form.push(
                format!("capabilities[{}][requested]", capability.as_str()),
                "true",
            );
        }
        form.push_map("metadata", &request.metadata);
        self.post("/v1/accounts", &form, Some(idempotency_key))
            .await
    }

    /// Retrieves a connected account (is it ready to be paid?).
    pub async fn retrieve_account(&self, account_id: &str) -> Result<Account, StripeError> {
        let id = path_id("account", account_id)?;
        self.get(&format!("/v1/accounts/{id}"), &Form::new()).await
    }

    /// Transfers money from the platform's available balance to a connected account.
    /// Refused with `balance_insufficient` when the balance does not cover it, and with
    /// `insufficient_capabilities_for_transfer` when the account is not ready.
    pub async fn create_transfer(
        &self,
        request: &CreateTransfer,
        idempotency_key: &IdempotencyKey,
    ) -> Result<Transfer, StripeError> {
        let (amount, currency) = to_stripe_amount(request.amount)?;
        if amount <= 0 {
            return Err(StripeError::invalid("amount", "must be positive"));
        }
        let mut form = Form::new();
        form.push("amount", amount)
            .push("currency", currency)
            .push("destination", path_id("destination", &request.destination)?)
            .push_opt("transfer_group", request.transfer_group.as_deref())
            .push_opt("description", request.description.as_deref())
            .push_map("metadata", &request.metadata);
        self.post("/v1/transfers", &form, Some(idempotency_key))
            .await
    }

    /// Reverses (part of) a transfer: the money comes back from the connected account to
    /// the platform's balance (to fund a refund of the charge it was paid out of).
    pub async fn create_transfer_reversal(
        &self,
        request: &CreateTransferReversal,
        idempotency_key: &IdempotencyKey,
    ) -> Result<TransferReversal, StripeError> {
        let (amount, _currency) = to_stripe_amount(request.amount)?;
        if amount <= 0 {
            return Err(StripeError::invalid("amount", "must be positive"));
        }
        let id = path_id("transfer", &request.transfer)?;
        let mut form = Form::new();
        form.push("amount", amount)
            .push_map("metadata", &request.metadata);
        self.post(
            &format!("/v1/transfers/{id}/reversals"),
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Retrieves a transfer.
    pub async fn retrieve_transfer(&self, transfer_id: &str) -> Result<Transfer, StripeError> {
        let id = path_id("transfer", transfer_id)?;
        self.get(&format!("/v1/transfers/{id}"), &Form::new()).await
    }
}
