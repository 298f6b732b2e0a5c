//! Tables owned by this crate (see `migrations/*/2026-11-21-000070_events`).

diesel::table! {
    event_counters (platform_id, mode) {
        platform_id -> Text,
        mode -> Text,
        last_sequence -> BigInt,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        sequence -> BigInt,
        event_type -> Text,
        data -> Text,
        created_at -> Timestamp,
        fanned_out -> Bool,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        url -> Text,
        description -> Text,
        event_types -> Text,
        enabled -> Bool,
        secret -> Text,
        disabled_reason -> Nullable<Text>,
        consecutive_failures -> BigInt,
        failing_since -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        lease_expires_at -> Nullable<Timestamp>,
        lease_token -> Nullable<Text>,
        deadline_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        endpoint_id -> Text,
        delivery_id -> Text,
        event_id -> Text,
        attempt -> BigInt,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        response_body -> Nullable<Text>,
        next_retry_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    events,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts
);
