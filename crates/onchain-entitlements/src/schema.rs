//! Tables owned by this crate (see `migrations/*/2026-11-21-000050_onchain` and
//! `migrations/*/2026-12-08-300000_receipt_keys_finality`).

diesel::table! {
    onchain_offers (platform_id, mode, offer_id) {
        platform_id -> Text,
        mode -> Text,
        offer_id -> Text,
        issuer_id -> Text,
        title -> Text,
        summary -> Text,
        status -> Text,
        currency -> Text,
        amount_atomic -> Text,
        decimals -> Integer,
        chain_id -> BigInt,
        member_only -> Bool,
        workspace_bound -> Bool,
        transferable -> Bool,
        membership -> Bool,
        duration_days -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    onchain_quotes (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        offer_id -> Text,
        wallet -> Text,
        workspace_id -> Nullable<Text>,
        chain_id -> BigInt,
        currency -> Text,
        amount_atomic -> Text,
        decimals -> Integer,
        token_address -> Text,
        treasury_address -> Text,
        calldata -> Text,
        policy_hash -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    onchain_entitlements (platform_id, mode, entitlement_id) {
        platform_id -> Text,
        mode -> Text,
        entitlement_id -> Text,
        chain_id -> BigInt,
        wallet -> Text,
        sequence -> BigInt,
        offer_id -> Text,
        quote_id -> Text,
        workspace_id -> Nullable<Text>,
        tx_hash -> Text,
        policy_hash -> Text,
        membership -> Bool,
        transferable -> Bool,
        issued_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        finality -> Text,
        block_number -> Nullable<BigInt>,
        block_hash -> Nullable<Text>,
        revoked_reason -> Nullable<Text>,
        finality_check_at -> Nullable<Timestamp>,
        finality_lease_until -> Nullable<Timestamp>,
        finality_lease_token -> Nullable<Text>,
    }
}

diesel::table! {
    onchain_receipt_keys (kid) {
        kid -> Text,
        platform_id -> Text,
        mode -> Text,
        public_key -> Text,
        private_key -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        publish_until -> Nullable<Timestamp>,
    }
}
