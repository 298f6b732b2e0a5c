//! Workspaces: where characters live. Each user has a default workspace, created on
//! first use. Its character limit is the one an admin set for it, else the server's
//! default (`WORKSPACE_CHARACTER_LIMIT`). The count is kept by conditional updates, so
//! concurrent creations and purchases never push it past the limit.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::MarketplaceError;
use crate::schema::workspaces;

feria_kernel::define_id!(
    /// A workspace.
    WorkspaceId,
    "ws"
);

/// A workspace as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub owner_id: UserId,
    pub name: String,
    pub is_default: bool,
    /// Set by an admin; `None`: the server's default.
    pub character_limit: Option<i64>,
    pub character_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Workspace {
    /// The limit in force: the workspace's own, else `default_limit`.
    pub fn limit(&self, default_limit: i64) -> i64 {
        self.character_limit.unwrap_or(default_limit)
    }

    pub fn to_object(&self, default_limit: i64) -> WorkspaceObject {
        WorkspaceObject {
            id: self.id.clone(),
            owner_id: self.owner_id.clone(),
            name: self.name.clone(),
            is_default: self.is_default,
            character_limit: self.limit(default_limit),
            character_count: self.character_count,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Workspace)]
pub struct WorkspaceObject {
    pub id: WorkspaceId,
    pub owner_id: UserId,
    pub name: String,
    /// The user's default workspace (purchases clone into it).
    pub is_default: bool,
    /// Most characters the workspace may hold.
    pub character_limit: i64,
    /// Characters it holds now.
    pub character_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `{"workspaces": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    pub workspaces: Vec<WorkspaceObject>,
}

/// `{"workspace": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceEnvelope {
    pub workspace: WorkspaceObject,
}

/// An admin's change to a workspace.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceChanges {
    /// The workspace's own limit (0 to 100000); `null` returns to the server's default.
    #[validate(range(min = 0, max = 100_000, message = "must be between 0 and 100000"))]
    pub character_limit: Option<i64>,
}

/// The user's default workspace, created on first use.
pub async fn default_for(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
) -> Result<Workspace, MarketplaceError> {
    if let Some(found) = find_default(conn, tenant, owner).await? {
        return Ok(found);
    }
    let now = Timestamp::now();
    let new = Workspace {
        id: WorkspaceId::new(),
        platform_id: tenant.platform_id.clone(),
        mode: tenant.mode,
        owner_id: owner.clone(),
        name: "Default workspace".to_owned(),
        is_default: true,
        character_limit: None,
        character_count: 0,
        created_at: now,
        updated_at: now,
    };
    // Two first uses at once: one insert wins, the other does nothing; both read it back.
    with_conn!(conn, c => {
        diesel::insert_into(workspaces::table)
            .values(&new)
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    find_default(conn, tenant, owner)
        .await?
        .ok_or(MarketplaceError::WorkspaceNotFound)
}

async fn find_default(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
) -> Result<Option<Workspace>, MarketplaceError> {
    Ok(with_conn!(conn, c => {
        workspaces::table
            .filter(workspaces::platform_id.eq(&tenant.platform_id))
            .filter(workspaces::mode.eq(tenant.mode))
            .filter(workspaces::owner_id.eq(owner))
            .filter(workspaces::is_default.eq(true))
            .select(Workspace::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// A workspace of the tenant, whoever owns it.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &WorkspaceId,
) -> Result<Workspace, MarketplaceError> {
    with_conn!(conn, c => {
        workspaces::table
            .find(id)
            .filter(workspaces::platform_id.eq(&tenant.platform_id))
            .filter(workspaces::mode.eq(tenant.mode))
            .select(Workspace::as_select())
            .first(c)
            .await
            .optional()
    })?
    .ok_or(MarketplaceError::WorkspaceNotFound)
}

/// A workspace the user owns (404 otherwise).
pub async fn owned(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    id: &WorkspaceId,
) -> Result<Workspace, MarketplaceError> {
    let workspace = get(conn, tenant, id).await?;
    if &workspace.owner_id == owner {
        Ok(workspace)
    } else {
        Err(MarketplaceError::WorkspaceNotFound)
    }
}

/// The user's workspaces (the default one exists after this call).
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    default_limit: i64,
) -> Result<WorkspaceList, MarketplaceError> {
    default_for(conn, tenant, owner).await?;
    let rows: Vec<Workspace> = with_conn!(conn, c => {
        workspaces::table
            .filter(workspaces::platform_id.eq(&tenant.platform_id))
            .filter(workspaces::mode.eq(tenant.mode))
            .filter(workspaces::owner_id.eq(owner))
            .order((workspaces::created_at.asc(), workspaces::id.asc()))
            .select(Workspace::as_select())
            .load(c)
            .await
    })?;
    Ok(WorkspaceList {
        workspaces: rows.iter().map(|w| w.to_object(default_limit)).collect(),
    })
}

/// Sets (or clears) a workspace's own character limit (admins). A limit below the
/// current count is allowed: nothing is removed, nothing more can be added.
pub async fn set_limit(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &WorkspaceId,
    changes: WorkspaceChanges,
    default_limit: i64,
) -> Result<WorkspaceObject, MarketplaceError> {
    if let Some(limit) = changes.character_limit
        && !(0..=100_000).contains(&limit)
    {
        return Err(MarketplaceError::invalid(
            "character_limit",
            "must be between 0 and 100000",
        ));
    }
    get(conn, tenant, id).await?;
    let now = Timestamp::now();
    with_conn!(conn, c => {
        diesel::update(workspaces::table.find(id))
            .set((
                workspaces::character_limit.eq(changes.character_limit),
                workspaces::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(get(conn, tenant, id).await?.to_object(default_limit))
}

/// Takes one place in the workspace, atomically: fails with `WorkspaceFull` (and
/// changes nothing) when it holds its limit already.
pub(crate) async fn take_place(
    conn: &mut DbConn,
    workspace: &Workspace,
    default_limit: i64,
) -> Result<(), MarketplaceError> {
    let updated = with_conn!(conn, c => {
        diesel::update(workspaces::table.find(&workspace.id))
            .filter(
                workspaces::character_count.lt(
                    workspaces::character_limit.assume_not_null(),
                )
                .and(workspaces::character_limit.is_not_null())
                .or(workspaces::character_limit.is_null()
                    .and(workspaces::character_count.lt(default_limit))),
            )
            .set(workspaces::character_count.eq(workspaces::character_count + 1))
            .execute(c)
            .await
    })?;
    if updated == 0 {
        let current = get(
            conn,
            &Tenant::new(workspace.platform_id.clone(), workspace.mode),
            &workspace.id,
        )
        .await?;
        return Err(MarketplaceError::WorkspaceFull {
            limit: current.limit(default_limit),
        });
    }
    Ok(())
}

/// Gives one place back (a character was deleted).
pub(crate) async fn release_place(
    conn: &mut DbConn,
    id: &WorkspaceId,
) -> Result<(), MarketplaceError> {
    with_conn!(conn, c => {
        diesel::update(workspaces::table.find(id).filter(workspaces::character_count.gt(0)))
            .set(workspaces::character_count.eq(workspaces::character_count - 1))
            .execute(c)
            .await
    })?;
    Ok(())
}
