//! Tables owned by this crate (see `migrations/*/2026-11-21-000020_calendar`).

diesel::table! {
    calendars (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        name -> Text,
        description -> Text,
        google_calendar_ids -> Text,
        timezone -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    calendar_availability (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        calendar_id -> Text,
        position -> Integer,
        kind -> Text,
        weekday -> Nullable<Integer>,
        on_date -> Nullable<Date>,
        start_minute -> Nullable<Integer>,
        end_minute -> Nullable<Integer>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    calendar_events (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        calendar_id -> Text,
        title -> Text,
        description -> Nullable<Text>,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        timezone -> Text,
        kind -> Text,
        is_exclusive -> Bool,
        subscription_id -> Nullable<Text>,
        contract_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(calendars, calendar_availability, calendar_events);
