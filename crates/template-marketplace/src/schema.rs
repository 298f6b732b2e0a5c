//! Tables owned by this crate (see `migrations/*/2026-11-21-000040_marketplace`).
//!
//! PostgreSQL's generated `listings.search` column and SQLite's `listings_fts` table are
//! not listed: only `dialect.rs` names them, in raw SQL.

diesel::table! {
    workspaces (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        owner_id -> Text,
        name -> Text,
        is_default -> Bool,
        character_limit -> Nullable<BigInt>,
        character_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    characters (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        workspace_id -> Text,
        owner_id -> Text,
        name -> Text,
        niche -> Text,
        description -> Text,
        avatar_url -> Nullable<Text>,
        traits -> Text,
        source_listing_id -> Nullable<Text>,
        source_character_id -> Nullable<Text>,
        source_seller_id -> Nullable<Text>,
        license_type -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    listings (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        seller_id -> Text,
        character_id -> Text,
        title -> Text,
        description -> Text,
        niche -> Text,
        character_name -> Text,
        price_minor -> BigInt,
        currency -> Text,
        license_type -> Text,
        status -> Text,
        preview_images -> Text,
        sales_count -> BigInt,
        revenue_minor -> BigInt,
        earnings_minor -> BigInt,
        rating_sum -> BigInt,
        rating_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    purchases (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        listing_id -> Text,
        buyer_id -> Text,
        seller_id -> Text,
        character_id -> Text,
        price_minor -> BigInt,
        platform_fee_minor -> BigInt,
        currency -> Text,
        license_type -> Text,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reviews (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        listing_id -> Text,
        reviewer_id -> Text,
        rating -> BigInt,
        text -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(workspaces, characters, listings, purchases, reviews);
