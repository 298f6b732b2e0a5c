//! Tables owned by this crate (see `migrations/*/2026-11-21-000060_subscriptions`).

diesel::table! {
    subscriptions (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        contract_id -> Text,
        currency -> Text,
        price_minor -> BigInt,
        platform_fee_minor -> BigInt,
        service_fee_minor -> BigInt,
        processor_fee_minor -> BigInt,
        cycle -> Text,
        status -> Text,
        started_at -> Timestamp,
        paused_at -> Nullable<Timestamp>,
        paused_until -> Nullable<Timestamp>,
        ends_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        anchor_at -> Timestamp,
        next_period -> BigInt,
        next_renewal_at -> Timestamp,
        cycles_charged -> BigInt,
        failed_attempts -> BigInt,
        last_attempt_at -> Nullable<Timestamp>,
        last_failure -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    subscription_sellers (subscription_id, user_id) {
        subscription_id -> Text,
        user_id -> Text,
        platform_id -> Text,
        mode -> Text,
        amount_minor -> BigInt,
    }
}

diesel::table! {
    subscription_charges (id) {
        id -> Text,
        subscription_id -> Text,
        platform_id -> Text,
        mode -> Text,
        cycle -> BigInt,
        period_start -> Timestamp,
        period_end -> Timestamp,
        amount_minor -> BigInt,
        currency -> Text,
        transaction_id -> Text,
        charged_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    subscriptions,
    subscription_sellers,
    subscription_charges
);
