//! Users: one account per platform, mode and email.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::coherence::{self, Topic};
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use feria_platforms::media::{MediaId, MediaUrls};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidateEmail};

use crate::error::UserError;
use crate::links::Link;
use crate::payments::PaymentMethod;
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
    /// The profile image's media id (`med_...`); rows from before media ids were stored
    /// may hold its URL (see [`feria_platforms::media::stored_media_id`]).
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
    /// URL of the profile image: under the server's `PUBLIC_URL`, or relative
    /// (`/media/med_...`) without one.
    pub image: Option<String>,
    pub stripe_connect_id: Option<String>,
    pub charges_enabled: bool,
    pub details_submitted: bool,
    /// IANA time zone, e.g. `America/New_York`.
    pub timezone: Option<String>,
    pub stripe_customer_id: Option<String>,
    /// When the user last signed in.
    pub authenticated: Option<Timestamp>,
    pub links: Vec<Link>,
    pub payment_methods: Vec<PaymentMethod>,
    /// When the account's personal data will be erased, if deletion was requested.
    pub scheduled_deletion: Option<Timestamp>,
}

impl User {
    pub fn tenant(&self) -> Tenant {
        Tenant::new(self.platform_id.clone(), self.mode)
    }

    /// The API object, with the user's links and payment methods; `media` makes the
    /// image's URL.
    pub fn to_object_with(
        &self,
        media: &MediaUrls,
        links: Vec<Link>,
        payment_methods: Vec<PaymentMethod>,
    ) -> UserObject {
        UserObject {
            links,
            payment_methods,
            ..self.to_object(media)
        }
    }

    /// The API object without loading links and payment methods (empty lists).
    pub fn to_object(&self, media: &MediaUrls) -> UserObject {
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
            image: media.of_stored(self.image.as_deref()),
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
    /// Admins only: the user's role. Making an owner takes an owner.
    pub role: Option<Role>,
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
    role: Option<Role>,
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
    conn.transaction(async |c| -> Result<User, UserError> {
        let user = insert(c, tenant, email, role).await?;
        record_created(c, tenant, &user).await?;
        Ok(user)
    })
    .await
}

async fn insert(
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

/// `user.created`, in the creating transaction (a new user has no image, links or methods
/// yet, so no URL base is needed).
async fn record_created(conn: &mut DbConn, tenant: &Tenant, user: &User) -> Result<(), DbError> {
    let object = user.to_object(&MediaUrls::relative());
    feria_events::record(conn, tenant, feria_events::EventType::UserCreated, &object).await?;
    Ok(())
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

/// Tells this process that a user's role or standing changed (the epoch of
/// `feria_kernel::coherence::Topic::Authorization`, which caches of authenticated callers
/// stamp their entries with). [`update`] and [`schedule_deletion`] call it after their
/// statement, and announce the change to other nodes from inside it; a caller running
/// them inside a transaction calls it again once the transaction has committed, since
/// until then a concurrent request still reads (and may cache) the old role.
pub fn authorization_changed() {
    coherence::changed(Topic::Authorization);
}

/// Applies profile changes; returns the updated user.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    changes: UserChanges,
) -> Result<User, UserError> {
    let role_changes = changes.role.is_some();
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
        role: changes.role,
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
    if role_changes {
        // Delivered to the other nodes when the caller's transaction commits.
        coherence::announce(conn, Topic::Authorization).await?;
        authorization_changed();
    }
    if updated == 0 {
        return Err(UserError::NotFound);
    }
    get(conn, tenant, id).await
}

/// The ownership rule (docs/API-CONVENTIONS.md, Roles): only an owner acts on the owner
/// role — makes an owner, changes an owner's role, deletes an owner. `roles` are the
/// roles the action involves (the user's current role, the role given); `actor` is the
/// caller's role (an API key acts as admin). [`UserError::OwnerRequired`] otherwise.
pub fn check_owner_rule(
    actor: Role,
    roles: impl IntoIterator<Item = Role>,
) -> Result<(), UserError> {
    let touches_owner = roles.into_iter().any(|role| role == Role::Owner);
    if touches_owner && !actor.at_least(Role::Owner) {
        Err(UserError::OwnerRequired)
    } else {
        Ok(())
    }
}

/// The tenant's owners whose account is not scheduled for deletion, locked for the rest
/// of the transaction (PostgreSQL, in id order so that concurrent lockers queue instead
/// of deadlocking; on SQLite the transaction already holds the write lock). Two owners
/// removing each other at once are thereby decided one after the other.
async fn lock_owners(conn: &mut DbConn, tenant: &Tenant) -> Result<Vec<UserId>, UserError> {
    let owners = with_conn!(conn,
        sqlite: c => {
            users::table
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode))
                .filter(users::role.eq(Role::Owner))
                .filter(users::scheduled_deletion_at.is_null())
                .order(users::id.asc())
                .select(users::id)
                .load::<UserId>(c)
                .await
        },
        postgres: c => {
            users::table
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode))
                .filter(users::role.eq(Role::Owner))
                .filter(users::scheduled_deletion_at.is_null())
                .order(users::id.asc())
                .select(users::id)
                .for_update()
                .load::<UserId>(c)
                .await
        }
    )
    .map_err(DbError::from)?;
    Ok(owners)
}

/// The ownership rule for an action that takes the owner role away from `target` (a
/// demotion or a deletion), with the tenant's owners locked: it takes an owner
/// ([`UserError::OwnerRequired`]), and another owner must remain
/// ([`UserError::LastOwner`]): a platform never loses its last owner, whoever asks.
async fn check_owner_leaves(
    conn: &mut DbConn,
    tenant: &Tenant,
    target: &UserId,
    actor: Role,
) -> Result<User, UserError> {
    let owners = lock_owners(conn, tenant).await?;
    let user = get(conn, tenant, target).await?;
    check_owner_rule(actor, [user.role])?;
    let remains_owner = |id: &UserId| id != target;
    if user.role == Role::Owner
        && user.scheduled_deletion_at.is_none()
        && !owners.iter().any(remains_owner)
    {
        return Err(UserError::LastOwner);
    }
    Ok(user)
}

/// [`update`] by a caller acting as `actor`, under the ownership rules: a role change that
/// makes an owner or changes an owner's role takes an owner, and the last owner cannot
/// give the role up. Changes without a role are plain [`update`]s.
pub async fn update_as(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    changes: UserChanges,
    actor: Role,
) -> Result<User, UserError> {
    let Some(role) = changes.role else {
        return update(conn, tenant, id, changes).await;
    };
    let user = conn
        .transaction(async |c| -> Result<User, UserError> {
            if role == Role::Owner {
                let target = get(c, tenant, id).await?;
                check_owner_rule(actor, [target.role, role])?;
            } else {
                // Any other role: if the user is an owner, they give the role up.
                check_owner_leaves(c, tenant, id, actor).await?;
            }
            update(c, tenant, id, changes).await
        })
        .await?;
    // Committed: caches must not go on trusting the role they read before.
    authorization_changed();
    Ok(user)
}

/// The role of the tenant's member `raw` (an id as a client sent it), or `None` when it
/// names no member: an id that cannot be a user's, an unknown user, or one whose account
/// is scheduled for deletion are all simply not members.
pub async fn member_role(
    conn: &mut DbConn,
    tenant: &Tenant,
    raw: &str,
) -> Result<Option<Role>, UserError> {
    let Ok(id) = raw.parse::<UserId>() else {
        return Ok(None);
    };
    match get(conn, tenant, &id).await {
        Ok(user) if user.scheduled_deletion_at.is_none() => Ok(Some(user.role)),
        Ok(_) | Err(UserError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
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

/// A user an admin creates.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewUser {
    #[validate(email(message = "must be a valid email address"))]
    pub email: String,
    /// Defaults to `member`.
    pub role: Option<Role>,
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
    #[validate(length(min = 1, max = 64, message = "must be an IANA time zone name"))]
    pub timezone: Option<String>,
}

/// Creates a user with a profile, in one transaction.
pub async fn create_with_profile(
    conn: &mut DbConn,
    tenant: &Tenant,
    new: NewUser,
) -> Result<User, UserError> {
    conn.transaction(async |c| -> Result<User, UserError> {
        let user = insert(c, tenant, &new.email, new.role.unwrap_or(Role::Member)).await?;
        let user = update(
            c,
            tenant,
            &user.id,
            UserChanges {
                username: new.username.clone(),
                name: new.name.clone(),
                first_name: new.first_name.clone(),
                last_name: new.last_name.clone(),
                bio: new.bio.clone(),
                timezone: new.timezone.clone(),
                role: None,
            },
        )
        .await?;
        record_created(c, tenant, &user).await?;
        Ok(user)
    })
    .await
}

/// Filters of the user list.
#[derive(Debug, Clone, Default, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Exact email (case-insensitive).
    pub email: Option<String>,
    /// Exact username (case-insensitive).
    pub username: Option<String>,
    #[serde(default)]
    #[param(ignore)]
    pub page: Option<u32>,
    #[serde(default)]
    #[param(ignore)]
    pub page_size: Option<u32>,
}

/// The tenant's users, newest first.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    filter: &UserFilter,
    page: feria_kernel::PageRequest,
) -> Result<feria_kernel::Page<User>, UserError> {
    let email = filter.email.as_deref().map(|e| e.trim().to_lowercase());
    let username = filter.username.as_deref().map(|u| u.trim().to_lowercase());
    let (rows, total) = with_conn!(conn, c => async {
        let mut query = users::table
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .into_boxed();
        let mut count = users::table
            .filter(users::platform_id.eq(&tenant.platform_id))
            .filter(users::mode.eq(tenant.mode))
            .into_boxed();
        if let Some(email) = &email {
            query = query.filter(users::email.eq(email.clone()));
            count = count.filter(users::email.eq(email.clone()));
        }
        if let Some(username) = &username {
            query = query.filter(users::username.eq(username.clone()));
            count = count.filter(users::username.eq(username.clone()));
        }
        let rows = query
            .order((users::created_at.desc(), users::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(User::as_select())
            .load(c)
            .await?;
        let total: i64 = count.count().get_result(c).await?;
        Ok::<_, diesel::result::Error>((rows, total))
    }
    .await)
    .map_err(DbError::from)?;
    Ok(feria_kernel::Page::new(
        rows,
        page,
        u64::try_from(total).unwrap_or(0),
    ))
}

/// Sets the user's profile image to an uploaded image (its media id is stored, not a URL).
pub async fn set_image(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    image: &MediaId,
) -> Result<User, UserError> {
    let updated = with_conn!(conn, c => {
        diesel::update(
            users::table
                .find(id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode)),
        )
        .set((users::image.eq(image.as_str()), users::updated_at.eq(Timestamp::now())))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(UserError::NotFound);
    }
    get(conn, tenant, id).await
}

/// Schedules the erasure of the user's personal data `grace` from now, asked by a caller
/// acting as `actor` (the user themselves, or an admin): deleting an owner takes an owner,
/// and the last owner cannot be deleted ([`check_owner_rule`]). Signing in is no longer
/// possible; the caller revokes the user's sessions in the same transaction.
pub async fn schedule_deletion(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    grace: time::Duration,
    actor: Role,
) -> Result<User, UserError> {
    conn.transaction(async |c| -> Result<User, UserError> {
        check_owner_leaves(c, tenant, id, actor).await?;
        mark_for_deletion(c, tenant, id, grace).await
    })
    .await
}

async fn mark_for_deletion(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &UserId,
    grace: time::Duration,
) -> Result<User, UserError> {
    let now = Timestamp::now();
    let updated = with_conn!(conn, c => {
        diesel::update(
            users::table
                .find(id)
                .filter(users::platform_id.eq(&tenant.platform_id))
                .filter(users::mode.eq(tenant.mode))
                .filter(users::scheduled_deletion_at.is_null()),
        )
        .set((users::scheduled_deletion_at.eq(now.add(grace)), users::updated_at.eq(now)))
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    coherence::announce(conn, Topic::Authorization).await?;
    authorization_changed();
    let user = get(conn, tenant, id).await?;
    if updated == 0 && user.scheduled_deletion_at.is_none() {
        return Err(UserError::NotFound);
    }
    Ok(user)
}

/// The address a purged account keeps: unique, unroutable, and no longer personal.
fn purged_email(id: &UserId) -> String {
    format!("deleted+{}@deleted.invalid", id.as_str().to_lowercase())
}

/// Erases the personal data of every account whose scheduled deletion is due at `now`;
/// the row stays (ids referenced by contracts and ledgers stay valid). Returns how many
/// accounts were erased. Idempotent.
pub async fn purge_due(conn: &mut DbConn, now: Timestamp) -> Result<usize, UserError> {
    let due: Vec<UserId> = with_conn!(conn, c => {
        users::table
            .filter(users::scheduled_deletion_at.le(now))
            .filter(users::email.not_like("deleted+%@deleted.invalid"))
            .select(users::id)
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    for id in &due {
        conn.transaction(async |c| -> Result<(), UserError> {
            crate::links::remove_all(c, id).await?;
            crate::payments::remove_all(c, id).await?;
            with_conn!(c, c => {
                diesel::update(users::table.find(id))
                    .set((
                        users::email.eq(purged_email(id)),
                        users::username.eq(None::<String>),
                        users::name.eq(None::<String>),
                        users::first_name.eq(None::<String>),
                        users::last_name.eq(None::<String>),
                        users::bio.eq(None::<String>),
                        users::image.eq(None::<String>),
                        users::timezone.eq(None::<String>),
                        users::stripe_connect_id.eq(None::<String>),
                        users::stripe_customer_id.eq(None::<String>),
                        users::charges_enabled.eq(false),
                        users::details_submitted.eq(false),
                        users::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(DbError::from)?;
            Ok(())
        })
        .await?;
    }
    Ok(due.len())
}

/// API objects for users, with their links and payment methods (one query each);
/// `media` makes image URLs.
pub async fn objects(
    conn: &mut DbConn,
    tenant: &Tenant,
    users: &[User],
    media: &MediaUrls,
) -> Result<Vec<UserObject>, UserError> {
    let ids: Vec<UserId> = users.iter().map(|u| u.id.clone()).collect();
    let mut links = crate::links::for_users(conn, tenant, &ids).await?;
    let mut methods = crate::payments::for_users(conn, tenant, &ids).await?;
    Ok(users
        .iter()
        .map(|user| {
            user.to_object_with(
                media,
                links.remove(&user.id).unwrap_or_default(),
                methods.remove(&user.id).unwrap_or_default(),
            )
        })
        .collect())
}

/// The API object of one user, with links and payment methods.
pub async fn object(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &User,
    media: &MediaUrls,
) -> Result<UserObject, UserError> {
    let mut objects = objects(conn, tenant, std::slice::from_ref(user), media).await?;
    objects.pop().ok_or(UserError::NotFound)
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
