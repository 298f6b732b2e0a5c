//! Users: one account per platform, mode and email.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidateEmail};

use crate::error::UserError;
use crate::role::Role;
use crate::schema::users;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub email: String,
    pub role: Role,
    pub username: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub image: Option<String>,
    pub timezone: Option<String>,
    pub stripe_connect_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub charges_enabled: bool,
    pub details_submitted: bool,
    pub authenticated_at: Option<Timestamp>,
    pub scheduled_deletion_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user as the API shows it (the seed's object, plus `role`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub struct UserObject {
    pub id: UserId,
    #[serde(rename = "platform_id")]
    pub platform_id: PlatformId,
    pub email: String,
    pub role: Role,
    pub username: Option<String>,
    pub bio: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image: Option<String>,
    pub stripe_connect_id: Option<String>,
    pub charges_enabled: bool,
    pub details_submitted: bool,
    /// IANA time zone, e.g. `America/New_York`.
    pub timezone: Option<String>,
    pub stripe_customer_id: Option<String>,
    /// When the user last signed in.
    pub authenticated: Option<Timestamp>,
    pub links: Vec<serde_json::Value>,
    pub payment_methods: Vec<serde_json::Value>,
    /// When the account's personal data will be erased, if deletion was requested.
    pub scheduled_deletion: Option<Timestamp>,
}

impl User {
    pub fn tenant(&self) -> Tenant {
        Tenant::new(self.platform_id.clone(), self.mode)
    }

    pub fn to_object(&self) -> UserObject {
        UserObject {
            id: self.id.clone(),
            platform_id: self.platform_id.clone(),
            email: self.email.clone(),
            role: self.role,
            username: self.username.clone(),
            bio: self.bio.clone(),
            name: self.name.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            image: self.image.clone(),
            stripe_connect_id: self.stripe_connect_id.clone(),
            charges_enabled: self.charges_enabled,
            details_submitted: self.details_submitted,
            timezone: self.timezone.clone(),
            stripe_customer_id: self.stripe_customer_id.clone(),
            authenticated: self.authenticated_at,
            links: Vec::new(),
            payment_methods: Vec::new(),
            scheduled_deletion: self.scheduled_deletion_at,
        }
    }
}

/// Changes a user may make to their own profile; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserChanges {
    #[validate(length(min = 3, max = 40, message = "must be 3 to 40 characters"))]
    pub username: Option<String>,
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub name: Option<String>,
    #[validate(length(max = 100, message = "must be at most 100 characters"))]
    pub first_name: Option<String>,
    #[validate(length(max = 100, message = "must be at most 100 characters"))]
    pub last_name: Option<String>,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    pub bio: Option<String>,
    /// IANA time zone, e.g. `Europe/Madrid`.
    #[validate(length(min = 1, max = 64, message = "must be an IANA time zone name"))]
    pub timezone: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset {
    username: Option<String>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    bio: Option<String>,
    timezone: Option<String>,
    updated_at: Timestamp,
}

/// Trims and lower-cases an email address and checks its form.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    if email.validate_email() && email.len() <= 254 {
        Ok(email)
    } else {
        Err(UserError::Invalid {
            field: "email",
            message: "must be a valid email address".into(),
        })
    }
}

/// Checks a username: 3 to 40 of `a-z 0-9 _ . -`, starting with a letter or digit.
pub fn check_username(username: &str) -> Result<String, UserError> {
    let username = username.trim().to_lowercase();
    let valid = (3..=40).contains(&username.len())
        && username
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && username.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if valid {
        Ok(username)
    } else {
        Err(UserError::Invalid {
            field: "username",
            message: "must be 3 to 40 characters of a-z, 0-9, _, . and -".into(),
        })
    }
}

fn new_user(tenant: &Tenant, email: String, role: Role, now: Timestamp) -> User {
    User {
        id: UserId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        email,
        role,
        username: None,
        name: None,
        first_name: None,
        last_name: None,
        bio: None,
        image: None,
        timezone: None,
        stripe_connect_id: None,
        stripe_customer_id: None,
        charges_enabled: false,
        details_submitted: false,
        authenticated_at: None,
        scheduled_deletion_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Creates a user with this email and role in the tenant.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    email: &str,
    role: Role,
) -> Result<User, UserError> {
    let user = new_user(tenant, normalize_email(email)?, role, Timestamp::now());
    with_conn!(conn, c => diesel::insert_into(users::table).values(&user).execute(c).await)
        .map_err(|e| UserError::from_write(e.into()))?;
    Ok(user)
}

/// The user with this email in the tenant, if any.
pub async fn find_by_email(
    conn: &mut DbConn,
    tenant: &Tenant,
    email: &str,
) -> Result<Option<User>, UserError> {
    let email = normalize_email(email)?;
    let found = with_conn!(conn, c => {
        users::table
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .filter(users::email.eq(&email))
            .select(User::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    Ok(found)
}

/// The user signing in with this email: found, or created as a member on first sign-in.
/// Records the sign-in time.
pub async fn sign_in(conn: &mut DbConn, tenant: &Tenant, email: &str) -> Result<User, UserError> {
    let now = Timestamp::now();
    let mut user = match find_by_email(conn, tenant, email).await? {
        Some(user) => user,
        None => match create(conn, tenant, email, Role::Member).await {
            Ok(user) => user,
            // Two first sign-ins at once: the other created it.
            Err(UserError::EmailTaken) => find_by_email(conn, tenant, email)
                .await?
                .ok_or(UserError::NotFound)?,
            Err(other) => return Err(other),
        },
    };
    with_conn!(conn, c => {
        diesel::update(users::table.find(&user.id))
            .set(users::authenticated_at.eq(now))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    user.authenticated_at = Some(now);
    Ok(user)
}

/// The user with this id in the tenant; another tenant's user is "not found".
pub async fn get(conn: &mut DbConn, tenant: &Tenant, id: &UserId) -> Result<User, UserError> {
    let found = with_conn!(conn, c => {
        users::table
            .find(id)
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .select(User::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    found.ok_or(UserError::NotFound)
}

/// Applies profile changes; returns the updated user.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    changes: UserChanges,
) -> Result<User, UserError> {
    let changeset = UserChangeset {
        username: changes
            .username
            .as_deref()
            .map(check_username)
            .transpose()?,
        name: changes.name,
        first_name: changes.first_name,
        last_name: changes.last_name,
        bio: changes.bio,
        timezone: changes.timezone,
        updated_at: Timestamp::now(),
    };
    let updated = with_conn!(conn, c => {
        diesel::update(
            users::table
                .find(id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode)),
        )
        .set(&changeset)
        .execute(c)
        .await
    })
    .map_err(|e| UserError::from_write(e.into()))?;
    if updated == 0 {
        return Err(UserError::NotFound);
    }
    get(conn, tenant, id).await
}

/// Ids of the tenant's owners and admins, oldest first.
pub async fn admin_ids(conn: &mut DbConn, tenant: &Tenant) -> Result<Vec<UserId>, UserError> {
    let ids = with_conn!(conn, c => {
        users::table
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .filter(users::role.eq_any([Role::Owner, Role::Admin]))
            .order(users::created_at.asc())
            .select(users::id)
            .load::<UserId>(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_usernames_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        assert!(normalize_email("not-an-email").is_err());
        assert_eq!(check_username("John_Doe").unwrap(), "john_doe");
        for bad in ["ab", "_john", "john doe", "jöhn"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
