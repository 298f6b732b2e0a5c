//! Who a request acts as: a platform in a mode, through an API key or a signed-in user.

use feria_kernel::{Mode, PlatformId, Tenant, UserId};
use feria_users::Role;

use crate::error::AuthError;

/// The credential behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A platform API key: acts as the platform's admin in the key's mode.
    ApiKey { key_id: String },
    /// A signed-in user, through a session.
    User {
        user_id: UserId,
        role: Role,
        session_id: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Tenant,
    pub actor: Actor,
}

impl Principal {
    pub fn platform_id(&self) -> &PlatformId {
        &self.tenant.platform_id
    }

    pub fn mode(&self) -> Mode {
        self.tenant.mode
    }

    /// The caller's role: API keys act as `admin`.
    pub fn role(&self) -> Role {
        match &self.actor {
            Actor::ApiKey { .. } => Role::Admin,
            Actor::User { role, .. } => *role,
        }
    }

    /// The signed-in user, if the caller is one.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.actor {
            Actor::User { user_id, .. } => Some(user_id),
            Actor::ApiKey { .. } => None,
        }
    }

    pub fn is_api_key(&self) -> bool {
        matches!(self.actor, Actor::ApiKey { .. })
    }

    /// 403 unless the caller's role is at least `required`.
    pub fn require_role(&self, required: Role) -> Result<(), AuthError> {
        if self.role().at_least(required) {
            Ok(())
        } else {
            Err(AuthError::RoleRequired(required))
        }
    }

    /// The signed-in user; 403 `api_key_not_allowed` for an API key.
    pub fn require_user(&self) -> Result<&UserId, AuthError> {
        self.user_id().ok_or(AuthError::ApiKeyNotAllowed)
    }

    /// 403 `api_key_required` unless the caller is an API key.
    pub fn require_api_key(&self) -> Result<(), AuthError> {
        if self.is_api_key() {
            Ok(())
        } else {
            Err(AuthError::ApiKeyRequired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(actor: Actor) -> Principal {
        Principal {
            tenant: Tenant::new(PlatformId::new(), Mode::Test),
            actor,
        }
    }

    #[test]
    fn api_keys_act_as_admin_and_users_by_role() {
        let key = principal(Actor::ApiKey {
            key_id: "key_1".into(),
        });
        assert!(key.require_role(Role::Admin).is_ok());
        assert!(key.require_role(Role::Owner).is_err());
        assert!(matches!(
            key.require_user(),
            Err(AuthError::ApiKeyNotAllowed)
        ));

        let member = principal(Actor::User {
            user_id: UserId::new(),
            role: Role::Member,
            session_id: "sess_1".into(),
        });
        assert!(matches!(
            member.require_role(Role::Admin),
            Err(AuthError::RoleRequired(Role::Admin))
        ));
        assert!(member.require_user().is_ok());
        assert!(matches!(
            member.require_api_key(),
            Err(AuthError::ApiKeyRequired)
        ));
    }
}
