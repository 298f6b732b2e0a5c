-- crate catalog: products (with variants), their tags and seasonal prices, full-text
-- search, and carts. Products are soft-deleted (`deleted_at`), so cart lines (and later
-- contract items) that reference them keep a valid key beside their own snapshot.
CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    parent_product_id TEXT REFERENCES products (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    image TEXT,
    -- Never negative: stock is taken with a conditional UPDATE; this is the last guard.
    quantity BIGINT NOT NULL CHECK (quantity >= 0),
    is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    category TEXT,
    subcategory TEXT,
    -- JSON array of lower-case tags, for display and full-text search; `product_tags`
    -- holds the same tags one per row for filtering.
    tags TEXT NOT NULL DEFAULT '[]',
    -- The base price in minor units of `currency`.
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    use_seasonal_prices BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
-- One index per sort and per selective filter of `GET /products`, each led by the tenant
-- and limited to live rows (every catalog query says `deleted_at IS NULL`).
-- The trailing columns make counts index-only: what a user may see (enabled, or their
-- own) is decided from the index, and SQLite needs `deleted_at` itself in an index to
-- call it covering.
CREATE INDEX products_platform_mode_created_idx ON products (platform_id, mode, created_at, id, is_enabled, user_id, deleted_at)
    WHERE deleted_at IS NULL;
CREATE INDEX products_platform_mode_price_idx ON products (platform_id, mode, price_minor, id)
    WHERE deleted_at IS NULL;
CREATE INDEX products_platform_mode_category_idx ON products (platform_id, mode, category, subcategory, is_enabled, user_id, deleted_at)
    WHERE deleted_at IS NULL;
CREATE INDEX products_platform_mode_user_idx ON products (platform_id, mode, user_id, created_at, is_enabled, deleted_at)
    WHERE deleted_at IS NULL;
CREATE INDEX products_parent_idx ON products (parent_product_id)
    WHERE parent_product_id IS NOT NULL;

CREATE TABLE product_tags (
    product_id TEXT NOT NULL REFERENCES products (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (product_id, tag)
);
CREATE INDEX product_tags_platform_mode_tag_idx ON product_tags (platform_id, mode, tag, product_id);
-- Tags are long-tailed: finer statistics let the planner see that a rare tag is rare
-- and start from this index rather than walk the newest-first index looking for it.
ALTER TABLE product_tags ALTER COLUMN tag SET STATISTICS 1000;

CREATE TABLE seasonal_prices (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    name TEXT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    -- The season covers [start_at, end_at).
    start_at TIMESTAMP NOT NULL,
    end_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CHECK (start_at < end_at)
);
CREATE INDEX seasonal_prices_product_start_idx ON seasonal_prices (product_id, start_at);

-- Full-text search: a generated tsvector over name (weight A), description (B) and tags
-- (C), with a GIN index; no trigger (the schema stays fit for distributed PostgreSQL).
-- SQLite uses an FTS5 table instead (see its migration).
ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, name), 'A')
    || setweight(to_tsvector('english'::regconfig, description), 'B')
    || setweight(to_tsvector('english'::regconfig, tags), 'C')
) STORED;
CREATE INDEX products_search_idx ON products USING GIN (search);

-- One cart per user (users belong to one platform and mode).
CREATE TABLE carts (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX carts_platform_id_mode_user_id_key ON carts (platform_id, mode, user_id);

-- A cart line: the product's name, unit price and currency as they were when it was
-- added (the snapshot), and how many.
CREATE TABLE cart_items (
    id TEXT PRIMARY KEY NOT NULL,
    cart_id TEXT NOT NULL REFERENCES carts (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    name TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX cart_items_cart_id_product_id_key ON cart_items (cart_id, product_id);
CREATE INDEX cart_items_product_idx ON cart_items (product_id);
