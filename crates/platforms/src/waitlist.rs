//! Waitlists: people waiting for access to a platform, in order of arrival.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    DbConn, DbError, Mode, Page, PageRequest, PlatformId, Tenant, Timestamp, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidateEmail};

use feria_kernel::mail::{Mailer, OutgoingMail};

use crate::error::PlatformError;
use crate::schema::waitlist_entries;

feria_kernel::define_id!(
    /// A waitlist entry.
    WaitlistId,
    "wlist"
);

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = waitlist_entries)]
struct EntryRow {
    id: WaitlistId,
    platform_id: PlatformId,
    mode: Mode,
    email: String,
    name: String,
    position: i64,
    granted_at: Option<Timestamp>,
    created_at: Timestamp,
}

/// A waitlist entry as the API shows it (the seed's object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitlistEntry {
    pub id: WaitlistId,
    pub email: String,
    pub name: String,
    /// 1 for the first person who joined.
    pub position: i64,
    /// When access was granted; `null` while waiting.
    pub granted: Option<Timestamp>,
    pub created: Timestamp,
}

impl From<EntryRow> for WaitlistEntry {
    fn from(row: EntryRow) -> Self {
        WaitlistEntry {
            id: row.id,
            email: row.email,
            name: row.name,
            position: row.position,
            granted: row.granted_at,
            created: row.created_at,
        }
    }
}

/// Someone joining the waitlist.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWaitlistEntry {
    #[validate(email(message = "must be a valid email address"))]
    pub email: String,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: String,
}

/// Adds someone at the end of the tenant's waitlist. The same email twice is a conflict.
pub async fn join(
    conn: &mut DbConn,
    tenant: &Tenant,
    new: NewWaitlistEntry,
) -> Result<WaitlistEntry, PlatformError> {
    let email = new.email.trim().to_lowercase();
    if !email.validate_email() {
        return Err(PlatformError::Invalid {
            field: "email",
            message: "must be a valid email address".into(),
        });
    }
    let name = new.name.trim().to_owned();
    // Positions come from MAX + 1 inside a transaction that serialises joiners of one
    // platform: SQLite's BEGIN IMMEDIATE already does; on PostgreSQL the platform's row is
    // locked first. The unique (platform, mode, position) index stays the last guard; a
    // violation of it (which the lock should prevent) is retried.
    for _ in 0..3 {
        let attempt = conn
            .transaction(async |c| -> Result<EntryRow, PlatformError> {
                // Backend-specific: row locking.
                with_conn!(c,
                    sqlite: _c => Ok::<_, diesel::result::Error>(()),
                    postgres: c => {
                        crate::schema::platforms::table
                            .find(&tenant.platform_id)
                            .select(crate::schema::platforms::id)
                            .for_update()
                            .first::<String>(c)
                            .await
                            .optional()
                            .map(|_| ())
                    },
                )
                .map_err(DbError::from)?;
                let last: Option<i64> = with_conn!(c, c => {
                    waitlist_entries::table
                        .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
                        .filter(waitlist_entries::mode.eq(tenant.mode))
                        .select(diesel::dsl::max(waitlist_entries::position))
                        .first(c)
                        .await
                })
                .map_err(DbError::from)?;
                let row = EntryRow {
                    id: WaitlistId::new(),
                    platform_id: tenant.platform_id.clone(),
                    mode: tenant.mode,
                    email: email.clone(),
                    name: name.clone(),
                    position: last.unwrap_or(0) + 1,
                    granted_at: None,
                    created_at: Timestamp::now(),
                };
                with_conn!(c, c => diesel::insert_into(waitlist_entries::table).values(&row).execute(c).await)
                    .map_err(DbError::from)?;
                Ok(row)
            })
            .await;
        match attempt {
            Ok(row) => return Ok(row.into()),
            Err(PlatformError::Db(error)) if error.is_unique_violation("email") => {
                return Err(PlatformError::AlreadyOnWaitlist);
            }
            Err(PlatformError::Db(error))
                if error.is_unique_violation("position") || error.is_retryable() =>
            {
                continue;
            }
            Err(other) => return Err(other),
        }
    }
    Err(PlatformError::Db(DbError::Conflict(
        "waitlist position contention".into(),
    )))
}

/// The tenant's waitlist in order of position.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    page: PageRequest,
) -> Result<Page<WaitlistEntry>, PlatformError> {
    let (rows, total) = with_conn!(conn, c => async {
        let rows = waitlist_entries::table
            .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
            .filter(waitlist_entries::mode.eq(tenant.mode))
            .order(waitlist_entries::position.asc())
            .limit(page.limit())
            .offset(page.offset())
            .select(EntryRow::as_select())
            .load(c)
            .await?;
        let total: i64 = waitlist_entries::table
            .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
            .filter(waitlist_entries::mode.eq(tenant.mode))
            .count()
            .get_result(c)
            .await?;
        Ok::<_, diesel::result::Error>((rows, total))
    }
    .await)
    .map_err(DbError::from)?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        u64::try_from(total).unwrap_or(0),
    ))
}

/// How many people are on the tenant's waitlist.
pub async fn count(conn: &mut DbConn, tenant: &Tenant) -> Result<u64, PlatformError> {
    let total: i64 = with_conn!(conn, c => {
        waitlist_entries::table
            .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
            .filter(waitlist_entries::mode.eq(tenant.mode))
            .count()
            .get_result(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(u64::try_from(total).unwrap_or(0))
}

async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &WaitlistId,
) -> Result<EntryRow, PlatformError> {
    with_conn!(conn, c => {
        waitlist_entries::table
            .find(id)
            .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
            .filter(waitlist_entries::mode.eq(tenant.mode))
            .select(EntryRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?
    .ok_or(PlatformError::WaitlistEntryNotFound)
}

/// Grants access and mails the person their invitation ("You're in"), once: granting
/// again changes nothing and sends no second mail. A mail that cannot be sent fails the
/// call with the grant kept (as the route always did).
pub async fn grant_and_invite(
    conn: &mut DbConn,
    mailer: &Mailer,
    tenant: &Tenant,
    id: &WaitlistId,
) -> Result<WaitlistEntry, PlatformError> {
    let (entry, newly_granted) = grant(conn, tenant, id).await?;
    if !newly_granted {
        return Ok(entry);
    }
    let platform = crate::platform::get(conn, &tenant.platform_id).await?;
    let place = platform
        .url
        .clone()
        .unwrap_or_else(|| format!("https://{}", platform.domain));
    mailer
        .send(OutgoingMail {
            to: entry.email.clone(),
            subject: format!("You're in: {}", platform.name),
            body: format!(
                "Hello {name},\n\nyour wait is over: you now have access to {platform}.\n\
                 Sign in with this email address at {place}.\n",
                name = entry.name,
                platform = platform.name,
            ),
        })
        .await?;
    Ok(entry)
}

/// Grants access: sets `granted` (once; granting again keeps the first date). Returns the
/// entry and whether this call granted it.
pub async fn grant(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &WaitlistId,
) -> Result<(WaitlistEntry, bool), PlatformError> {
    let now = Timestamp::now();
    conn.transaction(async |c| -> Result<(WaitlistEntry, bool), PlatformError> {
        let changed = with_conn!(c, c => {
            diesel::update(
                waitlist_entries::table
                    .find(id)
                    .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
                    .filter(waitlist_entries::mode.eq(tenant.mode))
                    .filter(waitlist_entries::granted_at.is_null()),
            )
            .set(waitlist_entries::granted_at.eq(now))
            .execute(c)
            .await
        })
        .map_err(DbError::from)?;
        let entry: WaitlistEntry = get(c, tenant, id).await?.into();
        if changed == 1 {
            feria_events::record(c, tenant, feria_events::EventType::WaitlistGranted, &entry)
                .await?;
        }
        Ok((entry, changed == 1))
    })
    .await
}

/// Removes an entry; the positions of the others stay as they were.
pub async fn remove(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &WaitlistId,
) -> Result<(), PlatformError> {
    let deleted = with_conn!(conn, c => {
        diesel::delete(
            waitlist_entries::table
                .find(id)
                .filter(waitlist_entries::platform_id.eq(&tenant.platform_id))
                .filter(waitlist_entries::mode.eq(tenant.mode)),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        Err(PlatformError::WaitlistEntryNotFound)
    } else {
        Ok(())
    }
}
