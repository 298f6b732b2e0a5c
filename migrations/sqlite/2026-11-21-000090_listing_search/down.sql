DROP TABLE listings_fts_instances;
DROP TABLE listing_search_terms;
