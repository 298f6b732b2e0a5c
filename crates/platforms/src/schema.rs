//! Tables owned by this crate (see `migrations/*/2026-11-21-000001_platforms`).

diesel::table! {
    platforms (id) {
        id -> Text,
        name -> Text,
        description -> Text,
        domain -> Text,
        url -> Nullable<Text>,
        logo -> Nullable<Text>,
        platform_fee_bps -> BigInt,
        active_subscription -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    waitlist_entries (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        email -> Text,
        name -> Text,
        position -> BigInt,
        granted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}
