//! Tables owned by this crate (see `migrations/*/2026-11-21-00000{2,4,6}_*`).

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

diesel::table! {
    user_links (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        url -> Text,
        title -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    user_payment_methods (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        provider -> Text,
        provider_ref -> Text,
        brand -> Nullable<Text>,
        last4 -> Nullable<Text>,
        exp_month -> Nullable<Integer>,
        exp_year -> Nullable<Integer>,
        is_default -> Bool,
        created_at -> Timestamp,
    }
}
