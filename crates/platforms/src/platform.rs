//! Platforms: create, read (by id or domain), update.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::coherence::{self, Topic};
use feria_kernel::{DbConn, DbError, Mode, PlatformId, Timestamp, UserId, with_conn};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::PlatformError;
use crate::media::{MediaId, MediaUrls};
use crate::schema::platforms;

/// A platform as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = platforms)]
pub struct Platform {
    pub id: PlatformId,
    pub name: String,
    pub description: String,
    pub domain: String,
    pub url: Option<String>,
    /// The logo's media id (`med_...`); rows from before media ids were stored may hold
    /// its URL (see [`crate::media::stored_media_id`]).
    pub logo: Option<String>,
    /// The platform's fee in hundredths of a percent (250 = 2.5 %).
    pub platform_fee_bps: i64,
    pub active_subscription: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The browser origins allowed to call the API for this platform: a JSON array of
    /// origins as [`crate::cors::parse_origin`] accepts them (`[]`: none).
    pub cors_allowed_origins: String,
}

/// A platform as the API shows it (the seed's object).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Platform)]
pub struct PlatformObject {
    pub id: PlatformId,
    /// The mode of the credentials used: `test` or `live`.
    pub mode: Mode,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub name: String,
    /// Ids of the platform's owners and admins in this mode.
    pub admins: Vec<UserId>,
    pub description: String,
    /// URL of the platform's logo: under the server's `PUBLIC_URL`, or relative
    /// (`/media/med_...`) without one.
    pub logo: Option<String>,
    /// URL of the platform.
    pub url: Option<String>,
    /// The platform's fee, in percent.
    #[schema(value_type = f64, example = 2.5)]
    #[serde(with = "feria_kernel::money::decimal_number")]
    pub platform_fee: Decimal,
    pub active_subscription: Option<String>,
    /// Browser origins (`https://app.example.com`) whose pages may call the API with this
    /// platform's credentials (CORS), besides the server's own list (docs/DEPLOYMENT.md).
    #[schema(example = json!(["https://app.example.com"]))]
    pub cors_allowed_origins: Vec<String>,
}

impl Platform {
    /// The fee in percent (`250` → `2.5`).
    pub fn platform_fee_percent(&self) -> Decimal {
        percent_of_bps(self.platform_fee_bps)
    }

    /// The browser origins allowed to call the API for this platform (CORS).
    pub fn allowed_origins(&self) -> Vec<String> {
        stored_origins(&self.cors_allowed_origins)
    }

    /// The API object; `media` makes the logo's URL.
    pub fn to_object(&self, mode: Mode, admins: Vec<UserId>, media: &MediaUrls) -> PlatformObject {
        PlatformObject {
            id: self.id.clone(),
            mode,
            created: self.created_at,
            updated: self.updated_at,
            name: self.name.clone(),
            admins,
            description: self.description.clone(),
            logo: media.of_stored(self.logo.as_deref()),
            url: self.url.clone(),
            platform_fee: self.platform_fee_percent(),
            active_subscription: self.active_subscription.clone(),
            cors_allowed_origins: self.allowed_origins(),
        }
    }
}

/// The stored JSON array of origins; written only by [`update`], so anything else reads
/// as no origins rather than failing every read of the platform.
fn stored_origins(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Hundredths of a percent as a percent (`250` → `2.5`).
fn percent_of_bps(bps: i64) -> Decimal {
    Decimal::new(bps, 2).normalize()
}

/// What a new platform needs.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlatform {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: String,
    /// The host name the platform is served at, e.g. `market.example.com`.
    pub domain: String,
    #[serde(default)]
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    pub description: Option<String>,
    /// An `http` or `https` URL with a host, at most 2000 characters; stored normalised.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2000)]
    pub url: Option<String>,
}

/// Changes to a platform; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformChanges {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub name: Option<String>,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    pub description: Option<String>,
    /// An `http` or `https` URL with a host, at most 2000 characters; stored normalised.
    #[schema(format = "uri", max_length = 2000)]
    pub url: Option<String>,
    pub domain: Option<String>,
    /// The platform's fee in percent, 0 to 100, at most two decimals.
    #[schema(value_type = Option<f64>, example = 2.5)]
    #[serde(default, with = "feria_kernel::money::decimal_number::option")]
    pub platform_fee: Option<Decimal>,
    /// Replaces the browser origins allowed to call the API for this platform (CORS):
    /// each written as browsers send it (`https://app.example.com`, `http://localhost:3000`:
    /// scheme, lower-case host, port only when not the default; no path or trailing `/`),
    /// no `*`, at most 50; duplicates are folded. `[]` removes them all.
    #[schema(example = json!(["https://app.example.com"]))]
    pub cors_allowed_origins: Option<Vec<String>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = platforms)]
struct PlatformChangeset {
    name: Option<String>,
    description: Option<String>,
    url: Option<String>,
    domain: Option<String>,
    platform_fee_bps: Option<i64>,
    cors_allowed_origins: Option<String>,
    updated_at: Timestamp,
}

/// Lower-cases and checks a host name (`Market.Example.com` → `market.example.com`).
pub fn normalize_domain(domain: &str) -> Result<String, PlatformError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(PlatformError::Invalid {
            field: "domain",
            message: "must be a host name such as market.example.com".into(),
        })
    }
}

/// The platform's URL as stored: the one check of stored URLs (`feria_kernel::web_url`).
fn check_url(url: Option<&str>) -> Result<Option<String>, PlatformError> {
    feria_kernel::web_url::normalize_opt("url", url).map_err(|e| PlatformError::Invalid {
        field: e.field,
        message: e.message(),
    })
}

/// The origins to store, as their JSON array; every bad entry is reported at once.
fn origins_to_store(origins: &[String]) -> Result<String, PlatformError> {
    let origins = crate::cors::check_origins("corsAllowedOrigins", origins)
        .map_err(PlatformError::InvalidFields)?;
    serde_json::to_string(&origins).map_err(|e| {
        PlatformError::InvalidFields(vec![feria_kernel::FieldError::new(
            "corsAllowedOrigins",
            e.to_string(),
        )])
    })
}

fn fee_to_bps(fee: Decimal) -> Result<i64, PlatformError> {
    let invalid = || PlatformError::Invalid {
        field: "platformFee",
        message: "must be a percentage from 0 to 100 with at most two decimals".into(),
    };
    if fee < Decimal::ZERO || fee > Decimal::ONE_HUNDRED || fee.normalize().scale() > 2 {
        return Err(invalid());
    }
    let bps = fee * Decimal::ONE_HUNDRED;
    i64::try_from(bps).map_err(|_| invalid())
}

fn domain_conflict(error: DbError, domain: &str) -> PlatformError {
    if error.is_unique_violation("domain") {
        PlatformError::DomainTaken(domain.to_owned())
    } else {
        PlatformError::Db(error)
    }
}

/// Creates a platform.
pub async fn create(conn: &mut DbConn, new: NewPlatform) -> Result<Platform, PlatformError> {
    let now = Timestamp::now();
    let domain = normalize_domain(&new.domain)?;
    let url = check_url(new.url.as_deref())?;
    let platform = Platform {
        id: PlatformId::new(),
        name: new.name.trim().to_owned(),
        description: new.description.unwrap_or_default(),
        domain: domain.clone(),
        url,
        logo: None,
        platform_fee_bps: 0,
        active_subscription: None,
        created_at: now,
        updated_at: now,
        cors_allowed_origins: "[]".to_owned(),
    };
    with_conn!(conn, c => {
        diesel::insert_into(platforms::table).values(&platform).execute(c).await
    })
    .map_err(|e| domain_conflict(e.into(), &domain))?;
    Ok(platform)
}

/// The platform with this id.
pub async fn get(conn: &mut DbConn, id: &PlatformId) -> Result<Platform, PlatformError> {
    let found = with_conn!(conn, c => {
        platforms::table
            .find(id)
            .select(Platform::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    found.ok_or(PlatformError::NotFound)
}

/// The platform's fee in percent (`2.5`): what contracts, purchases and fee estimates
/// charge on its behalf. One place reads it, so they cannot disagree on how.
pub async fn fee_percent(conn: &mut DbConn, id: &PlatformId) -> Result<Decimal, PlatformError> {
    let found = with_conn!(conn, c => {
        platforms::table
            .find(id)
            .select(platforms::platform_fee_bps)
            .first::<i64>(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    let bps = found.ok_or(PlatformError::NotFound)?;
    Ok(percent_of_bps(bps))
}

/// The platform served at this domain.
pub async fn get_by_domain(conn: &mut DbConn, domain: &str) -> Result<Platform, PlatformError> {
    let domain = normalize_domain(domain).map_err(|_| PlatformError::NotFound)?;
    let found = with_conn!(conn, c => {
        platforms::table
            .filter(platforms::domain.eq(&domain))
            .select(Platform::as_select())
            .first(c)
            .await
            .optional()
    })
    .map_err(DbError::from)?;
    found.ok_or(PlatformError::NotFound)
}

/// Applies changes; returns the updated platform.
pub async fn update(
    conn: &mut DbConn,
    id: &PlatformId,
    changes: PlatformChanges,
) -> Result<Platform, PlatformError> {
    let domain = changes
        .domain
        .as_deref()
        .map(normalize_domain)
        .transpose()?;
    let changeset = PlatformChangeset {
        name: changes.name.map(|n| n.trim().to_owned()),
        description: changes.description,
        url: check_url(changes.url.as_deref())?,
        domain: domain.clone(),
        platform_fee_bps: changes.platform_fee.map(fee_to_bps).transpose()?,
        cors_allowed_origins: changes
            .cors_allowed_origins
            .as_deref()
            .map(origins_to_store)
            .transpose()?,
        updated_at: Timestamp::now(),
    };
    // Nodes keep every platform's CORS origins in memory: a change to them is announced
    // to all of them, delivered when the update commits.
    let kept_by_nodes = changeset.cors_allowed_origins.is_some();
    let updated = conn
        .transaction(async |c| -> Result<usize, PlatformError> {
            let updated = with_conn!(c, c => {
                diesel::update(platforms::table.find(id))
                    .set(&changeset)
                    .execute(c)
                    .await
            })
            .map_err(|e| domain_conflict(e.into(), domain.as_deref().unwrap_or_default()))?;
            if updated > 0 && kept_by_nodes {
                coherence::announce(c, Topic::Platforms).await?;
            }
            Ok(updated)
        })
        .await?;
    if updated == 0 {
        return Err(PlatformError::NotFound);
    }
    if kept_by_nodes {
        coherence::changed(Topic::Platforms);
    }
    get(conn, id).await
}

/// The browser origins of every platform that allows any (for the gateway's CORS
/// snapshot: one read of the platforms with a list, not one per request).
pub async fn all_allowed_origins(
    conn: &mut DbConn,
) -> Result<Vec<(PlatformId, Vec<String>)>, PlatformError> {
    let rows = with_conn!(conn, c => {
        platforms::table
            .filter(platforms::cors_allowed_origins.ne("[]"))
            .select((platforms::id, platforms::cors_allowed_origins))
            .load::<(PlatformId, String)>(c)
            .await
    })
    .map_err(DbError::from)?;
    Ok(rows
        .into_iter()
        .map(|(id, json)| (id, stored_origins(&json)))
        .filter(|(_, origins)| !origins.is_empty())
        .collect())
}

/// Sets the platform's logo to an uploaded image (its media id is stored, not a URL).
pub async fn set_logo(
    conn: &mut DbConn,
    id: &PlatformId,
    logo: &MediaId,
) -> Result<Platform, PlatformError> {
    let updated = with_conn!(conn, c => {
        diesel::update(platforms::table.find(id))
            .set((platforms::logo.eq(logo.as_str()), platforms::updated_at.eq(Timestamp::now())))
            .execute(c)
            .await
    })
    .map_err(DbError::from)?;
    if updated == 0 {
        return Err(PlatformError::NotFound);
    }
    get(conn, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            normalize_domain(" Market.Example.COM. ").unwrap(),
            "market.example.com"
        );
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        for bad in ["", "a..b", "-a.com", "a_b.com", "exa mple.com"] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fees_are_percent_with_two_decimals() {
        assert_eq!(fee_to_bps(Decimal::new(25, 1)).unwrap(), 250);
        assert_eq!(fee_to_bps(Decimal::ONE_HUNDRED).unwrap(), 10_000);
        assert!(fee_to_bps(Decimal::new(-1, 0)).is_err());
        assert!(fee_to_bps(Decimal::new(1001, 1)).is_err());
        assert!(fee_to_bps(Decimal::new(1234, 3)).is_err());
    }
}
