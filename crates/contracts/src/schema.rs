//! Tables owned by this crate (see `migrations/*/2026-11-21-000030_contracts`).

diesel::table! {
    contracts (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Nullable<Text>,
        notes -> Text,
        status -> Text,
        currency -> Text,
        include_processor_fees -> Bool,
        include_service_fees -> Bool,
        include_platform_fees -> Bool,
        due_at -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        last_sent_at -> Nullable<Timestamp>,
        last_payment_attempt_at -> Nullable<Timestamp>,
        paid_at -> Nullable<Timestamp>,
        settle_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    contract_items (id) {
        id -> Text,
        contract_id -> Text,
        platform_id -> Text,
        mode -> Text,
        product_id -> Nullable<Text>,
        name -> Text,
        unit_price_minor -> BigInt,
        quantity -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    contract_buyers (contract_id, user_id) {
        contract_id -> Text,
        user_id -> Text,
        platform_id -> Text,
        mode -> Text,
        due_minor -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    contract_sellers (contract_id, user_id) {
        contract_id -> Text,
        user_id -> Text,
        platform_id -> Text,
        mode -> Text,
        owed_minor -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    contract_fees (id) {
        id -> Text,
        contract_id -> Text,
        platform_id -> Text,
        mode -> Text,
        name -> Text,
        amount_minor -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    contracts,
    contract_items,
    contract_buyers,
    contract_sellers,
    contract_fees,
);
