//! Characters: the templates sellers list and buyers clone. A character lives in one of
//! its owner's workspaces; only its owner sees and changes it. A clone bought on the
//! marketplace carries its provenance (listing, seller, source character, license).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{DbConn, Mode, PlatformId, Tenant, Timestamp, UserId, with_conn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::MarketplaceError;
use crate::listing::{LicenseType, ListingId};
use crate::schema::{characters, listings};
use crate::workspace::{self, WorkspaceId};

feria_kernel::define_id!(
    /// A character.
    CharacterId,
    "char"
);

const MAX_TRAITS: usize = 30;

/// A character as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = characters)]
pub struct Character {
    pub id: CharacterId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub workspace_id: WorkspaceId,
    pub owner_id: UserId,
    pub name: String,
    /// Trimmed, lower case.
    pub niche: String,
    pub description: String,
    pub avatar_url: Option<String>,
    /// JSON array of strings.
    pub traits: String,
    pub source_listing_id: Option<String>,
    pub source_character_id: Option<String>,
    pub source_seller_id: Option<String>,
    pub license_type: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

impl Character {
    pub fn trait_list(&self) -> Vec<String> {
        serde_json::from_str(&self.traits).unwrap_or_default()
    }

    pub fn to_object(&self) -> CharacterObject {
        let source = match (
            &self.source_listing_id,
            &self.source_seller_id,
            &self.source_character_id,
            &self.license_type,
        ) {
            (Some(listing), Some(seller), Some(character), Some(license)) => Some(Provenance {
                listing_id: listing.clone(),
                seller_id: seller.clone(),
                character_id: character.clone(),
                license_type: license.clone(),
            }),
            _ => None,
        };
        CharacterObject {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            owner_id: self.owner_id.clone(),
            name: self.name.clone(),
            niche: self.niche.clone(),
            description: self.description.clone(),
            avatar_url: self.avatar_url.clone(),
            traits: self.trait_list(),
            source,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Where a cloned character came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provenance {
    /// The listing it was bought from (`mkt_...`).
    pub listing_id: String,
    /// The seller (`user_...`).
    pub seller_id: String,
    /// The seller's character it is a copy of (`char_...`).
    pub character_id: String,
    /// The license it was bought under.
    pub license_type: String,
}

/// A character as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Character)]
pub struct CharacterObject {
    pub id: CharacterId,
    pub workspace_id: WorkspaceId,
    pub owner_id: UserId,
    pub name: String,
    /// Lower case.
    pub niche: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub traits: Vec<String>,
    /// For a clone bought on the marketplace: where it came from; `null` otherwise.
    pub source: Option<Provenance>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `{"character": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CharacterEnvelope {
    pub character: CharacterObject,
}

/// `{"characters": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CharacterList {
    pub characters: Vec<CharacterObject>,
}

/// A new character.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCharacter {
    /// Required: 1 to 200 characters.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    /// Required: 1 to 100 characters; stored lower case.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub niche: Option<String>,
    /// Required: up to 5000 characters (may be empty).
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// One of the user's workspaces; the default workspace when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "ws_01HZX6FQJ5N6E7T2M3A4B5C6D7")]
    pub workspace_id: Option<WorkspaceId>,
    /// An `http` or `https` URL with a host, at most 2000 characters; stored normalised.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2000)]
    pub avatar_url: Option<String>,
    /// Up to 30 traits of 1 to 100 characters.
    #[serde(default)]
    pub traits: Option<Vec<String>>,
}

/// Changes to a character; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterChanges {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub niche: Option<String>,
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub description: Option<String>,
    /// An `http` or `https` URL with a host, at most 2000 characters; stored normalised.
    #[schema(format = "uri", max_length = 2000)]
    pub avatar_url: Option<String>,
    pub traits: Option<Vec<String>>,
}

/// `GET /characters?workspace_id=`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CharacterFilter {
    /// One of the user's workspaces; all of them when absent.
    #[param(value_type = Option<String>)]
    pub workspace_id: Option<WorkspaceId>,
}

fn clean(field: &'static str, value: &str, max: usize) -> Result<String, MarketplaceError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(MarketplaceError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(MarketplaceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A niche: a trimmed label of 1 to 100 characters, lower case.
pub(crate) fn clean_niche(niche: &str) -> Result<String, MarketplaceError> {
    Ok(clean("niche", niche, 100)?.to_lowercase())
}

fn clean_traits(traits: &[String]) -> Result<String, MarketplaceError> {
    if traits.len() > MAX_TRAITS {
        return Err(MarketplaceError::invalid(
            "traits",
            format!("at most {MAX_TRAITS} traits"),
        ));
    }
    let cleaned = traits
        .iter()
        .map(|t| clean("traits", t, 100))
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_string(&cleaned).map_err(|_| MarketplaceError::invalid("traits", "invalid"))
}

/// The avatar URL as stored: the one check of stored URLs (`feria_kernel::web_url`).
fn clean_url(url: Option<String>) -> Result<Option<String>, MarketplaceError> {
    feria_kernel::web_url::normalize_opt("avatar_url", url.as_deref())
        .map_err(|e| MarketplaceError::invalid(e.field, e.message()))
}

/// A live character of the tenant, whoever owns it.
pub async fn get(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &CharacterId,
) -> Result<Character, MarketplaceError> {
    with_conn!(conn, c => {
        characters::table
            .find(id)
            .filter(characters::platform_id.eq(&tenant.platform_id))
            .filter(characters::mode.eq(tenant.mode))
            .filter(characters::deleted_at.is_null())
            .select(Character::as_select())
            .first(c)
            .await
            .optional()
    })?
    .ok_or(MarketplaceError::CharacterNotFound)
}

/// A character of the tenant, deleted or not (a listing's source is copied even if its
/// seller deleted it after archiving the listing and then reactivated it).
pub(crate) async fn get_any_state(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &CharacterId,
) -> Result<Character, MarketplaceError> {
    with_conn!(conn, c => {
        characters::table
            .find(id)
            .filter(characters::platform_id.eq(&tenant.platform_id))
            .filter(characters::mode.eq(tenant.mode))
            .select(Character::as_select())
            .first(c)
            .await
            .optional()
    })?
    .ok_or(MarketplaceError::CharacterNotFound)
}

/// A live character the user owns (404 otherwise).
pub async fn owned(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    id: &CharacterId,
) -> Result<Character, MarketplaceError> {
    let character = get(conn, tenant, id).await?;
    if &character.owner_id == owner {
        Ok(character)
    } else {
        Err(MarketplaceError::CharacterNotFound)
    }
}

/// Creates a character in one of the user's workspaces (the default one unless named),
/// within the workspace's character limit.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    new: NewCharacter,
    default_limit: i64,
) -> Result<CharacterObject, MarketplaceError> {
    let required = |field: &'static str, value: Option<String>| {
        value.ok_or_else(|| MarketplaceError::invalid(field, "is required"))
    };
    let name = clean("name", &required("name", new.name)?, 200)?;
    let niche = clean_niche(&required("niche", new.niche)?)?;
    let description = required("description", new.description)?.trim().to_owned();
    let avatar_url = clean_url(new.avatar_url)?;
    let traits = clean_traits(&new.traits.unwrap_or_default())?;
    conn.transaction(async |c| -> Result<CharacterObject, MarketplaceError> {
        let workspace = match &new.workspace_id {
            Some(id) => match workspace::owned(c, tenant, owner, id).await {
                Err(MarketplaceError::WorkspaceNotFound) => {
                    return Err(MarketplaceError::invalid(
                        "workspace_id",
                        "no such workspace of yours",
                    ));
                }
                other => other?,
            },
            None => workspace::default_for(c, tenant, owner).await?,
        };
        workspace::take_place(c, &workspace, default_limit).await?;
        let now = Timestamp::now();
        let character = Character {
            id: CharacterId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            workspace_id: workspace.id.clone(),
            owner_id: owner.clone(),
            name,
            niche,
            description,
            avatar_url,
            traits,
            source_listing_id: None,
            source_character_id: None,
            source_seller_id: None,
            license_type: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        insert(c, &character).await?;
        Ok(character.to_object())
    })
    .await
}

pub(crate) async fn insert(
    conn: &mut DbConn,
    character: &Character,
) -> Result<(), MarketplaceError> {
    with_conn!(conn, c => {
        diesel::insert_into(characters::table)
            .values(character)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Deep-copies `source` into `workspace` for `owner`, with its provenance. The caller
/// has taken a place in the workspace.
pub(crate) async fn clone_into(
    conn: &mut DbConn,
    source: &Character,
    workspace: &WorkspaceId,
    owner: &UserId,
    listing: &ListingId,
    license: LicenseType,
) -> Result<Character, MarketplaceError> {
    let now = Timestamp::now();
    let clone = Character {
        id: CharacterId::new(),
        workspace_id: workspace.clone(),
        owner_id: owner.clone(),
        source_listing_id: Some(listing.as_str().to_owned()),
        source_character_id: Some(source.id.as_str().to_owned()),
        source_seller_id: Some(source.owner_id.as_str().to_owned()),
        license_type: Some(license.as_str().to_owned()),
        created_at: now,
        updated_at: now,
        deleted_at: None,
        ..source.clone()
    };
    insert(conn, &clone).await?;
    Ok(clone)
}

/// The user's characters, in one workspace or all of theirs, oldest first.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    filter: &CharacterFilter,
) -> Result<CharacterList, MarketplaceError> {
    if let Some(id) = &filter.workspace_id {
        workspace::owned(conn, tenant, owner, id).await?;
    }
    let rows: Vec<Character> = with_conn!(conn, c => {
        let mut query = characters::table
            .filter(characters::platform_id.eq(&tenant.platform_id))
            .filter(characters::mode.eq(tenant.mode))
            .filter(characters::owner_id.eq(owner))
            .filter(characters::deleted_at.is_null())
            .into_boxed();
        if let Some(id) = &filter.workspace_id {
            query = query.filter(characters::workspace_id.eq(id.clone()));
        }
        query
            .order((characters::created_at.asc(), characters::id.asc()))
            .limit(1000)
            .select(Character::as_select())
            .load(c)
            .await
    })?;
    Ok(CharacterList {
        characters: rows.iter().map(Character::to_object).collect(),
    })
}

#[derive(AsChangeset)]
#[diesel(table_name = characters)]
struct CharacterChangeset {
    name: Option<String>,
    niche: Option<String>,
    description: Option<String>,
    avatar_url: Option<String>,
    traits: Option<String>,
    updated_at: Timestamp,
}

/// Changes one of the user's characters. A new name reaches its listings' search text.
pub async fn update(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    id: &CharacterId,
    changes: CharacterChanges,
) -> Result<CharacterObject, MarketplaceError> {
    let changeset = CharacterChangeset {
        name: changes
            .name
            .as_deref()
            .map(|n| clean("name", n, 200))
            .transpose()?,
        niche: changes.niche.as_deref().map(clean_niche).transpose()?,
        description: changes.description.map(|d| d.trim().to_owned()),
        avatar_url: clean_url(changes.avatar_url)?,
        traits: changes.traits.as_deref().map(clean_traits).transpose()?,
        updated_at: Timestamp::now(),
    };
    conn.transaction(async |c| -> Result<CharacterObject, MarketplaceError> {
        owned(c, tenant, owner, id).await?;
        with_conn!(c, c => {
            diesel::update(characters::table.find(id))
                .set(&changeset)
                .execute(c)
                .await
        })?;
        if let Some(name) = &changeset.name {
            with_conn!(c, c => {
                diesel::update(listings::table.filter(listings::character_id.eq(id)))
                    .set(listings::character_name.eq(name))
                    .execute(c)
                    .await
            })?;
            // The name is searchable text: the listings' index rows follow it.
            let listed: Vec<crate::listing::ListingId> = with_conn!(c, c => {
                listings::table
                    .filter(listings::character_id.eq(id))
                    .select(listings::id)
                    .load(c)
                    .await
            })?;
            crate::dialect::reindex(c, &listed).await?;
        }
        Ok(owned(c, tenant, owner, id).await?.to_object())
    })
    .await
}

/// Deletes one of the user's characters (soft: listings and purchases naming it stay
/// valid) and frees its place. Refused while a listing of it is not archived.
pub async fn delete(
    conn: &mut DbConn,
    tenant: &Tenant,
    owner: &UserId,
    id: &CharacterId,
) -> Result<(), MarketplaceError> {
    conn.transaction(async |c| -> Result<(), MarketplaceError> {
        let character = owned(c, tenant, owner, id).await?;
        let listed: i64 = with_conn!(c, c => {
            listings::table
                .filter(listings::character_id.eq(id))
                .filter(listings::status.ne("archived"))
                .count()
                .get_result(c)
                .await
        })?;
        if listed > 0 {
            return Err(MarketplaceError::CharacterListed);
        }
        let now = Timestamp::now();
        let deleted = with_conn!(c, c => {
            diesel::update(characters::table.find(id).filter(characters::deleted_at.is_null()))
                .set((characters::deleted_at.eq(now), characters::updated_at.eq(now)))
                .execute(c)
                .await
        })?;
        if deleted == 1 {
            workspace::release_place(c, &character.workspace_id).await?;
        }
        Ok(())
    })
    .await
}
