//! Creating a platform with its owner and keys: `feria platform create`, the seeder and
//! the test kit. It spans three crates (platforms, users, auth), so it lives here, the
//! lowest crate that already calls the other two.

use feria_kernel::{Db, Mode, Tenant};
use feria_platforms::media::MediaUrls;
use feria_platforms::{NewPlatform, PlatformObject};
use feria_users::Role;
use serde::Serialize;

pub use crate::error::BootstrapError;

/// The keys of a new platform, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeys {
    pub test: String,
    pub live: String,
}

/// What `feria platform create` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedPlatform {
    pub platform: PlatformObject,
    pub api_keys: ApiKeys,
}

/// Creates a platform, its owner (in both modes) and a test and a live key, in one
/// transaction: either all exist afterwards, or none.
pub async fn create_platform(
    db: &Db,
    name: &str,
    domain: &str,
    owner_email: &str,
) -> Result<CreatedPlatform, BootstrapError> {
    let new = NewPlatform {
        name: name.to_owned(),
        domain: domain.to_owned(),
        description: None,
        url: None,
    };
    validator::Validate::validate(&new)?;
    let owner_email = owner_email.to_owned();
    let mut conn = db.conn().await?;
    conn.transaction(async move |c| -> Result<CreatedPlatform, BootstrapError> {
        let platform = feria_platforms::platform::create(c, new).await?;
        let mut owners = Vec::new();
        for mode in [Mode::Live, Mode::Test] {
            let tenant = Tenant::new(platform.id.clone(), mode);
            let owner = feria_users::user::create(c, &tenant, &owner_email, Role::Owner).await?;
            owners.push(owner.id);
        }
        let test = crate::api_keys::issue(c, &platform.id, Mode::Test).await?;
        let live = crate::api_keys::issue(c, &platform.id, Mode::Live).await?;
        Ok(CreatedPlatform {
            // A new platform has no logo: no URL base is needed.
            platform: platform.to_object(
                Mode::Live,
                owners.into_iter().take(1).collect(),
                &MediaUrls::relative(),
            ),
            api_keys: ApiKeys { test, live },
        })
    })
    .await
}
