-- crate template-marketplace: the browse search index (docs/MARKETPLACE.md, "Browse and
-- search"). One row per (browsable listing, term of its text): the posting list of each
-- term, with the listing's single-term score precomputed and the columns browse filters
-- on copied beside it, so `GET /marketplace?q=<word>&niche=..&min_price=..` reads the top
-- of one primary-key range in score order instead of running FTS5 over every match and
-- computing bm25 for each. Derived data: written by the crate in the same transaction
-- as each listing change, rebuilt from `listings` at will.
--
-- Only listings browse can show have rows: active, and not an exclusive license already
-- sold. Terms are FTS5's own (porter unicode61, read back through fts5vocab), so a term
-- here is exactly what `listings_fts MATCH` matches. `score` is FTS5's bm25 term
-- component for the listing (weights 10, 10, 5, 2; k1 1.2, b 0.75) with the average
-- length fixed (see the crate's backend.rs): the order bm25 gives within one term.
-- WITHOUT ROWID: the primary key is the browse order, so the table is its own index.
CREATE TABLE listing_search_terms (
    platform_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    term TEXT NOT NULL,
    niche TEXT NOT NULL,
    score REAL NOT NULL,
    created_at TIMESTAMP NOT NULL,
    listing_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    PRIMARY KEY (platform_id, mode, term, niche, score, created_at, listing_id)
) WITHOUT ROWID;
-- Keeping it in step: a listing's rows are replaced on each change.
CREATE INDEX listing_search_terms_listing_idx ON listing_search_terms (listing_id);

-- Every token instance of the full-text index (term, rowid, column, offset): how bulk
-- loads read FTS5's terms for many listings at once.
CREATE VIRTUAL TABLE listings_fts_instances USING fts5vocab (listings_fts, instance);

-- Listings that exist already (the crate keeps the rows in step from here on); the score
-- is the crate's (backend.rs, AVG_TOKENS = 64).
INSERT INTO listing_search_terms (platform_id, mode, term, niche, score, created_at,
    listing_id, currency, price_minor)
SELECT l.platform_id, l.mode, v.term, l.niche,
    (v.f * 2.2) / (v.f + 1.2 * (0.25 + 0.75 * d.n / 64.0)),
    l.created_at, l.id, l.currency, l.price_minor
FROM (SELECT doc, term, SUM(CASE col WHEN 'title' THEN 10.0 WHEN 'character_name' THEN 10.0
        WHEN 'niche' THEN 5.0 ELSE 2.0 END) AS f
      FROM listings_fts_instances GROUP BY doc, term) AS v
JOIN (SELECT doc, COUNT(*) AS n FROM listings_fts_instances GROUP BY doc) AS d ON d.doc = v.doc
JOIN listings l ON l.rowid = v.doc
WHERE l.status = 'active' AND (l.license_type <> 'exclusive' OR l.sales_count = 0);
