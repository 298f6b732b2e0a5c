-- crate template-marketplace: the browse search index (docs/MARKETPLACE.md, "Browse and
-- search"). One row per (browsable listing, lexeme of its text): the posting list of
-- each lexeme, with the listing's single-term rank precomputed and the columns browse
-- filters on copied beside it, so `GET /marketplace?q=<word>&niche=..&min_price=..`
-- reads the top of one index range in rank order (index-only) instead of fetching and
-- ranking every full-text match. Derived data: written by the crate in the same
-- transaction as each listing change (no trigger), rebuilt from `listings` at will.
--
-- Only listings browse can show have rows: active, and not an exclusive license already
-- sold. `score` is exactly `ts_rank(listings.search, '<term>'::tsquery)` (float4, as
-- ts_rank returns it), so rank order and ties are those of the full-text query.
-- No foreign key: listings are never deleted (archived), and a check per posting would
-- double the cost of bulk loads.
CREATE TABLE listing_search_terms (
    listing_id TEXT NOT NULL,
    term TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    niche TEXT NOT NULL,
    score REAL NOT NULL,
    created_at TIMESTAMP NOT NULL,
    currency TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    PRIMARY KEY (listing_id, term)
);
-- Browse by term (and niche): scanned backwards for score DESC, created_at DESC,
-- listing_id DESC, the full-text query's order; currency and price are filtered in the
-- index. Without a niche the same index serves a range over the term (then sorted).
CREATE INDEX listing_search_terms_browse_idx ON listing_search_terms
    (platform_id, mode, term, niche, score, created_at, listing_id) INCLUDE (currency, price_minor);

-- Listings that exist already (the crate keeps the rows in step from here on).
INSERT INTO listing_search_terms (listing_id, term, platform_id, mode, niche, score,
    created_at, currency, price_minor)
SELECT l.id, t.lexeme, l.platform_id, l.mode, l.niche,
    ts_rank(l.search, quote_literal(t.lexeme)::tsquery), l.created_at, l.currency, l.price_minor
FROM listings l, unnest(tsvector_to_array(l.search)) AS t(lexeme)
WHERE l.status = 'active' AND (l.license_type <> 'exclusive' OR l.sales_count = 0);
