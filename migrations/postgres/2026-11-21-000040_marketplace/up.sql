-- crate template-marketplace: workspaces, characters, listings of character templates,
-- purchases (one per buyer and listing) and reviews. Every row carries platform_id and
-- mode; money is BIGINT minor units of an upper-case ISO 4217 currency.

-- A user's workspace. Each user has one default workspace (created on first use); its
-- character limit is `character_limit` when an admin set one, else the server's
-- WORKSPACE_CHARACTER_LIMIT. `character_count` is kept by conditional updates
-- (`... WHERE character_count < limit`), so the limit holds under concurrent writers.
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    character_limit BIGINT CHECK (character_limit IS NULL OR character_limit >= 0),
    character_count BIGINT NOT NULL DEFAULT 0 CHECK (character_count >= 0),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX workspaces_platform_id_mode_owner_id_default_key
    ON workspaces (platform_id, mode, owner_id) WHERE is_default;

-- A character. Clones bought on the marketplace carry their provenance (the listing,
-- the seller, the source character and the license); others have NULLs there.
-- Soft-deleted (`deleted_at`), so listings and purchases that name it stay valid.
CREATE TABLE characters (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    owner_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    niche TEXT NOT NULL,
    description TEXT NOT NULL,
    avatar_url TEXT,
    -- JSON array of strings.
    traits TEXT NOT NULL DEFAULT '[]',
    source_listing_id TEXT,
    source_character_id TEXT,
    source_seller_id TEXT,
    license_type TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX characters_workspace_idx ON characters (workspace_id, created_at, id)
    WHERE deleted_at IS NULL;
CREATE INDEX characters_platform_mode_owner_idx ON characters (platform_id, mode, owner_id, created_at)
    WHERE deleted_at IS NULL;

-- A listing of a character template. `character_name` is a copy of the character's
-- name (kept in step when the character is renamed) so that full-text search reads one
-- table. `sales_count` / `revenue_minor` / `earnings_minor` are kept by the purchase's
-- conditional update, which is also what sells an exclusive listing at most once.
CREATE TABLE listings (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    seller_id TEXT NOT NULL REFERENCES users (id),
    character_id TEXT NOT NULL REFERENCES characters (id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    niche TEXT NOT NULL,
    character_name TEXT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor > 0),
    currency TEXT NOT NULL,
    license_type TEXT NOT NULL,
    status TEXT NOT NULL,
    -- JSON array of URLs.
    preview_images TEXT NOT NULL DEFAULT '[]',
    sales_count BIGINT NOT NULL DEFAULT 0 CHECK (sales_count >= 0),
    revenue_minor BIGINT NOT NULL DEFAULT 0,
    earnings_minor BIGINT NOT NULL DEFAULT 0,
    rating_sum BIGINT NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK (license_type <> 'exclusive' OR sales_count <= 1)
);
-- Browse: active listings of a tenant, newest first, by niche, by price; the seller's
-- dashboard.
CREATE INDEX listings_platform_mode_status_created_idx ON listings (platform_id, mode, status, created_at, id);
CREATE INDEX listings_platform_mode_status_niche_idx ON listings (platform_id, mode, status, niche, created_at);
CREATE INDEX listings_platform_mode_status_price_idx ON listings (platform_id, mode, status, currency, price_minor);
CREATE INDEX listings_platform_mode_seller_idx ON listings (platform_id, mode, seller_id, created_at);
CREATE INDEX listings_character_idx ON listings (character_id);

-- A purchase: at most one per buyer and listing (the unique index is the last guard
-- behind the listing's row lock), and at most one per buyer and Idempotency-Key.
CREATE TABLE purchases (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    listing_id TEXT NOT NULL REFERENCES listings (id),
    buyer_id TEXT NOT NULL REFERENCES users (id),
    seller_id TEXT NOT NULL REFERENCES users (id),
    character_id TEXT NOT NULL REFERENCES characters (id),
    price_minor BIGINT NOT NULL,
    platform_fee_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    license_type TEXT NOT NULL,
    idempotency_key TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX purchases_buyer_id_listing_id_key ON purchases (buyer_id, listing_id);
CREATE UNIQUE INDEX purchases_buyer_id_idempotency_key_key ON purchases (buyer_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX purchases_platform_mode_buyer_idx ON purchases (platform_id, mode, buyer_id, created_at);
CREATE INDEX purchases_listing_idx ON purchases (listing_id);

-- A review of a listing by one of its buyers, once.
CREATE TABLE reviews (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    mode TEXT NOT NULL,
    listing_id TEXT NOT NULL REFERENCES listings (id),
    reviewer_id TEXT NOT NULL REFERENCES users (id),
    rating BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    text TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX reviews_listing_id_reviewer_id_key ON reviews (listing_id, reviewer_id);
CREATE INDEX reviews_listing_created_idx ON reviews (listing_id, created_at);

-- Full-text search: a generated tsvector over title and character name (weight A),
-- niche (B) and description (C), with a GIN index; no trigger. SQLite uses FTS5.
ALTER TABLE listings ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, title), 'A')
    || setweight(to_tsvector('english'::regconfig, character_name), 'A')
    || setweight(to_tsvector('english'::regconfig, niche), 'B')
    || setweight(to_tsvector('english'::regconfig, description), 'C')
) STORED;
CREATE INDEX listings_search_idx ON listings USING GIN (search);
