use feria_kernel::{ApiError, DbError, FieldError};
use feria_users::UserError;

use crate::entries::CalendarEventId;

feria_kernel::error_codes! {
    /// The codes calendar operations answer.
    pub enum CalendarCode {
        EventOverlap = Conflict "event_overlap",
        SubscriptionEventLocked = Conflict "subscription_event_locked",
    }
}

/// Failures of calendar operations.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("user not found")]
    UserNotFound,
    #[error("event not found")]
    EventNotFound,
    /// One or more fields are invalid (422, each field named).
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<FieldError>),
    /// An exclusive event would overlap another exclusive event of the same calendar.
    #[error("the event overlaps the exclusive event {0}")]
    ExclusiveOverlap(CalendarEventId),
    /// Events of kind `subscription` belong to a subscription: the user cannot remove or
    /// change them.
    #[error("subscription events cannot be {0} by the user")]
    SubscriptionEventLocked(&'static str),
    #[error(transparent)]
    User(UserError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CalendarError {
    /// 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> CalendarError {
        CalendarError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<UserError> for CalendarError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => CalendarError::UserNotFound,
            other => CalendarError::User(other),
        }
    }
}

impl From<CalendarError> for ApiError {
    fn from(error: CalendarError) -> Self {
        match error {
            CalendarError::UserNotFound => ApiError::not_found("user"),
            CalendarError::EventNotFound => ApiError::not_found("event"),
            CalendarError::Invalid(details) => ApiError::validation(details),
            CalendarError::ExclusiveOverlap(other) => ApiError::coded(
                CalendarCode::EventOverlap,
                format!("the event overlaps the exclusive event {other}"),
            ),
            CalendarError::SubscriptionEventLocked(action) => ApiError::coded(
                CalendarCode::SubscriptionEventLocked,
                format!("this event belongs to a subscription and cannot be {action} by the user"),
            ),
            CalendarError::User(e) => e.into(),
            CalendarError::Db(e) => e.into(),
        }
    }
}
