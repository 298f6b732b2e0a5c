//! Who acts on money: billing decides what each caller may do, not its callers.

use feria_kernel::UserId;

use crate::error::BillingError;

/// Who acts: a signed-in user (an admin or not), or an API key (an admin without a user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The signed-in user; `None` for an API key.
    pub user_id: Option<UserId>,
    /// Admins (and API keys) see every transaction of their platform and mode, refund
    /// charges and read anyone's totals.
    pub is_admin: bool,
}

impl Actor {
    pub fn api_key() -> Actor {
        Actor {
            user_id: None,
            is_admin: true,
        }
    }

    pub fn user(user_id: UserId, is_admin: bool) -> Actor {
        Actor {
            user_id: Some(user_id),
            is_admin,
        }
    }

    /// 403 unless an admin.
    pub fn require_admin(&self) -> Result<(), BillingError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(BillingError::AdminRequired)
        }
    }

    /// Whether the actor is this user.
    pub fn is(&self, user: Option<&UserId>) -> bool {
        self.user_id.is_some() && self.user_id.as_ref() == user
    }
}
