//! Customers: who pays, and their default payment method.

use serde::Deserialize;

use super::client::{IdempotencyKey, StripeClient, expandable, path_id};
use super::form::Form;
use super::{Metadata, StripeError};

/// `POST /v1/customers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateCustomer {
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Ours to set: Feria puts its own ids here (`feria_user_id`, `platform_id`).
    pub metadata: Metadata,
}

/// A Stripe customer, with the fields Feria uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Customer {
    /// `cus_...`
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub invoice_settings: InvoiceSettings,
    /// A deleted customer still answers a retrieve, with only `id` and `deleted`.
    #[serde(default)]
    pub deleted: bool,
}

/// The customer's defaults for invoices and off-session payments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InvoiceSettings {
    /// `pm_...`: the payment method charged when none is named.
    #[serde(default, with = "expandable")]
    pub default_payment_method: Option<String>,
}

impl StripeClient {
    /// Creates a customer.
    pub async fn create_customer(
        &self,
        request: &CreateCustomer,
        idempotency_key: &IdempotencyKey,
    ) -> Result<Customer, StripeError> {
        let mut form = Form::new();
        form.push_opt("email", request.email.as_deref())
            .push_opt("name", request.name.as_deref())
            .push_opt("description", request.description.as_deref())
            .push_map("metadata", &request.metadata);
        self.post("/v1/customers", &form, Some(idempotency_key))
            .await
    }

    /// Retrieves a customer (`deleted` is true for a deleted one).
    pub async fn retrieve_customer(&self, customer_id: &str) -> Result<Customer, StripeError> {
        let id = path_id("customer", customer_id)?;
        self.get(&format!("/v1/customers/{id}"), &Form::new()).await
    }

    /// Sets (or with `None` clears) the payment method charged by default, through
    /// `invoice_settings[default_payment_method]`. The method must be attached first.
    pub async fn set_default_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: Option<&str>,
    ) -> Result<Customer, StripeError> {
        let id = path_id("customer", customer_id)?;
        let value = match payment_method_id {
            Some(pm) => path_id("payment_method", pm)?,
            None => "",
        };
        let mut form = Form::new();
        form.push("invoice_settings[default_payment_method]", value);
        self.post(&format!("/v1/customers/{id}"), &form, None).await
    }
}
