//! Tables owned by this crate (see `migrations/*/2026-11-21-000010_catalog`).
//!
//! PostgreSQL's generated `products.search` column and SQLite's `products_fts` table are
//! not listed: only the search module (`search.rs`) names them, in raw SQL.

diesel::table! {
    products (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        parent_product_id -> Nullable<Text>,
        name -> Text,
        description -> Text,
        image -> Nullable<Text>,
        quantity -> BigInt,
        is_enabled -> Bool,
        category -> Nullable<Text>,
        subcategory -> Nullable<Text>,
        tags -> Text,
        price_minor -> BigInt,
        currency -> Text,
        use_seasonal_prices -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    product_tags (product_id, tag) {
        product_id -> Text,
        platform_id -> Text,
        mode -> Text,
        tag -> Text,
    }
}

diesel::table! {
    seasonal_prices (id) {
        id -> Text,
        product_id -> Text,
        platform_id -> Text,
        mode -> Text,
        name -> Text,
        price_minor -> BigInt,
        start_at -> Timestamp,
        end_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    carts (id) {
        id -> Text,
        platform_id -> Text,
        mode -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    cart_items (id) {
        id -> Text,
        cart_id -> Text,
        platform_id -> Text,
        mode -> Text,
        product_id -> Text,
        name -> Text,
        unit_price_minor -> BigInt,
        currency -> Text,
        quantity -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(product_tags -> products (product_id));
diesel::joinable!(seasonal_prices -> products (product_id));
diesel::joinable!(cart_items -> carts (cart_id));
diesel::allow_tables_to_appear_in_same_query!(
    products,
    product_tags,
    seasonal_prices,
    carts,
    cart_items
);
