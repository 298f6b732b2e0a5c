//! Links on a user's profile (website, socials).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::UserError;
use crate::schema::user_links;

feria_kernel::define_id!(
    /// A link on a user's profile.
    LinkId,
    "link"
);

/// Links one user may have.
pub const MAX_LINKS_PER_USER: i64 = 20;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_links)]
struct LinkRow {
    id: LinkId,
    platform_id: PlatformId,
    mode: Mode,
    user_id: UserId,
    url: String,
    title: Option<String>,
    created_at: Timestamp,
}

/// A link as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Link {
    pub id: LinkId,
    pub url: String,
    pub title: Option<String>,
    pub created: Timestamp,
}

impl From<LinkRow> for Link {
    fn from(row: LinkRow) -> Self {
        Link {
            id: row.id,
            url: row.url,
            title: row.title,
            created: row.created_at,
        }
    }
}

/// A link to add.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// An `http` or `https` URL with a host, at most 2000 characters; stored normalised.
    #[schema(format = "uri", max_length = 2000)]
    pub url: String,
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub title: Option<String>,
}

/// Adds a link to the user's profile (at most [`MAX_LINKS_PER_USER`]).
pub async fn add(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    new: NewLink,
) -> Result<Link, UserError> {
    let url =
        feria_kernel::web_url::normalize("url", &new.url).map_err(|e| UserError::Invalid {
            field: e.field,
            message: e.message(),
        })?;
    crate::user::get(conn, tenant, user_id).await?;
    let existing: i64 = with_conn!(conn, c => {
        user_links::table.filter(user_links::user_id.eq(user_id)).count().get_result(c).await
    })
    .map_err(DbError::from)?;
    if existing >= MAX_LINKS_PER_USER {
        return Err(UserError::Invalid {
            field: "url",
            message: format!("a profile has at most {MAX_LINKS_PER_USER} links"),
        });
    }
    let row = LinkRow {
        id: LinkId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        user_id: user_id.clone(),
        url,
        title: new.title,
        created_at: Timestamp::now(),
    };
    with_conn!(conn, c => diesel::insert_into(user_links::table).values(&row).execute(c).await)
        .map_err(DbError::from)?;
    Ok(row.into())
}

/// Removes one of the user's links; another user's link is "not found".
pub async fn remove(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_id: &UserId,
    link_id: &LinkId,
) -> Result<(), UserError> {
    let deleted = with_conn!(conn, c => {
        diesel::delete(
            user_links::table
                .find(link_id)
                .filter(user_links::user_id.eq(user_id))
                .filter(user_links::platform_id.eq(&tenant.platform_id))
                .filter(user_links::mode.eq(tenant.mode)),
        )
        .execute(c)
        .await
    })
    .map_err(DbError::from)?;
    if deleted == 0 {
        Err(UserError::LinkNotFound)
    } else {
        Ok(())
    }
}

/// The links of these users, oldest first, in one query.
pub async fn for_users(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_ids: &[UserId],
) -> Result<HashMap<UserId, Vec<Link>>, UserError> {
    if user_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = with_conn!(conn, c => {
        user_links::table
            .filter(user_links::platform_id.eq(&tenant.platform_id))
            .filter(user_links::mode.eq(tenant.mode))
            .filter(user_links::user_id.eq_any(user_ids))
            .order(user_links::created_at.asc())
            .select(LinkRow::as_select())
            .load(c)
            .await
    })
    .map_err(DbError::from)?;
    let mut by_user: HashMap<UserId, Vec<Link>> = HashMap::new();
    for row in rows {
        by_user
            .entry(row.user_id.clone())
            .or_default()
            .push(row.into());
    }
    Ok(by_user)
}

/// Deletes every link of a user (account purge).
pub(crate) async fn remove_all(conn: &mut DbConn, user_id: &UserId) -> Result<(), UserError> {
    with_conn!(conn, c => {
        diesel::delete(user_links::table.filter(user_links::user_id.eq(user_id))).execute(c).await
    })
    .map_err(DbError::from)?;
    Ok(())
}
