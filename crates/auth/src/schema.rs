//! Tables owned by this crate (see `migrations/*/2026-11-21-000003_auth`).

diesel::table! {
    api_keys (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        digest -> Text,
        masked -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    otp_challenges (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        email -> Text,
        code_hash -> Text,
        attempts -> Integer,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        family_id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        access_digest -> Text,
        refresh_digest -> Text,
        access_expires_at -> Timestamp,
        refresh_expires_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}
