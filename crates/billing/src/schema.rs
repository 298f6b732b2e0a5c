//! Tables owned by this crate (see `migrations/*/2026-11-21-000007_ledger` and
//! `migrations/*/2026-11-21-000060_subscriptions`,
//! `migrations/*/2026-11-21-000080_provider_settlements`).

diesel::table! {
    ledger_accounts (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        kind -> Text,
        owner_id -> Text,
        currency -> Text,
        balance -> BigInt,
        allow_negative -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    journal_entries (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        kind -> Text,
        reference -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        fingerprint -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ledger_postings (id) {
        id -> Text,
        entry_id -> Text,
        account_id -> Text,
        amount -> BigInt,
        currency -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    transactions (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        kind -> Text,
        status -> Text,
        provider -> Text,
        amount -> BigInt,
        currency -> Text,
        contract_id -> Nullable<Text>,
        buyer_user_id -> Nullable<Text>,
        seller_user_id -> Nullable<Text>,
        fee_kind -> Nullable<Text>,
        provider_ref -> Nullable<Text>,
        entry_id -> Text,
        refund_of -> Nullable<Text>,
        refunded_amount -> BigInt,
        description -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

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

diesel::table! {
    provider_settlements (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        settlement_key -> Text,
        provider -> Text,
        fingerprint -> Text,
        attempt -> BigInt,
        status -> Text,
        plan -> Text,
        provider_refs -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(ledger_postings -> journal_entries (entry_id));
diesel::joinable!(ledger_postings -> ledger_accounts (account_id));
diesel::allow_tables_to_appear_in_same_query!(
    ledger_accounts,
    journal_entries,
    ledger_postings,
    transactions,
    subscriptions,
    subscription_sellers,
    subscription_charges,
    provider_settlements
);
