//! The Stripe payment provider's client: Stripe's REST API over HTTPS, form-encoded
//! requests, JSON answers.
//!
//! One [`StripeClient`] per secret key; every call is one HTTP request, bounded by the
//! configured timeouts, never retried behind the caller's back. Calls that create objects
//! or move money take an [`IdempotencyKey`]: on a retryable error
//! ([`StripeError::is_retryable`]) send the same call again with the same key and Stripe
//! carries it out at most once. Amounts go in and come out as [`feria_kernel::Money`];
//! [`to_stripe_amount`] handles the currencies whose units Stripe counts differently.
//!
//! The same code runs against `https://api.stripe.com` and, in tests, against
//! localstripe (see `docs/STRIPE.md`).

mod amount;
mod client;
mod config;
mod connect;
mod customers;
mod error;
mod form;
mod payment_methods;
mod payments;

use std::collections::BTreeMap;

pub use amount::{from_stripe_amount, stripe_exponent, to_stripe_amount};
pub use client::{IdempotencyKey, List, StripeClient};
pub use config::{
    DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, STRIPE_API_VERSION, StripeConfig,
};
pub use connect::{
    Account, AccountType, Capability, CreateAccount, CreateTransfer, CreateTransferReversal,
    Transfer, TransferReversal,
};
pub use customers::{CreateCustomer, Customer, InvoiceSettings};
pub use error::{StripeApiError, StripeError, api_error};
pub use payment_methods::{
    Card, CreateSetupIntent, ListParams, PaymentMethod, SetupIntent, SetupIntentStatus,
};
pub use payments::{
    Charge, ChargeOffSession, CreateRefund, PaymentError, PaymentIntent, PaymentIntentStatus,
    Refund, RefundReason,
};

/// Stripe metadata: up to 50 string keys and values of our own on an object.
pub type Metadata = BTreeMap<String, String>;
