//! A user's payment-provider references kept in step with Stripe: the connected payout
//! account, saved payment methods, the default one, SetupIntents, and the user's Stripe
//! customer, created on first need.
//!
//! `stripe` is the client of the tenant's mode, `None` when the server has no key for it:
//! then the references a client sends are recorded as given (users' own rules still
//! apply). No pooled database connection is held while Stripe answers.

use feria_kernel::{Db, Tenant, UserId};
use feria_platforms::media::MediaUrls;
use feria_users::UserObject;
use feria_users::payments::{
    AccountStatus, ConnectBankAccount, NewPaymentMethod, PaymentMethod, PaymentMethodId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::BillingError;
use crate::stripe::{CreateCustomer, CreateSetupIntent, IdempotencyKey, StripeClient};

fn idempotency(key: String) -> Result<IdempotencyKey, BillingError> {
    IdempotencyKey::new(key).map_err(BillingError::Provider)
}

/// The user's Stripe customer, created on first need (at most once: the idempotency key
/// is the user's id, so concurrent first calls get the same customer).
pub async fn stripe_customer(
    db: &Db,
    stripe: &StripeClient,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<String, BillingError> {
    let user = feria_users::user::get(&mut db.conn().await?, tenant, user_id).await?;
    if let Some(customer) = user.stripe_customer_id {
        return Ok(customer);
    }
    let mut metadata = crate::stripe::Metadata::new();
    metadata.insert("feria_user_id".into(), user_id.as_str().to_owned());
    metadata.insert(
        "feria_platform_id".into(),
        tenant.platform_id.as_str().to_owned(),
    );
    let customer = stripe
        .create_customer(
            &CreateCustomer {
                email: Some(user.email.clone()),
                name: user.name.clone(),
                description: None,
                metadata,
            },
            &idempotency(format!("feria-customer-{user_id}"))?,
        )
        .await
        .map_err(BillingError::Provider)?;
    feria_users::payments::set_stripe_customer(
        &mut db.conn().await?,
        tenant,
        user_id,
        &customer.id,
    )
    .await?;
    Ok(customer.id)
}

/// A SetupIntent's secret, for the client to save a card with Stripe.js.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientSecret {
    pub client_secret: String,
    /// The SetupIntent (`seti_...`).
    pub setup_intent: String,
    /// The user's Stripe customer (`cus_...`).
    pub customer: String,
}

/// Creates a SetupIntent for the user (and their Stripe customer on first use); without
/// Stripe, 409 `payment_provider_not_configured`.
pub async fn client_secret(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<ClientSecret, BillingError> {
    let stripe = stripe.ok_or(BillingError::ProviderNotConfigured(tenant.mode))?;
    let customer = stripe_customer(db, stripe, tenant, user_id).await?;
    let mut metadata = crate::stripe::Metadata::new();
    metadata.insert("feria_user_id".into(), user_id.as_str().to_owned());
    let intent = stripe
        .create_setup_intent(
            &CreateSetupIntent {
                customer: customer.clone(),
                metadata,
            },
            &idempotency(feria_kernel::id::new_prefixed("feria_seti"))?,
        )
        .await
        .map_err(BillingError::Provider)?;
    Ok(ClientSecret {
        client_secret: intent.client_secret,
        setup_intent: intent.id,
        customer,
    })
}

/// Records the user's connected payout account, with its real status looked up at
/// Stripe when configured (without Stripe, charges stay disabled); the user as shown.
pub async fn connect_bank_account(
    db: &Db,
    stripe: Option<&StripeClient>,
    media: &MediaUrls,
    tenant: &Tenant,
    user_id: &UserId,
    account: ConnectBankAccount,
) -> Result<UserObject, BillingError> {
    feria_users::payments::check_provider_ref(
        &account.stripe_connect_id,
        "acct_",
        "stripeConnectId",
    )?;
    let status = match stripe {
        Some(stripe) => {
            let found = stripe
                .retrieve_account(&account.stripe_connect_id)
                .await
                .map_err(BillingError::Provider)?;
            AccountStatus {
                charges_enabled: found.charges_enabled,
                details_submitted: found.details_submitted,
            }
        }
        None => AccountStatus::default(),
    };
    let mut conn = db.conn().await?;
    let user =
        feria_users::payments::connect_bank_account(&mut conn, tenant, user_id, account, status)
            .await?;
    Ok(feria_users::user::object(&mut conn, tenant, &user, media).await?)
}

/// Records a payment method: with Stripe, attached to the user's customer there, its card
/// details taken from Stripe rather than from the client.
pub async fn add(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    user_id: &UserId,
    mut new: NewPaymentMethod,
) -> Result<PaymentMethod, BillingError> {
    feria_users::payments::check_provider_ref(&new.provider_ref, "pm_", "providerRef")?;
    if let Some(stripe) = stripe {
        let customer = stripe_customer(db, stripe, tenant, user_id).await?;
        let attached = stripe
            .attach_payment_method(&new.provider_ref, &customer)
            .await
            .map_err(BillingError::Provider)?;
        if let Some(card) = attached.card {
            new.brand = Some(card.brand);
            new.last4 = Some(card.last4);
            new.exp_month = i32::try_from(card.exp_month).ok();
            new.exp_year = i32::try_from(card.exp_year).ok();
        }
        // Stripe's id is canonical (it may differ in case or alias from what was sent).
        new.provider_ref = attached.id;
    }
    let method = feria_users::payments::add(&mut db.conn().await?, tenant, user_id, new).await?;
    if method.is_default {
        sync_default(db, stripe, tenant, user_id).await?;
    }
    Ok(method)
}

/// Removes a payment method (detached at Stripe first; one Stripe no longer knows is
/// removed all the same), then tells Stripe the new default, if any; the remaining
/// methods, default first.
pub async fn remove(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<Vec<PaymentMethod>, BillingError> {
    let method = feria_users::payments::get(&mut db.conn().await?, tenant, user_id, id).await?;
    if let Some(stripe) = stripe
        && let Err(error) = stripe.detach_payment_method(&method.provider_ref).await
        && error.status() != Some(404)
        && error.code() != Some("resource_missing")
    {
        return Err(BillingError::Provider(error));
    }
    feria_users::payments::remove(&mut db.conn().await?, tenant, user_id, id).await?;
    if method.is_default {
        sync_default(db, stripe, tenant, user_id).await?;
    }
    Ok(feria_users::payments::list(&mut db.conn().await?, tenant, user_id).await?)
}

/// Makes a payment method the default, at Stripe first.
pub async fn make_default(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<PaymentMethod, BillingError> {
    let method = feria_users::payments::get(&mut db.conn().await?, tenant, user_id, id).await?;
    if let Some(stripe) = stripe {
        let customer = stripe_customer(db, stripe, tenant, user_id).await?;
        stripe
            .set_default_payment_method(&customer, Some(&method.provider_ref))
            .await
            .map_err(BillingError::Provider)?;
    }
    Ok(feria_users::payments::set_default(&mut db.conn().await?, tenant, user_id, id).await?)
}

/// Tells Stripe which payment method is the user's default now (none when they have none).
async fn sync_default(
    db: &Db,
    stripe: Option<&StripeClient>,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<(), BillingError> {
    let Some(stripe) = stripe else {
        return Ok(());
    };
    let methods = feria_users::payments::list(&mut db.conn().await?, tenant, user_id).await?;
    let default = methods
        .iter()
        .find(|m| m.is_default)
        .map(|m| m.provider_ref.as_str());
    let customer = stripe_customer(db, stripe, tenant, user_id).await?;
    stripe
        .set_default_payment_method(&customer, default)
        .await
        .map_err(BillingError::Provider)?;
    Ok(())
}
