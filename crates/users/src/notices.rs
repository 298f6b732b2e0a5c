//! Mail to a platform's owners about their platform: users know who the owners are and
//! where to reach them, so the mail is written here rather than where the event happens.

use feria_events::endpoints::EndpointObject;
use feria_kernel::mail::{Mailer, OutgoingMail};
use feria_kernel::{Db, Tenant};

use crate::error::UserError;
use crate::role::Role;

/// The tenant's owners' email addresses (in the tenant's mode).
async fn owner_emails(db: &Db, tenant: &Tenant) -> Result<Vec<String>, UserError> {
    let mut conn = db.conn().await?;
    let mut emails = Vec::new();
    for id in crate::user::admin_ids(&mut conn, tenant).await? {
        let user = crate::user::get(&mut conn, tenant, &id).await?;
        if user.role == Role::Owner {
            emails.push(user.email);
        }
    }
    Ok(emails)
}

/// Tells the platform's owners (in the endpoint's mode) that the delivery worker disabled
/// one of their webhook endpoints, and how to turn it on again. The owners that cannot be
/// found fail the call; a mail that cannot be sent is logged and the others still go
/// out (the worker has nobody to answer to, and one bad address must not silence the rest).
pub async fn webhook_endpoint_disabled(
    db: &Db,
    mailer: &Mailer,
    tenant: &Tenant,
    endpoint: &EndpointObject,
) -> Result<(), UserError> {
    for to in owner_emails(db, tenant).await? {
        let mail = OutgoingMail {
            to,
            subject: format!("Webhook endpoint {} disabled", endpoint.id),
            body: format!(
                "Hello,\n\nFeria stopped sending events to your {mode} webhook endpoint \
                 {id} ({url}): {reason}.\n\nFix the endpoint, then enable it again \
                 (PUT /api/v1/webhook_endpoints/{id} with {{\"enabled\": true}}); \
                 failed deliveries can be sent again with the redeliver endpoint.\n",
                mode = tenant.mode,
                id = endpoint.id,
                url = endpoint.url,
                reason = endpoint
                    .disabled_reason
                    .as_deref()
                    .unwrap_or("its deliveries kept failing"),
            ),
        };
        if let Err(error) = mailer.send(mail).await {
            tracing::warn!(%error, "cannot mail the owner about a disabled webhook endpoint");
        }
    }
    Ok(())
}
