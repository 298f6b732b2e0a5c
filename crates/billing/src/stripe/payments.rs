//! Taking money: off-session payment intents with a saved card, their charges, refunds.

use feria_kernel::Money;
use serde::Deserialize;

use super::amount::{from_stripe_amount, to_stripe_amount};
use super::client::{IdempotencyKey, StripeClient, expandable, path_id};
use super::form::Form;
use super::{Metadata, StripeError};

/// `POST /v1/payment_intents` with `confirm=true&off_session=true`: charges a saved card
/// while the customer is not there (a settlement, a renewal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeOffSession {
    pub amount: Money,
    /// `cus_...` owning the payment method.
    pub customer: String,
    /// `pm_...` attached to `customer`.
    pub payment_method: String,
    /// Shown in Stripe's dashboard and on receipts.
    pub description: Option<String>,
    /// Ties this charge to the transfers that pay sellers out of it.
    pub transfer_group: Option<String>,
    pub metadata: Metadata,
}

/// A payment intent, with the fields Feria uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentIntent {
    /// `pi_...`
    pub id: String,
    pub status: PaymentIntentStatus,
    /// In Stripe's units for `currency` (see [`PaymentIntent::money`]).
    pub amount: i64,
    /// Lower-case ISO code.
    pub currency: String,
    #[serde(default, with = "expandable")]
    pub customer: Option<String>,
    #[serde(default, with = "expandable")]
    pub payment_method: Option<String>,
    /// `ch_...`: the charge of the last attempt; what refunds and disputes refer to.
    #[serde(default, with = "expandable")]
    pub latest_charge: Option<String>,
    /// Why the last attempt failed, once it has.
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub transfer_group: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl PaymentIntent {
    /// The amount as [`Money`].
    pub fn money(&self) -> Result<Money, StripeError> {
        from_stripe_amount(self.amount, &self.currency)
    }
}

/// `status` of a payment intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    /// The bank wants the customer (3-D Secure): an off-session charge cannot finish.
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    /// A status added to Stripe's API after this client was written.
    #[serde(other)]
    Unknown,
}

/// `last_payment_error` of a payment intent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A charge: the money movement behind a payment intent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Charge {
    /// `ch_...`
    pub id: String,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    /// Fully refunded.
    pub refunded: bool,
    /// `succeeded`, `pending` or `failed`.
    pub status: String,
    #[serde(default, with = "expandable")]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
}

impl Charge {
    pub fn money(&self) -> Result<Money, StripeError> {
        from_stripe_amount(self.amount, &self.currency)
    }

    pub fn refunded_money(&self) -> Result<Money, StripeError> {
        from_stripe_amount(self.amount_refunded, &self.currency)
    }
}

/// `POST /v1/refunds` of a payment intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRefund {
    /// `pi_...`
    pub payment_intent: String,
    /// Part of the payment; `None` refunds what is left of it.
    pub amount: Option<Money>,
    pub reason: Option<RefundReason>,
    pub metadata: Metadata,
}

/// Why money goes back, in Stripe's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    fn as_str(self) -> &'static str {
        match self {
            RefundReason::Duplicate => "duplicate",
            RefundReason::Fraudulent => "fraudulent",
            RefundReason::RequestedByCustomer => "requested_by_customer",
        }
    }
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    /// `re_...`
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    #[serde(default, with = "expandable")]
    pub payment_intent: Option<String>,
    #[serde(default, with = "expandable")]
    pub charge: Option<String>,
    /// `duplicate`, `fraudulent`, `requested_by_customer`, or another of Stripe's own.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl Refund {
    pub fn money(&self) -> Result<Money, StripeError> {
        from_stripe_amount(self.amount, &self.currency)
    }
}

impl StripeClient {
    /// Charges a saved card off-session: creates and confirms a payment intent in one
    /// call. A decline is an error (`StripeError::Api`, status 402, code `card_declined`,
    /// the failed charge in `charge`); a card that needs the customer (3-D Secure) comes
    /// back as `requires_action` on Stripe-compatible servers that do not raise for it,
    /// or as a 402 `authentication_required` on Stripe.
    pub async fn charge_off_session(
        &self,
        request: &ChargeOffSession,
        idempotency_key: &IdempotencyKey,
    ) -> Result<PaymentIntent, StripeError> {
        let (amount, currency) = to_stripe_amount(request.amount)?;
        if amount <= 0 {
            return Err(StripeError::invalid("amount", "must be positive"));
        }
        let mut form = Form::new();
        form.push("amount", amount)
            .push("currency", currency)
            .push("customer", path_id("customer", &request.customer)?)
            .push(
                "payment_method",
                path_id("payment_method", &request.payment_method)?,
            )
            .push("confirm", "true")
            .push("off_session", "true")
            // Cards only: with Stripe's automatic payment methods, confirming without a
            // return_url is refused in case a method would redirect.
            .push_list("payment_method_types", ["card"])
            .push_opt("description", request.description.as_deref())
            .push_opt("transfer_group", request.transfer_group.as_deref())
            .push_map("metadata", &request.metadata);
        self.post("/v1/payment_intents", &form, Some(idempotency_key))
            .await
    }

    /// Retrieves a payment intent.
    pub async fn retrieve_payment_intent(
        &self,
        payment_intent_id: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let id = path_id("payment_intent", payment_intent_id)?;
        self.get(&format!("/v1/payment_intents/{id}"), &Form::new())
            .await
    }

    /// Retrieves a charge (what has been refunded of it).
    pub async fn retrieve_charge(&self, charge_id: &str) -> Result<Charge, StripeError> {
        let id = path_id("charge", charge_id)?;
        self.get(&format!("/v1/charges/{id}"), &Form::new()).await
    }

    /// Refunds a payment intent in full or in part.
    pub async fn create_refund(
        &self,
        request: &CreateRefund,
        idempotency_key: &IdempotencyKey,
    ) -> Result<Refund, StripeError> {
        let mut form = Form::new();
        form.push(
            "payment_intent",
            path_id("payment_intent", &request.payment_intent)?,
        );
        if let Some(amount) = request.amount {
            let (amount, _currency) = to_stripe_amount(amount)?;
            if amount <= 0 {
                return Err(StripeError::invalid("amount", "must be positive"));
            }
            form.push("amount", amount);
        }
        form.push_opt("reason", request.reason.map(RefundReason::as_str))
            .push_map("metadata", &request.metadata);
        self.post("/v1/refunds", &form, Some(idempotency_key)).await
    }
}
