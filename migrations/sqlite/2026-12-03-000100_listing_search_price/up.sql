-- crate template-marketplace: browse's count by price (docs/MARKETPLACE.md, "Counting").
-- The browse key is ordered by rank, so counting the listings of a price window read
-- the whole (term, niche) range: ~10,000 entries for a frequent word at 1,000,000
-- listings, the most expensive part of a one-word browse and the source of its latency
-- tail. This index orders each (term, niche) range by currency and price, so the count
-- reads only the entries inside the window.
CREATE INDEX listing_search_terms_price_idx ON listing_search_terms
    (platform_id, mode, term, niche, currency, price_minor);
