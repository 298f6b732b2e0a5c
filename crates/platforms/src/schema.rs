//! Tables owned by this crate (see `migrations/*/2026-11-21-00000{1,5}_*` and
//! `migrations/*/2026-12-07-180000_platform_cors_origins`).

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
        cors_allowed_origins -> Text,
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

diesel::table! {
    media (id) {
        id -> Text,
        content_type -> Text,
        byte_size -> BigInt,
        sha256 -> Text,
        created_at -> Timestamp,
    }
}
