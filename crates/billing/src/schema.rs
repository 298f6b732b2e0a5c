//! Tables owned by this crate (see `migrations/*/2026-11-21-000007_ledger` and
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
    provider_settlements
);
