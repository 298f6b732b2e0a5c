//! A user's references to payment-provider objects: the connected payout account
//! (Stripe Connect, `acct_...`) and saved payment methods (`pm_...`).
//!
//! Feria stores the provider's references and display details (brand, last four digits,
//! expiry), never card data. Until the billing crate's provider interface lands, these
//! references are recorded as given; billing will create and verify them at the provider.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::UserError;
use crate::schema::{user_payment_methods, users};
use crate::user::User;

feria_kernel::define_id!(
    /// A saved payment method of a user (Feria's id; the provider's is `provider_ref`).
    PaymentMethodId,
    "pmt"
);

/// Saved payment methods one user may have.
pub const MAX_PAYMENT_METHODS_PER_USER: i64 = 20;

/// The provider whose references are stored today.
pub const STRIPE: &str = "stripe";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_payment_methods)]
struct PaymentMethodRow {
    id: PaymentMethodId,
    platform_id: PlatformId,
    mode: Mode,
    user_id: UserId,
    provider: String,
    provider_ref: String,
    brand: Option<String>,
    last4: Option<String>,
    exp_month: Option<i32>,
    exp_year: Option<i32>,
    is_default: bool,
    created_at: Timestamp,
}

/// A saved payment method as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethod {
    pub id: PaymentMethodId,
    /// `stripe`.
    pub provider: String,
    /// The provider's id, e.g. `pm_1NqE...`.
    pub provider_ref: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub is_default: bool,
    pub created: Timestamp,
}

impl From<PaymentMethodRow> for PaymentMethod {
    fn from(row: PaymentMethodRow) -> Self {
        PaymentMethod {
            id: row.id,
            provider: row.provider,
            provider_ref: row.provider_ref,
            brand: row.brand,
            last4: row.last4,
            exp_month: row.exp_month,
            exp_year: row.exp_year,
            is_default: row.is_default,
            created: row.created_at,
        }
    }
}

/// A payment method to record: the provider's reference and its display details.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewPaymentMethod {
    /// The provider's payment-method id (Stripe: `pm_...`).
    #[validate(length(min = 4, max = 255, message = "must be 4 to 255 characters"))]
    pub provider_ref: String,
    #[validate(length(min = 1, max = 32, message = "must be 1 to 32 characters"))]
    pub brand: Option<String>,
    /// The last four digits.
    pub last4: Option<String>,
    #[validate(range(min = 1, max = 12, message = "must be a month, 1 to 12"))]
    pub exp_month: Option<i32>,
    #[validate(range(min = 2000, max = 2100, message = "must be a four-digit year"))]
    pub exp_year: Option<i32>,
    /// Make it the default payment method (the first one always is).
    #[serde(default)]
    pub make_default: bool,
}

/// The connected payout account of a user, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BankAccount {
    /// The Stripe Connect account id, `acct_...`.
    pub stripe_connect_id: String,
    pub charges_enabled: bool,
    pub details_submitted: bool,
}

/// A payout account to connect.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectBankAccount {
    /// The Stripe Connect account id, `acct_...`.
    pub stripe_connect_id: String,
}

/// Checks the shape of a provider id (`acct_...`, `cus_...`, `pm_...`): the prefix, then
/// letters, digits and underscores (Stripe's test ids look like `pm_card_visa`).
pub fn check_provider_ref(value: &str, prefix: &str, field: &'static str) -> Result<(), UserError> {
    let ok = value.len() <= 255
        && value.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid {
            field,
            message: format!("must be a provider id starting with `{prefix}`"),
        })
    }
}

/// What the provider reports about a connected account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountStatus {
    pub charges_enabled: bool,
    pub details_submitted: bool,
}

/// Records the user's connected payout account with the status the provider reported
/// (both false when no provider checked it: charges stay disabled until one does).
pub async fn connect_bank_account(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    account: ConnectBankAccount,
    status: AccountStatus,
) -> Result<User, UserError> {
    check_provider_ref(&account.stripe_connect_id, "acct_", "stripeConnectId")?;
    let updated = with_conn!(conn, c => {
        diesel::update(
            users::table
                .find(user_id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode)),
        )
        .set((
            users::stripe_connect_id.eq(&account.stripe_connect_id),
            users::charges_enabled.eq(status.charges_enabled),
            users::details_submitted.eq(status.details_submitted),
            users::updated_at.eq(Timestamp::now()),
        ))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(UserError::NotFound);
    }
    crate::user::get(conn, tenant, user_id).await
}

/// Records the user's customer at the payment provider (Stripe `cus_...`).
pub async fn set_stripe_customer(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    customer_id: &str,
) -> Result<User, UserError> {
    check_provider_ref(customer_id, "cus_", "stripeCustomerId")?;
    let updated = with_conn!(conn, c => {
        diesel::update(
            users::table
                .find(user_id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode)),
        )
        .set((
            users::stripe_customer_id.eq(customer_id),
            users::updated_at.eq(Timestamp::now()),
        ))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(UserError::NotFound);
    }
    crate::user::get(conn, tenant, user_id).await
}

/// One of the user's payment methods.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<PaymentMethod, UserError> {
    find(conn, tenant, user_id, id).await
}

/// The user's connected payout account; `BankAccountNotConnected` when there is none.
pub async fn bank_account(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<BankAccount, UserError> {
    let user = crate::user::get(conn, tenant, user_id).await?;
    let stripe_connect_id = user
        .stripe_connect_id
        .ok_or(UserError::BankAccountNotConnected)?;
    Ok(BankAccount {
        stripe_connect_id,
        charges_enabled: user.charges_enabled,
        details_submitted: user.details_submitted,
    })
}

/// Records a payment method for the user. The first one becomes the default; so does one
/// added with `make_default`. Recording the same provider reference twice → conflict.
pub async fn add(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    new: NewPaymentMethod,
) -> Result<PaymentMethod, UserError> {
    check_provider_ref(&new.provider_ref, "pm_", "providerRef")?;
    if let Some(last4) = &new.last4
        && (last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(UserError::Invalid {
            field: "last4",
            message: "must be four digits".to_owned(),
        });
    }
    conn.transaction(async |c| {
        // Serialises concurrent additions for one user (the row lock on PostgreSQL, the
        // write lock taken up front on SQLite), so the count and the default stay right.
        lock_user(c, tenant, user_id).await?;
        let existing: i64 = with_conn!(c, c => {
            user_payment_methods::table
                .filter(user_payment_methods::user_id.eq(user_id))
                .count()
                .get_result(c)
                .await
        })
        .map_err(DbError::from)?;
        if existing >= MAX_PAYMENT_METHODS_PER_USER {
            return Err(UserError::Invalid {
                field: "providerRef",
                message: format!(
                    "a user has at most {MAX_PAYMENT_METHODS_PER_USER} payment methods"
                ),
            });
        }
        let is_default = existing == 0 || new.make_default;
        if is_default {
            clear_default(c, user_id).await?;
        }
        let row = PaymentMethodRow {
            id: PaymentMethodId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            user_id: user_id.clone(),
            provider: STRIPE.to_owned(),
            provider_ref: new.provider_ref,
            brand: new.brand,
            last4: new.last4,
            exp_month: new.exp_month,
            exp_year: new.exp_year,
            is_default,
            created_at: Timestamp::now(),
        };
        with_conn!(c, c => {
            diesel::insert_into(user_payment_methods::table).values(&row).execute(c).await
        })
        .map_err(|error| {
            let error = DbError::from(error);
            if error.is_unique_violation("provider_ref") {
                UserError::PaymentMethodExists
            } else {
                UserError::Db(error)
            }
        })?;
        Ok(row.into())
    })
    .await
}

/// The user's payment methods, default first, then oldest first.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
) -> Result<Vec<PaymentMethod>, UserError> {
    crate::user::get(conn, tenant, user_id).await?;
    let mut by_user = for_users(conn, tenant, std::slice::from_ref(user_id)).await?;
    Ok(by_user.remove(user_id).unwrap_or_default())
}

/// Removes one of the user's payment methods. When it was the default, the oldest
/// remaining one becomes the default, so a user with payment methods always has one.
pub async fn remove(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<(), UserError> {
    conn.transaction(async |c| {
        lock_user(c, tenant, user_id).await?;
        let method = find(c, tenant, user_id, id).await?;
        with_conn!(c, c => {
            diesel::delete(user_payment_methods::table.find(id)).execute(c).await
        })
        .map_err(DbError::from)?;
        if method.is_default {
            let oldest: Option<PaymentMethodId> = with_conn!(c, c => {
                user_payment_methods::table
                    .filter(user_payment_methods::user_id.eq(user_id))
                    .order((user_payment_methods::created_at.asc(), user_payment_methods::id.asc()))
                    .select(user_payment_methods::id)
                    .first(c)
                    .await
                    .optional()
            })
            .map_err(DbError::from)?;
            if let Some(oldest) = oldest {
                mark_default(c, &oldest).await?;
            }
        }
        Ok(())
    })
    .await
}

/// Makes one of the user's payment methods the default (the previous default stops being it).
pub async fn set_default(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<PaymentMethod, UserError> {
    conn.transaction(async |c| {
        lock_user(c, tenant, user_id).await?;
        let mut method = find(c, tenant, user_id, id).await?;
        if !method.is_default {
            clear_default(c, user_id).await?;
            mark_default(c, id).await?;
            method.is_default = true;
        }
        Ok(method)
    })
    .await
}

/// The payment methods of these users, in one query.
pub async fn for_users(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_ids: &[UserId],
) -> Result<HashMap<UserId, Vec<PaymentMethod>>, UserError> {
    if user_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = with_conn!(conn, c => {
        user_payment_methods::table
            .filter(user_payment_methods::platform_id.eq(&tenant.platform_id))
            .filter(user_payment_methods::mode.eq(tenant.mode))
            .filter(user_payment_methods::user_id.eq_any(user_ids))
            .order((
                user_payment_methods::is_default.desc(),
                user_payment_methods::created_at.asc(),
                user_payment_methods::id.asc(),
            ))
            .select(PaymentMethodRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut by_user: HashMap<UserId, Vec<PaymentMethod>> = HashMap::new();
    for row in rows {
        by_user
            .entry(row.user_id.clone())
            .or_default()
            .push(row.into());
    }
    Ok(by_user)
}

/// Deletes every payment method of a user (account purge).
pub(crate) async fn remove_all(conn: &mut DbConn, user_id: &UserId) -> Result<(), UserError> {
    with_conn!(conn, c => {
        diesel::delete(user_payment_methods::table.filter(user_payment_methods::user_id.eq(user_id)))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

async fn find(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    id: &PaymentMethodId,
) -> Result<PaymentMethod, UserError> {
    let row = with_conn!(conn, c => {
        user_payment_methods::table
            .find(id)
            .filter(user_payment_methods::user_id.eq(user_id))
            .filter(user_payment_methods::platform_id.eq(&tenant.platform_id))
            .filter(user_payment_methods::mode.eq(tenant.mode))
            .select(PaymentMethodRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    row.map(PaymentMethod::from)
        .ok_or(UserError::PaymentMethodNotFound)
}

async fn clear_default(conn: &mut DbConn, user_id: &UserId) -> Result<(), UserError> {
    with_conn!(conn, c => {
        diesel::update(
            user_payment_methods::table
                .filter(user_payment_methods::user_id.eq(user_id))
                .filter(user_payment_methods::is_default.eq(true)),
        )
        .set(user_payment_methods::is_default.eq(false))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

async fn mark_default(conn: &mut DbConn, id: &PaymentMethodId) -> Result<(), UserError> {
    with_conn!(conn, c => {
        diesel::update(user_payment_methods::table.find(id))
            .set(user_payment_methods::is_default.eq(true))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(())
}

/// Locks the user's row for the rest of the transaction (PostgreSQL); on SQLite the
/// transaction already holds the database's write lock. Not found → `NotFound`.
async fn lock_user(conn: &mut DbConn, tenant: &Tenant, user_id: &UserId) -> Result<(), UserError> {
    let found: Option<UserId> = with_conn!(conn,
        sqlite: c => {
            users::table
                .find(user_id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode))
                .select(users::id)
                .first(c)
                .await
                .optional()
        },
        postgres: c => {
            users::table
                .find(user_id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode))
                .select(users::id)
                .for_update()
                .first(c)
                .await
                .optional()
        }
    )
    .map_err(DbError::from)?;
    found.map(|_| ()).ok_or(UserError::NotFound)
}
