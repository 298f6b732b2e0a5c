DROP TABLE listing_search_terms;
