use feria_kernel::{ApiError, DbError};

feria_kernel::error_codes! {
    /// The codes of the event log and webhooks.
    pub enum EventsCode {
        WebhookEndpointDisabled = Conflict "webhook_endpoint_disabled",
    }
}

/// Failures of the event log and webhook operations.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Absent, or in another platform or mode.
    #[error("event not found")]
    EventNotFound,
    #[error("webhook endpoint not found")]
    EndpointNotFound,
    #[error("webhook delivery not found")]
    DeliveryNotFound,
    /// A field is invalid (422).
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Redelivery to an endpoint that is switched off (409).
    #[error("the webhook endpoint is disabled")]
    EndpointDisabled,
    /// A stored secret does not open under the server's keys (500, logged).
    #[error("{0}")]
    Sealed(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl EventsError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> EventsError {
        EventsError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<diesel::result::Error> for EventsError {
    fn from(error: diesel::result::Error) -> Self {
        EventsError::Db(error.into())
    }
}

impl From<EventsError> for ApiError {
    fn from(error: EventsError) -> Self {
        match error {
            EventsError::EventNotFound => ApiError::not_found("event"),
            EventsError::EndpointNotFound => ApiError::not_found("webhook endpoint"),
            EventsError::DeliveryNotFound => ApiError::not_found("webhook delivery"),
            EventsError::Invalid { field, message } => ApiError::invalid_field(field, message),
            EventsError::EndpointDisabled => ApiError::coded(
                EventsCode::WebhookEndpointDisabled,
                "the webhook endpoint is disabled; enable it before redelivering",
            ),
            EventsError::Sealed(reason) => {
                tracing::error!(%reason, "a sealed secret does not open");
                ApiError::internal()
            }
            EventsError::Db(db) => db.into(),
        }
    }
}
