//! Tables owned by this crate (see `migrations/*/2026-11-21-000002_users`).

diesel::table! {
    users (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        email -> Text,
        role -> Text,
        username -> Nullable<Text>,
        name -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        bio -> Nullable<Text>,
        image -> Nullable<Text>,
        timezone -> Nullable<Text>,
        stripe_connect_id -> Nullable<Text>,
        stripe_customer_id -> Nullable<Text>,
        charges_enabled -> Bool,
        details_submitted -> Bool,
        authenticated_at -> Nullable<Timestamp>,
        scheduled_deletion_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}
