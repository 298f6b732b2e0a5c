DROP TABLE contract_fees;
DROP TABLE contract_sellers;
DROP TABLE contract_buyers;
DROP TABLE contract_items;
DROP TABLE contracts;
