DROP TABLE onchain_entitlements;
DROP TABLE onchain_quotes;
DROP TABLE onchain_offers;
