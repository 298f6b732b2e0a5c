//! Saving a card for later: setup intents (the client secret a browser or app confirms
//! with Stripe.js) and payment methods (attach, list, detach).

use serde::Deserialize;

use super::client::{IdempotencyKey, List, StripeClient, expandable, path_id};
use super::form::Form;
use super::{Metadata, StripeError};

/// `POST /v1/setup_intents`: prepares saving a card of `customer` for off-session use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSetupIntent {
    /// `cus_...`
    pub customer: String,
    pub metadata: Metadata,
}

/// A setup intent. Its `client_secret` goes to the customer's browser or app, which
/// collects the card and confirms it with Stripe; the server never sees card numbers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SetupIntent {
    /// `seti_...`
    pub id: String,
    /// `seti_..._secret_...`: hand it to the client side only.
    pub client_secret: String,
    pub status: SetupIntentStatus,
    #[serde(default, with = "expandable")]
    pub customer: Option<String>,
    /// The saved method, once the intent succeeded.
    #[serde(default, with = "expandable")]
    pub payment_method: Option<String>,
}

/// `status` of a setup intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    Canceled,
    Succeeded,
    /// A status added to Stripe's API after this client was written.
    #[serde(other)]
    Unknown,
}

/// A saved payment method, with the fields Feria shows or checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentMethod {
    /// `pm_...`
    pub id: String,
    /// `card`, `sepa_debit`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The customer it is attached to, if any.
    #[serde(default, with = "expandable")]
    pub customer: Option<String>,
    #[serde(default)]
    pub card: Option<Card>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// What may be shown of a card: never its number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Card {
    /// `visa`, `mastercard`, ...
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    /// Same card, same fingerprint: spots one card saved twice.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `credit`, `debit`, `prepaid`, `unknown`.
    #[serde(default)]
    pub funding: Option<String>,
    /// Two-letter issuing country.
    #[serde(default)]
    pub country: Option<String>,
}

/// Paging through a list: at most `limit` (1–100, Stripe's default 10) items after the
/// object `starting_after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub limit: Option<u8>,
    pub starting_after: Option<String>,
}

impl ListParams {
    fn push(&self, form: &mut Form) -> Result<(), StripeError> {
        if let Some(limit) = self.limit {
            if !(1..=100).contains(&limit) {
                return Err(StripeError::invalid("limit", "must be between 1 and 100"));
            }
            form.push("limit", limit);
        }
        if let Some(after) = &self.starting_after {
            form.push("starting_after", path_id("starting_after", after)?);
        }
        Ok(())
    }
}

impl StripeClient {
    /// Creates a setup intent for saving a card off-session; its `client_secret` is what
    /// the users crate's client-secret route hands out.
    pub async fn create_setup_intent(
        &self,
        request: &CreateSetupIntent,
        idempotency_key: &IdempotencyKey,
    ) -> Result<SetupIntent, StripeError> {
        let mut form = Form::new();
        form.push("customer", path_id("customer", &request.customer)?)
            .push("usage", "off_session")
            .push_list("payment_method_types", ["card"])
            .push_map("metadata", &request.metadata);
        self.post("/v1/setup_intents", &form, Some(idempotency_key))
            .await
    }

    /// Retrieves a setup intent (to learn the saved payment method once it succeeded).
    pub async fn retrieve_setup_intent(
        &self,
        setup_intent_id: &str,
    ) -> Result<SetupIntent, StripeError> {
        let id = path_id("setup_intent", setup_intent_id)?;
        self.get(&format!("/v1/setup_intents/{id}"), &Form::new())
            .await
    }

    /// Retrieves a payment method.
    pub async fn retrieve_payment_method(
        &self,
        payment_method_id: &str,
    ) -> Result<PaymentMethod, StripeError> {
        let id = path_id("payment_method", payment_method_id)?;
        self.get(&format!("/v1/payment_methods/{id}"), &Form::new())
            .await
    }

    /// Lists the cards attached to a customer.
    pub async fn list_payment_methods(
        &self,
        customer_id: &str,
        params: &ListParams,
    ) -> Result<List<PaymentMethod>, StripeError> {
        let mut query = Form::new();
        query
            .push("customer", path_id("customer", customer_id)?)
            .push("type", "card");
        params.push(&mut query)?;
        self.get("/v1/payment_methods", &query).await
    }

    /// Attaches a payment method to a customer. Stripe may decline the card here
    /// (`card_declined`). Attaching Stripe's test ids (`pm_card_visa`) creates a new
    /// method each time: use the returned id.
    pub async fn attach_payment_method(
        &self,
        payment_method_id: &str,
        customer_id: &str,
    ) -> Result<PaymentMethod, StripeError> {
        let id = path_id("payment_method", payment_method_id)?;
        let mut form = Form::new();
        form.push("customer", path_id("customer", customer_id)?);
        self.post(&format!("/v1/payment_methods/{id}/attach"), &form, None)
            .await
    }

    /// Detaches a payment method from its customer; it can no longer be charged.
    pub async fn detach_payment_method(
        &self,
        payment_method_id: &str,
    ) -> Result<PaymentMethod, StripeError> {
        let id = path_id("payment_method", payment_method_id)?;
        self.post(
            &format!("/v1/payment_methods/{id}/detach"),
            &Form::new(),
            None,
        )
        .await
    }
}
